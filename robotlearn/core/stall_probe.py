"""Stall probes: was the machine able to run a real-time thread on time, there and then?

One tiny process per CPU, pinned to it, at SCHED_FIFO priority 99 -- above everything robotlearn runs (the
control loop at 80, the emulated servo device at 90) -- wakes every `PERIOD_S` and records how late it woke.
Nothing of ours can delay it, so a late wake-up means the CPU itself was not there: the hypervisor ran
someone else on the virtual CPU, or the kernel ran with preemption off. That is the evidence a timing test
needs to tell "the code missed its deadline" from "the machine took the CPU away" (tests/quiet_machine.py).

/proc/stat's steal column says the same only on average and in 10 ms ticks; 1 % of steal spread thin is
harmless, the same 1 % in three 40 ms holds breaks a 2 ms bound. The probe sees the holds themselves.
Its cost: one wake-up of ~10 us per CPU every 10 ms (0.1 % of a CPU each), rare enough not to keep an idle
virtual CPU awake (which would hide the late wake-ups of an idle machine from the code being measured).

Run as a script (`python stall_probe.py CPU`) so it imports nothing but the standard library; the parent
(`StallProbes`) starts one per CPU and reads each one's JSON summary when it stops them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

PERIOD_S = 0.01  # a hold long enough to matter (>= 10 ms) always covers a wake-up; shorter ones often do
STALL_S = 0.001  # a wake-up later than this counts as a stall (a quiet CPU wakes this thread within ~0.1 ms)
PRIORITY = 99


def probe(cpu: int) -> dict:
    """Wake every PERIOD_S on `cpu` until SIGTERM; return the lateness summary."""
    import gc

    gc.disable()  # a collection is our own stall, not the machine's
    os.sched_setaffinity(0, {cpu})
    try:  # not core/realtime.py: the probe runs as a bare script, and importing robotlearn takes seconds
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITY))
        fifo = True
    except PermissionError:
        fifo = False
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print("ready", flush=True)
    wakes = stalls = 0
    max_late = stalled = 0.0
    t0 = time.monotonic()
    deadline = t0 + PERIOD_S
    while not stop:
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        late = now - deadline
        wakes += 1
        max_late = max(max_late, late)
        if late > STALL_S:
            stalls += 1
            stalled += late
        deadline += PERIOD_S
        if deadline < now:  # missed whole periods: the next deadline is the next one still ahead
            deadline = now + PERIOD_S - (now - t0) % PERIOD_S
    return {"cpu": cpu, "sched_fifo": fifo, "seconds": time.monotonic() - t0, "wakes": wakes,
            "stalls": stalls, "stalled_s": stalled, "max_late_s": max_late}


@dataclass
class StallReport:
    """Per-CPU probe summaries over one window."""

    cpus: list[dict]

    @property
    def max_late_s(self) -> float:
        return max((c["max_late_s"] for c in self.cpus), default=0.0)

    @property
    def stalled_s(self) -> float:
        return sum(c["stalled_s"] for c in self.cpus)

    def describe(self) -> str:
        worst = max(self.cpus, key=lambda c: c["max_late_s"])
        return (f"a top-priority probe thread woke up to {1e3 * self.max_late_s:.1f} ms late (CPU {worst['cpu']}), "
                f"{sum(c['stalls'] for c in self.cpus)} stalls > {1e3 * STALL_S:.0f} ms, "
                f"{1e3 * self.stalled_s:.0f} ms in all")


class StallProbes:
    """One probe per CPU this process may use, from `start()` to `stop()` (or as a context manager)."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self.report: StallReport | None = None

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def start(self) -> StallProbes:
        for cpu in sorted(os.sched_getaffinity(0)):
            proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(cpu)],
                                    stdout=subprocess.PIPE, text=True)
            self._procs.append(proc)
        for proc in self._procs:
            if proc.stdout.readline().strip() != "ready":
                self.stop()
                raise RuntimeError("stall probe did not start")
        return self

    def stop(self) -> StallReport:
        cpus = []
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=10)
            if proc.returncode == 0 and out.strip():
                cpus.append(json.loads(out.strip().splitlines()[-1]))
        self._procs = []
        self.report = StallReport(cpus)
        return self.report

    def __enter__(self) -> StallProbes:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    print(json.dumps(probe(int(sys.argv[1]))), flush=True)

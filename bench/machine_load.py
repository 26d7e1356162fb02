"""What the benchmarks need to hold on a shared, noisy machine: a stated synthetic load, the machine's own
load and steal time, and a median-with-spread summary of repeated, interleaved segments.

`CpuHogs(n)` starts n busy-loop processes (and stops them, by their own pids, on exit), so "under load"
means the same thing on every run; `MachineSample` brackets a measurement with /proc/loadavg and the
/proc/stat CPU counters, whose steal column says how much of the time the hypervisor gave our virtual
CPUs to someone else (figures from a run with high steal are not comparable with a quiet one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

BUSY_LOOP = "while True:\n    pass\n"


class CpuHogs:
    """Context manager: `n` CPU-bound helper processes at normal priority for the duration of the block."""

    def __init__(self, n: int):
        self.n = n
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> CpuHogs:
        self._procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL)
                       for _ in range(self.n)]
        time.sleep(0.2 if self.n else 0.0)  # let them reach the scheduler's run queue
        return self

    def __exit__(self, *exc) -> None:
        for p in self._procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        for p in self._procs:
            p.wait()
        self._procs = []


def _cpu_counters() -> np.ndarray:
    """Aggregate /proc/stat jiffies: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return np.array([int(v) for v in fields[1:9]], dtype=np.int64)


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


@dataclass
class MachineSample:
    """Load average at start and end and the CPU time split between two points in time."""

    loadavg_start: list[float] = field(default_factory=loadavg)
    _start: np.ndarray = field(default_factory=_cpu_counters, repr=False)
    loadavg_end: list[float] | None = None
    steal_fraction: float | None = None
    busy_fraction: float | None = None

    def finish(self) -> MachineSample:
        delta = _cpu_counters() - self._start
        total = max(int(delta.sum()), 1)
        self.loadavg_end = loadavg()
        self.steal_fraction = float(delta[7]) / total
        self.busy_fraction = 1.0 - float(delta[3] + delta[4]) / total
        return self

    def as_dict(self) -> dict:
        return {"loadavg_start": self.loadavg_start, "loadavg_end": self.loadavg_end,
                "steal_fraction": self.steal_fraction, "cpu_busy_fraction": self.busy_fraction,
                "cpus": os.cpu_count()}


def spread(values) -> dict:
    """Median, min and max of repeated measurements (plus their count)."""
    v = np.asarray(list(values), dtype=np.float64)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}

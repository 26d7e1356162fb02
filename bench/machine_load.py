"""What the benchmarks need to hold on a shared, noisy machine: a stated synthetic load, the machine's own
load and steal time, and a median-with-spread summary of repeated, interleaved segments.

`CpuHogs(n)` starts n busy-loop processes (and stops them, by their own pids, on exit), so "under load"
means the same thing on every run; `MachineSample` (robotlearn.core.machine, shared with the emulator and
the timing tests) brackets a measurement with /proc/loadavg and the /proc/stat CPU counters, whose steal
column says how much of the time the hypervisor gave our virtual CPUs to someone else (figures from a run
with high steal are not comparable with a quiet one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from robotlearn.core.machine import MachineSample, loadavg

__all__ = ["CpuHogs", "MachineSample", "loadavg", "spread"]

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


def spread(values) -> dict:
    """Median, min and max of repeated measurements (plus their count)."""
    v = np.asarray(list(values), dtype=np.float64)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}

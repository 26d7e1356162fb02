"""How much of the machine a timing figure actually had: load average and the CPU time split, above all
the *steal* column of /proc/stat, the time the hypervisor ran someone else on our virtual CPUs.

A real-time thread cannot run while its virtual CPU is taken away, so on a shared VM a reply or a wake-up
falls late by however long the hypervisor held the CPU (tens of ms at times, measured here). Benchmarks
put the steal fraction next to every figure, the emulator prints it with its timing, and timing tests
use it to tell a late result caused by the machine from one caused by the code (tests/quiet_machine.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np


def cpu_counters() -> np.ndarray:
    """Aggregate /proc/stat ticks since boot: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return np.array([int(v) for v in fields[1:9]], dtype=np.int64)


def loadavg() -> list[float]:
    return [float(v) for v in os.getloadavg()]


@dataclass
class MachineSample:
    """Load average at start and end and the CPU time split between two points in time."""

    loadavg_start: list[float] = field(default_factory=loadavg)
    _start: np.ndarray = field(default_factory=cpu_counters, repr=False)
    loadavg_end: list[float] | None = None
    steal_fraction: float | None = None
    busy_fraction: float | None = None

    def steal_so_far(self) -> float:
        """Fraction of all CPU time since the start that the hypervisor stole (10 ms resolution per CPU)."""
        delta = cpu_counters() - self._start
        return float(delta[7]) / max(int(delta.sum()), 1)

    def finish(self) -> MachineSample:
        delta = cpu_counters() - self._start
        total = max(int(delta.sum()), 1)
        self.loadavg_end = loadavg()
        self.steal_fraction = float(delta[7]) / total
        self.busy_fraction = 1.0 - float(delta[3] + delta[4]) / total
        return self

    def as_dict(self) -> dict:
        return {"loadavg_start": self.loadavg_start, "loadavg_end": self.loadavg_end,
                "steal_fraction": self.steal_fraction, "cpu_busy_fraction": self.busy_fraction,
                "cpus": os.cpu_count()}

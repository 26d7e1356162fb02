"""SCHED_FIFO for a Python thread that stands in for separate hardware (an emulated flight controller).

Why: a device emulator shares this machine's CPUs with the host it serves. Under the default scheduler
CPU-busy processes can delay its wake-ups by milliseconds; its simulated clock then falls behind and catches
up in bursts, and the host sees a device whose latency changes with the machine's load -- which no real
board does. A fixed real-time priority puts it ahead of ordinary processes, as its own board would be. It needs
CAP_SYS_NICE (root here); without it the thread runs as before and says so. The compiled loops do the same
in C++ (control_loop.cpp, emu_arm.cpp); this is the same request for the threads that stay in Python.
"""

from __future__ import annotations

import os


class RealtimePriority:
    """SCHED_FIFO at `priority` for the calling thread from `__enter__` to `__exit__`, when granted."""

    def __init__(self, priority: int) -> None:
        if not 1 <= priority <= 99:
            raise ValueError(f"SCHED_FIFO priority must be 1..99, got {priority}")
        self.priority = priority
        self.granted = False
        self._before: tuple[int, os.sched_param] | None = None

    def __enter__(self) -> RealtimePriority:
        before = (os.sched_getscheduler(0), os.sched_getparam(0))
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
        except PermissionError:
            return self
        self._before, self.granted = before, True
        return self

    def __exit__(self, *exc) -> None:
        if self._before is not None:
            os.sched_setscheduler(0, *self._before)
            self._before = None

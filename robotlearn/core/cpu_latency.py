"""Keep idle CPUs awake while real-time work runs: a PM QoS CPU latency request.

Why: on this class of VM (cpuidle driver `haltpoll`, guest halt polling off) an idle virtual CPU halts, and
the hypervisor takes 0.3-10 ms to run it again when a timer fires, a futex is posted or a byte crosses a
pty. A 500 Hz servo loop talking to the emulated bus over a pty then missed 10-40 of every 50 cycles on an
*idle* machine (two CPU hogs, which keep the CPUs from halting, cut that to 0-4), and a top-priority probe
thread woke up to 10 ms late. With a 0 us request held the same run missed 0-3 cycles per 50 and the probe's
worst wake-up was 0.3 ms. Real-time Linux setups make the same request for the same reason (a C-state exit
on bare metal costs tens to hundreds of us).

The interface is the kernel's (Documentation/power/pm_qos_interface.rst): write a 32-bit latency bound in
microseconds to /dev/cpu_dma_latency and keep the file open; the request ends when it is closed, and the
kernel honours the smallest open request. Its cost: idle CPUs poll instead of sleeping -- on a VM, host CPU
time and on bare metal power, never time taken from this machine's own work (the poll yields at once).
It needs root (the device is 0600); without it the loop runs as before and says so.
"""

from __future__ import annotations

import os
import struct

DEVICE = "/dev/cpu_dma_latency"


class CpuLatencyRequest:
    """Hold a CPU wake-up latency bound of `max_us` from `acquire()` (or `with`) to `release()`;
    `max_us=None` (a config that leaves the machine as it is) makes both do nothing."""

    def __init__(self, max_us: int | None = 0) -> None:
        if max_us is not None and max_us < 0:
            raise ValueError(f"cpu latency bound must be >= 0 us, got {max_us}")
        self.max_us = max_us
        self._fd: int | None = None
        self._was_held = False
        #: why the request is not held
        self.refused = "not asked for" if max_us is None else "not requested yet"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> CpuLatencyRequest:
        if self._fd is None and self.max_us is not None:
            try:
                fd = os.open(DEVICE, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as err:
                self.refused = f"{DEVICE}: {err.strerror}"
                return self
            try:
                os.write(fd, struct.pack("=i", self.max_us))
            except OSError as err:
                os.close(fd)
                self.refused = f"{DEVICE}: {err.strerror}"
                return self
            self._fd, self._was_held = fd, True
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def describe(self) -> str:
        if self.held:
            return f"CPU wake-up latency held at {self.max_us} us"
        if self._was_held:
            return f"CPU wake-up latency was held at {self.max_us} us"
        return f"no CPU latency request ({self.refused})"

    def __enter__(self) -> CpuLatencyRequest:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

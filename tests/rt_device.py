"""A servo chain on a pty for the compiled bus/loop tests and bench/rt_loop.py.

It is the compiled device side the arm emulator uses (`_rt.ServoEmulator`: register bank laid out by
the same YAML control table the host uses, Dynamixel 2.0 / Feetech responder) with no arm behind it:
each servo with torque on moves its present position toward its goal with a first-order lag. Its
serving thread never takes the GIL, so its replies do not compete with the test process for the
interpreter. A test can silence servos, corrupt replies, set any register (inject effort), and read
every goal the servos received. A pty has no baud rate, so with `wire_time=True` it holds each reply
until the instruction and the reply would have crossed a real wire at `baud` (8N1, 10 bits per byte).
Like the arm emulator, it keeps idle CPUs awake while it serves (`cpu_latency_us`, core/cpu_latency.py): a
halted virtual CPU took milliseconds to wake for a request, and a 250 Hz loop over the chain skipped cycles.
"""

from __future__ import annotations

import os
import time
import tty
from collections.abc import Mapping

import robotlearn._rt as rt

from robotlearn.core.cpu_latency import CpuLatencyRequest
from robotlearn.emulators.servo_bus import baud_code, identity_model, make_device
from robotlearn.hardware.servo_tables import ServoTable


def eventually(cond, timeout: float = 1.0) -> bool:
    """Sync writes get no reply; give the device thread a moment to apply them."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return bool(cond())


class _Silent:
    """The set of ids that never answer (a set-like view onto the device)."""

    def __init__(self, device: rt.ServoEmulator) -> None:
        self._device, self._ids = device, set()

    def add(self, sid: int) -> None:
        self._device.set_silent(sid, True)
        self._ids.add(sid)

    def update(self, ids) -> None:
        for sid in ids:
            self.add(sid)

    def clear(self) -> None:
        self._device.clear_silent()
        self._ids.clear()

    def __contains__(self, sid: int) -> bool:
        return sid in self._ids


class PtyServoChain:
    """Servos `ids` of model `table` behind one pty; `port` is the path the host opens."""

    def __init__(self, table: ServoTable, ids: list[int], baud: int = 1_000_000, wire_time: bool = False,
                 follow_tau_s: float = 0.005, cpu_latency_us: int | None = 0,
                 eeprom: Mapping[str, int] | None = None) -> None:
        """`eeprom`: registers set at power-up on every servo over the factory values (e.g. the return
        delay, which a Dynamixel ships at 500 us and a sync-read setup sets to 0)."""
        self.table, self.ids, self.baud, self.protocol = table, list(ids), baud, table.protocol
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        settings = [{"baud_rate": baud_code(self.protocol, baud), "present_position": 2048, "goal_position": 2048,
                     **(eeprom or {})} for _ in self.ids]
        self.device = make_device(table, self.ids, self._master, identity_model(table, len(self.ids)),
                                  rt.EmulatorPhysics.KINEMATIC, 1000.0, settings=settings, wire_time=wire_time,
                                  follow_tau_s=follow_tau_s)
        self.silent = _Silent(self.device)
        self.cpu_latency = CpuLatencyRequest(cpu_latency_us).acquire()
        self.device.start()

    def set(self, sid: int, name: str, value: int) -> None:
        self.device.set(sid, name, value)

    def get(self, sid: int, name: str) -> int:
        return self.device.get(sid, name)

    def corrupt_next(self, n: int) -> None:
        """The next n replies carry a wrong checksum byte."""
        self.device.corrupt_next(n)

    @property
    def goal_log(self) -> list[tuple[float, list[int]]]:
        """(time, goal_position of every servo) after each write that reached a goal register."""
        t, goals = self.device.goal_log()
        return [(float(a), [int(g) for g in row]) for a, row in zip(t, goals, strict=True)]

    @property
    def requests(self) -> int:
        return int(self.device.stats()["requests"])

    def close(self) -> None:
        """Unplug: the host sees EIO/hang-up on its next read."""
        self.device.stop()
        self.cpu_latency.release()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> PtyServoChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

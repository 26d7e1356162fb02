"""A minimal servo chain on a pty for the compiled bus/loop tests and bench/rt_loop.py.

It answers PING/READ/WRITE/SYNC_READ/SYNC_WRITE (and Dynamixel FAST_SYNC_READ) from a per-servo register
file laid out by the same YAML control table the host uses, lets a test silence servos, corrupt replies
or inject effort, and records every goal/torque write it receives. The full-featured device emulator
(physics, reality gap) is robotlearn/emulators; this one exists so the driver tests depend only on the
driver. A pty has no baud rate, so with `wire_time=True` it holds each reply until the instruction and
the reply would have crossed a real wire at `baud` (8N1, 10 bits per byte).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty

import robotlearn._rt as rt

from robotlearn.hardware.servo_tables import ServoTable

DXL_STATUS = 0x55
PING, READ, WRITE, SYNC_READ, SYNC_WRITE, FAST_SYNC_READ = 0x01, 0x02, 0x03, 0x82, 0x83, 0x8A


def eventually(cond, timeout: float = 1.0) -> bool:
    """Sync writes get no reply; give the device thread a moment to apply them."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return bool(cond())


class PtyServoChain:
    """Servos `ids` of model `table` behind one pty; `port` is the path the host opens."""

    def __init__(self, table: ServoTable, ids: list[int], baud: int = 1_000_000, wire_time: bool = False,
                 follow: float = 0.5) -> None:
        self.table, self.ids, self.baud, self.wire_time, self.follow = table, list(ids), baud, wire_time, follow
        self.protocol = table.protocol
        self.codec = rt.Codec(self.protocol)
        self.little = self.codec.little_endian
        self._lock = threading.Lock()
        size = max(r.addr + r.size for r in table.registers.values())
        self.mem = {i: bytearray(size) for i in self.ids}
        for i in self.ids:
            for r in table.registers.values():
                self._put(i, r.addr, r.size, r.default or 0, r.sign_bit)
            self.set(i, "id", i)
            self.set(i, "present_position", 2048)
            self.set(i, "goal_position", 2048)
        self.silent: set[int] = set()       # ids that never answer
        self.corrupt_replies = 0            # flip a byte in the next N replies
        self.goal_log: list[tuple[float, list[int]]] = []
        self.torque_log: list[tuple[float, int]] = []
        self.requests = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # --- registers ---------------------------------------------------------------------------
    def _put(self, sid: int, addr: int, size: int, value: int, sign_bit: int | None = None) -> None:
        if sign_bit is not None and value < 0:
            value = (-value) | (1 << sign_bit)
        raw = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little" if self.little else "big")
        self.mem[sid][addr:addr + size] = raw

    def _get(self, sid: int, addr: int, size: int, sign_bit: int | None = None) -> int:
        v = int.from_bytes(self.mem[sid][addr:addr + size], "little" if self.little else "big")
        if sign_bit is not None:
            return -(v & ((1 << sign_bit) - 1)) if v >> sign_bit & 1 else v
        return v - (1 << 8 * size) if v >> (8 * size - 1) else v

    def set(self, sid: int, name: str, value: int) -> None:
        r = self.table.register(name)
        with self._lock:
            self._put(sid, r.addr, r.size, value, r.sign_bit)

    def get(self, sid: int, name: str) -> int:
        r = self.table.register(name)
        with self._lock:
            return self._get(sid, r.addr, r.size, r.sign_bit)

    # --- serving -----------------------------------------------------------------------------
    def close(self) -> None:
        """Unplug: the host sees EIO/hang-up on its next read."""
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyServoChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wire(self, nbytes: int) -> float:
        return nbytes * 10 / self.baud if self.wire_time else 0.0

    def _send_at(self, t: float, data: bytes) -> None:
        while self.wire_time and time.perf_counter() < t:
            pass  # busy-wait: sleep() granularity is coarser than one packet's wire time
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
            data = data[:-1] + bytes([data[-1] ^ 0x5A])
        os.write(self._master, data)

    def _serve(self) -> None:
        dec = self.codec.decoder()
        while not self._stop.is_set():
            r, _, _ = select.select([self._master], [], [], 0.02)
            if not r:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:
                continue
            t_rx = time.perf_counter()
            for sid, instr, _err, params in dec.feed(chunk):
                self.requests += 1
                self._handle(sid, instr, params, t_rx)

    def _status(self, sid: int, payload: bytes) -> bytes:
        return self.codec.status(sid, 0, payload)

    def _advance(self, sid: int) -> None:
        """Each read moves present_position part of the way to the goal while torque is on."""
        if self.get(sid, "torque_enable"):
            pos, goal = self.get(sid, "present_position"), self.get(sid, "goal_position")
            self.set(sid, "present_position", int(round(pos + self.follow * (goal - pos))))

    def _handle(self, sid: int, instr: int, p: bytes, t_rx: float) -> None:
        a16 = self.protocol == "dynamixel2"
        if len(p) >= 2:
            addr = (p[0] | p[1] << 8) if a16 else p[0]
        else:
            addr = 0
        t = t_rx + self._wire(len(p) + (10 if a16 else 6))  # the instruction itself still on the wire
        if instr == PING and sid in self.mem and sid not in self.silent:
            payload = self.mem[sid][0:2] + bytes([self.mem[sid][6]]) if a16 else b""
            out = self._status(sid, bytes(payload))
            self._send_at(t + self._wire(len(out)), out)
        elif instr == READ and sid in self.mem and sid not in self.silent:
            n = (p[2] | p[3] << 8) if a16 else p[1]
            out = self._status(sid, bytes(self.mem[sid][addr:addr + n]))
            self._send_at(t + self._wire(len(out)), out)
        elif instr == WRITE and sid in self.mem:
            data = p[2:] if a16 else p[1:]
            self._write(sid, addr, data)
            if sid not in self.silent:
                out = self._status(sid, b"")
                self._send_at(t + self._wire(len(out)), out)
        elif instr in (SYNC_READ, FAST_SYNC_READ) and sid == 0xFE:
            n = (p[2] | p[3] << 8) if a16 else p[1]
            ids = list(p[4:] if a16 else p[2:])
            live = [i for i in ids if i in self.mem and i not in self.silent]
            for i in live:
                self._advance(i)
            if instr == FAST_SYNC_READ:
                out = self.codec.fast_sync_status(live, [0] * len(live),
                                                  b"".join(bytes(self.mem[i][addr:addr + n]) for i in live), n)
                self._send_at(t + self._wire(len(out)), out)
                return
            for i in live:
                out = self._status(i, bytes(self.mem[i][addr:addr + n]))
                t += self._wire(len(out))
                self._send_at(t, out)
        elif instr == SYNC_WRITE and sid == 0xFE:
            n = (p[2] | p[3] << 8) if a16 else p[1]
            body = p[4:] if a16 else p[2:]
            goals = []
            for k in range(0, len(body) - n + 1, n + 1):
                i, data = body[k], body[k + 1:k + 1 + n]
                if i in self.mem:
                    self._write(i, addr, data)
                    if addr == self.table.register("goal_position").addr:
                        goals.append(self.get(i, "goal_position"))
            if goals:
                self.goal_log.append((time.monotonic(), goals))

    def _write(self, sid: int, addr: int, data: bytes) -> None:
        with self._lock:
            self.mem[sid][addr:addr + len(data)] = data
        if addr == self.table.register("torque_enable").addr:
            self.torque_log.append((time.monotonic(), data[0]))

"""Device side of a servo bus: Dynamixel X-series (Protocol 2.0) and Feetech STS servos.

The emulator answers exactly what a chain of real servos would answer on a half-duplex bus, so the
production driver (`robotlearn._rt.ServoBus`) and third-party hosts (`dynamixel-sdk`) cannot tell it
from hardware: per-servo control-table memory, IDs, baud and return-delay registers, torque enable,
operating mode, hardware-error status, and the status-packet error byte. Register addresses come from
the same YAML tables the host driver uses (configs/hardware/servos/<model>.yaml), so a table fix applies
to both sides at once.

A pty has no baud rate, so `wire_time()` tells the caller how long each exchange would occupy a real
wire at the configured baud; the emulator sleeps that long before answering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from robotlearn.hardware.servo_tables import ServoTable

# Dynamixel Protocol 2.0 instruction codes (e-Manual, "Protocol 2.0 / Instruction")
DXL_PING, DXL_READ, DXL_WRITE, DXL_REBOOT, DXL_STATUS = 0x01, 0x02, 0x03, 0x08, 0x55
DXL_SYNC_READ, DXL_SYNC_WRITE, DXL_FAST_SYNC_READ = 0x82, 0x83, 0x8A
DXL_ERR_INSTRUCTION, DXL_ERR_DATA_LENGTH, DXL_ERR_ACCESS = 0x02, 0x05, 0x07
DXL_ERR_ALERT = 0x80
# Feetech SCS/STS instruction codes (Feetech "communication protocol manual")
FT_READ, FT_WRITE, FT_SYNC_READ, FT_SYNC_WRITE = 0x02, 0x03, 0x82, 0x83  # PING is 0x01 in both
BROADCAST_ID = 0xFE

# baud_rate register value -> bit/s (Dynamixel X e-Manual; Feetech STS memory table)
BAUD_RATES = {
    "dynamixel2": {0: 9600, 1: 57600, 2: 115200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000, 7: 4_500_000},
    "feetech": {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 76_800, 6: 57_600, 7: 38_400},
}


# ---------------------------------------------------------------------------------------------
# Checksums and framing
# ---------------------------------------------------------------------------------------------
def _crc16_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc16_table()


def crc16(data: bytes | bytearray, crc: int = 0) -> int:
    """CRC-16/BUYPASS (poly 0x8005, init 0), the Protocol 2.0 packet checksum."""
    for b in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def dxl_stuff(body: bytes) -> bytes:
    """Protocol 2.0 byte stuffing: FF FF FD inside instruction+params becomes FF FF FD FD."""
    return body.replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")


def dxl_unstuff(body: bytes) -> bytes:
    return body.replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")


def dxl_packet(servo_id: int, instruction: int, params: bytes) -> bytes:
    body = dxl_stuff(bytes([instruction]) + params)
    head = bytes([0xFF, 0xFF, 0xFD, 0x00, servo_id]) + (len(body) + 2).to_bytes(2, "little") + body
    return head + crc16(head).to_bytes(2, "little")


def ft_packet(servo_id: int, instruction: int, params: bytes) -> bytes:
    body = bytes([servo_id, len(params) + 2, instruction]) + params
    return b"\xff\xff" + body + bytes([~sum(body) & 0xFF])


@dataclass
class Request:
    servo_id: int
    instruction: int
    params: bytes
    nbytes: int  # bytes the request occupied on the wire


class FrameParser:
    """Incremental parser of host->device packets; bad frames are counted and skipped, never raised."""

    def __init__(self, protocol: str):
        self.protocol = protocol
        self.buf = bytearray()
        self.bad_frames = 0

    def feed(self, data: bytes) -> Iterator[Request]:
        self.buf += data
        while True:
            req = self._next()
            if req is None:
                return
            yield req

    def _next(self) -> Request | None:
        header = b"\xff\xff\xfd\x00" if self.protocol == "dynamixel2" else b"\xff\xff"
        while True:
            start = self.buf.find(header)
            if start < 0:
                del self.buf[: max(0, len(self.buf) - len(header) + 1)]
                return None
            del self.buf[:start]
            if self.protocol == "dynamixel2":
                if len(self.buf) < 7:
                    return None
                length = int.from_bytes(self.buf[5:7], "little")
                total = 7 + length
                if length < 3 or length > 1024:
                    self.bad_frames += 1
                    del self.buf[:1]
                    continue
                if len(self.buf) < total:
                    return None
                frame = bytes(self.buf[:total])
                if crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
                    self.bad_frames += 1
                    del self.buf[:1]
                    continue
                del self.buf[:total]
                body = dxl_unstuff(frame[7:-2])
                return Request(frame[4], body[0], body[1:], total)
            # Feetech: FF FF id len instr params checksum
            if len(self.buf) < 4:
                return None
            if self.buf[2] == 0xFF:  # a third 0xFF: resynchronize one byte later
                del self.buf[:1]
                continue
            length = self.buf[3]
            total = 4 + length
            if length < 2:
                self.bad_frames += 1
                del self.buf[:1]
                continue
            if len(self.buf) < total:
                return None
            frame = bytes(self.buf[:total])
            if (~sum(frame[2:-1]) & 0xFF) != frame[-1]:
                self.bad_frames += 1
                del self.buf[:1]
                continue
            del self.buf[:total]
            return Request(frame[2], frame[4], frame[5:-1], total)


# ---------------------------------------------------------------------------------------------
# Servo memory and the bus
# ---------------------------------------------------------------------------------------------
# Device defaults for registers a table may define, by name (factory values of the real servos).
FACTORY_DEFAULTS = {
    "return_delay_time": 250,  # Dynamixel: 2 us units -> 500 us; set lower by most users
    "return_delay": 0,         # Feetech: 2 us units
    "baud_rate": 1,            # Dynamixel 57600; Feetech tables override via YAML default
    "operating_mode": 3,       # position control
    "status_return_level": 2,  # answer every instruction
    "max_position_limit": 4095,
    "firmware_version": 46,
    "present_input_voltage": 120,
    "present_voltage": 120,
    "present_temperature": 35,
    "velocity_limit": 265,
    "current_limit": 1193,
    "position_p_gain": 800,
    "p_coefficient": 32,
}


class Servo:
    """One servo's control-table memory. Values are little-endian, as both protocols store them."""

    def __init__(self, table: ServoTable, servo_id: int):
        self.table = table
        self.mem = bytearray(table.size)
        for name, reg in table.registers.items():
            value = FACTORY_DEFAULTS.get(name, 0) if reg.default is None else reg.default
            self.mem[reg.addr: reg.addr + reg.size] = (value & ((1 << (8 * reg.size)) - 1)).to_bytes(reg.size, "little")
        self.set("model_number", table.model_number)
        self.set("id", servo_id)
        self._readonly = {a for r in table.registers.values() if not r.writable for a in range(r.addr, r.addr + r.size)}
        # Dynamixel: the EEPROM area (below torque_enable) is read-only while torque is on. Feetech guards
        # its EEPROM with a separate `lock` register instead, so there is no torque interlock there.
        regs = table.registers
        self._eeprom_locked_until = regs["torque_enable"].addr if "torque_enable" in regs and "lock" not in regs else 0

    @property
    def id(self) -> int:
        return self.get("id")

    def has(self, name: str) -> bool:
        return name in self.table.registers

    def get(self, name: str, signed: bool = False) -> int:
        """Register value; `signed` decodes two's complement, or sign-magnitude where the table gives a sign bit."""
        reg = self.table.register(name)
        raw = int.from_bytes(self.mem[reg.addr: reg.addr + reg.size], "little")
        if not signed:
            return raw
        if reg.sign_bit is not None:
            magnitude = raw & ((1 << reg.sign_bit) - 1)
            return -magnitude if raw >> reg.sign_bit & 1 else magnitude
        return raw - (1 << (8 * reg.size)) if raw >> (8 * reg.size - 1) else raw

    def set(self, name: str, value: int) -> None:
        """Device-side write (the servo updating its own present_* registers); ignores access rights."""
        if name not in self.table.registers:
            return
        reg = self.table.registers[name]
        value = int(value)
        if reg.sign_bit is not None and value < 0:
            value = min(-value, (1 << reg.sign_bit) - 1) | (1 << reg.sign_bit)
        mask = (1 << (8 * reg.size)) - 1
        self.mem[reg.addr: reg.addr + reg.size] = (value & mask).to_bytes(reg.size, "little")

    def read(self, addr: int, size: int) -> bytes | None:
        if addr + size > len(self.mem) or size <= 0:
            return None
        return bytes(self.mem[addr: addr + size])

    def host_write(self, addr: int, data: bytes) -> int:
        """A host WRITE: returns a protocol error code (0 = ok). EEPROM area is locked while torque is on."""
        if addr + len(data) > len(self.mem) or not data:
            return DXL_ERR_DATA_LENGTH
        span = range(addr, addr + len(data))
        if any(a in self._readonly for a in span):
            return DXL_ERR_ACCESS
        if self._eeprom_locked_until and addr < self._eeprom_locked_until and self.get("torque_enable"):
            return DXL_ERR_ACCESS
        self.mem[addr: addr + len(data)] = data
        return 0


WriteHook = Callable[[Servo, int, int], None]


class ServoBusDevice:
    """A chain of servos sharing one bus: decodes requests, updates memory, builds status packets.

    `handle(request)` returns the bytes all addressed servos would put on the wire, in bus order.
    `on_write(servo, addr, size)` runs after every host write (the emulator reacts to torque enable
    or a goal position there). The object is not thread-safe; the emulator serializes access.
    """

    def __init__(self, table: ServoTable, ids: list[int], on_write: WriteHook | None = None):
        if len(set(ids)) != len(ids) or not all(0 <= i < BROADCAST_ID for i in ids):
            raise ValueError(f"servo ids must be unique and in 0..253, got {ids}")
        self.table = table
        self.protocol = table.protocol
        self.servos: dict[int, Servo] = {i: Servo(table, i) for i in ids}
        self.on_write = on_write
        self.parser = FrameParser(self.protocol)
        self.counts = {"requests": 0, "replies": 0, "bad_frames": 0, "unknown_instruction": 0}

    # -- wire ----------------------------------------------------------------------------------
    def baud(self) -> int:
        servo = next(iter(self.servos.values()))
        code = servo.get("baud_rate") if servo.has("baud_rate") else 3
        return BAUD_RATES[self.protocol].get(code, 1_000_000)

    def return_delay_s(self) -> float:
        servo = next(iter(self.servos.values()))
        for name in ("return_delay_time", "return_delay"):
            if servo.has(name):
                return servo.get(name) * 2e-6
        return 0.0

    def wire_time(self, nbytes: int) -> float:
        """Seconds `nbytes` occupy a real wire (8N1: 10 bits per byte) at the servos' baud."""
        return nbytes * 10.0 / self.baud()

    def feed(self, data: bytes) -> Iterator[tuple[Request, bytes]]:
        """Parse host bytes; yield (request, reply bytes) for each complete frame."""
        for req in self.parser.feed(data):
            self.counts["requests"] += 1
            reply = self.handle(req)
            if reply:
                self.counts["replies"] += 1
            yield req, reply
        self.counts["bad_frames"] = self.parser.bad_frames

    # -- instructions ----------------------------------------------------------------------------
    def _status(self, servo: Servo, error: int, params: bytes = b"") -> bytes:
        if self.protocol == "dynamixel2":
            if servo.has("hardware_error_status") and servo.get("hardware_error_status"):
                error |= DXL_ERR_ALERT
            return dxl_packet(servo.id, DXL_STATUS, bytes([error]) + params)
        return ft_packet(servo.id, error, params)

    def _answers(self, servo: Servo) -> bool:
        """Whether a WRITE gets a status packet (Dynamixel: level 2; Feetech: level 1 answers everything)."""
        if not servo.has("status_return_level"):
            return True
        return servo.get("status_return_level") >= (2 if self.protocol == "dynamixel2" else 1)

    def _write(self, servo: Servo, addr: int, data: bytes) -> int:
        err = servo.host_write(addr, data)
        if err == 0 and self.on_write is not None:
            self.on_write(servo, addr, len(data))
        return err

    def handle(self, req: Request) -> bytes:
        dxl = self.protocol == "dynamixel2"
        inst, p = req.instruction, req.params
        if inst in (DXL_SYNC_READ, DXL_FAST_SYNC_READ) if dxl else inst == FT_SYNC_READ:
            return self._sync_read(req)
        if inst == (DXL_SYNC_WRITE if dxl else FT_SYNC_WRITE):
            self._sync_write(p)
            return b""
        targets = list(self.servos.values()) if req.servo_id == BROADCAST_ID else (
            [self.servos[req.servo_id]] if req.servo_id in self.servos else [])
        out = bytearray()
        for servo in targets:
            if inst == DXL_PING:  # same code in both protocols
                if dxl:
                    out += self._status(servo, 0, servo.get("model_number").to_bytes(2, "little")
                                        + bytes([servo.get("firmware_version") if servo.has("firmware_version") else 0]))
                else:
                    out += self._status(servo, 0)
                continue
            broadcast = req.servo_id == BROADCAST_ID  # executed by all, answered by none (except PING)
            if inst == DXL_READ and not broadcast:
                addr, size = (int.from_bytes(p[0:2], "little"), int.from_bytes(p[2:4], "little")) if dxl else (
                    p[0], p[1]) if len(p) >= 2 else (0, 0)
                data = servo.read(addr, size) if len(p) >= (4 if dxl else 2) else None
                out += self._status(servo, 0, data) if data is not None else self._status(servo, DXL_ERR_DATA_LENGTH)
            elif inst == DXL_WRITE:
                hdr = 2 if dxl else 1
                err = self._write(servo, int.from_bytes(p[:hdr], "little"), p[hdr:]) if len(p) > hdr else DXL_ERR_DATA_LENGTH
                if self._answers(servo) and not broadcast:
                    out += self._status(servo, err)
            elif dxl and inst == DXL_REBOOT:
                servo.set("hardware_error_status", 0)
                servo.set("torque_enable", 0)
                if not broadcast:
                    out += self._status(servo, 0)
            elif not broadcast:  # READ is handled above; a broadcast READ has no meaning and is ignored
                self.counts["unknown_instruction"] += 1
                out += self._status(servo, DXL_ERR_INSTRUCTION)
        return bytes(out)

    def _sync_read(self, req: Request) -> bytes:
        dxl = self.protocol == "dynamixel2"
        p = req.params
        if dxl:
            addr, size, ids = int.from_bytes(p[0:2], "little"), int.from_bytes(p[2:4], "little"), p[4:]
        else:
            addr, size, ids = p[0], p[1], p[2:]
        present = [self.servos[i] for i in ids if i in self.servos]
        if dxl and req.instruction == DXL_FAST_SYNC_READ:
            # One status packet whose params are [ERR ID DATA CRC_L CRC_H] per servo; each CRC is the
            # running CRC of the packet so far, so the last one is the packet's own CRC.
            if not present:
                return b""
            body = bytearray()
            for servo in present:
                body += bytes([0, servo.id]) + (servo.read(addr, size) or bytes(size))
                head = bytes([0xFF, 0xFF, 0xFD, 0x00, BROADCAST_ID]) + (len(body) + 3 + 2).to_bytes(2, "little")
                body += crc16(head + bytes([DXL_STATUS]) + body).to_bytes(2, "little")
            return dxl_packet(BROADCAST_ID, DXL_STATUS, bytes(body[:-2]))
        out = bytearray()
        for servo in present:
            data = servo.read(addr, size)
            out += self._status(servo, 0, data) if data is not None else self._status(servo, DXL_ERR_DATA_LENGTH)
        return bytes(out)

    def _sync_write(self, p: bytes) -> None:
        dxl = self.protocol == "dynamixel2"
        if dxl:
            if len(p) < 4:
                return
            addr, size, rest = int.from_bytes(p[0:2], "little"), int.from_bytes(p[2:4], "little"), p[4:]
        else:
            if len(p) < 2:
                return
            addr, size, rest = p[0], p[1], p[2:]
        step = 1 + size
        for k in range(0, len(rest) - step + 1, step):
            servo = self.servos.get(rest[k])
            if servo is not None:
                self._write(servo, addr, rest[k + 1: k + step])

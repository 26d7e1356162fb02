"""Device side of a servo bus: Dynamixel X-series (Protocol 2.0) and Feetech STS servos.

The device itself is compiled (`robotlearn._rt.ServoEmulator`, drivers/src/emu_*.cpp): one real-time
thread decodes the host's instructions, reads and writes each servo's control-table memory, sends the
status packets when they would have crossed a real wire, and steps the physics, without ever waiting
for the Python interpreter. This module only says what the servos power up with: the memory image
laid out by the same YAML control tables the host driver uses (configs/hardware/servos/<model>.yaml,
loaded by hardware/servo_tables.py), factory defaults, which bytes a host may write, and the baud-rate
register codes, so a table fix applies to both sides at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from robotlearn import _rt
from robotlearn.hardware.servo_tables import ServoTable

# baud_rate register value -> bit/s (Dynamixel X e-Manual; Feetech STS memory table)
BAUD_RATES = {
    "dynamixel2": {0: 9600, 1: 57600, 2: 115200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000, 7: 4_500_000},
    "feetech": {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 76_800, 6: 57_600, 7: 38_400},
}
BAUD_RATES["feetech_scs"] = BAUD_RATES["feetech"]
# operating_mode values that mean position control (Dynamixel: position / extended position; Feetech: servo)
POSITION_MODES = {"dynamixel2": (3, 4), "feetech": (0,), "feetech_scs": (0,)}

# SCHED_FIFO priority of the device thread: above the host's control loop (80), because the emulated
# servos are hardware to the host and must not wait behind it on a shared CPU.
DEVICE_PRIORITY = 90

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


def baud_code(protocol: str, baud: int) -> int:
    """The baud_rate register value for `baud` bit/s; a clear error for a rate the servos lack."""
    codes = {bps: code for code, bps in BAUD_RATES[protocol].items()}
    if baud not in codes:
        raise ValueError(f"{protocol} servos do not support baud {baud}; supported: {sorted(codes)}")
    return codes[baud]


def _encode(table: ServoTable, name: str, value: int) -> bytes:
    reg = table.registers[name]
    value = int(value)
    if reg.sign_bit is not None and value < 0:
        value = min(-value, (1 << reg.sign_bit) - 1) | (1 << reg.sign_bit)
    order = "big" if table.protocol == "feetech_scs" else "little"
    return (value & ((1 << (8 * reg.size)) - 1)).to_bytes(reg.size, order)


def memory_image(table: ServoTable, servo_id: int, settings: Mapping[str, int] = {}) -> bytes:
    """One servo's control table at power-up: manual defaults, factory defaults, then `settings`
    (the user's EEPROM configuration: baud, return delay, limits; names the model lacks are skipped)."""
    mem = bytearray(table.size)
    values = {name: FACTORY_DEFAULTS.get(name, 0) if reg.default is None else reg.default
              for name, reg in table.registers.items()}
    values.update({k: v for k, v in settings.items() if k in table.registers})
    values["model_number"] = table.model_number
    values["id"] = servo_id
    for name, value in values.items():
        if name in table.registers:
            reg = table.registers[name]
            mem[reg.addr: reg.addr + reg.size] = _encode(table, name, value)
    return bytes(mem)


def writable_mask(table: ServoTable) -> bytes:
    """One byte per control-table address: 1 where a host WRITE may land (RW registers and gaps)."""
    mask = bytearray(b"\x01" * table.size)
    for reg in table.registers.values():
        if not reg.writable:
            mask[reg.addr: reg.addr + reg.size] = b"\x00" * reg.size
    return bytes(mask)


def make_device(table: ServoTable, ids: list[int], master_fd: int, model: _rt.ServoModelConfig,
                physics: _rt.EmulatorPhysics, tick_hz: float, *, settings: Sequence[Mapping[str, int]] | None = None,
                ticks_per_update: int = 1, wire_time: bool = True, follow_tau_s: float = 0.01,
                realtime: bool = True, lock_memory: bool = False) -> _rt.ServoEmulator:
    """The compiled servo chain behind the pty whose master end is `master_fd` (not started).

    `settings[k]`: servo k's EEPROM configuration on top of the defaults (see `memory_image`).
    """
    if len(set(ids)) != len(ids) or not all(0 <= i <= 252 for i in ids):
        raise ValueError(f"servo ids must be unique and in 0..252, got {ids}")
    settings = settings or [{}] * len(ids)
    os.set_blocking(master_fd, False)
    return _rt.ServoEmulator(table.protocol, list(ids), table.host_table(),
                             [memory_image(table, i, s) for i, s in zip(ids, settings, strict=True)],
                             writable_mask(table),
                             BAUD_RATES[table.protocol], wire_time, master_fd, model, physics, tick_hz,
                             ticks_per_update, follow_tau_s, realtime, DEVICE_PRIORITY, lock_memory)


def identity_model(table: ServoTable, n: int) -> _rt.ServoModelConfig:
    """Servo k drives joint k with raw ticks as units: for a chain without an arm behind it."""
    m = _rt.ServoModelConfig()
    m.n_joints, m.servo_joint = n, list(range(n))
    m.lower, m.upper = [-1e9] * n, [1e9] * n
    m.offset, m.sign, m.ticks_per_unit = [0.0] * n, [1.0] * n, [1.0] * n
    m.position_modes = list(POSITION_MODES[table.protocol])
    m.resolution, m.velocity_unit_rad_s = table.resolution, table.velocity_unit_rad_s
    m.backlash, m.noise_std = [0.0] * n, [0.0] * n
    return m

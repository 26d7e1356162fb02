"""Servo control tables as data: configs/hardware/servos/<model>.yaml -> the dict `_rt.ServoBus` takes.

Register addresses differ per servo family and firmware; keeping them in YAML with the manual cited
(rather than constants in C++) means a new servo model is a data file, reviewed against its manual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from robotlearn.core.config import CONFIG_ROOT, ConfigError

SERVO_DIR = CONFIG_ROOT / "hardware" / "servos"
PROTOCOLS = ("dynamixel2", "feetech", "feetech_scs")
# Fields the compiled bus needs: it sync-reads present_* and sync-writes goal_position.
REQUIRED = ("present_position", "goal_position", "torque_enable")


@dataclass(frozen=True)
class Register:
    addr: int
    size: int
    access: str = "RW"
    default: int | None = None  # power-on value from the manual; None: the table states none
    sign_bit: int | None = None  # sign-magnitude with the sign at this bit (Feetech); else two's complement

    @property
    def writable(self) -> bool:
        return "W" in self.access


@dataclass(frozen=True)
class ServoTable:
    """One servo model: protocol, identity, units and its register map."""

    model: str
    protocol: str
    model_number: int
    resolution: int
    registers: dict[str, Register]
    velocity_unit_rad_s: float
    effort_unit_nm: float | None = None  # N m at the servo shaft per unit of `effort_register`
    effort_register: str | None = None  # the register read as effort (present current or load); None: no effort
    extra: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Bytes of control-table memory the registers span."""
        return max(r.addr + r.size for r in self.registers.values())

    @property
    def ticks_per_rad(self) -> float:
        return self.resolution / (2 * math.pi)

    def host_table(self) -> dict[str, tuple[int, ...]]:
        """name -> (addr, size) or (addr, size, sign_bit): the `table` argument of `_rt.ServoBus`."""
        return {name: (r.addr, r.size) if r.sign_bit is None else (r.addr, r.size, r.sign_bit)
                for name, r in self.registers.items()}

    def register(self, name: str) -> Register:
        if name not in self.registers:
            raise KeyError(f"servo model {self.model!r} has no register {name!r}")
        return self.registers[name]


def known_models() -> list[str]:
    return sorted(p.stem for p in SERVO_DIR.glob("*.yaml"))


def _path(model: str | Path) -> Path:
    path = Path(model)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"servo table file {path} does not exist")
        return path
    candidate = SERVO_DIR / f"{model}.yaml"
    if not candidate.exists():
        raise ConfigError(f"unknown servo model {str(model)!r}; known: {', '.join(known_models()) or 'none'}")
    return candidate


def _register(path: Path, name: str, spec: object) -> Register:
    if isinstance(spec, (list, tuple)) and len(spec) in (2, 3):
        return Register(int(spec[0]), int(spec[1]), sign_bit=int(spec[2]) if len(spec) == 3 else None)
    if isinstance(spec, dict) and "addr" in spec and "size" in spec:
        sign_bit = spec.get("sign_bit")
        reg = Register(int(spec["addr"]), int(spec["size"]), str(spec.get("access", "RW")).upper(),
                       None if spec.get("default") is None else int(spec["default"]),
                       None if sign_bit is None else int(sign_bit))
    else:
        raise ConfigError(f"{path}: register {name!r} must be {{addr, size, ...}} or [addr, size(, sign_bit)]")
    if reg.size not in (1, 2, 4) or not 0 <= reg.addr <= 0xFFFF:
        raise ConfigError(f"{path}: register {name!r} has addr {reg.addr} size {reg.size} (size must be 1, 2 or 4)")
    return reg


def load_servo_table(model: str | Path) -> ServoTable:
    """Load and validate a servo table by model name (``xm430_w350``) or YAML path."""
    path = _path(model)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("registers"), dict):
        raise ConfigError(f"{path}: needs a 'registers' mapping of name -> {{addr, size}}")
    protocol = str(data.get("protocol", ""))
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{path}: protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    regs = {str(k): _register(path, str(k), v) for k, v in data["registers"].items()}
    missing = [r for r in REQUIRED if r not in regs]
    if missing:
        raise ConfigError(f"{path}: missing required register(s) {', '.join(missing)}")
    if protocol.startswith("feetech") and any(r.addr > 0xFF for r in regs.values()):
        raise ConfigError(f"{path}: Feetech addresses are one byte (<= 255)")
    resolution = int(data.get("resolution", 4096))
    vel = float(data.get("velocity_unit_rad_s", 2 * math.pi / resolution))
    eff = data.get("effort_unit_nm")
    effort_register = data.get("effort_register")
    if effort_register is not None and (str(effort_register) not in regs or eff is None):
        raise ConfigError(f"{path}: effort_register {effort_register!r} needs a register of that name and effort_unit_nm")
    known = {"model", "protocol", "model_number", "resolution", "registers", "velocity_unit_rad_s", "effort_unit_nm",
             "effort_register"}
    return ServoTable(model=str(data.get("model", path.stem)), protocol=protocol,
                      model_number=int(data.get("model_number", 0)), resolution=resolution, registers=regs,
                      velocity_unit_rad_s=vel, effort_unit_nm=None if eff is None else float(eff),
                      effort_register=None if effort_register is None else str(effort_register),
                      extra={k: v for k, v in data.items() if k not in known})

"""Arm hardware config and joint calibration: how raw servo ticks map to the spec's joints.

Each servo reports raw ticks; the robot spec speaks radians (metres for fingers). Per servo,
``SI = sign * (raw - offset) / ticks_per_unit`` - the same formula the compiled control loop applies -
with optional calibrated limits that tighten the URDF ones. The gripper is one servo whose angle moves
both fingers: its ``ticks_per_unit`` is ticks per *metre of finger travel* (ticks/rad divided by the
finger travel per servo radian), so the loop works in finger metres and the backend copies that value
to both finger joints.

Both the host driver and the emulator read configs/hardware/<name>.yaml: the host as its calibration,
the emulator as the (hidden) truth of how its servos are mounted. `robotlearn calibrate` re-measures the
offsets on a robot and writes a calibration YAML that overrides the config's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import Field, model_validator

from robotlearn.core.config import ConfigError, Strict, load_config, validate
from robotlearn.core.spec import Interpolation, RobotSpec


class JointCalibration(Strict):
    """One servo: which bus ID drives which joint(s), and the raw <-> SI map."""

    joint: str                    # spec joint name; the gripper servo names its first finger joint
    servo_id: int = Field(ge=0, le=252)
    offset: float                 # raw ticks at SI zero
    sign: Literal[-1, 1] = 1
    ticks_per_unit: float = Field(4096 / (2 * math.pi), gt=0)  # ticks per rad (per m for the gripper)
    lower: float | None = None    # calibrated SI limits (None: the URDF's)
    upper: float | None = None

    def to_si(self, raw: np.ndarray | float) -> np.ndarray | float:
        return self.sign * (np.asarray(raw, dtype=np.float64) - self.offset) / self.ticks_per_unit

    def to_raw(self, si: np.ndarray | float) -> np.ndarray | float:
        return self.offset + self.sign * np.asarray(si, dtype=np.float64) * self.ticks_per_unit


class Calibration(Strict):
    servos: list[JointCalibration]
    mirrored_joints: dict[str, str] = {}  # extra joint -> the joint whose servo drives it (second finger)

    @model_validator(mode="after")
    def _unique(self):
        ids = [s.servo_id for s in self.servos]
        if len(set(ids)) != len(ids):
            raise ValueError(f"servo ids must be unique, got {ids}")
        return self


class CameraCapture(Strict):
    """How a physical camera delivers frames: its capture mode and, once measured, its calibration.

    Policies see the robot spec's image size (e.g. 84x84, resized from this); object perception uses
    the full capture, since a 4 cm marker cube spans a few pixels at policy resolution.
    """

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    #: YAML from `robotlearn calibrate camera` (intrinsics, distortion, optional mount); None: the spec's pinhole
    calibration_file: str | None = None


class ArmHardwareConfig(Strict):
    """configs/hardware/<arm>.yaml: bus, loop, safety and calibration of one arm."""

    robot: str = "arm6"
    protocol: Literal["dynamixel2", "feetech"] = "dynamixel2"
    servo_model: str                               # configs/hardware/servos/<servo_model>.yaml
    baud: int = Field(1_000_000, gt=0)
    return_delay_us: int = Field(0, ge=0, le=508)  # servo EEPROM setting (the emulator applies it)
    timeout_ms: float = Field(5.0, gt=0)
    max_consecutive_timeouts: int = Field(5, ge=1)  # cycles without any answer before the loop declares the link lost
    stall_timeout_s: float = Field(2.0, gt=0)  # backstop: the loop published no cycle for this long -> ArmFault
    rate_hz: float = Field(500.0, gt=0, le=2000)
    # > 0: the loop sleeps to spin_us before each deadline and busy-waits the rest, so a virtual CPU that
    # halts while idle does not wake it late; costs about spin_us * rate_hz us of CPU per second
    # (loop_stats: wait_mode, cpu_fraction, late_wakes). 0: sleep only.
    spin_us: float = Field(0.0, ge=0)
    # CPU wake-up latency bound (us) held while the loop runs, through the kernel's PM QoS interface
    # (robotlearn/core/cpu_latency.py): idle CPUs poll instead of halting. None: leave the machine as it is.
    cpu_latency_us: int | None = Field(None, ge=0)
    #: None: the robot config's interpolation, which the sims run too; set only to run this hardware differently
    interpolation: Interpolation | None = None
    watchdog_hold_ms: float = Field(500.0, gt=0)
    watchdog_off_ms: float = Field(3000.0, gt=0)
    home_speed: float = Field(0.6, gt=0)           # rad/s (m/s fingers scaled) for safe-start / reset ramps
    settle_tolerance: float = Field(0.03, gt=0)    # rad: reset waits until the pose is this close
    calibration: Calibration
    emulator: bool = False  # True: the port is a robotlearn emulator; its side channel (cameras, ground truth) may be used
    #: capture modes of the robot's cameras by spec camera name (the emulator streams at these sizes)
    cameras: dict[str, CameraCapture] = Field(default_factory=dict)
    #: the fixed camera whose frames give object poses (fiducial markers, robotlearn/perception/); None: no perception
    perception_camera: str | None = None
    #: run the marker tracker in its own thread as frames arrive (off the control step); false runs it inside
    #: the step of the tick a frame arrived on (5-20 ms there; bench/perception.py compares the two)
    perception_thread: bool = True

    @model_validator(mode="after")
    def _watchdog(self):
        if self.watchdog_off_ms <= self.watchdog_hold_ms:
            raise ValueError("watchdog_off_ms must exceed watchdog_hold_ms")
        if self.spin_us >= 1e6 / self.rate_hz:
            raise ValueError(f"spin_us ({self.spin_us:g}) must be shorter than one loop period ({1e6 / self.rate_hz:g} us)")
        return self


def load_hardware_config(name: str | Path, overrides=None, calibration_file: str | Path | None = None
                         ) -> ArmHardwareConfig:
    """configs/hardware/<name>.yaml (or a path), with an optional calibration YAML replacing its calibration."""
    cfg = load_config(ArmHardwareConfig, "hardware", name, overrides)
    if calibration_file is not None:
        cfg.calibration = load_calibration(calibration_file)
    return cfg


def load_calibration(path: str | Path) -> Calibration:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"calibration file {path} does not exist (write one with `robotlearn calibrate`)")
    data = yaml.safe_load(path.read_text()) or {}
    return validate(Calibration, data, path)


def save_calibration(cal: Calibration, path: str | Path) -> None:
    Path(path).write_text("# written by `robotlearn calibrate`\n" + yaml.safe_dump(cal.model_dump(), sort_keys=False))


def check_against_spec(cal: Calibration, spec: RobotSpec) -> None:
    """Every spec joint must be driven by exactly one servo (directly or mirrored)."""
    driven = [s.joint for s in cal.servos] + list(cal.mirrored_joints)
    names = spec.joint_names
    if sorted(driven) != sorted(names):
        raise ConfigError(f"calibration drives joints {driven}, robot {spec.name!r} has {names}")
    for extra, source in cal.mirrored_joints.items():
        if source not in [s.joint for s in cal.servos]:
            raise ConfigError(f"mirrored joint {extra!r} follows {source!r}, which no servo drives")


def servo_limits(cal: Calibration, spec: RobotSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-servo SI limits: calibrated ones where given, intersected with the URDF's."""
    lo, hi = [], []
    for s in cal.servos:
        j = spec.joints[spec.joint_names.index(s.joint)]
        lo.append(max(j.lower, s.lower) if s.lower is not None else j.lower)
        hi.append(min(j.upper, s.upper) if s.upper is not None else j.upper)
    return np.array(lo), np.array(hi)


def calibrate_offsets(cal: Calibration, raw: np.ndarray, reference: np.ndarray) -> Calibration:
    """New calibration whose offsets make the raw reading `raw` equal the known pose `reference` (SI)."""
    servos = [s.model_copy(update={"offset": float(r - s.sign * ref * s.ticks_per_unit)})
              for s, r, ref in zip(cal.servos, raw, reference, strict=True)]
    return cal.model_copy(update={"servos": servos})


def with_recorded_limits(cal: Calibration, raw_min: np.ndarray, raw_max: np.ndarray, margin: float = 0.02
                         ) -> Calibration:
    """Limits from a range-of-motion sweep (raw extremes seen), pulled in by `margin` SI units."""
    servos = []
    for s, a, b in zip(cal.servos, raw_min, raw_max, strict=True):
        lo, hi = sorted((float(s.to_si(a)), float(s.to_si(b))))
        servos.append(s.model_copy(update={"lower": lo + margin, "upper": hi - margin}))
    return cal.model_copy(update={"servos": servos})

"""The reality gap: how the emulated arm differs from the nominal sim the policy was trained in.

Every item is a *hidden* property of the emulated hardware. The host driver never reads it; it can
only notice it (that is what sysid estimates). Physical items are applied by sim/physical.py to the
spec the emulator's physics backend is built from, so the same gap works for MuJoCo and PyBullet alike. Servo
and wire items (backlash, latency, sensor noise, packet corruption) are applied by the compiled device
side of the bus (`_rt.ServoEmulator`: drivers/src/emu_arm.cpp, emu_bank.cpp).

Configs: configs/hardware/reality_gap*.yaml (``reality_gap`` = a plausible gap, ``reality_gap_none`` =
identity), plus ``key=value`` overrides.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pydantic import Field

from robotlearn.core.config import load_config
from robotlearn.sim.physical import ArmPhysicalParams


class RealityGapConfig(ArmPhysicalParams):
    """Hidden differences of the emulated robot from the nominal model (1.0 / 0.0 = none).

    The physical part (masses, damping, friction, armature, servo gains) is `ArmPhysicalParams`,
    applied by `robotlearn.sim.physical.apply_arm_params`, the same code and keys sysid uses.
    """

    backlash: float = Field(0.0, ge=0)          # gear play at each servo's output shaft (rad)
    latency_s: float = Field(0.0, ge=0, le=0.2)  # goal -> motor and sensor -> register delay
    position_noise: float = Field(0.0, ge=0)    # std of present-position noise at the servo shaft (rad)
    effort_noise: float = Field(0.0, ge=0)      # std of present current/load noise at the servo shaft (N m)
    packet_corruption: float = Field(0.0, ge=0, le=0.5)  # probability a status packet gets one bit flipped
    seed: int = 0


def load_reality_gap(name: str | Path = "reality_gap_none", overrides=None) -> RealityGapConfig:
    return load_config(RealityGapConfig, "hardware", name, overrides)


class GapWorkdir:
    """A temporary folder for the gapped description, removed on close."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="rl-gap-"))

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

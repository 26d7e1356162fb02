"""The reality gap: how the emulated arm differs from the nominal sim the policy was trained in.

Every item is a *hidden* property of the emulated hardware. The host driver never reads it; it can
only notice it (that is what sysid estimates). Physical items are applied by sim/physical.py to the
spec the emulator's physics backend is built from, so the same gap works for MuJoCo and PyBullet alike. Servo
and wire items (backlash, latency, sensor noise, packet corruption) are applied by the emulator on
the device side of the bus.

Configs: configs/hardware/reality_gap*.yaml (``reality_gap`` = a plausible gap, ``reality_gap_none`` =
identity), plus ``key=value`` overrides.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import deque
from pathlib import Path

import numpy as np
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


class Backlash:
    """Gear play: the output follows the input only after the input crosses a dead band of `width`."""

    def __init__(self, width: float | np.ndarray, initial: np.ndarray):
        self.half = np.asarray(width, dtype=np.float64) / 2.0
        self.out = np.array(initial, dtype=np.float64)

    def __call__(self, q_in: np.ndarray) -> np.ndarray:
        self.out = np.clip(self.out, q_in - self.half, q_in + self.half)
        return self.out


class DelayLine:
    """Returns the value pushed `delay_s` ago (the newest one when the delay is zero)."""

    def __init__(self, delay_s: float):
        self.delay = delay_s
        self._items: deque[tuple[float, np.ndarray]] = deque()

    def __call__(self, t: float, value: np.ndarray) -> np.ndarray:
        self._items.append((t, np.array(value, dtype=np.float64)))
        while len(self._items) > 1 and self._items[1][0] <= t - self.delay:
            self._items.popleft()
        return self._items[0][1]


def corrupt(packet: bytes, rng: np.random.Generator) -> bytes:
    """Flip one random bit of `packet` (a noisy line or a collision)."""
    data = bytearray(packet)
    k = int(rng.integers(len(data)))
    data[k] ^= 1 << int(rng.integers(8))
    return bytes(data)

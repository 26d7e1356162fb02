"""What a robot *is*, independent of whether it is simulated or real.

A `RobotSpec` is built once from the robot config (YAML) and the robot description (URDF) and handed
to every backend, so MuJoCo, PyBullet and the hardware driver agree on joint order, limits, rates and
cameras by construction rather than by convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

#: How the host-side joint controller (the same C++ in the sims' drive and the real loop) moves the setpoint
#: toward each new target over one control period.
Interpolation = Literal["linear", "min_jerk"]


@dataclass(frozen=True)
class JointSpec:
    """One actuated degree of freedom, in SI units (rad or m)."""

    name: str
    lower: float
    upper: float
    max_velocity: float
    max_effort: float
    servo_kp: float = 0.0
    servo_kd: float = 0.0
    #: the servo's goal register in ticks per unit (0: a continuous setpoint); the sims' servos track the
    #: setpoint rounded to it, as a real one does
    goal_ticks_per_unit: float = 0.0


@dataclass(frozen=True)
class CameraSpec:
    """A camera's intrinsics and mount. `parent` is a link name, or "world" for a fixed camera.

    `pos` is in the parent frame (m); `lookat` (a point in the parent frame) fixes the optical axis,
    `up` the image up direction. Both sims derive their view from these same numbers.
    """

    name: str
    width: int
    height: int
    fovy_deg: float
    parent: str = "world"
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lookat: tuple[float, float, float] = (0.0, 0.0, 1.0)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class RobotSpec:
    """Everything above the backend needs to know about a robot."""

    name: str
    kind: str  # "arm" | "quadrotor": selects the module in robotlearn.robots
    description: Path  # URDF (arm) or airframe YAML (quadrotor) under sim_assets/
    joints: tuple[JointSpec, ...]
    physics_hz: float
    control_hz: float
    cameras: tuple[CameraSpec, ...] = ()
    params: dict = field(default_factory=dict)  # kind-specific constants (e.g. ee link, gripper range)
    #: target interpolation from the robot config, shared by every backend; None for robots without joint drives
    interpolation: Interpolation | None = None

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def lower(self) -> np.ndarray:
        return np.array([j.lower for j in self.joints])

    @property
    def upper(self) -> np.ndarray:
        return np.array([j.upper for j in self.joints])

    @property
    def ticks_per_step(self) -> int:
        ratio = self.physics_hz / self.control_hz
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f"physics_hz {self.physics_hz} is not a multiple of control_hz {self.control_hz}")
        return int(round(ratio))

    def joint_interpolation(self, override: str | None = None) -> str:
        """The interpolation a joint drive runs: a backend's explicit `override`, else the robot's own, so that
        sims and hardware run the same controller unless a config says otherwise."""
        choice = override or self.interpolation
        if choice is None:
            raise ValueError(f"robot {self.name!r} has no interpolation (set it in its robot config)")
        return choice

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"robot {self.name!r} has no camera {name!r}; it has {[c.name for c in self.cameras]}")

"""Robot and task config schemas, and building a RobotSpec from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from robotlearn.core.config import Strict, config_path, load_config, validate
from robotlearn.core.resources import data_root
from robotlearn.core.robot_params import ROBOT_PARAMS
from robotlearn.core.spec import CameraSpec, Interpolation, JointSpec, RobotSpec

ASSET_ROOT = data_root("sim_assets")


class CameraConfig(Strict):
    name: str
    width: int = Field(84, gt=0, le=4096)
    height: int = Field(84, gt=0, le=4096)
    fovy_deg: float = Field(60.0, gt=1, lt=179)
    parent: str = "world"
    pos: tuple[float, float, float]
    lookat: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)


class ServoConfig(Strict):
    """Per-joint servo model (position loop gain, damping) and limits where the description lacks them."""

    kp: list[float]
    kd: list[float]
    #: the goal register's resolution on a revolute joint (ticks per turn; None: the sims track a continuous
    #: setpoint). Prismatic joints (fingers) keep a continuous setpoint: their ticks per metre are the
    #: gripper linkage's, a hardware config's business.
    goal_ticks_per_rev: int | None = Field(None, gt=0)


class RobotConfig(Strict):
    name: str
    kind: Literal["arm", "quadrotor"]
    description: str  # path under sim_assets/
    physics_hz: float = Field(500.0, gt=0)
    control_hz: float = Field(10.0, gt=0)
    servo: ServoConfig | None = None
    #: joint-target interpolation of every backend (sim drives and the real loop); required for arms
    interpolation: Interpolation | None = None
    cameras: list[CameraConfig] = []
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _rates(self):
        ratio = self.physics_hz / self.control_hz
        if abs(ratio - round(ratio)) > 1e-9 or ratio < 1:
            raise ValueError(f"physics_hz ({self.physics_hz}) must be a multiple of control_hz ({self.control_hz})")
        if self.kind == "arm" and self.interpolation is None:
            raise ValueError("an arm needs interpolation: linear | min_jerk (its sims and real loop share it)")
        return self


class TaskConfig(Strict):
    task: str  # key in robotlearn.tasks.TASKS
    robot: str  # configs/robots/<robot>.yaml
    reward: Literal["dense", "sparse"] = "dense"
    max_episode_steps: int = Field(50, gt=0)
    action_mode: str | None = None
    params: dict[str, Any] = {}
    #: robot params this task sets over the robot config's (validated by the robot kind's schema), e.g. the
    #: ctbr action scaling a learner trains with: ``robot_params.ctbr_max_rate=[2,2,1]``
    robot_params: dict[str, Any] = {}


def load_robot_spec(name: str | Path, overrides=None, joints: tuple[JointSpec, ...] | None = None) -> RobotSpec:
    """Load configs/robots/<name>.yaml; joints come from the description (URDF) unless given."""
    cfg = load_config(RobotConfig, "robots", name, overrides)
    params = validate(ROBOT_PARAMS[cfg.kind], cfg.params, f"{config_path('robots', name)}: params").model_dump()
    description = ASSET_ROOT / cfg.description
    if not description.exists():
        raise FileNotFoundError(f"robot {cfg.name!r}: description {description} does not exist")
    if joints is None and description.suffix == ".urdf":
        from robotlearn.core.description import joints_from_urdf

        joints = joints_from_urdf(description, cfg.servo)
    return RobotSpec(
        name=cfg.name, kind=cfg.kind, description=description, joints=joints or (),
        physics_hz=cfg.physics_hz, control_hz=cfg.control_hz,
        cameras=tuple(CameraSpec(**c.model_dump()) for c in cfg.cameras), params=params,
        interpolation=cfg.interpolation,
    )

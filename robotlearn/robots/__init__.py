"""Robot kinds: action modes and observation assembly shared by every backend."""

from __future__ import annotations

import importlib

from robotlearn.core.robot_model import RobotModel
from robotlearn.core.spec import RobotSpec

# robot kind -> "module:Class"
ROBOT_MODELS: dict[str, str] = {
    "arm": "robotlearn.robots.arm:ArmModel",
    "quadrotor": "robotlearn.robots.quadrotor:QuadrotorModel",
}


def make_robot_model(spec: RobotSpec, action_mode: str | None = None) -> RobotModel:
    if spec.kind not in ROBOT_MODELS:
        raise ValueError(f"unknown robot kind {spec.kind!r}; known: {', '.join(sorted(ROBOT_MODELS))}")
    module_name, cls_name = ROBOT_MODELS[spec.kind].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(spec, action_mode) if action_mode else cls(spec)

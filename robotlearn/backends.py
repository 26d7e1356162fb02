"""Backend construction: the one place where sim vs. real is chosen.

Tasks, policies and tools receive a `Backend` and never branch on its kind. Entries are imported
lazily so that, e.g., using MuJoCo does not import pybullet or a serial stack. Backend options are
validated here against the backend's own strict `Options` model (one-line errors).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from robotlearn.core.backend import Backend, BackendOptions
from robotlearn.core.config import ConfigError
from robotlearn.core.spec import RobotSpec

# (robot kind, backend name) -> "module:Class"
BACKENDS: dict[tuple[str, str], str] = {
    ("arm", "mujoco"): "robotlearn.sim.mujoco_arm:MujocoArmBackend",
    ("arm", "pybullet"): "robotlearn.sim.pybullet_arm:PybulletArmBackend",
    ("arm", "real"): "robotlearn.hardware.arm:RealArmBackend",
    ("arm", "ros2"): "robotlearn.hardware.ros2:Ros2ArmBackend",
    ("quadrotor", "mujoco"): "robotlearn.sim.quad_mujoco:MujocoQuadBackend",
    ("quadrotor", "pybullet"): "robotlearn.sim.quad_pybullet:PybulletQuadBackend",
    ("quadrotor", "real"): "robotlearn.hardware.quadrotor:MavlinkQuadBackend",
    ("quadrotor", "ros2"): "robotlearn.hardware.ros2:Ros2QuadBackend",
}

# backend name -> "module:function" a process must run at its start, before any work, to be able to host that
# backend (the ROS 2 backend needs the ROS libraries on the loader path, which may mean a re-exec)
PROCESS_SETUP: dict[str, str] = {"ros2": "robotlearn.ros2.env:ensure"}


def prepare_process(name: str) -> None:
    """Run backend `name`'s process setup, if it has one (call it first thing: it may restart the process)."""
    if name in PROCESS_SETUP:
        module_name, func = PROCESS_SETUP[name].split(":")
        getattr(importlib.import_module(module_name), func)()


def backend_names(kind: str) -> list[str]:
    return sorted(name for k, name in BACKENDS if k == kind)


def backend_class(kind: str, name: str) -> type[Backend]:
    key = (kind, name)
    if key not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r} for a {kind}; available: {', '.join(backend_names(kind))}")
    module_name, cls_name = BACKENDS[key].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def validate_options(kind: str, name: str, options: Mapping[str, Any] | BackendOptions | None) -> BackendOptions:
    """`options` as the backend's strict Options model; a bad key or value is a one-line ConfigError."""
    cls = backend_class(kind, name)
    if isinstance(options, cls.Options):
        return options
    raw = options.model_dump() if isinstance(options, BackendOptions) else dict(options or {})
    try:
        return cls.Options.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        known = ", ".join(cls.Options.model_fields) or "none"
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"backend {name!r} ({kind}): unknown option {key!r}; known: {known}") from None
        raise ConfigError(f"backend {name!r} ({kind}): option {key}: {first['msg']}") from None


def make_backend(spec: RobotSpec, name: str, options: Mapping[str, Any] | BackendOptions | None = None) -> Backend:
    """Build backend `name` for `spec` with validated `options` (see each backend's ``Options``)."""
    cls = backend_class(spec.kind, name)
    return cls(spec, validate_options(spec.kind, name, options))

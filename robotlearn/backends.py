"""Backend construction: the one place where sim vs. real is chosen.

Tasks, policies and tools receive a `Backend` and never branch on its kind. Entries are imported
lazily so that, e.g., using MuJoCo does not import pybullet or a serial stack.
"""

from __future__ import annotations

import importlib

from robotlearn.core.backend import Backend
from robotlearn.core.spec import RobotSpec

# (robot kind, backend name) -> "module:Class"
BACKENDS: dict[tuple[str, str], str] = {
    ("arm", "mujoco"): "robotlearn.sim.mujoco_arm:MujocoArmBackend",
    ("arm", "pybullet"): "robotlearn.sim.pybullet_arm:PybulletArmBackend",
    ("arm", "real"): "robotlearn.hardware.arm:RealArmBackend",
    ("quadrotor", "mujoco"): "robotlearn.sim.quad_mujoco:MujocoQuadBackend",
    ("quadrotor", "pybullet"): "robotlearn.sim.quad_pybullet:PybulletQuadBackend",
    ("quadrotor", "real"): "robotlearn.hardware.quadrotor:MavlinkQuadBackend",
}


def backend_names(kind: str) -> list[str]:
    return sorted(name for k, name in BACKENDS if k == kind)


def make_backend(spec: RobotSpec, name: str, **options) -> Backend:
    """Build backend `name` for `spec`. `options` are backend-specific (e.g. port=, cameras=)."""
    key = (spec.kind, name)
    if key not in BACKENDS:
        raise ValueError(
            f"unknown backend {name!r} for a {spec.kind}; available: {', '.join(backend_names(spec.kind))}"
        )
    module_name, cls_name = BACKENDS[key].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(spec, **options)

"""Pieces both sim backends share: the compiled servo drive, and checking commands and reset states."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from robotlearn import _rt
from robotlearn.core.backend import BackendOptions
from robotlearn.core.spec import Interpolation, RobotSpec


class SimArmOptions(BackendOptions):
    """Options of both arm sims."""

    #: override the robot config's target interpolation (None: the robot's, which the real arm runs too)
    interpolation: Interpolation | None = None


def make_drive(spec: RobotSpec, interpolation: str | None = None) -> _rt.JointDrive:
    """The compiled joint drive (target interpolation + servo PD with torque-speed limits) for `spec`.

    Both sims call it every physics tick, and the real-time loop runs the same C++, so a sim and the
    hardware turn the same targets into the same setpoint stream. `interpolation` overrides the robot's.
    """
    mode = _rt.Interpolation[spec.joint_interpolation(interpolation).upper()]
    limits = _rt.JointLimits([j.lower for j in spec.joints], [j.upper for j in spec.joints],
                             [j.max_velocity for j in spec.joints], [j.max_effort for j in spec.joints])
    return _rt.JointDrive(limits, [j.servo_kp for j in spec.joints], [j.servo_kd for j in spec.joints],
                          mode, 1.0 / spec.physics_hz)


def check_target(target, n: int) -> np.ndarray:
    """A joint-target command as a contiguous float64 (n,) array; non-finite or misshapen input raises."""
    arr = np.ascontiguousarray(target, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"joint target must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"joint target contains NaN/inf: {arr}; command rejected")
    return arr


def command_drive(drive: _rt.JointDrive, spec: RobotSpec, target) -> None:
    """Backend.command for the sims: validate, then hand the target to the compiled drive for one period."""
    if not drive.set_target(check_target(target, len(spec.joints)), 1.0 / spec.control_hz):
        raise ValueError("joint drive rejected the target")


def initial_value(initial: Mapping[str, np.ndarray], key: str, default, shape: tuple[int, ...]) -> np.ndarray:
    """`initial[key]` checked for shape and finiteness, or `default` when the key is absent."""
    if key not in initial:
        return np.array(default, dtype=np.float64)
    arr = np.asarray(initial[key], dtype=np.float64)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ValueError(f"reset state {key!r} must be a finite array of shape {shape}, got {initial[key]!r}")
    return arr


def unknown_scene_keys(initial: Mapping[str, np.ndarray], objects, markers) -> list[str]:
    """Reset keys naming no robot state, object or marker of this scene (a typo would be silently ignored)."""
    known = {"joint_pos"}
    known |= {f"object/{o}/{k}" for o in objects for k in ("pos", "quat")}
    known |= {f"marker/{m}/pos" for m in markers}
    return sorted(set(initial) - known)


def armature(spec: RobotSpec) -> np.ndarray:
    """Per-joint reflected rotor inertia (spec.params["armature"]; zeros when absent)."""
    values = np.asarray(spec.params.get("armature") or np.zeros(len(spec.joints)), dtype=np.float64)
    if values.shape != (len(spec.joints),) or not np.all(values >= 0):
        raise ValueError(f"robot {spec.name!r}: params.armature needs {len(spec.joints)} non-negative values")
    return values

"""Physical parameters of a robot, one vocabulary, one implementation.

The emulator's hidden reality gap (emulators/), a system-identification estimate (sysid/) and a
calibrated sim config all name the same parameters and apply them with the functions here, so what
sysid reports is, key for key, what the emulator hid. Values are *scales relative to the nominal
description* (1.0 = nominal), which keeps one set of keys meaningful across robots of one kind.

Arm parameters are applied by writing a modified copy of the URDF (link masses and inertias, joint
damping and friction) and scaling the spec's servo gains and reflected rotor inertia; both sims
build from the result, so MuJoCo and PyBullet see the same change. ``latency_s`` and ``backlash`` are not
part of the description: the sim backends apply them to their command and sensing paths (sim/common.py
`DelayedIO`) and to each servo's goal (the compiled drive, sim/common.py `make_drive`), as the emulator applies
them on the device side of its bus. Quadrotor parameters modify
the airframe; ``latency_s`` and ``wind`` the quadrotor sims apply to their command path and drag model,
as the emulated vehicle does.

A *calibration* (calib.yaml, written by ``robotlearn sysid fit``) is these same keys plus an
``uncertainty`` block (one standard deviation per estimated key) and a ``sysid`` block of
provenance; `load_calibration` reads it for the sims' ``calibration=`` and
``domain_randomization=`` options.
"""

from __future__ import annotations

import dataclasses
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import Field, ValidationError

from robotlearn.core.config import ConfigError, Strict
from robotlearn.core.description import Airframe
from robotlearn.core.spec import RobotSpec


class ArmPhysicalParams(Strict):
    """Scales on an arm's nominal description (1.0 = nominal)."""

    link_mass_scale: dict[str, float] = {}      # link name -> factor on its URDF mass (and inertia)
    joint_damping_scale: float = Field(1.0, ge=0)
    joint_friction_scale: float = Field(1.0, ge=0)
    armature_scale: float = Field(1.0, gt=0)    # reflected rotor inertia (robot params `armature`)
    servo_kp_scale: float = Field(1.0, gt=0)    # servo position-loop gain
    servo_kd_scale: float = Field(1.0, gt=0)
    latency_s: float = Field(0.0, ge=0, le=0.2)  # goal -> motor and sensor -> reading, each (s)
    backlash: float = Field(0.0, ge=0)           # gear play at each arm servo's output (rad, dead band width)


class QuadPhysicalParams(Strict):
    """Scales on a quadrotor's nominal airframe (1.0 = nominal)."""

    mass_scale: float = Field(1.0, gt=0.2, lt=5)     # mass (and inertia)
    thrust_scale: float = Field(1.0, gt=0.2, lt=5)   # rotor thrust coefficient kf
    drag_scale: float = Field(1.0, ge=0, lt=20)      # rotor-drag coefficients
    motor_tau_scale: float = Field(1.0, gt=0.1, lt=10)  # motor spin-up / spin-down time constants
    latency_s: float = Field(0.0, ge=0, le=0.5)      # setpoint -> flight controller delay (s)
    wind: tuple[float, float, float] = (0.0, 0.0, 0.0)  # steady air velocity, world ENU (m/s), seen by the drag


def apply_arm_params(spec: RobotSpec, params: ArmPhysicalParams, workdir: str | Path) -> RobotSpec:
    """A copy of `spec` whose description (copied into `workdir`), servo gains and armature carry `params`.

    The whole asset folder is copied so that files next to the URDF (scene.yaml, meshes) resolve as before.
    """
    src_dir = spec.description.parent
    dst_dir = Path(workdir) / src_dir.name
    shutil.copytree(src_dir, dst_dir, dirs_exist_ok=True)
    urdf = dst_dir / spec.description.name
    tree = ET.parse(urdf)
    root = tree.getroot()
    links = {link.get("name") for link in root.iter("link")}
    unknown = set(params.link_mass_scale) - links
    if unknown:
        raise ValueError(f"physical parameters: unknown links {sorted(unknown)}; the robot has {sorted(links)}")
    for link in root.iter("link"):
        scale = params.link_mass_scale.get(link.get("name"), 1.0)
        inertial = link.find("inertial")
        if scale == 1.0 or inertial is None:
            continue
        mass = inertial.find("mass")
        mass.set("value", repr(float(mass.get("value")) * scale))
        inertia = inertial.find("inertia")
        if inertia is not None:
            for key, value in list(inertia.attrib.items()):
                inertia.set(key, repr(float(value) * scale))
    for joint in root.iter("joint"):
        dyn = joint.find("dynamics")
        if dyn is None:
            continue
        for key, scale in (("damping", params.joint_damping_scale), ("friction", params.joint_friction_scale)):
            if dyn.get(key) is not None:
                dyn.set(key, repr(float(dyn.get(key)) * scale))
    tree.write(urdf)
    joints = tuple(dataclasses.replace(j, servo_kp=j.servo_kp * params.servo_kp_scale,
                                       servo_kd=j.servo_kd * params.servo_kd_scale) for j in spec.joints)
    robot_params = dict(spec.params)
    if "armature" in robot_params:
        robot_params["armature"] = [a * params.armature_scale for a in robot_params["armature"]]
    return dataclasses.replace(spec, description=urdf, joints=joints, params=robot_params)


def apply_quad_params(airframe: Airframe, params: QuadPhysicalParams) -> Airframe:
    """A copy of `airframe` carrying `params` (``latency_s`` is not part of an airframe: the sims and the
    emulated vehicle delay their setpoints by it)."""
    return airframe.model_copy(update={
        "mass": airframe.mass * params.mass_scale,
        "inertia": tuple(i * params.mass_scale for i in airframe.inertia),
        "kf": airframe.kf * params.thrust_scale,
        "drag": tuple(d * params.drag_scale for d in airframe.drag),
        "motor_tau_up": airframe.motor_tau_up * params.motor_tau_scale,
        "motor_tau_down": airframe.motor_tau_down * params.motor_tau_scale,
    })


PARAMS_BY_KIND: dict[str, type[Strict]] = {"arm": ArmPhysicalParams, "quadrotor": QuadPhysicalParams}


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A calib.yaml: the estimate (`params`), one standard deviation per estimated key, provenance."""

    params: Strict
    uncertainty: dict[str, Any] = dataclasses.field(default_factory=dict)
    sysid: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_yaml(self) -> str:
        """Estimate keys at the top level (the reality-gap configs' layout), then uncertainty and provenance."""
        body = self.params.model_dump()
        return yaml.safe_dump({**body, "uncertainty": self.uncertainty, "sysid": self.sysid}, sort_keys=False)

    def sample(self, rng: np.random.Generator) -> Strict:
        """Parameters drawn around the estimate: each estimated key ~ N(estimate, its std), clipped to
        stay physical (scales > 5 % of nominal, latency >= 0). Keys without uncertainty stay fixed."""
        values = self.params.model_dump()
        for key, std in self.uncertainty.items():
            if isinstance(std, (list, tuple)):  # a vector key (wind): each component around its estimate
                values[key] = [v + rng.normal(0.0, float(si)) for v, si in zip(values[key], std, strict=True)]
            elif isinstance(std, dict):
                values[key] = {**values.get(key, {}), **{name: max(0.05, values[key].get(name, 1.0)
                                                                   + rng.normal(0.0, s)) for name, s in std.items()}}
            else:
                low = 0.0 if key in ("latency_s", "backlash") else 0.05
                values[key] = max(low, values[key] + rng.normal(0.0, float(std)))
        return type(self.params).model_validate(values)


def load_calibration(path: str | Path, kind: str) -> Calibration:
    """Read a calib.yaml for a robot of `kind`; a missing file, a bad key or value is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"calibration {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"calibration {path}: not YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"calibration {path}: expected a mapping of parameter keys")
    uncertainty, sysid = data.pop("uncertainty", {}) or {}, data.pop("sysid", {}) or {}
    model = PARAMS_BY_KIND[kind]
    try:
        params = model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        raise ConfigError(f"calibration {path}: {key}: {first['msg']} (a {kind} calibration has keys "
                          f"{', '.join(model.model_fields)})") from None
    unknown = set(uncertainty) - set(model.model_fields)
    if unknown:
        raise ConfigError(f"calibration {path}: uncertainty for unknown keys {sorted(unknown)}")
    return Calibration(params=params, uncertainty=uncertainty, sysid=sysid)

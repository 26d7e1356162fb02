"""Physical parameters of a robot, one vocabulary, one implementation.

The emulator's hidden reality gap (emulators/), a system-identification estimate (sysid/) and a
calibrated sim config all name the same parameters and apply them with the functions here, so what
sysid reports is, key for key, what the emulator hid. Values are *scales relative to the nominal
description* (1.0 = nominal), which keeps one set of keys meaningful across robots of one kind.

Arm parameters are applied by writing a modified copy of the URDF (link masses and inertias, joint
damping and friction) and scaling the spec's servo gains and reflected rotor inertia; both sims
build from the result, so MuJoCo and PyBullet see the same change. Quadrotor parameters modify the
airframe.
"""

from __future__ import annotations

import dataclasses
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from pydantic import Field

from robotlearn.core.config import Strict
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


class QuadPhysicalParams(Strict):
    """Scales on a quadrotor's nominal airframe (1.0 = nominal)."""

    mass_scale: float = Field(1.0, gt=0.2, lt=5)     # mass (and inertia)
    thrust_scale: float = Field(1.0, gt=0.2, lt=5)   # rotor thrust coefficient kf
    drag_scale: float = Field(1.0, ge=0, lt=20)      # rotor-drag coefficients


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
    """A copy of `airframe` carrying `params`."""
    return airframe.model_copy(update={
        "mass": airframe.mass * params.mass_scale,
        "inertia": tuple(i * params.mass_scale for i in airframe.inertia),
        "kf": airframe.kf * params.thrust_scale,
        "drag": tuple(d * params.drag_scale for d in airframe.drag),
    })

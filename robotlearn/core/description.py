"""Robot descriptions: URDF (arms) read into `JointSpec`s, and the airframe schema (quadrotors).

Descriptions are data every layer reads (sims build engines from them, robot models take constants
from them, hardware checks against them), so they live in core/. The URDF is the single source of a joint's limits (position range, servo no-load speed as `velocity`,
stall torque/force as `effort`); the robot config only adds the servo loop gains. Reading both sims'
limits from the same file is what keeps MuJoCo, PyBullet and the hardware driver in agreement.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import yaml
from pydantic import Field

from robotlearn.core.config import Strict, validate
from robotlearn.core.spec import JointSpec

ACTUATED_TYPES = ("revolute", "prismatic")


def urdf_actuated_joints(path: str | Path) -> list[ET.Element]:
    """The revolute/prismatic <joint> elements of a URDF, in file order (= the spec's joint order)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not a valid URDF ({exc})") from exc
    return [j for j in root.iter("joint") if j.get("type") in ACTUATED_TYPES]


def joints_from_urdf(path: str | Path, servo_cfg=None) -> tuple[JointSpec, ...]:
    """Actuated joints of the URDF at `path`, with servo gains from `servo_cfg` (a ServoConfig or None).

    Every actuated joint must carry a full <limit lower upper effort velocity>: a servo without a stall
    torque or a speed is not a model of a real servo, so a missing value is an error, not a default.
    """
    joints = urdf_actuated_joints(path)
    if not joints:
        raise ValueError(f"{path}: no revolute or prismatic joints")
    n = len(joints)
    kp = list(servo_cfg.kp) if servo_cfg is not None else [0.0] * n
    kd = list(servo_cfg.kd) if servo_cfg is not None else [0.0] * n
    if len(kp) != n or len(kd) != n:
        raise ValueError(f"{path}: servo.kp/kd need {n} values (one per actuated joint), got {len(kp)}/{len(kd)}")
    ticks_per_rev = servo_cfg.goal_ticks_per_rev if servo_cfg is not None else None
    out = []
    for j, p, d in zip(joints, kp, kd, strict=True):
        name = j.get("name")
        limit = j.find("limit")
        if limit is None:
            raise ValueError(f"{path}: joint {name!r} has no <limit>")
        try:
            values = {k: float(limit.attrib[k]) for k in ("lower", "upper", "velocity", "effort")}
        except KeyError as exc:
            raise ValueError(f"{path}: joint {name!r} <limit> lacks {exc.args[0]!r}") from exc
        if not values["lower"] < values["upper"]:
            raise ValueError(f"{path}: joint {name!r} has lower >= upper")
        goal_ticks = ticks_per_rev / (2 * math.pi) if ticks_per_rev and j.get("type") != "prismatic" else 0.0
        out.append(JointSpec(name=name, lower=values["lower"], upper=values["upper"],
                             max_velocity=values["velocity"], max_effort=values["effort"],
                             servo_kp=float(p), servo_kd=float(d), goal_ticks_per_unit=goal_ticks))
    return tuple(out)


def urdf_link_colors(path: str | Path) -> dict[str, list[float]]:
    """link name -> rgba of its first visual's material, for engines that only load collision geometry."""
    root = ET.parse(path).getroot()
    materials = {}
    for mat in root.findall("material"):
        color = mat.find("color")
        if color is not None:
            materials[mat.get("name")] = [float(v) for v in color.get("rgba").split()]
    colors = {}
    for link in root.iter("link"):
        mat = link.find("visual/material")
        if mat is not None and mat.get("name") in materials:
            colors[link.get("name")] = materials[mat.get("name")]
    return colors


GRAVITY = 9.81


class Rotor(Strict):
    x: float
    y: float
    spin: int = Field(..., description="+1 counter-clockwise seen from above, -1 clockwise")


class Airframe(Strict):
    """Schema of sim_assets/quadrotor/<name>.yaml (see cf2x.yaml for the meaning and sources)."""

    name: str
    mass: float = Field(..., gt=0)
    inertia: tuple[float, float, float]
    rotors: list[Rotor] = Field(..., min_length=4, max_length=4)
    kf: float = Field(..., gt=0)
    km: float = Field(..., gt=0)
    max_rotor_speed: float = Field(..., gt=0)
    motor_tau_up: float = Field(..., gt=0)
    motor_tau_down: float = Field(..., gt=0)
    drag: tuple[float, float, float]
    collision_box: tuple[float, float, float]
    rate_kp: tuple[float, float, float]
    rate_ki: tuple[float, float, float]
    rate_kd: tuple[float, float, float]
    rate_i_limit: tuple[float, float, float]
    max_rate: tuple[float, float, float]

    @property
    def max_thrust(self) -> float:
        """Max collective thrust (N): all rotors at max speed."""
        return 4.0 * self.kf * self.max_rotor_speed**2

    @property
    def hover_thrust(self) -> float:
        """Collective thrust fraction that holds the airframe at 1 g."""
        return self.mass * GRAVITY / self.max_thrust

    def hover_rotor_speed(self) -> float:
        return float(np.sqrt(self.mass * GRAVITY / (4.0 * self.kf)))


def load_airframe(path: str | Path) -> Airframe:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"airframe {path} does not exist")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    return validate(Airframe, data, path)

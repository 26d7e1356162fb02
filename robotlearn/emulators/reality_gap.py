"""The reality gap: how the emulated arm differs from the nominal sim the policy was trained in.

Every item is a *hidden* property of the emulated hardware. The host driver never reads it; it can
only notice it (that is what sysid estimates). Physical items are applied by writing a modified copy of
the robot description (URDF masses, joint damping/friction) and servo gains into the spec the
emulator's physics backend is built from, so the same gap works for MuJoCo and PyBullet alike. Servo
and wire items (backlash, latency, sensor noise, packet corruption) are applied by the compiled device
side of the bus (`_rt.ServoEmulator`: drivers/src/emu_arm.cpp, emu_bank.cpp).

Configs: configs/hardware/reality_gap*.yaml (``reality_gap`` = a plausible gap, ``reality_gap_none`` =
identity), plus ``key=value`` overrides.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from pydantic import Field

from robotlearn.core.config import Strict, load_config
from robotlearn.core.spec import RobotSpec


class RealityGapConfig(Strict):
    """Hidden differences of the emulated robot from the nominal model (1.0 / 0.0 = none)."""

    link_mass_scale: dict[str, float] = {}      # link name -> factor on its URDF mass (and inertia)
    joint_damping_scale: float = Field(1.0, ge=0)
    joint_friction_scale: float = Field(1.0, ge=0)
    servo_kp_scale: float = Field(1.0, gt=0)    # servo position-loop gain
    servo_kd_scale: float = Field(1.0, gt=0)
    backlash: float = Field(0.0, ge=0)          # gear play at each servo's output shaft (rad)
    latency_s: float = Field(0.0, ge=0, le=0.2)  # goal -> motor and sensor -> register delay
    position_noise: float = Field(0.0, ge=0)    # std of present-position noise at the servo shaft (rad)
    packet_corruption: float = Field(0.0, ge=0, le=0.5)  # probability a status packet gets one bit flipped
    seed: int = 0


def load_reality_gap(name: str | Path = "reality_gap_none", overrides=None) -> RealityGapConfig:
    return load_config(RealityGapConfig, "hardware", name, overrides)


def gapped_spec(spec: RobotSpec, gap: RealityGapConfig, workdir: Path) -> RobotSpec:
    """A copy of `spec` whose description (copied into `workdir`) and servo gains carry the gap.

    The whole asset folder is copied so that files next to the URDF (scene.yaml) resolve as before.
    """
    src_dir = spec.description.parent
    dst_dir = Path(workdir) / src_dir.name
    shutil.copytree(src_dir, dst_dir, dirs_exist_ok=True)
    urdf = dst_dir / spec.description.name
    tree = ET.parse(urdf)
    root = tree.getroot()
    links = {link.get("name") for link in root.iter("link")}
    unknown = set(gap.link_mass_scale) - links
    if unknown:
        raise ValueError(f"reality gap: unknown links {sorted(unknown)}; the robot has {sorted(links)}")
    for link in root.iter("link"):
        scale = gap.link_mass_scale.get(link.get("name"), 1.0)
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
        for key, scale in (("damping", gap.joint_damping_scale), ("friction", gap.joint_friction_scale)):
            if dyn.get(key) is not None:
                dyn.set(key, repr(float(dyn.get(key)) * scale))
    tree.write(urdf)
    joints = tuple(dataclasses.replace(j, servo_kp=j.servo_kp * gap.servo_kp_scale,
                                       servo_kd=j.servo_kd * gap.servo_kd_scale) for j in spec.joints)
    return dataclasses.replace(spec, description=urdf, joints=joints)


class GapWorkdir:
    """A temporary folder for the gapped description, removed on close."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="rl-gap-"))

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

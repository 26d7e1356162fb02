"""Typed `params:` of each robot kind (configs/robots/*.yaml).

A robot config's params are constants the robot model, the sims and the kinematics read. They are
validated here, per kind, with defaults filled in, so a typo (`ee_lnk`) or a nonsense value is a
one-line error naming the file and key instead of a silently used default. `RobotSpec.params` holds
the validated values (a plain dict: every key present).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from robotlearn.core.config import Strict

Positive = Annotated[float, Field(gt=0)]
Vec3 = tuple[float, float, float]
PositiveVec3 = tuple[Positive, Positive, Positive]


class ArmParams(Strict):
    """Constants of an arm + parallel gripper (see configs/robots/arm6.yaml for the values' sources)."""

    ee_link: str = "ee"                     # URDF link whose origin is the tool centre point
    base_link: str = "base_link"
    arm_joints: int = Field(6, gt=0)        # actuated joints before the gripper's
    gripper_joints: int = Field(2, ge=0)
    table_height: float = 0.0               # m, world z of the table top
    armature: list[float] | None = None     # reflected rotor inertia per joint (kg m^2; fingers kg)
    tool_down_quat: tuple[float, float, float, float] = (0.70710678, 0.0, 0.70710678, 0.0)
    reach_center: Vec3 = (0.0, 0.0, -0.09)  # m, reachable shell of the downward tool (robots/arm.py)
    reach_radius: float | None = Field(None, gt=0)
    home: list[float] | None = None         # rad/m joint pose at reset; default: IK to home_ee
    home_ee: Vec3 = (0.26, 0.0, 0.18)       # m, tool position at reset
    max_joint_delta: float = Field(0.15, gt=0)  # rad per control step (joint_delta)
    max_ee_delta: float = Field(0.04, gt=0)     # m per control step (ee_delta, ee_pose)
    max_yaw_delta: float = Field(0.3, gt=0)     # rad per control step
    max_tool_yaw: float = Field(1.6, gt=0)      # rad, range of the ee_pose yaw
    max_lead: float = Field(0.4, gt=0)          # rad: target may lead the measured joint angle by this
    workspace_low: Vec3 = (0.10, -0.40, 0.012)  # m, ee_pose box and goal clamp
    workspace_high: Vec3 = (0.45, 0.40, 0.30)


class QuadrotorParams(Strict):
    """Action scaling and the host-side cascaded controller's gains (robots/quadrotor.py)."""

    workspace_center: Vec3 = (0.0, 0.0, 1.0)       # m, position-mode action 0 maps here
    workspace_half_extent: PositiveVec3 = (2.0, 2.0, 1.0)  # m, position-mode action +-1
    max_velocity: PositiveVec3 = (1.5, 1.5, 1.0)   # m/s at |a| = 1 (velocity mode)
    max_yaw_rate: float = Field(1.5, gt=0)         # rad/s at |a| = 1 (velocity mode)
    pos_kp: Vec3 = (1.6, 1.6, 2.0)                 # 1/s: position error -> velocity setpoint
    vel_kp: Vec3 = (3.0, 3.0, 4.0)                 # 1/s: velocity error -> acceleration
    vel_ki: Vec3 = (2.0, 2.0, 6.0)                 # 1/s^2: absorbs a ~15% hover-thrust error in ~1 s
    vel_i_limit: float = Field(3.0, ge=0)          # m/s^2
    att_kp: Vec3 = (7.0, 7.0, 2.5)                 # 1/s: attitude error (rad) -> body rate
    max_tilt: float = Field(0.6, gt=0, lt=1.5)     # rad
    max_accel: PositiveVec3 = (6.0, 6.0, 5.0)      # m/s^2
    # ctbr action scaling: body rates at |a| = 1 (None: the airframe's full max_rate) and the collective thrust
    # (0..1 of max) at a0 = -1 / +1. A learner gets finer control near hover from a narrower range: hover needs
    # rates of a few tenths of a rad/s, a small fraction of a +-10 rad/s full scale (configs/algos/sac_quad_hover.yaml).
    ctbr_max_rate: PositiveVec3 | None = None      # rad/s, p q r
    ctbr_thrust_range: tuple[float, float] = (0.0, 1.0)

    @model_validator(mode="after")
    def _thrust_range(self):
        low, high = self.ctbr_thrust_range
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"ctbr_thrust_range must be 0 <= low < high <= 1, got {self.ctbr_thrust_range}")
        return self


#: robot kind -> schema of its params
ROBOT_PARAMS: dict[str, type[Strict]] = {"arm": ArmParams, "quadrotor": QuadrotorParams}

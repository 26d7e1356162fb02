"""The quadrotor robot kind: action modes, the cascaded position controller, observations.

The backend command is always CTBR: [collective thrust 0..1 of max, body rates p, q, r (rad/s,
FLU)]. That is what PX4/ArduPilot accept in SET_ATTITUDE_TARGET and what the compiled rate loop in
the sims consumes, so every action mode ends in the same command on every backend.

Action modes (normalized to [-1, 1], shape (4,)):
  * ``ctbr``     thrust = a0 mapped linearly onto ``ctbr_thrust_range`` (default 0..1), rates = a[1:] *
                 ``ctbr_max_rate`` (default: the airframe's max_rate).
  * ``velocity`` world velocity setpoint a[:3] * ``max_velocity`` (m/s) and yaw rate a3 * ``max_yaw_rate``.
  * ``position`` world position setpoint ``workspace_center + a[:3] * workspace_half_extent`` and yaw a3 * pi.
The setpoint modes run `CascadedController` (position P -> velocity PID -> thrust vector -> attitude P
-> body rates) at the control rate, host side, identically for sims and hardware.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from robotlearn.core.backend import State
from robotlearn.core.description import GRAVITY, load_airframe
from robotlearn.core.robot_model import RobotModel
from robotlearn.core.robot_params import QuadrotorParams
from robotlearn.core.rotations import quat_to_rot, rot_to_quat, yaw_of
from robotlearn.core.spec import RobotSpec


class CascadedController:
    """Position/velocity setpoint -> CTBR, in the structure of PX4's multicopter position control.

    The velocity integrator absorbs a wrong hover-thrust estimate (mass or thrust-coefficient gap),
    which is why the same gains fly the nominal sims and the emulator's perturbed vehicle.
    """

    def __init__(self, hover_thrust: float, max_rate: np.ndarray, dt: float, gains: dict | None = None):
        g = {**QuadrotorParams().model_dump(), **(gains or {})}
        self.hover_thrust, self.dt = float(hover_thrust), float(dt)
        self.max_rate = np.asarray(max_rate, dtype=np.float64)
        self.pos_kp, self.vel_kp = np.asarray(g["pos_kp"], float), np.asarray(g["vel_kp"], float)
        self.vel_ki, self.att_kp = np.asarray(g["vel_ki"], float), np.asarray(g["att_kp"], float)
        self.vel_i_limit, self.max_tilt = float(g["vel_i_limit"]), float(g["max_tilt"])
        self.max_accel = np.asarray(g["max_accel"], float)
        self.max_velocity = np.asarray(g["max_velocity"], float)
        self._integ = np.zeros(3)

    def reset(self) -> None:
        self._integ[:] = 0.0

    def velocity_setpoint(self, state: State, pos_sp: np.ndarray, vel_ff: np.ndarray | None = None) -> np.ndarray:
        v = self.pos_kp * (np.asarray(pos_sp) - state["pos"])
        if vel_ff is not None:
            v = v + vel_ff
        return np.clip(v, -self.max_velocity, self.max_velocity)

    def ctbr(self, state: State, vel_sp: np.ndarray, yaw_sp: float, acc_ff: np.ndarray | None = None) -> np.ndarray:
        """CTBR command [thrust 0..1, p, q, r] that tracks `vel_sp` (world, m/s) and `yaw_sp` (rad)."""
        err = np.asarray(vel_sp, dtype=np.float64) - state["vel"]
        self._integ = np.clip(self._integ + self.vel_ki * err * self.dt, -self.vel_i_limit, self.vel_i_limit)
        acc = self.vel_kp * err + self._integ
        if acc_ff is not None:
            acc = acc + acc_ff
        acc = np.clip(acc, -self.max_accel, self.max_accel)
        f = acc + np.array([0.0, 0.0, GRAVITY])  # desired specific thrust vector, world
        f[2] = max(f[2], 0.2 * GRAVITY)
        horiz = np.linalg.norm(f[:2])
        max_h = f[2] * np.tan(self.max_tilt)
        if horiz > max_h:
            f[:2] *= max_h / horiz
        R = quat_to_rot(state["quat"])
        # Thrust: project the desired specific force on the current body z (PX4 does the same).
        thrust = self.hover_thrust * float(f @ R[:, 2]) / GRAVITY
        z_d = f / np.linalg.norm(f)
        x_c = np.array([np.cos(yaw_sp), np.sin(yaw_sp), 0.0])
        y_d = np.cross(z_d, x_c)
        y_d /= np.linalg.norm(y_d)
        R_d = np.column_stack([np.cross(y_d, z_d), y_d, z_d])
        q_e = rot_to_quat(R.T @ R_d)  # body -> desired, expressed in the body frame
        rates = np.clip(2.0 * self.att_kp * q_e[1:], -self.max_rate, self.max_rate)
        return np.array([np.clip(thrust, 0.0, 1.0), *rates])


def _box(n: int, low: float = -np.inf, high: float = np.inf) -> spaces.Box:
    return spaces.Box(low, high, (n,), np.float32)


class QuadrotorModel(RobotModel):
    """A quadrotor with any airframe YAML; see the module docstring for the action modes."""

    ACTION_MODES = ("ctbr", "velocity", "position")

    def __init__(self, spec: RobotSpec, action_mode: str = "ctbr"):
        if action_mode not in self.ACTION_MODES:
            raise ValueError(f"quadrotor action_mode must be one of {self.ACTION_MODES}, got {action_mode!r}")
        super().__init__(spec, action_mode)
        self.p = spec.params  # validated, defaults filled (core/robot_params.py)
        self.airframe = load_airframe(spec.description)
        self.max_rate = np.asarray(self.airframe.max_rate, dtype=np.float64)
        action_rate = self.p["ctbr_max_rate"]
        self.action_rate = self.max_rate if action_rate is None else np.asarray(action_rate, dtype=np.float64)
        self.thrust_low, self.thrust_high = (float(v) for v in self.p["ctbr_thrust_range"])
        self.center = np.asarray(self.p["workspace_center"], dtype=np.float64)
        self.half_extent = np.asarray(self.p["workspace_half_extent"], dtype=np.float64)
        self.controller = CascadedController(self.airframe.hover_thrust, self.max_rate, 1.0 / spec.control_hz, self.p)
        self._yaw_sp = 0.0

    @property
    def action_space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (4,), np.float32)

    def observation_spaces(self) -> dict[str, spaces.Space]:
        return {"pos": _box(3), "vel": _box(3), "quat": _box(4, -1.0, 1.0), "omega": _box(3)}

    def home_state(self) -> State:
        return {"pos": self.center.copy(), "quat": np.array([1.0, 0.0, 0.0, 0.0]), "vel": np.zeros(3),
                "omega": np.zeros(3)}

    def reset(self, state: State) -> None:
        self.controller.reset()
        self._yaw_sp = yaw_of(state["quat"])

    def command(self, action: np.ndarray, state: State) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if self.action_mode == "ctbr":
            return self.action_to_ctbr(a)
        if self.action_mode == "velocity":
            vel_sp = a[:3] * np.asarray(self.p["max_velocity"], dtype=np.float64)
            self._yaw_sp += a[3] * self.p["max_yaw_rate"] * self.controller.dt
        else:
            vel_sp = self.controller.velocity_setpoint(state, self.center + a[:3] * self.half_extent)
            self._yaw_sp = a[3] * np.pi
        return self.controller.ctbr(state, vel_sp, self._yaw_sp)

    def action_to_ctbr(self, action: np.ndarray) -> np.ndarray:
        """The ``ctbr`` mode's scaling: action in [-1, 1] -> [thrust 0..1, p, q, r rad/s]."""
        a = np.asarray(action, dtype=np.float64)
        thrust = self.thrust_low + 0.5 * (a[0] + 1.0) * (self.thrust_high - self.thrust_low)
        return np.array([thrust, *(a[1:] * self.action_rate)])

    def ctbr_to_action(self, ctbr: np.ndarray) -> np.ndarray:
        """Inverse of the ``ctbr`` mode's scaling (for experts and recorded CTBR data)."""
        thrust = 2.0 * (ctbr[0] - self.thrust_low) / (self.thrust_high - self.thrust_low) - 1.0
        a = np.array([thrust, *(np.asarray(ctbr[1:]) / self.action_rate)])
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def observe(self, state: State) -> dict[str, np.ndarray]:
        q = np.asarray(state["quat"], dtype=np.float64)
        q = q / np.linalg.norm(q)
        if q[0] < 0:  # q and -q are the same attitude; give policies one of them
            q = -q
        return {"pos": state["pos"].astype(np.float32), "vel": state["vel"].astype(np.float32),
                "quat": np.clip(q, -1.0, 1.0).astype(np.float32), "omega": state["omega"].astype(np.float32)}

"""Scripted quadrotor expert: a cascaded PID that produces the env's own action, in any action mode.

It reads only the observation (position, velocity, attitude, goal and, when the task gives it, the
goal velocity), so it runs unchanged on MuJoCo, PyBullet and the MAVLink vehicle and can label data
for imitation learning. In ``ctbr`` mode it runs its own `CascadedController` and rescales the CTBR
command to the action; in the setpoint modes the action *is* the setpoint.
"""

from __future__ import annotations

import numpy as np

from robotlearn.core.env import RobotEnv
from robotlearn.core.rotations import yaw_of
from robotlearn.robots.quadrotor import CascadedController, QuadrotorModel


class QuadExpert:
    """`act(obs) -> action` for a quadrotor env (wrapped or not); `reset(obs)` at every episode start."""

    def __init__(self, env, yaw: float = 0.0):
        env: RobotEnv = env.unwrapped
        robot = env.robot
        if not isinstance(robot, QuadrotorModel):
            raise TypeError(f"QuadExpert needs a quadrotor env, got robot model {type(robot).__name__}")
        self.robot, self.yaw = robot, float(yaw)
        self.dt = 1.0 / env.backend.spec.control_hz
        self.controller = CascadedController(robot.airframe.hover_thrust, robot.max_rate, self.dt, robot.p)
        self._prev_goal_vel: np.ndarray | None = None

    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        self.controller.reset()
        self._prev_goal_vel = None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = {k: obs[k].astype(np.float64) for k in ("pos", "vel", "quat", "omega")}
        goal = obs["goal_pos"].astype(np.float64)
        goal_vel = obs["goal_vel"].astype(np.float64) if "goal_vel" in obs else np.zeros(3)
        # Feed-forward of the reference acceleration, differenced from the observed reference velocity.
        acc_ff = np.zeros(3) if self._prev_goal_vel is None else (goal_vel - self._prev_goal_vel) / self.dt
        self._prev_goal_vel = goal_vel
        mode = self.robot.action_mode
        if mode == "position":
            # Lead the setpoint so the model's position P loop asks for the reference velocity.
            lead = goal + goal_vel / self.controller.pos_kp
            a = np.append((lead - self.robot.center) / self.robot.half_extent, self.yaw / np.pi)
        else:
            vel_sp = self.controller.velocity_setpoint(state, goal, goal_vel)
            if mode == "velocity":
                yaw_rate = np.clip(2.0 * np.angle(np.exp(1j * (self.yaw - yaw_of(state["quat"])))), -1, 1)
                a = np.append(vel_sp / np.asarray(self.robot.p["max_velocity"]), yaw_rate)
            else:
                return self.robot.ctbr_to_action(self.controller.ctbr(state, vel_sp, self.yaw, acc_ff))
        return np.clip(a, -1.0, 1.0).astype(np.float32)


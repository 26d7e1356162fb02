"""The arm robot kind: action modes and observations, identical for every backend.

Action modes (normalized to [-1, 1]; the last element is always the gripper, +1 open / -1 closed):
  * ``ee_delta``    (5,): end-effector displacement dx, dy, dz (scaled by ``max_ee_delta`` m) and yaw
    change (``max_yaw_delta`` rad) of a downward-pointing tool, solved to joint targets with IK on the
    MuJoCo kinematic model (robots/arm_kinematics.py) — the same solver on sims and hardware.
  * ``ee_pose``     (5,): an absolute tool target: x, y, z mapped from [-1, 1] onto the workspace box and
    yaw onto [-``max_tool_yaw``, ``max_tool_yaw``]; the commanded goal moves toward it at most
    ``max_ee_delta`` m and ``max_yaw_delta`` rad per step. Absolute targets are what diffusion policies
    learn best: they are a function of what the observation shows, not of an internal running goal.
  * ``joint_delta`` (n_arm + 1,): joint target increments scaled by ``max_joint_delta`` rad.
Targets are accumulated, but never allowed to lead the measured pose by more than ``max_lead`` (rad),
so a blocked arm does not wind up a large hidden error that would make it jump when released.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from robotlearn.core.backend import State
from robotlearn.core.robot_model import RobotModel
from robotlearn.core.spec import RobotSpec
from robotlearn.robots.arm_kinematics import ArmKinematics


def _clip(x: np.ndarray, lo, hi) -> np.ndarray:
    """np.clip without its dispatch overhead (several us per call; this runs a few times every control step)."""
    return np.minimum(np.maximum(x, lo), hi)


def _box(n: int, low: float = -np.inf, high: float = np.inf) -> spaces.Box:
    return spaces.Box(low, high, (n,), np.float32)


class ArmModel(RobotModel):
    """6-DoF arm + parallel gripper (two finger dofs driven to the same opening)."""

    ACTION_MODES = ("ee_delta", "ee_pose", "joint_delta")

    def __init__(self, spec: RobotSpec, action_mode: str = "ee_delta"):
        if action_mode not in self.ACTION_MODES:
            raise ValueError(f"arm action_mode must be one of {self.ACTION_MODES}, got {action_mode!r}")
        super().__init__(spec, action_mode)
        self.p = spec.params  # validated, defaults filled (core/robot_params.py)
        self.kin = ArmKinematics(spec)
        self.n_arm = self.kin.n_arm
        self.n_fingers = len(spec.joints) - self.n_arm
        self.finger_open = float(spec.upper[self.n_arm]) if self.n_fingers else 0.0
        self.ws_low = np.asarray(self.p["workspace_low"], dtype=np.float64)
        self.ws_high = np.asarray(self.p["workspace_high"], dtype=np.float64)
        # Reachable shell of the downward tool: the wrist centre must stay within the arm's reach of the
        # shoulder, i.e. the tool centre point within a sphere. Goals outside it would make IK trade
        # height for reach (the tool sinks toward the table while the user asks for +x).
        self.reach_center = np.asarray(self.p["reach_center"], dtype=np.float64) if "reach_center" in self.p else None
        self.reach_radius = float(self.p["reach_radius"] or np.inf)
        self._home = self._compute_home()
        self._q_target = self._home[: self.n_arm].copy()
        self._ee_goal = np.zeros(3)
        self._yaw_goal = 0.0

    # ---- spaces -------------------------------------------------------------------------------
    @property
    def action_space(self) -> spaces.Box:
        n = self.n_arm + 1 if self.action_mode == "joint_delta" else 5
        return spaces.Box(-1.0, 1.0, (n,), np.float32)

    def observation_spaces(self) -> dict[str, spaces.Space]:
        return {
            "joint_pos": _box(self.n_arm),
            "joint_vel": _box(self.n_arm),
            "ee_pos": _box(3),
            "ee_quat": _box(4, -1.0, 1.0),
            "gripper": _box(1, 0.0, 1.0),
        }

    # ---- what the arm is currently commanded to do (read by teleop devices) ----------------------
    @property
    def ee_goal(self) -> tuple[np.ndarray, float]:
        """(tool position goal (3,), yaw goal) of the end-effector action modes, in the world frame."""
        return self._ee_goal.copy(), self._yaw_goal

    @property
    def joint_target(self) -> np.ndarray:
        """The arm joints' current target (rad)."""
        return self._q_target.copy()

    # ---- episode ------------------------------------------------------------------------------
    def _compute_home(self) -> np.ndarray:
        if self.p["home"] is not None:
            home = np.asarray(self.p["home"], dtype=np.float64)
        else:
            seed = 0.5 * (self.kin.lower + self.kin.upper)
            arm = self.kin.inverse(np.asarray(self.p["home_ee"]), self.kin.tool_quat(0.0), seed, iterations=200)
            home = np.concatenate([arm, np.full(self.n_fingers, self.finger_open)])
        if home.shape != (len(self.spec.joints),):
            raise ValueError(f"home pose must have {len(self.spec.joints)} values, got {home.shape}")
        return home

    def home_state(self) -> State:
        return {"joint_pos": self._home.copy()}

    def reset(self, state: State) -> None:
        q = state["joint_pos"][: self.n_arm]
        self._q_target = q.copy()
        pos, quat = self.kin.forward(q)
        self._ee_goal = pos
        self._yaw_goal = self.kin.tool_yaw(quat)

    # ---- actions ------------------------------------------------------------------------------
    def command(self, action: np.ndarray, state: State) -> np.ndarray:
        q_meas = state["joint_pos"][: self.n_arm]
        if self.action_mode != "joint_delta":
            step, dyaw = self._ee_step(action)
            meas_pos, _ = self.kin.forward(q_meas)
            goal = self._ee_goal + step
            # Keep the goal near the measured tool so a blocked arm cannot wind up.
            lead_ee = 2 * self.p["max_ee_delta"]
            goal = meas_pos + _clip(goal - meas_pos, -lead_ee, lead_ee)
            self._ee_goal = self._clamp_to_workspace(goal)
            self._yaw_goal = min(max(self._yaw_goal + dyaw, -math.pi), math.pi)
            q_arm = self.kin.inverse(self._ee_goal, self.kin.tool_quat(self._yaw_goal), self._q_target)
        else:
            q_arm = self._q_target + action[: self.n_arm] * self.p["max_joint_delta"]
        lead = self.p["max_lead"]
        q_arm = _clip(q_arm, q_meas - lead, q_meas + lead)
        self._q_target = _clip(q_arm, self.kin.lower, self.kin.upper)
        fingers = np.full(self.n_fingers, (action[-1] + 1.0) * 0.5 * self.finger_open)
        return np.concatenate([self._q_target, fingers])

    def _ee_step(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """Goal displacement (m) and yaw change (rad) asked for by an ee_delta or ee_pose action."""
        max_step, max_dyaw = self.p["max_ee_delta"], self.p["max_yaw_delta"]
        if self.action_mode == "ee_delta":
            return action[:3] * max_step, float(action[3]) * max_dyaw
        target = self.ws_low + (action[:3] + 1.0) * 0.5 * (self.ws_high - self.ws_low)
        dyaw = np.angle(np.exp(1j * (float(action[3]) * self.p["max_tool_yaw"] - self._yaw_goal)))
        return np.clip(target - self._ee_goal, -max_step, max_step), float(np.clip(dyaw, -max_dyaw, max_dyaw))

    def _clamp_to_workspace(self, goal: np.ndarray) -> np.ndarray:
        """Box limits, then the reach sphere — keeping the goal's height and shrinking its horizontal
        distance, because an operator pushing outward expects the tool to stop, not to sink."""
        goal = _clip(goal, self.ws_low, self.ws_high)
        if self.reach_center is None:
            return goal
        rel = goal - self.reach_center
        rel[2] = min(max(float(rel[2]), -self.reach_radius), self.reach_radius)
        horizontal = math.hypot(rel[0], rel[1])
        max_horizontal = math.sqrt(self.reach_radius**2 - rel[2] ** 2)
        if horizontal > max_horizontal:
            rel[:2] *= max_horizontal / horizontal
        return self.reach_center + rel

    def action_toward(self, ee_pos: np.ndarray, yaw: float, gripper: float, state: State) -> np.ndarray:
        """The normalized action, in this env's action mode, that moves toward an end-effector goal.

        Used by scripted experts and teleop devices so they work in every action mode.
        """
        if self.action_mode == "ee_delta":
            delta = (np.asarray(ee_pos) - self._ee_goal) / self.p["max_ee_delta"]
            dyaw = np.angle(np.exp(1j * (yaw - self._yaw_goal))) / self.p["max_yaw_delta"]
            arm = np.concatenate([delta, [dyaw]])
        elif self.action_mode == "ee_pose":
            target = 2.0 * (np.asarray(ee_pos) - self.ws_low) / (self.ws_high - self.ws_low) - 1.0
            arm = np.concatenate([target, [yaw / self.p["max_tool_yaw"]]])
        else:
            q_goal = self.kin.inverse(np.asarray(ee_pos), self.kin.tool_quat(yaw), self._q_target)
            arm = (q_goal - self._q_target) / self.p["max_joint_delta"]
        return np.clip(np.concatenate([arm, [gripper]]), -1.0, 1.0).astype(np.float32)

    # ---- observations -------------------------------------------------------------------------
    def observe(self, state: State) -> dict[str, np.ndarray]:
        q = state["joint_pos"]
        pos, quat = self.kin.forward(q[: self.n_arm])
        opening = float(np.mean(q[self.n_arm:])) / self.finger_open if self.n_fingers else 0.0
        return {
            "joint_pos": q[: self.n_arm].astype(np.float32),
            "joint_vel": state["joint_vel"][: self.n_arm].astype(np.float32),
            "ee_pos": pos.astype(np.float32),
            "ee_quat": quat.astype(np.float32),
            "gripper": np.array([np.clip(opening, 0.0, 1.0)], dtype=np.float32),
        }

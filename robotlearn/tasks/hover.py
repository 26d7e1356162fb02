"""QuadHover: hold a point, starting from a random position, velocity, attitude and body rate.

`QuadGoalTask` holds what hover and track share: goal-relative observations, the reward, and crash
termination (below `min_height` or farther than `max_distance` from the goal).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from robotlearn.core.backend import Backend, State
from robotlearn.core.rotations import euler_to_quat, quat_to_rot
from robotlearn.core.task import Task
from robotlearn.tasks.params import QuadGoalParams, QuadHoverParams


def _random_attitude(rng: np.random.Generator, max_tilt: float) -> np.ndarray:
    """Quaternion (w, x, y, z) with roll/pitch uniform in +-max_tilt and any yaw."""
    roll, pitch = rng.uniform(-max_tilt, max_tilt, 2)
    return euler_to_quat(roll, pitch, rng.uniform(-np.pi, np.pi))


BODY_FRAME_KEYS = ("goal_rel_body", "vel_body", "up_body")


def body_frame_extras(robot_obs: dict[str, np.ndarray], goal_rel: np.ndarray) -> dict[str, np.ndarray]:
    """The goal offset, the velocity and world up expressed in the body frame.

    The world-frame observations need a yaw-dependent rotation before they say which body rate to command
    (the expert's controller does that rotation); given in the body frame they do not, which is what lets
    SAC learn CTBR hover within minutes rather than hours.
    """
    R = quat_to_rot(robot_obs["quat"].astype(np.float64))
    return {"goal_rel_body": (R.T @ goal_rel).astype(np.float32),
            "vel_body": (R.T @ robot_obs["vel"].astype(np.float64)).astype(np.float32),
            "up_body": R[2].astype(np.float32)}


class QuadGoalTask(Task):
    """Dense reward: `alive_bonus` - distance (m) - `rate_penalty` * |omega| - `velocity_penalty` * |v - v_goal|
    + `precision_bonus` * exp(-distance / `precision_radius`); sparse: 0 on success else -1.

    The distance term alone has the same slope everywhere, so a learner's critic must resolve return
    differences of a few tenths between hovering 5 cm and 20 cm off; the precision bonus steepens the reward
    within a few `precision_radius` of the goal, and the velocity penalty damps the oscillation that a
    position-only reward leaves free. An `alive_bonus` makes every flown step worth more than the crash
    (`crash_reward`, e.g. 0) without a large negative cliff in the critic's targets. All off by default.
    Success: distance < `tolerance`. A crash terminates with reward `crash_reward`. Observations add the
    goal offset, velocity and world up in the body frame (`body_frame_extras`).
    """

    robot_kind = "quadrotor"
    Params = QuadGoalParams

    def __init__(self, reward: str = "dense", max_episode_steps: int = 250, tolerance: float = 0.1,
                 init_pos_range: float = 0.5, init_vel_range: float = 0.3, init_tilt: float = 0.2,
                 init_rate_range: float = 0.3, min_height: float = 0.05, max_distance: float = 3.0,
                 rate_penalty: float = 0.01, crash_reward: float = -10.0, velocity_penalty: float = 0.0,
                 precision_bonus: float = 0.0, precision_radius: float = 0.05,
                 alive_bonus: float = 0.0):
        super().__init__(reward, max_episode_steps)
        self.tolerance, self.min_height, self.max_distance = float(tolerance), float(min_height), float(max_distance)
        self.init_pos_range, self.init_vel_range = float(init_pos_range), float(init_vel_range)
        self.init_tilt, self.init_rate_range = float(init_tilt), float(init_rate_range)
        self.rate_penalty, self.crash_reward = float(rate_penalty), float(crash_reward)
        self.velocity_penalty, self.alive_bonus = float(velocity_penalty), float(alive_bonus)
        self.precision_bonus, self.precision_radius = float(precision_bonus), float(precision_radius)
        self.goal = np.zeros(3)

    def reference(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Goal position and velocity at episode time t (s)."""
        return self.goal, np.zeros(3)

    def sample_start(self, rng: np.random.Generator, center: np.ndarray) -> dict[str, np.ndarray]:
        pos = center + rng.uniform(-self.init_pos_range, self.init_pos_range, 3)
        pos[2] = max(pos[2], self.min_height + 0.3)
        return {"pos": pos, "vel": rng.uniform(-self.init_vel_range, self.init_vel_range, 3),
                "quat": _random_attitude(rng, self.init_tilt),
                "omega": rng.uniform(-self.init_rate_range, self.init_rate_range, 3)}

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool, dict[str, Any]]:
        pos = obs["pos"].astype(np.float64)
        dist = float(np.linalg.norm(obs["goal_pos"].astype(np.float64) - pos))
        crashed = pos[2] < self.min_height or dist > self.max_distance
        success = dist < self.tolerance and not crashed
        if crashed:
            reward = self.crash_reward
        elif self.reward_type == "dense":
            vel_err = obs["vel"].astype(np.float64) - obs.get("goal_vel", 0.0)
            reward = (self.alive_bonus - dist - self.rate_penalty * float(np.linalg.norm(obs["omega"]))
                      - self.velocity_penalty * float(np.linalg.norm(vel_err))
                      + self.precision_bonus * float(np.exp(-dist / self.precision_radius)))
        else:
            reward = 0.0 if success else -1.0
        return reward, crashed, {"is_success": success, "distance": dist, "crashed": crashed}


class QuadHover(QuadGoalTask):
    """Hold `goal` (world, m)."""

    Params = QuadHoverParams

    def __init__(self, goal=(0.0, 0.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.goal = np.asarray(goal, dtype=np.float64)
        if self.goal.shape != (3,):
            raise ValueError(f"quad_hover goal must be [x, y, z], got {goal!r}")

    def observation_spaces(self) -> dict[str, spaces.Space]:
        box = spaces.Box(-np.inf, np.inf, (3,), np.float32)
        return {"goal_pos": box, "goal_rel": box, **dict.fromkeys(BODY_FRAME_KEYS, box)}

    def initial_state(self, rng: np.random.Generator, home: State) -> dict[str, np.ndarray]:
        return {**self.sample_start(rng, self.goal), "marker/goal/pos": self.goal.copy()}

    def observe(self, robot_obs: dict[str, np.ndarray], backend: Backend) -> dict[str, np.ndarray]:
        goal_rel = self.goal - robot_obs["pos"].astype(np.float64)
        return {"goal_pos": self.goal.astype(np.float32), "goal_rel": goal_rel.astype(np.float32),
                **body_frame_extras(robot_obs, goal_rel)}

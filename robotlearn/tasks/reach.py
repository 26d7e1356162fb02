"""ArmReach: bring the end effector (tool centre point) to a sampled goal point."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from robotlearn.core.backend import Backend, State
from robotlearn.core.task import Task
from robotlearn.tasks.arm_common import jittered_home, sample_box
from robotlearn.tasks.params import ArmReachParams


class ArmReach(Task):
    """Dense reward: -distance (m). Sparse: 0 on success else -1. Success: distance < `tolerance`."""

    robot_kind = "arm"
    Params = ArmReachParams

    def __init__(self, reward: str = "dense", max_episode_steps: int = 50, tolerance: float = 0.03,
                 goal_radius=(0.16, 0.34), goal_angle=(-0.8, 0.8), goal_height=(0.04, 0.18),
                 start_jitter: float = 0.1, n_arm: int = 6):
        super().__init__(reward, max_episode_steps)
        self.tolerance = float(tolerance)
        # Goals are sampled in cylindrical coordinates around the base: the reachable set of a
        # top-down tool is a shell around the shoulder, which a box would overfill at its corners.
        self.goal_low = np.array([goal_radius[0], goal_angle[0], goal_height[0]], dtype=float)
        self.goal_high = np.array([goal_radius[1], goal_angle[1], goal_height[1]], dtype=float)
        self.start_jitter = float(start_jitter)
        self.n_arm = int(n_arm)
        self.goal = np.zeros(3)

    def observation_spaces(self) -> dict[str, spaces.Space]:
        return {"goal_pos": spaces.Box(-np.inf, np.inf, (3,), np.float32)}

    def initial_state(self, rng: np.random.Generator, home: State) -> dict[str, np.ndarray]:
        radius, angle, height = sample_box(rng, self.goal_low, self.goal_high)
        self.goal = np.array([radius * np.cos(angle), radius * np.sin(angle), height])
        return {"joint_pos": jittered_home(rng, home, self.n_arm, self.start_jitter), "marker/goal/pos": self.goal}

    def observe(self, robot_obs: dict[str, np.ndarray], backend: Backend) -> dict[str, np.ndarray]:
        return {"goal_pos": self.goal.astype(np.float32)}

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool, dict[str, Any]]:
        dist = float(np.linalg.norm(obs["ee_pos"].astype(np.float64) - self.goal))
        success = dist < self.tolerance
        reward = -dist if self.reward_type == "dense" else (0.0 if success else -1.0)
        return reward, False, {"is_success": success, "distance": dist}

"""ArmPickPlace: pick the cube up and put it down on a sampled target spot on the table."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from robotlearn.core.backend import Backend, State
from robotlearn.core.rotations import yaw_quat
from robotlearn.core.task import Task
from robotlearn.tasks.arm_common import jittered_home, sample_box
from robotlearn.tasks.params import ArmPickPlaceParams


class ArmPickPlace(Task):
    """Dense reward: -(reach distance to the cube)/2 - (cube-to-target distance). Sparse: 0 on success else -1.

    Success: the cube's centre is within `tolerance` of the target (targets lie on the table, so the cube
    must be put down, not just carried there).
    """

    robot_kind = "arm"
    Params = ArmPickPlaceParams

    def __init__(self, reward: str = "dense", max_episode_steps: int = 80, tolerance: float = 0.03,
                 cube_half: float = 0.02, cube_low=(0.20, -0.16), cube_high=(0.34, 0.16),
                 target_low=(0.20, -0.16), target_high=(0.34, 0.16), min_separation: float = 0.10,
                 max_cube_yaw: float = 0.6, start_jitter: float = 0.05, n_arm: int = 6):
        super().__init__(reward, max_episode_steps)
        self.tolerance, self.cube_half = float(tolerance), float(cube_half)
        self.cube_low, self.cube_high = np.asarray(cube_low, float), np.asarray(cube_high, float)
        self.target_low, self.target_high = np.asarray(target_low, float), np.asarray(target_high, float)
        self.min_separation, self.max_cube_yaw = float(min_separation), float(max_cube_yaw)
        self.start_jitter, self.n_arm = float(start_jitter), int(n_arm)
        self.goal = np.zeros(3)

    def observation_spaces(self) -> dict[str, spaces.Space]:
        box = lambda n, lo=-np.inf, hi=np.inf: spaces.Box(lo, hi, (n,), np.float32)  # noqa: E731
        return {"cube_pos": box(3), "cube_quat": box(4, -1.0, 1.0), "goal_pos": box(3)}

    def initial_state(self, rng: np.random.Generator, home: State) -> dict[str, np.ndarray]:
        cube_xy = sample_box(rng, self.cube_low, self.cube_high)
        target_xy = sample_box(rng, self.target_low, self.target_high)
        while np.linalg.norm(target_xy - cube_xy) < self.min_separation:
            target_xy = sample_box(rng, self.target_low, self.target_high)
        self.goal = np.array([*target_xy, self.cube_half])
        yaw = rng.uniform(-self.max_cube_yaw, self.max_cube_yaw)
        return {
            "joint_pos": jittered_home(rng, home, self.n_arm, self.start_jitter),
            "object/cube/pos": np.array([*cube_xy, self.cube_half]),
            "object/cube/quat": yaw_quat(yaw),
            "marker/goal/pos": self.goal,
        }

    def observe(self, robot_obs: dict[str, np.ndarray], backend: Backend) -> dict[str, np.ndarray]:
        pos, quat = backend.object_pose("cube")
        return {"cube_pos": pos.astype(np.float32), "cube_quat": quat.astype(np.float32),
                "goal_pos": self.goal.astype(np.float32)}

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool, dict[str, Any]]:
        cube = obs["cube_pos"].astype(np.float64)
        place_dist = float(np.linalg.norm(cube - self.goal))
        reach_dist = float(np.linalg.norm(obs["ee_pos"].astype(np.float64) - cube))
        success = place_dist < self.tolerance
        if self.reward_type == "dense":
            reward = -0.5 * reach_dist - place_dist
        else:
            reward = 0.0 if success else -1.0
        return reward, False, {"is_success": success, "place_distance": place_dist}

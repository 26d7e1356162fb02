"""ArmStack: stack cube B on cube A, then cube C on B — a long-horizon task of four sub-tasks.

Sub-tasks (``info["subtask_id"]``): 0 pick B, 1 place B on A, 2 pick C, 3 place C on B; 4 means done.
The id is a function of the scene alone (never of history), so it is the same on every backend, a
scripted expert can start from any mid-task state, and a correction "completes the current sub-task"
when the id moves past the one it started in (RaC's Rule 2, robotlearn/correction/).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from robotlearn.core.backend import Backend, State
from robotlearn.core.rotations import yaw_quat
from robotlearn.core.task import Task
from robotlearn.tasks.arm_common import jittered_home, sample_box
from robotlearn.tasks.params import ArmStackParams

CUBES = ("cube", "cube_b", "cube_c")          # scene object names of A, B, C (sim_assets/arm6/scene.yaml)
KEYS = ("cube_a", "cube_b", "cube_c")         # their observation prefixes
SUBTASKS = ("pick_b", "place_b_on_a", "pick_c", "place_c_on_b")
DONE = len(SUBTASKS)
# (object to move, object it goes on) of each pick/place pair
PAIRS = {0: ("cube_b", "cube_a"), 1: ("cube_b", "cube_a"), 2: ("cube_c", "cube_b"), 3: ("cube_c", "cube_b")}
GRIP_HOLD = 0.85   # gripper opening fraction below which fingers count as closed (open is 1.0)
NEAR = 0.03        # m, tool centre to cube centre for the cube to count as in the hand


class ArmStack(Task):
    """Dense reward: sub-task id minus the current sub-task's distance (tool to cube when picking, cube
    to its spot when placing). Sparse: 0 on success else -1. Success (terminates): C on B on A, released.
    """

    robot_kind = "arm"
    Params = ArmStackParams

    def __init__(self, reward: str = "dense", max_episode_steps: int = 120, cube_half: float = 0.02,
                 cube_low=(0.20, -0.15), cube_high=(0.32, 0.15), min_separation: float = 0.08,
                 max_cube_yaw: float = 0.4, stack_tolerance: float = 0.015, start_jitter: float = 0.05,
                 n_arm: int = 6):
        super().__init__(reward, max_episode_steps)
        self.half, self.stack_tolerance = float(cube_half), float(stack_tolerance)
        self.cube_low, self.cube_high = np.asarray(cube_low, float), np.asarray(cube_high, float)
        self.min_separation, self.max_cube_yaw = float(min_separation), float(max_cube_yaw)
        self.start_jitter, self.n_arm = float(start_jitter), int(n_arm)

    def observation_spaces(self) -> dict[str, spaces.Space]:
        out = {}
        for key in KEYS:
            out[f"{key}_pos"] = spaces.Box(-np.inf, np.inf, (3,), np.float32)
            out[f"{key}_quat"] = spaces.Box(-1.0, 1.0, (4,), np.float32)
        return out

    def initial_state(self, rng: np.random.Generator, home: State) -> dict[str, np.ndarray]:
        placed: list[np.ndarray] = []
        while len(placed) < len(CUBES):
            xy = sample_box(rng, self.cube_low, self.cube_high)
            if all(np.linalg.norm(xy - p) >= self.min_separation for p in placed):
                placed.append(xy)
        state = {"joint_pos": jittered_home(rng, home, self.n_arm, self.start_jitter)}
        for name, xy in zip(CUBES, placed, strict=True):
            state[f"object/{name}/pos"] = np.array([*xy, self.half])
            state[f"object/{name}/quat"] = yaw_quat(rng.uniform(-self.max_cube_yaw, self.max_cube_yaw))
        return state

    def observe(self, robot_obs: dict[str, np.ndarray], backend: Backend) -> dict[str, np.ndarray]:
        out = {}
        for name, key in zip(CUBES, KEYS, strict=True):
            pos, quat = backend.object_pose(name)
            out[f"{key}_pos"], out[f"{key}_quat"] = pos.astype(np.float32), quat.astype(np.float32)
        return out

    # ---- the scene's state, from an observation ------------------------------------------------------
    def on(self, obs: dict[str, np.ndarray], top: str, bottom: str) -> bool:
        """`top` rests on `bottom`: centred within stack_tolerance, one cube edge higher."""
        t, b = obs[f"{top}_pos"].astype(np.float64), obs[f"{bottom}_pos"].astype(np.float64)
        return bool(np.linalg.norm(t[:2] - b[:2]) < self.stack_tolerance and abs(t[2] - b[2] - 2 * self.half) < 0.008)

    def gripping(self, obs: dict[str, np.ndarray], cube: str) -> bool:
        """Fingers closed with `cube` between them."""
        near = np.linalg.norm(obs["ee_pos"].astype(np.float64) - obs[f"{cube}_pos"]) < NEAR
        return bool(near and float(obs["gripper"][0]) < GRIP_HOLD)

    def held(self, obs: dict[str, np.ndarray], cube: str) -> bool:
        """`cube` gripped and off whatever it rested on."""
        lifted = float(obs[f"{cube}_pos"][2]) > self.half + 0.01 and not (
            cube == "cube_c" and self.on(obs, "cube_c", "cube_b"))
        return self.gripping(obs, cube) and lifted

    def subtask(self, obs: dict[str, np.ndarray]) -> int:
        """The sub-task the scene is in (see SUBTASKS); DONE when C is on B on A and released."""
        b_placed = self.on(obs, "cube_b", "cube_a") and not self.gripping(obs, "cube_b")
        if not b_placed:
            return 1 if self.held(obs, "cube_b") else 0
        if self.on(obs, "cube_c", "cube_b") and not self.gripping(obs, "cube_c"):
            return DONE
        return 3 if self.held(obs, "cube_c") or self.gripping(obs, "cube_c") and self.on(obs, "cube_c", "cube_b") \
            else 2

    def subtask_distance(self, obs: dict[str, np.ndarray], subtask: int) -> float:
        """Progress measure inside a sub-task: tool to the cube to pick, or the cube to its spot on the stack."""
        if subtask == DONE:
            return 0.0
        cube, base = PAIRS[subtask]
        c = obs[f"{cube}_pos"].astype(np.float64)
        if subtask in (0, 2):
            return float(np.linalg.norm(obs["ee_pos"].astype(np.float64) - c))
        spot = obs[f"{base}_pos"].astype(np.float64) + [0.0, 0.0, 2 * self.half]
        return float(np.linalg.norm(c - spot))

    def state_features(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Tool position relative to the current sub-task's cube (the one to pick, or the one to place on)
        and the gripper opening: what "a familiar state for this sub-task" is measured in (assisted rewind)."""
        s = min(self.subtask(obs), DONE - 1)
        cube, base = PAIRS[s]
        anchor = obs[f"{cube if s in (0, 2) else base}_pos"].astype(np.float64)
        return np.concatenate([obs["ee_pos"].astype(np.float64) - anchor, obs["gripper"].astype(np.float64)])

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool, dict[str, Any]]:
        s = self.subtask(obs)
        success = s == DONE
        dist = self.subtask_distance(obs, s)
        reward = (s - dist) if self.reward_type == "dense" else (0.0 if success else -1.0)
        return float(reward), success, {"is_success": success, "subtask_id": s, "subtask_distance": dist}

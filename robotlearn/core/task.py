"""The Task contract: what the robot should do, expressed only through backend-agnostic state.

Tasks sample initial conditions, add task observations (goal, object poses) and score steps. They
never ask which backend they run on; scene access goes through `Backend.object_pose`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pydantic import BaseModel

from robotlearn.core.backend import Backend, State


class Task(ABC):
    """Base for tasks. Subclasses declare `robot_kind` and a pydantic `Params` schema."""

    robot_kind: ClassVar[str]
    #: schema of the task config's `params:` (robotlearn/tasks/params.py); validated by make_env
    Params: ClassVar[type[BaseModel]]

    def __init__(self, reward: str = "dense", max_episode_steps: int = 50):
        if reward not in ("dense", "sparse"):
            raise ValueError(f"reward must be 'dense' or 'sparse', got {reward!r}")
        self.reward_type = reward
        self.max_episode_steps = max_episode_steps

    @abstractmethod
    def observation_spaces(self) -> dict[str, spaces.Space]:
        """Task extras added to the robot's observation dict (e.g. goal_pos)."""

    @abstractmethod
    def initial_state(self, rng: np.random.Generator, home: State) -> dict[str, np.ndarray]:
        """Sample an episode: robot start (based on `home`) plus scene keys (see Backend.reset)."""

    @abstractmethod
    def observe(self, robot_obs: dict[str, np.ndarray], backend: Backend) -> dict[str, np.ndarray]:
        """Task extras for the current step."""

    @abstractmethod
    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool, dict[str, Any]]:
        """(reward, terminated, info with "is_success") for the observation just produced."""

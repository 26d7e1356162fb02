"""The robot-kind contract: action modes and observation assembly shared by every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from gymnasium import spaces

from robotlearn.core.backend import State
from robotlearn.core.spec import RobotSpec


class RobotModel(ABC):
    """Maps normalized policy actions to backend commands and backend state to observations.

    One instance per env. Because the same code runs for MuJoCo, PyBullet and the real driver,
    spaces, units and semantics cannot drift between backends.
    """

    def __init__(self, spec: RobotSpec, action_mode: str):
        self.spec = spec
        self.action_mode = action_mode

    @property
    @abstractmethod
    def action_space(self) -> spaces.Box:
        """Normalized action space, float32 in [-1, 1]."""

    @abstractmethod
    def observation_spaces(self) -> dict[str, spaces.Space]:
        """Robot part of the observation dict."""

    @abstractmethod
    def home_state(self) -> State:
        """Initial robot state keys for Backend.reset (before task randomization)."""

    @abstractmethod
    def reset(self, state: State) -> None:
        """Start of episode: re-anchor internal targets on the measured state."""

    @abstractmethod
    def command(self, action: np.ndarray, state: State) -> np.ndarray:
        """Normalized action (already validated and clipped) -> actuator-level backend command."""

    @abstractmethod
    def observe(self, state: State) -> dict[str, np.ndarray]:
        """Backend state -> robot observation (float32)."""

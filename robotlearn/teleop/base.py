"""The teleop device contract: every device turns its input into the env's own action.

The record/teleop loops only call `reset`, `act` and read `events`, so a keyboard, a SpaceMouse, a leader arm
and a scripted expert are interchangeable. Devices that speak Cartesian motion (keyboard, gamepad,
SpaceMouse) share `CartesianDevice`, which maps a normalized twist to the env's action mode through the
robot model (`action_toward`), so they work with `ee_delta` and `joint_delta` envs alike.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

# Events a device can raise for the loop: end the episode and keep it / drop it, or stop the session;
# "rewind" asks RaC's assisted rewind (robotlearn/correction/) to retrace the arm's path.
EVENTS = ("save", "discard", "quit", "rewind")


def require(module: str, pip_name: str, device: str) -> Any:
    """Import an optional device dependency or fail with the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RuntimeError(f"{device} teleop needs the '{pip_name}' package: pip install {pip_name}") from None


class TeleopDevice(ABC):
    """A source of actions for an env. `source` is the per-step label the recorder stores."""

    source = "human"

    def __init__(self, env):
        self.env = env
        self.action_space = env.action_space
        self.events: set[str] = set()
        #: the RaC clutch (engaged: the operator drives); devices with a clutch key/button update it
        self.clutch = False

    def reset(self, obs: dict[str, np.ndarray]) -> None:  # noqa: B027 (optional hook)
        """Start of an episode."""

    @abstractmethod
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The action for this control step (in the env's action space)."""

    def pop_events(self) -> set[str]:
        out, self.events = self.events, set()
        return out

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the device (terminal mode, file handles, buses)."""


class CartesianDevice(TeleopDevice):
    """Devices that command tool motion: subclasses fill `twist()` -> (dx, dy, dz, dyaw in [-1, 1], gripper +1/-1)."""

    def __init__(self, env):
        super().__init__(env)
        self.robot = env.unwrapped.robot
        self.backend = env.unwrapped.backend
        self.gripper = 1.0

    @abstractmethod
    def twist(self) -> np.ndarray:
        """Normalized (dx, dy, dz, dyaw) for this step; may update `self.gripper` and `self.events`."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.action_from_twist(self.twist())

    def action_from_twist(self, twist: np.ndarray) -> np.ndarray:
        """The env action for a normalized tool twist and the current gripper state, in any action mode."""
        v = np.clip(np.asarray(twist, dtype=np.float64), -1.0, 1.0)
        if self.robot.action_mode == "ee_delta":
            action = np.concatenate([v, [self.gripper]])
        else:
            p = self.robot.p
            state = self.backend.read()
            goal, goal_yaw = self.robot.ee_goal
            target = goal + v[:3] * p["max_ee_delta"]
            yaw = goal_yaw + v[3] * p["max_yaw_delta"]
            action = self.robot.action_toward(target, yaw, self.gripper, state)
        return np.clip(action, self.action_space.low, self.action_space.high).astype(np.float32)


class ScriptedDevice(TeleopDevice):
    """A scripted expert (robotlearn.teleop.scripted) as a device, for automatic demo generation."""

    source = "policy"

    def __init__(self, env):
        super().__init__(env)
        from robotlearn.teleop.scripted import make_expert

        self.expert = make_expert(env)

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.expert.reset(obs)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.expert.act(obs), dtype=np.float32)

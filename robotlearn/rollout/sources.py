"""Action sources for `Rollout`: policies, teleop devices and experts, random actions, interventions."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robotlearn.rollout.runner import ActionSource, EpisodeStats


class PolicySource(ActionSource):
    """A loaded policy (`act(obs) -> action`, `reset()`), labelled "policy"."""

    def __init__(self, policy: Any, label: str = "policy"):
        self.policy, self.label = policy, label

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.policy.reset()

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        return self.policy.act(obs), self.label


class DeviceSource(ActionSource):
    """A teleop device or a scripted expert device (robotlearn.teleop); its `source` is the label."""

    def __init__(self, device: Any):
        self.device = device
        self.label = device.source
        self.human = device.source == "human"

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.device.reset(obs)

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        return self.device.act(obs), self.label

    def pop_events(self) -> set[str]:
        return self.device.pop_events()

    def close(self) -> None:
        self.device.close()


class RandomSource(ActionSource):
    """Uniform random actions from the env's action space (seeded)."""

    label = "policy"

    def __init__(self, action_space: gym.spaces.Box, seed: int | None = None):
        self.space = action_space
        self.space.seed(seed)

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        return self.space.sample(), self.label


class InterventionSource(ActionSource):
    """`inner` acts; an operator (correction/hil.py HILController) may take over any step ("human")."""

    def __init__(self, inner: ActionSource, hil: Any):
        self.inner, self.hil = inner, hil
        self.human = True

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.inner.reset(obs)

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        action, _ = self.inner.act(obs)
        return self.hil.select(obs, action)

    def pop_events(self) -> set[str]:
        return self.inner.pop_events()

    def end_episode(self, stats: EpisodeStats) -> None:
        self.inner.end_episode(stats)
        self.hil.end_episode()

    def close(self) -> None:
        try:
            self.hil.close()
        finally:
            self.inner.close()

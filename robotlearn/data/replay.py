"""Replay buffer for off-policy RL over dict observations, with per-transition source labels.

Transitions carry a `source` ("policy", "human", "demo") so that human interventions and demos stay
identifiable after they enter the learner (HIL-SERL stores interventions in both the online and the
demo buffer; RLPD samples half of each batch from demos). Storage is plain numpy, preallocated once,
so adding and sampling never allocate per key on the hot path beyond the batch itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SOURCES: tuple[str, ...] = ("policy", "human", "demo")
SOURCE_IDS = {name: i for i, name in enumerate(SOURCES)}


class ReplayBuffer:
    """Ring buffer of (obs, action, reward, next_obs, terminated, source).

    `obs_shapes` maps observation keys to (shape, dtype); image keys stay uint8 to save 4x memory.
    `terminated` (not `truncated`) is stored: time-limit ends must still bootstrap.
    """

    def __init__(self, capacity: int, obs_shapes: Mapping[str, tuple[tuple[int, ...], np.dtype]], action_dim: int):
        if capacity <= 0:
            raise ValueError(f"replay capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.obs_keys = list(obs_shapes)
        self.data: dict[str, np.ndarray] = {}
        for key, (shape, dtype) in obs_shapes.items():
            self.data[f"obs/{key}"] = np.zeros((capacity, *shape), dtype=dtype)
            self.data[f"next_obs/{key}"] = np.zeros((capacity, *shape), dtype=dtype)
        self.data["action"] = np.zeros((capacity, action_dim), np.float32)
        self.data["reward"] = np.zeros(capacity, np.float32)
        self.data["terminated"] = np.zeros(capacity, np.float32)
        self.data["source"] = np.zeros(capacity, np.uint8)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: np.ndarray,
            next_obs: Mapping[str, np.ndarray], terminated: np.ndarray, source: str | np.ndarray = "policy") -> None:
        """Add a batch of N transitions (leading dim N on every array)."""
        action = np.asarray(action, np.float32)
        n = action.shape[0]
        idx = (self.pos + np.arange(n)) % self.capacity
        for key in self.obs_keys:
            self.data[f"obs/{key}"][idx] = obs[key]
            self.data[f"next_obs/{key}"][idx] = next_obs[key]
        self.data["action"][idx] = action
        self.data["reward"][idx] = reward
        self.data["terminated"][idx] = terminated
        if isinstance(source, str):
            if source not in SOURCE_IDS:
                raise ValueError(f"unknown transition source {source!r}; known: {', '.join(SOURCES)}")
            self.data["source"][idx] = SOURCE_IDS[source]
        else:
            self.data["source"][idx] = source
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, batch_size)
        return {key: arr[idx] for key, arr in self.data.items()}

    def count(self, source: str) -> int:
        return int(np.count_nonzero(self.data["source"][: self.size] == SOURCE_IDS[source]))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Filled part of the buffer, in insertion order, for checkpointing (safetensors, not pickle)."""
        order = np.arange(self.size) if self.size < self.capacity else (self.pos + np.arange(self.size)) % self.capacity
        return {key: np.ascontiguousarray(arr[order]) for key, arr in self.data.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        missing = sorted(set(self.data) - set(state))
        if missing:
            raise ValueError(f"replay state lacks {missing[:3]}")
        n = min(len(state["action"]), self.capacity)
        for key, arr in self.data.items():
            src = np.asarray(state[key])[-n:] if n else np.asarray(state[key])[:0]
            if src.shape[1:] != arr.shape[1:]:
                raise ValueError(f"replay state {key!r} has shape {src.shape[1:]}, buffer expects {arr.shape[1:]}")
            arr[:n] = src
        self.size, self.pos = n, n % self.capacity


def symmetric_sample(online: ReplayBuffer, demos: ReplayBuffer | None, batch_size: int,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """RLPD symmetric sampling: half the batch from online data, half from demos (when there are any)."""
    if demos is None or len(demos) == 0:
        return online.sample(batch_size, rng)
    half = batch_size // 2
    a, b = online.sample(batch_size - half, rng), demos.sample(half, rng)
    return {key: np.concatenate([a[key], b[key]]) for key in a}

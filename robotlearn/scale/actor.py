"""`SACActor`: one env-stepping worker of asynchronous SAC (run as a Ray actor by robotlearn.scale.sac).

It is built from data only: the env from its `EnvRecipe` JSON (never a pickled env), the policy from the
SAC config JSON and its own env's spaces, the weights from safetensors bytes the learner publishes. It
runs the one episode runner (`Rollout`) with the same `SACSource` as the single-process loop and hands
back flat numpy batches with per-step source labels, so human interventions from an operator on this
actor's host reach the learner labelled "human". The class itself does not import Ray: the learner
wraps it with `ray.remote`, which keeps it usable (and testable) in-process too.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from robotlearn.data.replay import SOURCE_IDS
from robotlearn.policies.sac.agent import SACPolicy, obs_spec_from_space
from robotlearn.policies.sac.config import SACConfig
from robotlearn.policies.sac.train import SACSource
from robotlearn.rollout import EnvRecipe, InterventionSource, Rollout, Sink, Transition
from robotlearn.scale.weights import unpack_state


class BatchSink(Sink):
    """Gathers transitions (agent action space, source ids) and finished episodes until `drain()`."""

    def __init__(self, policy: SACPolicy):
        self.policy = policy
        self._steps: list[Transition] = []
        self._episodes: list[tuple[float, bool]] = []

    def add(self, tr: Transition) -> None:
        self._steps.append(tr)

    def end_episode(self, stats) -> None:
        self._episodes.append((stats.episode_return, stats.success))

    def drain(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays: obs/<key>, next_obs/<key>, action, reward, terminated, source,
        episode_return, episode_success (what the learner's replay buffer takes, nothing else)."""
        steps, self._steps = self._steps, []
        episodes, self._episodes = self._episodes, []
        out: dict[str, np.ndarray] = {}
        for key in self.policy.obs_spec:
            out[f"obs/{key}"] = np.stack([np.asarray(t.obs[key]) for t in steps])
            out[f"next_obs/{key}"] = np.stack([np.asarray(t.next_obs[key]) for t in steps])
        out["action"] = self.policy.from_env(np.stack([t.action for t in steps]))
        out["reward"] = np.array([t.reward for t in steps], np.float32)
        out["terminated"] = np.array([t.terminated for t in steps], np.float32)
        out["source"] = np.array([SOURCE_IDS[t.source] for t in steps], np.uint8)
        out["episode_return"] = np.array([e[0] for e in episodes], np.float64)
        out["episode_success"] = np.array([e[1] for e in episodes], np.float64)
        return out


class SACActor:
    """Steps one env with the latest published policy; `collect` is the only call on the hot path."""

    def __init__(self, index: int, recipe_json: str, config_json: str, seed: int, intervene: str = "none"):
        from robotlearn.correction.hil import make_operator

        torch.set_num_threads(1)
        torch.manual_seed(seed)
        self.index = index
        self.env = EnvRecipe.from_json(recipe_json).make()
        cfg = SACConfig.model_validate_json(config_json)
        space = self.env.action_space
        self.policy = SACPolicy(cfg, obs_spec_from_space(self.env.observation_space), space.low, space.high).eval()
        self.source = SACSource(self.policy, np.random.default_rng(seed))
        hil = make_operator(intervene, self.env)
        self.sink = BatchSink(self.policy)
        actor = InterventionSource(self.source, hil) if hil is not None else self.source
        self.rollout = Rollout(self.env, actor, [self.sink], realtime=False)
        self.rollout.start_episode(seed)
        self.version = -1

    def spaces(self) -> dict[str, Any]:
        """JSON-able observation spec and action bounds: what the learner builds its agent from."""
        return {"obs_spec": self.policy.obs_spec, "action_low": self.policy.action_low.tolist(),
                "action_high": self.policy.action_high.tolist()}

    def collect(self, steps: int, explore: bool, weights: bytes | None = None, version: int = -1) -> dict[str, Any]:
        """Load `weights` (safetensors bytes) if given, then step `steps` times; returns the batch plus
        which weights version acted (`version`), this actor's index and the collection time."""
        if weights is not None:
            unpack_state(self.policy, weights)
            self.version = version
        self.source.explore = explore
        t0 = time.perf_counter()
        for _ in range(steps):
            self.rollout.step()
        batch = self.sink.drain()
        return {"batch": batch, "version": self.version, "actor": self.index, "seconds": time.perf_counter() - t0}

    def weights_checksum(self) -> float:
        """Sum of the acting policy's parameters: lets a test see that published weights arrived."""
        with torch.no_grad():
            return float(sum(p.double().sum() for p in self.policy.parameters()))

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        try:
            self.rollout.close()
        finally:
            self.env.close()

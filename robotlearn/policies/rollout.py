"""Env construction from a checkpoint's env record, and evaluation rollouts — shared by train/eval/deploy.

The env a policy was trained on is recorded in its checkpoint (id, task overrides, cameras); eval and
deploy rebuild exactly that env and only swap the backend, which is what "deploys unchanged" means.
Plain gymnasium envs (Pendulum-v1, InvertedPendulum-v5, ...) are wrapped to a one-key dict
observation so every policy sees the same observation type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

NAMESPACE = "robotlearn/"


class DictObs(gym.ObservationWrapper):
    """Box observation -> {"state": float32 array}."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        box = env.observation_space
        self.observation_space = gym.spaces.Dict(
            {"state": gym.spaces.Box(box.low.astype(np.float32), box.high.astype(np.float32), box.shape, np.float32)})

    def observation(self, observation):
        return {"state": np.asarray(observation, np.float32)}


def make_env(env_id: str, backend: str | None = None, overrides: Iterable[str] = (), cameras: Sequence[str] = (),
             render_mode: str | None = None, **backend_options: Any) -> gym.Env:
    """robotlearn envs get backend/overrides/cameras; gymnasium envs accept backend None or "gymnasium"."""
    if env_id.startswith(NAMESPACE):
        import robotlearn  # noqa: F401 - registers the robotlearn envs

        env = gym.make(env_id, backend=backend or "mujoco", overrides=list(overrides), cameras=tuple(cameras),
                       render_mode=render_mode, **backend_options)
    else:
        if backend not in (None, "gymnasium") or list(overrides) or backend_options:
            raise ValueError(f"{env_id} is a plain gymnasium env: it takes no backend ({backend!r}) or overrides")
        env = gym.make(env_id, render_mode=render_mode)
    if not isinstance(env.observation_space, gym.spaces.Dict):
        env = DictObs(env)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"{env_id}: SAC needs a continuous (Box) action space, got {env.action_space}")
    return env


@dataclass
class EvalResult:
    returns: list[float] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else 0.0

    def summary(self) -> dict[str, float]:
        return {"episodes": len(self.returns), "success_rate": self.success_rate, "mean_return": self.mean_return,
                "mean_length": float(np.mean(self.lengths)) if self.lengths else 0.0}


def run_episodes(env: gym.Env, act: Callable[[dict], np.ndarray], episodes: int, seed: int = 0,
                 reset_policy: Callable[[], None] | None = None,
                 on_step: Callable[[dict, np.ndarray, float, bool, dict], None] | None = None,
                 frames: list[np.ndarray] | None = None) -> EvalResult:
    """Run `episodes` episodes with `act(obs) -> env action`. `on_step(obs, action, reward, done, info)`
    sees every transition (recording), `frames` collects env.render() output (video)."""
    result = EvalResult()
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        if reset_policy is not None:
            reset_policy()
        total, length, done, success = 0.0, 0, False, False
        if frames is not None:
            frames.append(env.render())
        while not done:
            action = act(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            done = bool(terminated or truncated)
            if on_step is not None:
                on_step(obs, action, float(reward), done, info)
            if frames is not None:
                frames.append(env.render())
            obs = next_obs
            total += float(reward)
            length += 1
            success = success or bool(info.get("is_success", False))
        result.returns.append(total)
        result.successes.append(bool(info.get("is_success", success)))
        result.lengths.append(length)
    return result


def env_for_checkpoint(config: dict[str, Any], backend: str | None, render_mode: str | None = None,
                       **backend_options: Any) -> gym.Env:
    """The env a checkpoint was trained on (id, task overrides, cameras), on `backend` (default: its training one)."""
    env_rec = config.get("env") or {}
    if "id" not in env_rec:
        raise ValueError("checkpoint config has no env record; cannot rebuild its environment")
    return make_env(env_rec["id"], backend or env_rec.get("backend"), env_rec.get("overrides", ()),
                    env_rec.get("cameras", ()), render_mode=render_mode, **backend_options)


def write_video(path: str, frames: Sequence[np.ndarray], fps: float) -> None:
    import imageio.v2 as imageio

    frames = [f for f in frames if f is not None]
    if not frames:
        raise ValueError(f"no frames to write to {path}: this env/backend renders nothing (no camera?)")
    imageio.mimsave(path, frames, fps=fps, macro_block_size=1)

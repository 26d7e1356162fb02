"""`EnvRecipe`: everything needed to rebuild an env, as data.

A recipe is written into every checkpoint (config.json) and every dataset (meta/info.json), so `eval`,
`deploy`, a ROS 2 node or a Ray worker rebuild exactly the env a policy was trained or recorded on and
swap only the backend (`with_backend`). It is JSON, never a pickled env: it crosses process and machine
boundaries. Plain gymnasium envs (Pendulum-v1, ...) are recipes too (backend None), wrapped to a
one-key dict observation so every policy sees the same observation type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np

from robotlearn.core.config import ConfigError

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


def _strings(items: Iterable[str] | str | None) -> tuple[str, ...]:
    if items is None:
        return ()
    if isinstance(items, str):
        return tuple(i for i in items.split(",") if i)
    return tuple(str(i) for i in items)


@dataclass(frozen=True)
class EnvRecipe:
    """An env as data: id, backend, config overrides, cameras, backend options.

    ``env_id`` is a robotlearn id (short forms like ``ArmReach-v0`` / ``arm_reach`` are resolved) or any
    gymnasium id. ``backend`` is None for plain gymnasium envs. ``backend_options`` are validated by
    the backend's strict Options model when the env is made.
    """

    env_id: str
    backend: str | None = "mujoco"
    overrides: tuple[str, ...] = ()          # task config key=value
    robot_overrides: tuple[str, ...] = ()    # robot config key=value
    cameras: tuple[str, ...] = ()
    backend_options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        from robotlearn.envs import ENV_TASK_CONFIGS, resolve_env_id

        env_id = self.env_id
        bare = env_id.removeprefix(NAMESPACE)
        robotlearn_id = env_id.startswith(NAMESPACE) or bare in ENV_TASK_CONFIGS or bare in ENV_TASK_CONFIGS.values()
        if robotlearn_id:
            object.__setattr__(self, "env_id", resolve_env_id(env_id))
        elif "/" not in env_id and env_id not in gym.registry:
            resolve_env_id(env_id)  # neither ours nor gymnasium's: a one-line error with the closest id
        object.__setattr__(self, "overrides", _strings(self.overrides))
        object.__setattr__(self, "robot_overrides", _strings(self.robot_overrides))
        object.__setattr__(self, "cameras", _strings(self.cameras))
        object.__setattr__(self, "backend_options", dict(self.backend_options or {}))
        if not self.is_robotlearn:
            if self.backend not in (None, "gymnasium") or self.overrides or self.robot_overrides or self.cameras \
                    or self.backend_options:
                raise ConfigError(f"{self.env_id} is a plain gymnasium env: it takes no backend, overrides, "
                                  "cameras or backend options")
            object.__setattr__(self, "backend", None)
        elif self.backend is None:
            object.__setattr__(self, "backend", "mujoco")

    @property
    def is_robotlearn(self) -> bool:
        return self.env_id.startswith(NAMESPACE)

    def with_backend(self, backend: str | None, options: Mapping[str, Any] | None = None) -> EnvRecipe:
        """The same env on `backend` (None keeps the recipe's). Options belong to one backend: moving to
        another drops the old ones unless new ones are given; on the same backend new ones are merged."""
        if backend is None or backend == self.backend:
            return replace(self, backend_options={**self.backend_options, **(options or {})})
        return replace(self, backend=backend, backend_options=dict(options or {}))

    def make(self, render_mode: str | None = None) -> gym.Env:
        """Build the env (gymnasium.make), ready to reset."""
        if self.is_robotlearn:
            import robotlearn  # noqa: F401 - registers the robotlearn envs

            env = gym.make(self.env_id, backend=self.backend, overrides=list(self.overrides),
                           robot_overrides=list(self.robot_overrides), cameras=self.cameras,
                           render_mode=render_mode, backend_options=self.backend_options)
        else:
            env = gym.make(self.env_id, render_mode=render_mode)
        if not isinstance(env.observation_space, gym.spaces.Dict):
            env = DictObs(env)
        return env

    # ---- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("overrides", "robot_overrides", "cameras"):
            out[key] = list(out[key])
        out["backend_options"] = dict(self.backend_options)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvRecipe:
        """From `to_dict()` output; also reads the older checkpoint record {"id", "backend", ...}."""
        data = dict(data)
        if "id" in data and "env_id" not in data:
            data["env_id"] = data.pop("id")
        known = {"env_id", "backend", "overrides", "robot_overrides", "cameras", "backend_options"}
        unknown = set(data) - known
        if unknown or "env_id" not in data:
            raise ConfigError(f"env recipe: unknown keys {sorted(unknown)}" if unknown else "env recipe: no env_id")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EnvRecipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"env recipe: not JSON ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError("env recipe: JSON must be an object")
        return cls.from_dict(data)


def checkpoint_recipe(config: Mapping[str, Any], where: str = "checkpoint") -> EnvRecipe:
    """The env a checkpoint (config.json) or dataset was made on."""
    record = config.get("env")
    if not record:
        raise ConfigError(f"{where} has no env recipe; cannot rebuild its environment")
    return EnvRecipe.from_dict(record)

"""Environment registry and construction.

`gymnasium.make("robotlearn/ArmReach-v0", backend="mujoco", cameras=("scene",), ...)` ends up in
`make_env`, which joins the task config, the robot spec, the backend and the robot model.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym

from robotlearn.backends import make_backend
from robotlearn.core.config import ConfigError, config_path, load_config, parse_overrides, validate
from robotlearn.core.env import RobotEnv
from robotlearn.core.robot_config import TaskConfig, load_robot_spec
from robotlearn.robots import make_robot_model

# env id (without namespace) -> task config name in configs/tasks/
ENV_TASK_CONFIGS: dict[str, str] = {
    "ArmReach-v0": "arm_reach",
    "ArmPickPlace-v0": "arm_pick_place",
    "ArmStack-v0": "arm_stack",
    "QuadHover-v0": "quad_hover",
    "QuadTrack-v0": "quad_track",
}

# task name (TaskConfig.task) -> "module:Class"
TASKS: dict[str, str] = {
    "arm_reach": "robotlearn.tasks.reach:ArmReach",
    "arm_pick_place": "robotlearn.tasks.pick_place:ArmPickPlace",
    "arm_stack": "robotlearn.tasks.stack:ArmStack",
    "quad_hover": "robotlearn.tasks.hover:QuadHover",
    "quad_track": "robotlearn.tasks.track:QuadTrack",
}

NAMESPACE = "robotlearn"


def make_env(task: str, backend: str = "mujoco", cameras: Iterable[str] = (), render_mode: str | None = None,
             overrides: Iterable[str] | dict | None = None, robot_overrides: Iterable[str] | dict | None = None,
             backend_options: Mapping[str, Any] | None = None, **more_backend_options: Any) -> RobotEnv:
    """Build a RobotEnv from configs/tasks/<task>.yaml on `backend`.

    `overrides` apply to the task config (e.g. ``["reward=sparse"]``), `robot_overrides` to the robot
    config (e.g. ``["control_hz=20"]``). `backend_options` (and, for `gym.make` convenience, any other
    keyword such as ``port=``) are validated against the backend's strict Options model.
    """
    task_cfg = load_config(TaskConfig, "tasks", task, overrides)
    spec = task_robot_spec(task_cfg, robot_overrides)
    task_obj = make_task(task, task_cfg, spec.kind, spec.name)
    robot = make_robot_model(spec, task_cfg.action_mode)
    cameras = tuple(cameras)
    backend_obj = make_backend(spec, backend, {**(backend_options or {}), **more_backend_options})
    return RobotEnv(backend_obj, robot, task_obj, cameras=cameras, render_mode=render_mode)


def task_robot_spec(task_cfg: TaskConfig, robot_overrides: Iterable[str] | dict | None = None):
    """The robot spec a task runs: its robot config, the task's `robot_params` over its params, then
    `robot_overrides` (the caller's word wins)."""
    task_params = {f"params.{key}": value for key, value in task_cfg.robot_params.items()}
    return load_robot_spec(task_cfg.robot, {**task_params, **parse_overrides(robot_overrides)})


def make_task(task: str, task_cfg: TaskConfig, kind: str, robot_name: str = ""):
    """The Task object of configs/tasks/<task>.yaml (loaded as `task_cfg`) for a robot of `kind` (shared by
    make_env and the nodes that need a task without a backend, e.g. the ROS 2 bridge asking which objects the
    task places)."""
    if task_cfg.task not in TASKS:
        raise ValueError(f"unknown task {task_cfg.task!r}; known: {', '.join(sorted(TASKS))}")
    module_name, cls_name = TASKS[task_cfg.task].split(":")
    task_cls = getattr(importlib.import_module(module_name), cls_name)
    if task_cls.robot_kind != kind:
        raise ValueError(f"task {task_cfg.task!r} needs a {task_cls.robot_kind}, robot {robot_name!r} is a {kind}")
    params = validate(task_cls.Params, task_cfg.params, f"{config_path('tasks', task)}: params")
    return task_cls(reward=task_cfg.reward, max_episode_steps=task_cfg.max_episode_steps, **params.model_dump())


def resolve_env_id(name: str) -> str:
    """The full env id for what a user typed: ``robotlearn/ArmReach-v0``, ``ArmReach-v0`` or the task config
    name ``arm_reach``. Anything else is a one-line ConfigError that suggests the closest id."""
    bare = name.removeprefix(f"{NAMESPACE}/")
    if bare in ENV_TASK_CONFIGS:
        return f"{NAMESPACE}/{bare}"
    for env_id, task in ENV_TASK_CONFIGS.items():
        if bare == task:
            return f"{NAMESPACE}/{env_id}"
    candidates = [*env_ids(), *ENV_TASK_CONFIGS, *ENV_TASK_CONFIGS.values()]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = f"; did you mean {resolve_env_id(close[0])!r}?" if close else f"; known: {', '.join(env_ids())}"
    raise ConfigError(f"unknown env {name!r}{hint}")


def env_robot_spec(name: str, robot_overrides: Iterable[str] | dict | None = None):
    """(task config, robot spec) of an env id, without building a backend (for nodes that only need to know
    the robot: its joints, rates and cameras)."""
    env_id = resolve_env_id(name)
    task_cfg = load_config(TaskConfig, "tasks", ENV_TASK_CONFIGS[env_id.split("/", 1)[1]])
    return task_cfg, task_robot_spec(task_cfg, robot_overrides)


def register_envs() -> None:
    """Register every env id with gymnasium (idempotent)."""
    for env_id, task in ENV_TASK_CONFIGS.items():
        full_id = f"{NAMESPACE}/{env_id}"
        if full_id not in gym.registry:
            gym.register(full_id, entry_point="robotlearn.envs:make_env", kwargs={"task": task},
                         disable_env_checker=True, order_enforce=False)


def env_ids() -> list[str]:
    return [f"{NAMESPACE}/{env_id}" for env_id in ENV_TASK_CONFIGS]


__all__ = ["ENV_TASK_CONFIGS", "TASKS", "env_ids", "env_robot_spec", "make_env", "make_task", "parse_overrides", "register_envs", "resolve_env_id"]

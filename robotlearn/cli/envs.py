"""`robotlearn envs`: what can be run, on which backends, with which spaces."""

from __future__ import annotations

import argparse

from robotlearn.backends import BACKENDS, backend_class, backend_names
from robotlearn.core.config import load_config
from robotlearn.core.robot_config import RobotConfig, TaskConfig
from robotlearn.envs import ENV_TASK_CONFIGS, NAMESPACE, make_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spaces", action="store_true", help="build each env on MuJoCo and print its spaces")
    parser.add_argument("--options", action="store_true", help="list each backend's options (--backend-opt KEY=VALUE)")


def _describe(space) -> str:
    if hasattr(space, "spaces"):
        return ", ".join(f"{k}{tuple(v.shape)}" for k, v in space.spaces.items())
    return f"Box{tuple(space.shape)} [{space.low.min():g}, {space.high.max():g}]"


def run(args: argparse.Namespace) -> int:
    for env_id, task in ENV_TASK_CONFIGS.items():
        task_cfg = load_config(TaskConfig, "tasks", task)
        kind = load_config(RobotConfig, "robots", task_cfg.robot).kind
        print(f"{NAMESPACE}/{env_id:<18} robot={task_cfg.robot:<6} backends={','.join(backend_names(kind))}")
        if args.spaces:
            env = make_env(task, backend="mujoco")
            print(f"    action:      {_describe(env.action_space)}")
            print(f"    observation: {_describe(env.observation_space)}")
            env.close()
    if args.options:
        for kind, name in BACKENDS:
            fields = backend_class(kind, name).Options.model_fields
            print(f"\nbackend {name} ({kind}) options:" + ("" if fields else " none"))
            for field_name, field in fields.items():
                print(f"    {field_name:<20} default {field.default!r}")
    return 0

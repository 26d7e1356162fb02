"""`robotlearn sim`: run the scripted expert or a random policy on a backend, report success."""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from robotlearn.envs import NAMESPACE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default=f"{NAMESPACE}/ArmReach-v0", help="env id (see `robotlearn envs`)")
    parser.add_argument("--backend", action="append", help="mujoco | pybullet | real (repeatable; default mujoco)")
    parser.add_argument("--policy", choices=("expert", "random"), default="expert")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", metavar="VIDEO.mp4", help="write a video of the first episode")
    parser.add_argument("--camera", default="scene", help="camera for --render")
    parser.add_argument("--render-size", default="320x240", metavar="WxH", help="video size for --render")
    parser.add_argument("--port", help="serial port / link of the robot for backend real")
    parser.add_argument("overrides", nargs="*", help="task config overrides key=value (e.g. reward=sparse)")


def run_episodes(env, policy: str, episodes: int, seed: int, render_camera: str | None = None,
                 progress: str = "") -> tuple[float, list[np.ndarray]]:
    """Success rate over `episodes` seeded episodes (final-step `is_success`) and frames of episode 0."""
    from robotlearn.teleop.scripted import make_expert

    expert = make_expert(env) if policy == "expert" else None
    env.action_space.seed(seed)
    successes, frames = 0, []
    for ep in tqdm(range(episodes), desc=progress, leave=False, disable=not progress):
        obs, info = env.reset(seed=seed + ep)
        if expert:
            expert.reset(obs)
        done = False
        while not done:
            if render_camera and ep == 0:
                frames.append(env.unwrapped.backend.render(render_camera))
            action = expert.act(obs) if expert else env.action_space.sample()
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        successes += bool(info["is_success"])
    return successes / episodes, frames


def _camera_size_overrides(env_id: str, camera: str, size: str) -> list[str]:
    """Robot-config overrides that render `camera` at `size` ("WxH") for a watchable video."""
    from robotlearn.core.config import load_config
    from robotlearn.core.robot_config import RobotConfig, TaskConfig
    from robotlearn.envs import ENV_TASK_CONFIGS

    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise ValueError(f"--render-size must look like 320x240, got {size!r}")
    task = load_config(TaskConfig, "tasks", ENV_TASK_CONFIGS[env_id.split("/")[-1]])
    names = [c.name for c in load_config(RobotConfig, "robots", task.robot).cameras]
    if camera not in names:
        raise ValueError(f"robot {task.robot!r} has no camera {camera!r}; it has {names}")
    index = names.index(camera)
    return [f"cameras.{index}.width={width}", f"cameras.{index}.height={height}"]


def run(args: argparse.Namespace) -> int:
    import imageio.v3 as iio

    rows = []
    for backend in args.backend or ["mujoco"]:
        options = {"port": args.port} if args.port else {}
        if args.render and not rows:
            options["robot_overrides"] = _camera_size_overrides(args.env, args.camera, args.render_size)
        env = gym.make(args.env, backend=backend, overrides=args.overrides, **options)
        camera = args.camera if args.render and not rows else None
        rate, frames = run_episodes(env, args.policy, args.episodes, args.seed, camera, progress=backend)
        env.close()
        if frames:
            iio.imwrite(args.render, np.stack(frames), fps=int(env.unwrapped.backend.spec.control_hz) * 2)
            print(f"wrote {args.render} ({len(frames)} frames, camera {camera})")
        rows.append((backend, rate))
    print(f"{args.env}  policy={args.policy}  episodes={args.episodes}  seed={args.seed}")
    print(f"{'backend':<10} success")
    for backend, rate in rows:
        print(f"{backend:<10} {rate:6.1%}")
    return 0

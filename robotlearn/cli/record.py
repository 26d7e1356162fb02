"""`robotlearn record`: drive an env with a teleop device (or a scripted expert) and record episodes.

Example: robotlearn record --env arm_pick_place --backend mujoco --device scripted --episodes 100 --out demos/pp
Each finished episode is committed to the dataset before the next one starts, so stopping (or killing)
the recorder loses at most the episode in progress.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `record` and `teleop`."""
    parser.add_argument("--env", required=True, help="task config (arm_pick_place) or env id (ArmPickPlace-v0)")
    parser.add_argument("--backend", default="mujoco")
    parser.add_argument("--device", default="keyboard", help="scripted | keyboard | gamepad | spacemouse | leader_arm")
    parser.add_argument("--cameras", default="", help="comma-separated camera names to record as video")
    parser.add_argument("--seed", type=int, default=0, help="episode i resets with seed+i")
    parser.add_argument("--realtime", choices=["auto", "on", "off"], default="auto",
                        help="pace sim steps at control_hz (auto: on for human devices)")
    parser.add_argument("--backend-opt", action="append", default=[], metavar="K=V", help="backend option, e.g. port=/dev/ttyUSB0")
    parser.add_argument("--device-opt", action="append", default=[], metavar="K=V", help="device option, e.g. port=... for leader_arm")
    parser.add_argument("overrides", nargs="*", help="task config overrides key=value")


def build(args: argparse.Namespace):
    """(env, device) from parsed arguments."""
    from robotlearn.core.config import parse_overrides
    from robotlearn.envs import ENV_TASK_CONFIGS, make_env
    from robotlearn.teleop import make_device

    task = ENV_TASK_CONFIGS.get(args.env.removeprefix("robotlearn/"), args.env)
    cameras = tuple(c for c in args.cameras.split(",") if c)
    env = make_env(task, backend=args.backend, cameras=cameras, overrides=args.overrides,
                   **parse_overrides(args.backend_opt))
    try:
        device = make_device(args.device, env, **parse_overrides(args.device_opt))
    except Exception:
        env.close()
        raise
    return env, device


def run_episode(env, device, seed: int, realtime: bool, on_step: Callable[..., None] | None = None) -> tuple[str, dict]:
    """One episode; calls on_step(obs, action, reward, done, info) after every step.

    Returns (outcome, last info) with outcome "done" (terminated/truncated), "save", "discard" or "quit".
    """
    obs, info = env.reset(seed=seed)
    device.reset(obs)
    period = 1.0 / float(env.metadata.get("render_fps") or 10.0)
    next_tick = time.monotonic()
    while True:
        action = device.act(obs)
        events = device.pop_events()
        if "quit" in events:
            return "quit", info
        next_obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated or "save" in events or "discard" in events
        if on_step is not None:
            on_step(obs, action, reward, done, info)
        obs = next_obs
        if "discard" in events:
            return "discard", info
        if done:
            return ("save" if "save" in events else "done"), info
        if realtime:
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_env_arguments(parser)
    parser.add_argument("--episodes", type=int, default=10, help="episodes to record (kept ones)")
    parser.add_argument("--out", required=True, help="dataset directory (created, or appended to)")
    parser.add_argument("--task-text", default=None, help="task description stored with each episode")
    parser.add_argument("--only-success", action="store_true", help="keep only episodes that end in success")
    parser.add_argument("--max-attempts", type=int, default=None, help="stop after this many episodes tried")
    parser.add_argument("--pack", action="store_true", help="pack many episodes per file (LeRobot's layout)")


def run(args: argparse.Namespace) -> int:
    from robotlearn.data.recorder import EpisodeRecorder

    env, device = build(args)
    from robotlearn.envs import ENV_TASK_CONFIGS, NAMESPACE

    env_id = next((f"{NAMESPACE}/{i}" for i, t in ENV_TASK_CONFIGS.items() if args.env in (t, i)), args.env)
    env_record = {"id": env_id, "backend": args.backend, "overrides": list(args.overrides),
                  "cameras": [c for c in args.cameras.split(",") if c]}
    rec = EpisodeRecorder.for_env(args.out, env, env_recipe=env_record, pack=args.pack)
    realtime = args.realtime == "on" or (args.realtime == "auto" and device.source == "human")
    text = args.task_text or args.env
    kept, tried = 0, 0
    max_attempts = args.max_attempts or 3 * args.episodes
    try:
        while kept < args.episodes and tried < max_attempts:
            rec.start_episode(text)
            clock = [0.0]  # backend clock of the observation being recorded: 0 at reset, then each step's

            def on_step(obs, action, reward, done, info, clock=clock):
                rec.add_frame(obs, action, reward, done, bool(info.get("is_success", False)), device.source,
                              timestamp=clock[0])
                clock[0] = float(info.get("timestamp", np.nan))

            outcome, info = run_episode(env, device, args.seed + tried, realtime, on_step)
            tried += 1
            success = bool(info.get("is_success", False))
            if outcome == "quit":
                rec.discard_episode()
                break
            if outcome == "discard" or (args.only_success and not success):
                rec.discard_episode()
                print(f"episode attempt {tried}: discarded (success={success})", file=sys.stderr)
                continue
            ep = rec.save_episode(loop_stats=info.get("loop_stats"))
            kept += 1
            print(f"episode {ep}: saved, success={success}", file=sys.stderr)
    finally:
        rec.close()
        device.close()
        env.close()
    print(f"recorded {kept} episodes in {args.out} ({rec.num_episodes} total, {tried} tried)", file=sys.stderr)
    return 0 if kept == args.episodes else 1


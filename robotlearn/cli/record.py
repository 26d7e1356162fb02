"""`robotlearn record`: drive an env with a teleop device (or a scripted expert) and record episodes.

Example: robotlearn record --env arm_pick_place --backend mujoco --device scripted --episodes 100 --out demos/pp
Each finished episode is committed to the dataset before the next one starts, so stopping (or killing)
the recorder loses at most the episode in progress. The dataset stores the env recipe, so training and
evaluation rebuild the same env.
"""

from __future__ import annotations

import argparse
import sys

from robotlearn.cli.common import add_backend_arguments, backend_options
from robotlearn.cli.placement import offer_placement_prompt


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `record` and `teleop`."""
    parser.add_argument("--env", required=True, help="env id (ArmPickPlace-v0, robotlearn/ArmReach-v0) or task config")
    add_backend_arguments(parser)
    parser.add_argument("--device", default="keyboard",
                        help="scripted | keyboard | gamepad | spacemouse | leader_arm")
    parser.add_argument("--cameras", default="", help="comma-separated camera names to record as video")
    parser.add_argument("--seed", type=int, default=0, help="episode attempt i resets with seed+i")
    parser.add_argument("--realtime", choices=["auto", "on", "off"], default="auto",
                        help="pace steps at control_hz (auto: on for human devices and real robots; default: auto)")
    parser.add_argument("--device-opt", action="append", default=[], metavar="K=V",
                        help="device option, e.g. port=... for leader_arm")
    parser.add_argument("overrides", nargs="*", help="task config overrides key=value")


def build(args: argparse.Namespace):
    """(recipe, env, source) from parsed arguments."""
    from robotlearn.core.config import parse_overrides
    from robotlearn.rollout import DeviceSource, EnvRecipe
    from robotlearn.teleop import make_device

    recipe = EnvRecipe(args.env, args.backend, tuple(args.overrides), cameras=args.cameras,
                       backend_options=backend_options(args))
    env = recipe.make()
    offer_placement_prompt(env)  # a real arm with no emulator: the operator places objects
    try:
        source = DeviceSource(make_device(args.device, env, **parse_overrides(args.device_opt)))
    except Exception:
        env.close()
        raise
    return recipe, env, source


def realtime(args: argparse.Namespace) -> bool | None:
    return {"on": True, "off": False, "auto": None}[args.realtime]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_env_arguments(parser)
    parser.add_argument("--episodes", type=int, default=10, help="episodes to record (kept ones)")
    parser.add_argument("--out", required=True, help="dataset directory (created, or appended to)")
    parser.add_argument("--task-text", default=None, help="task description stored with each episode (default: env id)")
    parser.add_argument("--only-success", action="store_true", help="keep only episodes that end in success")
    parser.add_argument("--max-attempts", type=int, default=None, help="stop after this many episodes tried "
                        "(default: 3 x --episodes)")
    parser.add_argument("--pack", action="store_true", help="pack many episodes per file (LeRobot's layout)")


def run(args: argparse.Namespace) -> int:
    from robotlearn.data.recorder import EpisodeRecorder
    from robotlearn.rollout import CallbackSink, RecorderSink, Rollout

    if args.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {args.episodes}")
    recipe, env, source = build(args)

    def keep(stats) -> bool:
        return stats.outcome in ("done", "save") and (stats.success or not args.only_success)

    def report(stats) -> None:
        verdict = "saved" if keep(stats) else "discarded"
        print(f"episode attempt {stats.index + 1}: {verdict} ({stats.outcome}, success={stats.success})",
              file=sys.stderr)

    try:
        recorder = EpisodeRecorder.for_env(args.out, env, env_recipe=recipe.to_dict(), pack=args.pack)
        sink = RecorderSink(recorder, args.task_text or recipe.env_id, keep)
        rollout = Rollout(env, source, [sink, CallbackSink(lambda tr: None, report)], realtime=realtime(args))
        try:
            result = rollout.run(args.episodes, args.seed, progress="record", keep=keep,
                                 max_attempts=args.max_attempts or 3 * args.episodes)
        finally:
            rollout.close()
    finally:
        env.close()
    kept = len(result.kept)
    print(f"recorded {kept} episodes in {args.out} ({recorder.num_episodes} total, {len(result.episodes)} tried)",
          file=sys.stderr)
    return 0 if kept == args.episodes else 1

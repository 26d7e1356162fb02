"""`robotlearn sim`: run the scripted expert or a random policy on one or more backends, report success."""

from __future__ import annotations

import argparse

from robotlearn.cli.common import add_backend_arguments, add_video_size, backend_options
from robotlearn.envs import NAMESPACE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default=f"{NAMESPACE}/ArmReach-v0", help="env id (see `robotlearn envs`)")
    add_backend_arguments(parser, repeatable=True, help_default="mujoco")
    parser.add_argument("--policy", choices=("expert", "random"), default="expert", help="action source")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per backend")
    parser.add_argument("--seed", type=int, default=0, help="episode i is seeded seed+i")
    parser.add_argument("--render", metavar="VIDEO.mp4", help="write a video of the first episode (first backend)")
    parser.add_argument("--camera", help="camera for --render (default: the robot's first)")
    add_video_size(parser)
    parser.add_argument("--render-size", dest="video_size", help=argparse.SUPPRESS)  # the older name
    parser.add_argument("overrides", nargs="*", help="task config overrides key=value (e.g. reward=sparse)")


def run(args: argparse.Namespace) -> int:
    from robotlearn.rollout import DeviceSource, EnvRecipe, RandomSource, Rollout, VideoSink, parse_size
    from robotlearn.teleop import make_device

    if args.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {args.episodes}")
    size = parse_size(args.video_size)
    base = EnvRecipe(args.env, overrides=tuple(args.overrides))
    rows = []
    for backend in args.backend or ["mujoco"]:
        env = base.with_backend(backend, backend_options(args)).make()
        try:
            source = (DeviceSource(make_device("scripted", env)) if args.policy == "expert"
                      else RandomSource(env.action_space, args.seed))
            sinks = [VideoSink(env, args.render, args.camera, size)] if args.render and not rows else []
            rollout = Rollout(env, source, sinks)
            try:
                result = rollout.run(args.episodes, args.seed, progress=backend)
            finally:
                rollout.close()
        finally:
            env.close()
        if sinks:
            print(f"wrote {args.render} ({len(sinks[0].frames)} frames, camera {sinks[0].camera}, {args.video_size})")
        rows.append((backend, result))
    print(f"{base.env_id}  policy={args.policy}  episodes={args.episodes}  seed={args.seed}")
    print(f"{'backend':<10} {'success':>8} {'return':>9} {'overruns':>9}")
    for backend, result in rows:
        s = result.summary()
        print(f"{backend:<10} {s['success_rate']:>8.1%} {s['mean_return']:>9.2f} {s['overruns']:>9}")
    return 0

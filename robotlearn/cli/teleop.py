"""`robotlearn teleop`: drive an env live with a device, without recording (practice, checks).

Each step prints one status line (step, action, tool position); in a raw-mode terminal lines end with
CR LF so they stay readable.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from robotlearn.cli.record import add_env_arguments, build, realtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_env_arguments(parser)
    parser.add_argument("--episodes", type=int, default=1, help="episodes to run")
    parser.add_argument("--quiet", action="store_true", help="no per-step status lines")


def run(args: argparse.Namespace) -> int:
    from robotlearn.rollout import CallbackSink, Rollout

    _, env, source = build(args)
    step = 0

    def on_step(tr) -> None:
        nonlocal step
        step += 1
        if not args.quiet:
            ee = np.round(tr.next_obs.get("ee_pos", np.zeros(0)), 3).tolist()
            sys.stdout.write(f"step {step} action {np.round(tr.action, 2).tolist()} ee {ee} "
                             f"success {bool(tr.info.get('is_success', False))}\r\n")
            sys.stdout.flush()

    def on_end(stats) -> None:
        sys.stdout.write(f"episode {stats.index}: {stats.outcome}, success={stats.success}\r\n")

    rollout = Rollout(env, source, [CallbackSink(on_step, on_end)], realtime=realtime(args))
    try:
        if hasattr(source.device, "fd"):
            sys.stdout.write("keyboard teleop: w/s x  a/d y  r/f z  q/e yaw  space gripper  enter next  esc quit\r\n")
        rollout.run(args.episodes, args.seed, keep=lambda stats: True)
    finally:
        rollout.close()
        env.close()
    return 0

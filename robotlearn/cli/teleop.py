"""`robotlearn teleop`: drive an env live with a device, without recording (practice, checks).

Each step prints one status line (step, action, tool position); in a raw-mode terminal lines end with
CR LF so they stay readable.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from robotlearn.cli.record import add_env_arguments, build, run_episode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_env_arguments(parser)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no per-step status lines")


def run(args: argparse.Namespace) -> int:
    env, device = build(args)
    realtime = args.realtime == "on" or (args.realtime == "auto" and device.source == "human")
    step = 0

    def on_step(obs, action, reward, done, info):
        nonlocal step
        step += 1
        if not args.quiet:
            ee = np.round(obs.get("ee_pos", np.zeros(0)), 3).tolist()
            sys.stdout.write(f"step {step} action {np.round(action, 2).tolist()} ee {ee} "
                             f"success {bool(info.get('is_success', False))}\r\n")
            sys.stdout.flush()

    try:
        if hasattr(device, "fd"):
            sys.stdout.write("keyboard teleop: w/s x  a/d y  r/f z  q/e yaw  space gripper  enter next  esc quit\r\n")
        for ep in range(args.episodes):
            outcome, info = run_episode(env, device, args.seed + ep, realtime, on_step)
            sys.stdout.write(f"episode {ep}: {outcome}, success={bool(info.get('is_success', False))}\r\n")
            if outcome == "quit":
                break
    finally:
        device.close()
        env.close()
    return 0

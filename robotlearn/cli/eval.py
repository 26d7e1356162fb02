"""`robotlearn eval --checkpoint DIR --backend B [--episodes N] [--video out.mp4]`: success rate, returns, video.

The env is rebuilt from the checkpoint's record (task, overrides, cameras); only the backend changes,
so the same checkpoint is scored on MuJoCo, PyBullet or the (emulated) real arm.
"""

from __future__ import annotations

import argparse
import json

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (config.json + model.safetensors)")
    parser.add_argument("--backend", help="backend to evaluate on (default: the training backend)")
    parser.add_argument("--port", help="serial port / pty of a real robot (backend real)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--video", help="write a rollout video (mp4) of the evaluated episodes")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")


def evaluate_checkpoint(checkpoint: str, backend: str | None, episodes: int, seed: int = 1000,
                        video: str | None = None, port: str | None = None) -> dict[str, float]:
    from robotlearn.policies import load_policy, read_config
    from robotlearn.policies.rollout import env_for_checkpoint, run_episodes, write_video

    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    config = read_config(checkpoint)
    policy = load_policy(checkpoint)
    options = {"port": port} if port else {}
    env = env_for_checkpoint(config, backend, render_mode="rgb_array" if video else None, **options)
    try:
        frames: list | None = [] if video else None
        result = run_episodes(env, policy.act, episodes, seed=seed, reset_policy=policy.reset, frames=frames)
        if video:
            write_video(video, frames, fps=float(env.metadata.get("render_fps") or 20))
    finally:
        env.close()
    return {"backend": backend or config["env"].get("backend"), **result.summary()}


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    summary = evaluate_checkpoint(args.checkpoint, args.backend, args.episodes, args.seed, args.video, args.port)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['backend']}: success {summary['success_rate']:.0%} over {summary['episodes']} episodes, "
              f"mean return {summary['mean_return']:.2f}" + (f"; video: {args.video}" if args.video else ""))
    return 0

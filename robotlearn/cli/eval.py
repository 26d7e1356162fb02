"""`robotlearn eval --checkpoint DIR --backend B [--episodes N] [--video out.mp4]`: success rate, returns, video.

The env is rebuilt from the checkpoint's env recipe (task, overrides, cameras); only the backend changes,
so the same checkpoint is scored on MuJoCo, PyBullet or the (emulated) real robot.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from robotlearn.cli.common import add_backend_arguments, add_video_size, backend_options
from robotlearn.cli.placement import offer_placement_prompt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (config.json + model.safetensors)")
    add_backend_arguments(parser, default=None, repeatable=True, help_default="the training backend")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to run")
    parser.add_argument("--seed", type=int, default=1000, help="episode i is seeded seed+i")
    parser.add_argument("--seeds", help="sweep: comma-separated start seeds (each runs --episodes episodes)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="sweep seeds x backends on N Ray workers and print one table (0: in this process)")
    parser.add_argument("--address", help="run the sweep on this Ray cluster (see README 'Scale-out')")
    parser.add_argument("--video", help="write a rollout video (mp4) of the first evaluated episode")
    add_video_size(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")


def evaluate_checkpoint(checkpoint: str, backend: str | None, episodes: int, seed: int = 1000,
                        video: str | None = None, options: dict[str, Any] | None = None,
                        video_size: tuple[int, int] | None = None, progress: str | None = None) -> dict[str, Any]:
    from robotlearn.policies import load_policy, read_config
    from robotlearn.rollout import VIDEO_SIZE, PolicySource, Rollout, VideoSink, checkpoint_recipe

    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    config = read_config(checkpoint)
    recipe = checkpoint_recipe(config, checkpoint).with_backend(backend, options)
    policy = load_policy(checkpoint)
    env = recipe.make()
    offer_placement_prompt(env)  # a real arm with no emulator: the operator places objects
    try:
        sinks = [VideoSink(env, video, size=video_size or VIDEO_SIZE)] if video else []
        rollout = Rollout(env, PolicySource(policy), sinks)
        try:
            result = rollout.run(episodes, seed, progress=progress)
        finally:
            rollout.close()
    finally:
        env.close()
    return {"backend": recipe.backend, **result.summary()}


def run(args: argparse.Namespace) -> int:
    import torch

    from robotlearn.rollout import parse_size

    torch.set_num_threads(1)
    backends = args.backend or [None]
    if len(backends) > 1 or args.seeds or args.workers or args.address:
        return run_sweep(args, backends)
    summary = evaluate_checkpoint(args.checkpoint, backends[0], args.episodes, args.seed, args.video,
                                  backend_options(args), parse_size(args.video_size), progress="eval")
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['backend']}: success {summary['success_rate']:.0%} over {summary['episodes']} episodes, "
              f"mean return {summary['mean_return']:.2f}" + (f"; video: {args.video}" if args.video else ""))
    return 0


def run_sweep(args: argparse.Namespace, backends: list[str | None]) -> int:
    """Seeds x backends (robotlearn.scale.sweep), one table, or one JSON line per cell with --json."""
    from robotlearn.scale.sweep import format_table, sweep

    if args.video:
        raise ValueError("--video records one evaluation; leave it out of a sweep")
    try:
        seeds = [int(s) for s in (args.seeds or str(args.seed)).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
    rows = sweep(args.checkpoint, backends, seeds, args.episodes, args.workers or (1 if args.address else 0),
                 args.address, backend_options(args))
    print("\n".join(json.dumps(r) for r in rows) if args.json else format_table(rows))
    return 0

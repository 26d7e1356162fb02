"""`robotlearn deploy --checkpoint DIR --backend real --backend-opt port=/tmp/rl-arm0`: run a policy on the
robot, record it.

The policy runs unchanged on the env rebuilt from its checkpoint's recipe; on `backend real` every command
goes through the production driver and its compiled real-time loop (limits, watchdog, e-stop live there,
not here). Each rollout is written through the one dataset recorder (robotlearn.data) with per-step
source labels: "policy", or "human" while an operator device (--intervene) has taken over.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from robotlearn.cli.common import add_backend_arguments, backend_options
from robotlearn.cli.placement import offer_placement_prompt
from robotlearn.correction.hil import OPERATORS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    add_backend_arguments(parser, default="real", help_default="real; a sim name dry-runs the deploy")
    parser.add_argument("--episodes", type=int, default=5, help="episodes to run")
    parser.add_argument("--seed", type=int, default=2000, help="episode i is seeded seed+i")
    parser.add_argument("--record", help="dataset directory to record rollouts into (default runs/deploy-<time>)")
    parser.add_argument("--no-record", action="store_true", help="do not record")
    parser.add_argument("--intervene", default="none", choices=OPERATORS,
                        help="operator device that may take over (steps recorded with source=human; default: none)")


def deploy(checkpoint: str, backend: str, episodes: int, options: dict[str, Any] | None = None,
           record: str | None = None, intervene: str = "none", seed: int = 2000,
           progress: str | None = None) -> dict:
    from robotlearn.correction.hil import make_operator
    from robotlearn.data.recorder import EpisodeRecorder
    from robotlearn.policies import load_policy, read_config
    from robotlearn.rollout import InterventionSource, PolicySource, RecorderSink, Rollout, checkpoint_recipe

    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    config = read_config(checkpoint)
    recipe = checkpoint_recipe(config, checkpoint).with_backend(backend, options)
    policy = load_policy(checkpoint)
    env = recipe.make()
    offer_placement_prompt(env)  # a real arm with no emulator: the operator places objects
    try:
        source = PolicySource(policy)
        hil = make_operator(intervene, env)
        if hil is not None:
            source = InterventionSource(source, hil)
        sinks = []
        if record:
            recorder = EpisodeRecorder.for_env(record, env, env_recipe=recipe.to_dict())
            sinks.append(RecorderSink(recorder, recipe.env_id))
        rollout = Rollout(env, source, sinks)
        t0 = time.perf_counter()
        try:
            result = rollout.run(episodes, seed, progress=progress)
        finally:
            rollout.close()
    finally:
        env.close()
    return {"backend": recipe.backend, **result.summary(), "seconds": time.perf_counter() - t0,
            "intervention_rate": result.source_fraction("human"), "dataset": record,
            "timing": result.timing_report()}


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    record = None if args.no_record else (args.record or f"runs/deploy-{time.strftime('%Y%m%d-%H%M%S')}")
    if record and Path(record).exists() and not (Path(record) / "meta").exists():
        raise ValueError(f"--record {record} exists and is not a robotlearn dataset")
    s = deploy(args.checkpoint, args.backend, args.episodes, backend_options(args), record, args.intervene, args.seed,
               progress="deploy")
    print(f"{s['backend']}: success {s['success_rate']:.0%} over {s['episodes']} episodes, mean return "
          f"{s['mean_return']:.2f}, {s['seconds']:.1f} s" + (f"; recorded to {record}" if record else ""))
    print(s["timing"])
    return 0

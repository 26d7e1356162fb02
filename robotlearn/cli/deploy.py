"""`robotlearn deploy --checkpoint DIR --backend real --port /tmp/rl-arm0`: run a policy on the robot, record it.

The policy runs unchanged on the env rebuilt from its checkpoint; on `backend real` every command goes
through the production driver and its compiled real-time loop (limits, watchdog, e-stop live there,
not here). Each rollout is written through the one dataset recorder (robotlearn.data) with per-step
source labels: "policy", or "human" while an operator device (--intervene) has taken over.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from robotlearn.correction.hil import OPERATORS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    parser.add_argument("--backend", default="real", help="default %(default)s; a sim name dry-runs the deploy")
    parser.add_argument("--port", help="serial port / pty of the robot (e.g. /tmp/rl-arm0 from `robotlearn emulate arm`)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--record", help="dataset directory to record rollouts into (default runs/deploy-<time>)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--intervene", default="none", choices=OPERATORS,
                        help="operator device that may take over (steps recorded with source=human)")


def deploy(checkpoint: str, backend: str, episodes: int, port: str | None = None, record: str | None = None,
           intervene: str = "none", seed: int = 2000) -> dict:
    from robotlearn.correction.hil import make_operator
    from robotlearn.data.recorder import EpisodeRecorder
    from robotlearn.policies import load_policy, read_config
    from robotlearn.policies.rollout import env_for_checkpoint, run_episodes

    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    if backend == "real" and not port:
        raise ValueError("backend real needs --port (e.g. the --link of `robotlearn emulate arm`)")
    config = read_config(checkpoint)
    policy = load_policy(checkpoint)
    env = env_for_checkpoint(config, backend, **({"port": port} if port else {}))
    recorder = EpisodeRecorder.for_env(record, env) if record else None
    hil = make_operator(intervene, env)
    last_source = ["policy"]
    clock = [0.0]  # backend clock of the observation being recorded: 0 at reset, then each step's

    def act(obs: dict) -> np.ndarray:
        action = policy.act(obs)
        if hil is not None:
            action, last_source[0] = hil.select(obs, action)
        if recorder is not None and not recorder.recording:
            recorder.start_episode(task=config["env"]["id"])
        return action

    def on_step(obs, action, reward, done, info) -> None:
        if recorder is not None:
            recorder.add_frame(obs, action, reward, done, bool(info.get("is_success", False)), last_source[0],
                               timestamp=clock[0])
        clock[0] = 0.0 if done else float(info.get("timestamp", np.nan))
        if done:
            if recorder is not None:
                recorder.save_episode(loop_stats=info.get("loop_stats"))
            if hil is not None:
                hil.end_episode()

    t0 = time.perf_counter()
    try:
        result = run_episodes(env, act, episodes, seed=seed, reset_policy=policy.reset, on_step=on_step)
    finally:
        if recorder is not None:
            if recorder.recording:
                recorder.discard_episode()
            recorder.close()
        if hil is not None:
            hil.close()
        env.close()
    return {"backend": backend, **result.summary(), "seconds": time.perf_counter() - t0,
            "intervention_rate": hil.intervention_rate if hil is not None else 0.0, "dataset": record}


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    record = None if args.no_record else (args.record or f"runs/deploy-{time.strftime('%Y%m%d-%H%M%S')}")
    if record and Path(record).exists() and not (Path(record) / "meta").exists():
        raise ValueError(f"--record {record} exists and is not a robotlearn dataset")
    s = deploy(args.checkpoint, args.backend, args.episodes, args.port, record, args.intervene, args.seed)
    print(f"{s['backend']}: success {s['success_rate']:.0%} over {s['episodes']} episodes, mean return "
          f"{s['mean_return']:.2f}, {s['seconds']:.1f} s" + (f"; recorded to {record}" if record else ""))
    return 0

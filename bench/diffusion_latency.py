"""Per-chunk CPU inference latency and task success of one diffusion checkpoint under four samplers.

    python bench/diffusion_latency.py --checkpoint runs/dp-pp --episodes 20 [--backend mujoco]

Samplers (same weights, same episode seeds): DDPM-100 (the training chain), DDIM-10, DDIM-4, and DDIM-2
warm-started from the previous chunk (first chunk of an episode: DDIM-4). Latency is wall time of one chunk
prediction (observation encoding + denoising) on one CPU thread. Ratios are against DDPM-100 and DDIM-10
measured in this run. The machine's load average goes into the JSON: on a shared CPU, absolute milliseconds
scale with it, the ratios much less. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

SAMPLERS = {
    "ddpm100": {"scheduler": "ddpm", "steps": 100},
    "ddim10": {"scheduler": "ddim", "steps": 10},
    "ddim4": {"scheduler": "ddim", "steps": 4},
    "ddim2_warm": {"scheduler": "ddim", "steps": 4, "warm_start": True, "warm_steps": 2, "warm_schedule_steps": 10},
}


def run_sampler(model, inference, env, episodes: int, seed: int) -> dict:
    from robotlearn.policies.diffusion import DiffusionAgent, InferenceConfig

    agent = DiffusionAgent(model, InferenceConfig(**inference))
    successes, warm_times = [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        agent.reset()
        start = len(agent.chunk_times)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(agent.act(obs))
            done = terminated or truncated
        successes.append(bool(info.get("is_success", False)))
        warm_times += agent.chunk_times[start + 1:]  # chunks after the first of each episode
    times = np.array(agent.chunk_times[1:]) * 1000  # drop the very first call (graph tracing)
    return {"success": float(np.mean(successes)), "episodes": episodes,
            "ms_mean": float(times.mean()), "ms_p50": float(np.median(times)), "ms_p95": float(np.percentile(times, 95)),
            "ms_steady": float(np.mean(warm_times) * 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--env", default=None, help="task config (default: the checkpoint's env record)")
    parser.add_argument("--backend", default="mujoco")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from robotlearn.envs import ENV_TASK_CONFIGS, make_env
    from robotlearn.policies.checkpoint import read_config
    from robotlearn.policies.diffusion import load_diffusion_model

    model = load_diffusion_model(args.checkpoint)
    env_rec = read_config(args.checkpoint).get("env") or {}
    task = args.env or env_rec.get("id")
    if not task:
        raise SystemExit("checkpoint has no env record; pass --env")
    task = ENV_TASK_CONFIGS.get(task.removeprefix("robotlearn/"), task)
    env = make_env(task, backend=args.backend, overrides=env_rec.get("overrides") or None)
    results = {}
    for name in args.samplers.split(","):
        t0 = time.perf_counter()
        results[name] = run_sampler(model, SAMPLERS[name], env, args.episodes, args.seed)
        r = results[name]
        print(f"{name:<11} success {r['success']:.0%}  chunk ms mean {r['ms_mean']:.1f} p50 {r['ms_p50']:.1f} "
              f"p95 {r['ms_p95']:.1f} steady {r['ms_steady']:.1f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    env.close()
    for base in ("ddpm100", "ddim10"):
        if base in results:
            for r in results.values():
                r[f"speedup_vs_{base}"] = results[base]["ms_mean"] / r["ms_mean"]
    print(json.dumps({"backend": args.backend, "env": task, "episodes": args.episodes, "seed": args.seed,
                      "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                      "loadavg_1min": os.getloadavg()[0], **results}))


if __name__ == "__main__":
    main()

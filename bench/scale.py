"""Scale-out throughput: env steps/s collected and learner updates/s for SAC on ArmReach with 0 (the
single-process loop), 1 and 2 Ray actors, in one run.

    python bench/scale.py [--steps 1500] [--repeats 3]

Every variant trains the same config (configs/algos/sac_arm_reach.yaml, evaluation off) for the same
number of env steps; the variants are interleaved and their order rotated per repeat, so machine load
hits all alike. Timed: the training loop only (Ray start and actor start-up excluded, reported apart).
Also reported, for the paper model in bench/README.md: an actor's seconds per env step, the learner's
seconds per update and per ingested transition. Ratios are against the 0-actor run of the same repeat.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robotlearn.core.config import load_config  # noqa: E402
from robotlearn.policies.sac.config import SACConfig  # noqa: E402
from robotlearn.policies.sac.train import train  # noqa: E402
from robotlearn.scale.sac import AsyncSAC, connect  # noqa: E402


def config(steps: int, seed: int) -> SACConfig:
    return load_config(SACConfig, "algos", "sac_arm_reach",
                       [f"total_steps={steps}", "learning_starts=300", "eval_every=0", "checkpoint_every=0",
                        "eval_episodes=1", "save_replay=false", f"seed={seed}"])


def run(actors: int, steps: int, seed: int) -> dict[str, float]:
    cfg = config(steps, seed)
    with tempfile.TemporaryDirectory() as out:
        if actors == 0:
            r = train(cfg, out, progress_bar=False)
            updates = cfg.utd * (steps - cfg.learning_starts + 1)
            return {"sps": r["sps"], "updates_per_s": updates / r["seconds"], "startup_s": 0.0}
        t0 = time.perf_counter()
        learner = AsyncSAC(cfg, out, actors, progress_bar=False)
        startup = time.perf_counter() - t0
        r = learner.run()
    return {"sps": r["sps"], "updates_per_s": r["updates_per_s"], "startup_s": startup,
            "actor_step_ms": r["actor_step_ms"], "update_ms": r["update_ms"],
            "ingest_ms_per_step": r["ingest_ms_per_step"], "updates_per_step": r["updates"] / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--actors", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = [int(a) for a in args.actors.split(",")]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    connect(None, max(max(variants), os.cpu_count() or 1))
    rows: dict[int, list[dict]] = {v: [] for v in variants}
    for rep in range(args.repeats):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for actors in order:
            rows[actors].append(run(actors, args.steps, seed=rep))
            r = rows[actors][-1]
            print(f"repeat {rep} actors {actors}: {r['sps']:.0f} env steps/s, {r['updates_per_s']:.0f} updates/s"
                  + (f" (actor {r['actor_step_ms']:.2f} ms/step, update {r['update_ms']:.2f} ms, "
                     f"ingest {r['ingest_ms_per_step']:.3f} ms/step, start-up {r['startup_s']:.1f} s)" if actors else ""),
                  flush=True)
    summary: dict[str, dict] = {}
    for actors, rs in rows.items():
        s = {}
        for key in rs[0]:
            values = np.array([r[key] for r in rs], float)
            s[key] = {"median": round(float(np.median(values)), 3), "min": round(float(values.min()), 3),
                      "max": round(float(values.max()), 3)}
        base = rows[variants[0]]
        s["sps_ratio"] = round(float(np.median([r["sps"] / b["sps"] for r, b in zip(rs, base, strict=True)])), 2)
        s["updates_ratio"] = round(float(np.median([r["updates_per_s"] / b["updates_per_s"]
                                                    for r, b in zip(rs, base, strict=True)])), 2)
        summary[str(actors)] = s
        print(f"actors {actors}: env steps/s {s['sps']['median']:.0f} [{s['sps']['min']:.0f}-{s['sps']['max']:.0f}] "
              f"({s['sps_ratio']:.2f}x), updates/s {s['updates_per_s']['median']:.0f} ({s['updates_ratio']:.2f}x)")
    print(json.dumps({"bench": "scale", "steps": args.steps, "repeats": args.repeats, "cpus": os.cpu_count(),
                      "loadavg_before": load_before, "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
                      "results": summary}))


if __name__ == "__main__":
    main()

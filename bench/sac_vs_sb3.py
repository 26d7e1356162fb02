"""Fair SAC comparison: wall-clock time to a success / return threshold, robotlearn vs Stable-Baselines3.

    python bench/sac_vs_sb3.py [--envs ArmReach,QuadHover,Pendulum] [--seeds 0,1,2,3,4]
                               [--variants robotlearn,robotlearn-2actors,sb3-default,sb3-matched]

What a user feels is how long until the policy works, so every variant trains until a deterministic
evaluation reaches the env's threshold (ArmReach, QuadHover: 90 % success; Pendulum-v1: mean return
>= -200) or until `--max-steps`. Both libraries are timed over the same boundaries: the clock runs from
the start of the training loop, pauses for every evaluation (the same robotlearn `Rollout` on the same
env recipe and the same episode seeds for both, every `--eval-every` env steps) and stops at the
evaluation that met the threshold. Env construction and process start are outside the clock for both;
so is Ray and actor start-up for the 2-actor variant (reported apart).
Variants (order rotated per seed, so machine load hits them alike):
  robotlearn          the env's robotlearn config (ArmReach: configs/algos/sac_arm_reach.yaml)
  robotlearn-plain    the same with layer norm and observation normalization off (what SB3 lacks)
  robotlearn-2actors  the same config, 2 Ray actors + the asynchronous learner (robotlearn.scale)
  sb3-default         SB3 SAC("MultiInputPolicy") at its documented defaults
  sb3-matched         SB3 with robotlearn's hyperparameters (nets, batch, lrs, gamma, tau, initial
                      temperature, learning_starts); left different: layer norm and obs normalization
Reported per env and variant: median time and steps to the threshold over the seeds that reached it,
how many reached it, and training steps/s. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
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
from robotlearn.policies.sac.train import env_recipe, train  # noqa: E402
from robotlearn.rollout import Rollout  # noqa: E402
from robotlearn.rollout.sources import ActionSource  # noqa: E402

# env name -> (robotlearn config, config overrides, threshold kind, threshold)
ENVS = {
    "ArmReach": ("sac_arm_reach", [], "success", 0.9),
    "QuadHover": ("sac", ["env=robotlearn/QuadHover-v0", "backend=mujoco"], "success", 0.9),
    "Pendulum": ("sac", ["env=Pendulum-v1", "backend=null"], "return", -200.0),
}
VARIANTS = ("robotlearn", "robotlearn-plain", "robotlearn-2actors", "sb3-default", "sb3-matched")


def base_config(env: str, seed: int, args) -> SACConfig:
    name, overrides, kind, threshold = ENVS[env]
    stop = f"stop_success={threshold}" if kind == "success" else f"stop_return={threshold}"
    return load_config(SACConfig, "algos", name,
                       [*overrides, f"total_steps={args.max_steps}", f"eval_every={args.eval_every}",
                        f"eval_episodes={args.eval_episodes}", "checkpoint_every=0", "save_replay=false",
                        f"seed={seed}", stop, "log_every=1000000"])


def met(kind: str, threshold: float, summary: dict) -> bool:
    return summary["success_rate" if kind == "success" else "mean_return"] >= threshold


def run_robotlearn(cfg: SACConfig, actors: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        startup = 0.0
        if actors:
            from robotlearn.scale.sac import AsyncSAC

            t0 = time.perf_counter()
            learner = AsyncSAC(cfg, out, actors, progress_bar=False)
            startup = time.perf_counter() - t0
            result = learner.run()
        else:
            result = train(cfg, out, progress_bar=False)
        with open(Path(out) / "progress.csv") as f:
            evals = [r for r in csv.DictReader(f) if r["eval_success"] != ""]
    kind, threshold = ("success", cfg.stop_success) if cfg.stop_success is not None else ("return", cfg.stop_return)
    hit = next((r for r in evals if met(kind, threshold, {"success_rate": float(r["eval_success"]),
                                                            "mean_return": float(r["eval_return"])})), None)
    return {"reached": hit is not None, "seconds": float(hit["train_s"]) if hit else float(evals[-1]["train_s"]),
            "steps": int(hit["step"]) if hit else result["steps"], "sps": result["sps"], "startup_s": startup}


class SB3Source(ActionSource):
    """An SB3 model as a rollout action source (deterministic), so it is evaluated like ours."""

    def __init__(self, model):
        self.model = model

    def act(self, obs):
        return self.model.predict(obs, deterministic=True)[0], "policy"


def run_sb3(cfg: SACConfig, matched: bool, args) -> dict:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    kind, threshold = ("success", cfg.stop_success) if cfg.stop_success is not None else ("return", cfg.stop_return)
    recipe = env_recipe(cfg)
    env, eval_env = recipe.make(), recipe.make()
    kwargs = {}
    if matched:
        kwargs = {"learning_rate": cfg.critic_lr, "batch_size": cfg.batch_size, "tau": cfg.tau, "gamma": cfg.gamma,
                  "learning_starts": cfg.learning_starts, "ent_coef": f"auto_{cfg.init_alpha}",
                  "train_freq": 1, "gradient_steps": cfg.utd, "policy_kwargs": {"net_arch": list(cfg.hidden)}}
    model = SAC("MultiInputPolicy", env, buffer_size=cfg.total_steps + 1, seed=cfg.seed, device="cpu", verbose=0,
                **kwargs)

    class Timer(BaseCallback):
        """Pauses the clock for evaluations every eval_every steps; stops training at the threshold."""

        def _on_training_start(self) -> None:
            self.t0, self.side, self.hit = time.perf_counter(), 0.0, None

        def _on_step(self) -> bool:
            step = self.num_timesteps
            if step % cfg.eval_every and step < cfg.total_steps:
                return True
            t = time.perf_counter()
            self.last = (t - self.t0 - self.side, step)  # training seconds so far, evaluations excluded
            summary = Rollout(eval_env, SB3Source(self.model), realtime=False).run(cfg.eval_episodes,
                                                                                   seed=10_000 + step).summary()
            self.side += time.perf_counter() - t
            if met(kind, threshold, summary):
                self.hit = self.last
                return False
            return True

    timer = Timer()
    model.learn(total_timesteps=cfg.total_steps, callback=timer, progress_bar=False)
    seconds, steps = timer.hit or timer.last
    env.close()
    eval_env.close()
    return {"reached": timer.hit is not None, "seconds": seconds, "steps": steps, "sps": steps / max(seconds, 1e-9),
            "startup_s": 0.0}


def run(variant: str, env: str, seed: int, args) -> dict:
    cfg = base_config(env, seed, args)
    if variant == "robotlearn-plain":
        cfg.layer_norm, cfg.normalize_obs = False, False
    if variant.startswith("robotlearn"):
        return run_robotlearn(cfg, 2 if variant == "robotlearn-2actors" else 0)
    return run_sb3(cfg, variant == "sb3-matched", args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="ArmReach,QuadHover,Pendulum")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--variants", default="robotlearn,robotlearn-2actors,sb3-default,sb3-matched")
    parser.add_argument("--max-steps", type=int, default=10_000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS)) + sorted(set(args.envs.split(",")) - set(ENVS))
    if unknown:
        parser.error(f"unknown variant/env {unknown}; variants: {', '.join(VARIANTS)}; envs: {', '.join(ENVS)}")
    if "robotlearn-2actors" in variants:
        from robotlearn.scale.sac import connect

        connect(None, max(2, os.cpu_count() or 1))
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    figures: dict[str, dict] = {}
    for env in args.envs.split(","):
        rows: dict[str, list[dict]] = {v: [] for v in variants}
        for i, seed in enumerate(int(s) for s in args.seeds.split(",")):
            for variant in variants[i % len(variants):] + variants[:i % len(variants)]:
                r = run(variant, env, seed, args)
                rows[variant].append(r)
                print(f"{env} seed {seed} {variant}: {'reached' if r['reached'] else 'NOT reached'} at "
                      f"{r['steps']} steps, {r['seconds']:.1f} s ({r['sps']:.0f} steps/s)", flush=True)
        figures[env] = {}
        for variant, rs in rows.items():
            hit = [r for r in rs if r["reached"]]
            figures[env][variant] = {
                "reached": f"{len(hit)}/{len(rs)}",
                "median_seconds_to_threshold": round(float(np.median([r["seconds"] for r in hit])), 1) if hit else None,
                "median_steps_to_threshold": int(np.median([r["steps"] for r in hit])) if hit else None,
                "median_sps": round(float(np.median([r["sps"] for r in rs])), 1),
                "seconds": [round(r["seconds"], 1) for r in rs], "steps": [r["steps"] for r in rs]}
        # SB3 at defaults as the baseline; when it never reached the threshold, the time it trained without
        # reaching it gives a lower bound on the speed-up (reported as "at_least")
        sb3 = rows.get("sb3-default", [])
        base = figures[env].get("sb3-default", {}).get("median_seconds_to_threshold")
        bound = base is None and bool(sb3)
        if bound:
            base = float(np.median([r["seconds"] for r in sb3]))
        for variant, f in figures[env].items():
            t = f["median_seconds_to_threshold"]
            f["speedup_vs_sb3_default"] = round(base / t, 2) if base and t else None
            f["speedup_is_lower_bound"] = bound
            ratio = f"{'>= ' if bound else ''}{f['speedup_vs_sb3_default']}x"
            print(f"{env} {variant}: reached {f['reached']}, median {t} s / {f['median_steps_to_threshold']} steps "
                  f"to threshold, {f['median_sps']} steps/s; vs SB3 defaults {ratio}", flush=True)
    print(json.dumps({"bench": "sac_vs_sb3", "max_steps": args.max_steps, "eval_every": args.eval_every,
                      "eval_episodes": args.eval_episodes, "seeds": args.seeds, "loadavg_before": load_before,
                      "loadavg_after": Path("/proc/loadavg").read_text().split()[:3], "results": figures}))


if __name__ == "__main__":
    main()

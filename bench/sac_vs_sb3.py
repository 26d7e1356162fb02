"""robotlearn SAC vs Stable-Baselines3 SAC: same env, seeds and hyperparameters, in one run.

    python bench/sac_vs_sb3.py [--envs Pendulum-v1,InvertedPendulum-v5] [--steps 4000] [--seeds 0]

Both train for the same number of env steps (one gradient step per env step, batch 256, 256x256 nets,
lr 3e-4, gamma 0.99, tau 0.005, automatic entropy from alpha=1, same learning_starts), single thread.
Reported: training throughput (env steps/s, evaluation excluded) and the deterministic evaluation
return at the end on the same episode seeds. Runs alternate SB3 / ours per seed so machine load hits
both alike. The last line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robotlearn.policies.sac.config import SACConfig  # noqa: E402
from robotlearn.policies.sac.train import train  # noqa: E402
from robotlearn.rollout import EnvRecipe, PolicySource, Rollout  # noqa: E402

HP = {"hidden": [256, 256], "batch_size": 256, "lr": 3e-4, "gamma": 0.99, "tau": 0.005}


def eval_seeds(n: int) -> list[int]:
    return [50_000 + i for i in range(n)]


def run_sb3(env_id: str, steps: int, learning_starts: int, seed: int, episodes: int) -> dict[str, float]:
    from stable_baselines3 import SAC

    env = gym.make(env_id)
    model = SAC("MlpPolicy", env, learning_rate=HP["lr"], buffer_size=steps + 1, learning_starts=learning_starts,
                batch_size=HP["batch_size"], tau=HP["tau"], gamma=HP["gamma"], train_freq=1, gradient_steps=1,
                ent_coef="auto", policy_kwargs={"net_arch": HP["hidden"]}, seed=seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, progress_bar=False)
    seconds = time.perf_counter() - t0
    eval_env = gym.make(env_id)
    returns = []
    for s in eval_seeds(episodes):
        obs, _ = eval_env.reset(seed=s)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = eval_env.step(action)
            total += float(r)
            done = term or trunc
        returns.append(total)
    return {"sps": steps / seconds, "return": float(np.mean(returns)), "seconds": seconds}


def run_ours(env_id: str, steps: int, learning_starts: int, seed: int, episodes: int) -> dict[str, float]:
    cfg = SACConfig(env=env_id, backend=None, total_steps=steps, learning_starts=learning_starts, seed=seed,
                    hidden=HP["hidden"], batch_size=HP["batch_size"], actor_lr=HP["lr"], critic_lr=HP["lr"],
                    alpha_lr=HP["lr"], gamma=HP["gamma"], tau=HP["tau"], utd=1, num_critics=2, init_alpha=1.0,
                    eval_every=0, eval_episodes=1, checkpoint_every=0, save_replay=False, buffer_size=steps + 1)
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, out, progress_bar=False)
        from robotlearn.policies import load_policy

        policy = load_policy(result["checkpoint"])
    env = EnvRecipe(env_id, backend=None).make()
    rollout = Rollout(env, PolicySource(policy))
    returns = [rollout.run_episode(seed=s).episode_return for s in eval_seeds(episodes)]
    return {"sps": result["sps"], "return": float(np.mean(returns)), "seconds": result["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="Pendulum-v1,InvertedPendulum-v5")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--learning-starts", type=int, default=500)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--eval-episodes", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures: dict[str, dict] = {}
    for env_id in args.envs.split(","):
        rows = {"sb3": [], "ours": []}
        for seed in (int(s) for s in args.seeds.split(",")):
            rows["sb3"].append(run_sb3(env_id, args.steps, args.learning_starts, seed, args.eval_episodes))
            rows["ours"].append(run_ours(env_id, args.steps, args.learning_starts, seed, args.eval_episodes))
            print(f"{env_id} seed {seed}: sb3 {rows['sb3'][-1]['sps']:.1f} steps/s return {rows['sb3'][-1]['return']:.1f}"
                  f" | robotlearn {rows['ours'][-1]['sps']:.1f} steps/s return {rows['ours'][-1]['return']:.1f}",
                  flush=True)
        mean = {k: {m: float(np.mean([r[m] for r in v])) for m in ("sps", "return")} for k, v in rows.items()}
        figures[env_id] = {"steps": args.steps, "seeds": args.seeds, "sb3_sps": round(mean["sb3"]["sps"], 1),
                           "ours_sps": round(mean["ours"]["sps"], 1),
                           "sps_ratio": round(mean["ours"]["sps"] / mean["sb3"]["sps"], 2),
                           "sb3_return": round(mean["sb3"]["return"], 1), "ours_return": round(mean["ours"]["return"], 1)}
        f = figures[env_id]
        print(f"{env_id}: throughput ratio (robotlearn / SB3) {f['sps_ratio']:.2f}x; return at {args.steps} steps: "
              f"robotlearn {f['ours_return']:.1f} vs SB3 {f['sb3_return']:.1f}", flush=True)
    print(json.dumps({"bench": "sac_vs_sb3", "hyperparameters": HP, "results": figures}))


if __name__ == "__main__":
    main()

"""Image policies trained on a budget and evaluated on MuJoCo, PyBullet and the emulated real arm.

    python bench/image_policies.py sac [--steps 3000] [--episodes 20]
    python bench/image_policies.py diffusion [--demos 100] [--steps 6000] [--episodes 20]

sac: SAC from pixels on ArmReach (configs/algos/sac_arm_reach_pixels.yaml: proprio + images/scene, the
goal seen only as the green sphere), trained in MuJoCo for --steps env steps. diffusion: scripted
pick-place demos recorded with both cameras in MuJoCo, the diffusion policy from images/scene +
images/wrist + proprio (configs/algos/diffusion_images.yaml). Each checkpoint is evaluated with
`robotlearn eval` on both sims and deployed to `robotlearn emulate arm` (images through the MJPEG
camera path). Baseline in the same run: the untrained policy (sac) / the scripted expert (diffusion) on
MuJoCo. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def load() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def evaluate_everywhere(checkpoint: str, episodes: int, seed: int) -> dict:
    from robotlearn.cli.deploy import deploy
    from robotlearn.cli.eval import evaluate_checkpoint

    sys.path.insert(0, str(REPO / "tests"))
    from test_real_arm import Emulator  # `robotlearn emulate arm` in a child process, as the tests run it

    out = {sim: evaluate_checkpoint(checkpoint, sim, episodes, seed=seed)["success_rate"] for sim in ("mujoco", "pybullet")}
    emulator = Emulator(Path(tempfile.mkdtemp()) / "arm", "--cameras", "scene,wrist", "--camera-fps", "10")
    try:
        out["real"] = deploy(checkpoint, "real", episodes, {"port": str(emulator.link)}, seed=seed)["success_rate"]
    finally:
        emulator.stop()
    return out


def bench_sac(args: argparse.Namespace) -> dict:
    from robotlearn.cli.eval import evaluate_checkpoint
    from robotlearn.core.config import load_config
    from robotlearn.policies.sac.config import SACConfig
    from robotlearn.policies.sac.train import train

    work = Path(tempfile.mkdtemp())
    overrides = [f"total_steps={args.steps}", f"learning_starts={min(1000, args.steps // 3)}", "eval_every=0",
                 "checkpoint_every=0", "save_replay=false", f"eval_episodes={args.episodes}"]
    untrained = train(load_config(SACConfig, "algos", "sac_arm_reach_pixels",
                                  ["total_steps=1", "learning_starts=1", "eval_every=0", "checkpoint_every=0",
                                   "save_replay=false", "eval_episodes=1"]), work / "untrained", progress_bar=False)
    baseline = evaluate_checkpoint(untrained["checkpoint"], "mujoco", args.episodes, seed=args.seed)["success_rate"]
    result = train(load_config(SACConfig, "algos", "sac_arm_reach_pixels", overrides), work / "run", progress_bar=False)
    success = evaluate_everywhere(result["checkpoint"], args.episodes, args.seed)
    print(f"SAC from pixels, {args.steps} steps in {result['seconds'] / 60:.1f} min ({result['sps']:.1f} sps): success "
          f"mujoco {success['mujoco']:.0%}, pybullet {success['pybullet']:.0%}, emulated real {success['real']:.0%}; "
          f"untrained {baseline:.0%}", flush=True)
    return {"algo": "sac_pixels", "steps": args.steps, "train_minutes": result["seconds"] / 60, "sps": result["sps"],
            "success": success, "untrained_mujoco": baseline}


def bench_diffusion(args: argparse.Namespace) -> dict:
    from robotlearn.cli.main import main

    work = Path(tempfile.mkdtemp())
    data, out = work / "demos", work / "policy"
    t0 = time.perf_counter()
    if main(["record", "--env", "ArmPickPlace-v0", "--backend", "mujoco", "--device", "scripted", "--cameras",
             "scene,wrist", "--episodes", str(args.demos), "--out", str(data), "--realtime", "off",
             "--only-success"]) != 0:
        raise SystemExit("recording demos failed")
    t1 = time.perf_counter()
    if main(["train", "diffusion", "--dataset", str(data), "--config", "diffusion_images", "--out", str(out),
             "--steps", str(args.steps)]) != 0:
        raise SystemExit("training failed")
    t2 = time.perf_counter()
    success = evaluate_everywhere(str(out), args.episodes, args.seed)
    print(f"diffusion from images, {args.demos} demos, {args.steps} steps ({(t2 - t1) / 60:.1f} min): success "
          f"mujoco {success['mujoco']:.0%}, pybullet {success['pybullet']:.0%}, emulated real {success['real']:.0%}",
          flush=True)
    return {"algo": "diffusion_images", "demos": args.demos, "steps": args.steps, "record_minutes": (t1 - t0) / 60,
            "train_minutes": (t2 - t1) / 60, "success": success, "expert_mujoco": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("algo", choices=("sac", "diffusion"))
    parser.add_argument("--steps", type=int, default=None, help="sac: env steps (3000); diffusion: train steps (6000)")
    parser.add_argument("--demos", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5000, help="evaluation seeds start here (not used in training)")
    args = parser.parse_args()
    args.steps = args.steps or (3000 if args.algo == "sac" else 6000)
    torch.set_num_threads(1)
    before = load()
    result = bench_sac(args) if args.algo == "sac" else bench_diffusion(args)
    print(json.dumps({**result, "load_before": before, "load_after": load()}))


if __name__ == "__main__":
    main()

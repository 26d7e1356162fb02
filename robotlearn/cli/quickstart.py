"""`robotlearn quickstart`: the main job, end to end, on 2 CPU cores in minutes.

1. start the emulated servo-bus arm (`robotlearn emulate arm --link <tmp>`, a subprocess),
2. train SAC on ArmReach in MuJoCo (configs/algos/sac_arm_reach.yaml),
3. evaluate the checkpoint in MuJoCo and PyBullet,
4. deploy the same checkpoint through the real driver to the emulated arm (recorded as a dataset),
5. print success rate per backend; write a learning curve (PNG), a rollout video and results.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robotlearn.cli.common import add_video_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/quickstart", help="output directory")
    parser.add_argument("--config", default="sac_arm_reach", help="SAC config in configs/algos/")
    parser.add_argument("--steps", type=int, help="training env steps (default: the config's total_steps)")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per backend")
    parser.add_argument("--link", help="pty link for the emulated arm (default: a fresh temp path)")
    add_video_size(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="SAC config overrides")
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]


def start_emulator(link: str, log_path: str | Path, timeout: float = 60.0) -> subprocess.Popen:
    """Start `robotlearn emulate arm` (output to `log_path`, so a full pipe can never stall it) and wait
    until its pty link appears."""
    cmd = [sys.executable, "-m", "robotlearn.cli.main", "emulate", "arm", "--link", link, "--cameras", "none"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not os.path.exists(link):
        if proc.poll() is not None:
            tail = Path(log_path).read_text()[-500:].strip()
            raise RuntimeError(f"arm emulator exited with {proc.returncode}: {tail}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError(f"arm emulator did not create {link} within {timeout:.0f} s")
        time.sleep(0.2)
    return proc


def plot_learning_curve(progress_csv: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(progress_csv) as f:
        rows = list(csv.DictReader(f))
    ev = [(int(r["step"]), float(r["eval_success"])) for r in rows if r["eval_success"]]
    tr = [(int(r["step"]), float(r["success"])) for r in rows if r["success"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if tr:
        ax.plot(*zip(*tr, strict=True), label="train (stochastic, last 20 episodes)", alpha=0.6)
    if ev:
        ax.plot(*zip(*ev, strict=True), "o-", label="eval (deterministic)")
    ax.set(xlabel="env steps", ylabel="success rate", ylim=(-0.05, 1.05), title="SAC on ArmReach (MuJoCo)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import torch

    from robotlearn.cli.deploy import deploy
    from robotlearn.cli.eval import evaluate_checkpoint
    from robotlearn.core.config import load_config
    from robotlearn.policies.sac.config import SACConfig
    from robotlearn.policies.sac.train import train
    from robotlearn.rollout import parse_size

    torch.set_num_threads(1)
    size = parse_size(args.video_size)
    def bar(name: str) -> str | None:
        return None if args.no_progress else name

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(SACConfig, "algos", args.config, args.overrides)
    if args.steps is not None:
        cfg.total_steps = args.steps
    # SIGTERM -> SystemExit, so the `finally` below still stops the emulator subprocess
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmpdir = tempfile.mkdtemp(prefix="rl-quickstart-")
    link = args.link or os.path.join(tmpdir, "arm0")
    t0 = time.perf_counter()
    print(f"[1/4] starting the emulated arm on {link}", flush=True)
    emulator = start_emulator(link, out / "emulator.log")
    try:
        print(f"[2/4] training SAC on {cfg.env} in MuJoCo for {cfg.total_steps} steps", flush=True)
        result = train(cfg, out / "train", progress_bar=not args.no_progress)
        ckpt = result["checkpoint"]
        print("[3/4] evaluating the checkpoint in MuJoCo and PyBullet", flush=True)
        rows = [evaluate_checkpoint(ckpt, "mujoco", args.episodes, video=str(out / "rollout_mujoco.mp4"),
                                    video_size=size, progress=bar("eval mujoco")),
                evaluate_checkpoint(ckpt, "pybullet", args.episodes, progress=bar("eval pybullet"))]
        print(f"[4/4] deploying through the real driver to the emulated arm ({link})", flush=True)
        rows.append(deploy(ckpt, "real", args.episodes, {"port": link}, record=str(out / "deploy_dataset"),
                           progress=bar("deploy real")))
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
        shutil.rmtree(tmpdir, ignore_errors=True)
    plot_learning_curve(out / "train" / "progress.csv", out / "learning_curve.png")
    summary = {"train_steps": result["steps"], "train_seconds": round(result["seconds"], 1),
               "train_steps_per_s": round(result["sps"], 1), "checkpoint": ckpt,
               "backends": {r["backend"]: {"success_rate": r["success_rate"], "mean_return": r["mean_return"],
                                           "episodes": r["episodes"]} for r in rows},
               "total_seconds": round(time.perf_counter() - t0, 1)}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{'backend':<10} {'success':>8} {'return':>9} {'episodes':>9}")
    for r in rows:
        print(f"{r['backend']:<10} {r['success_rate']:>8.0%} {r['mean_return']:>9.2f} {r['episodes']:>9}")
    print(f"\ntrained {result['steps']} steps in {result['seconds']:.0f} s; total {summary['total_seconds']:.0f} s")
    print(f"\nwhere to look:\n  learning curve  {out / 'learning_curve.png'}\n"
          f"  rollout video   {out / 'rollout_mujoco.mp4'} ({args.video_size})\n"
          f"  results         {out / 'results.json'}\n"
          f"  deploy dataset  {out / 'deploy_dataset'}  (robotlearn dataset info {out / 'deploy_dataset'})\n"
          f"  checkpoint      {ckpt}  (robotlearn eval --checkpoint {ckpt} --backend pybullet)")
    return 0

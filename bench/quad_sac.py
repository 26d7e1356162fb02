"""Quadrotor SAC (CTBR): train in MuJoCo, measure hover/track error on MuJoCo, PyBullet and the emulated PX4
vehicle over MAVLink, against the cascaded-PID expert on the same seeds.

* Demos: `--demos N` (default 20) PID-expert episodes recorded first with `robotlearn record --device scripted`
  on the config's own env (its overrides: action scaling, reward), unless the config or an override names
  `demos=`; their CPU seconds (a child process) are reported apart from training's.
* Training: `configs/algos/<--config>` (default sac_quad_hover) in this process; CPU seconds are the
  process's own (`time.process_time`, all threads), wall seconds beside them (the machine is shared).
* Error: per episode, the RMS of the distance to the goal (the moving reference on QuadTrack) after
  `--settle` steps (2 s at 50 Hz); mean and worst over episodes, and crashes. The ratio column is the
  policy's RMS over the expert's on the same backend and seeds.
* MAVLink: `robotlearn emulate quadrotor --gap quad_gap` (heavier, weaker props, wind, 10 ms latency) in a
  child process on a free UDP port, driven by the production driver (`backend real`), real time, through
  the same `Rollout` that `robotlearn deploy` runs.
The last line is one JSON object.

    python bench/quad_sac.py [--config sac_quad_hover] [--steps N] [--demos 20] [--checkpoint DIR] [--episodes 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from udp_port import free_udp_port

from robotlearn.core.config import load_config, parse_overrides
from robotlearn.policies import load_policy, read_config
from robotlearn.policies.sac.config import SACConfig
from robotlearn.policies.sac.train import train
from robotlearn.rollout import ActionSource, CallbackSink, PolicySource, Rollout, checkpoint_recipe
from robotlearn.teleop.quad_expert import QuadExpert


class ExpertSource(ActionSource):
    """The cascaded-PID expert as an action source (the baseline)."""

    def __init__(self, env):
        self.expert = QuadExpert(env)

    def reset(self, obs) -> None:
        self.expert.reset(obs)

    def act(self, obs):
        return self.expert.act(obs), "expert"


def rms_errors(env, source: ActionSource, episodes: int, seed: int, settle: int) -> dict:
    """Per-episode RMS distance after `settle` steps; crashes counted (their RMS covers what was flown)."""
    dists: list[list[float]] = [[]]
    crashes = []

    def on_step(tr) -> None:
        dists[-1].append(tr.info["distance"])
        if tr.terminated:
            crashes.append(True)

    sink = CallbackSink(on_step, lambda stats: dists.append([]))
    Rollout(env, source, [sink]).run(episodes, seed=seed)
    rms = [float(np.sqrt(np.mean(np.square(d[settle:] or d[-1:])))) for d in dists[:episodes]]
    return {"rms_cm_mean": round(100 * float(np.mean(rms)), 2), "rms_cm_max": round(100 * float(np.max(rms)), 2),
            "crashes": len(crashes), "episodes": episodes}



@contextlib.contextmanager
def emulated_vehicle(gap: str):
    port = free_udp_port()
    cmd = [sys.executable, "-m", "robotlearn.cli.emulate_quadrotor", "--mavlink", f"udpout:127.0.0.1:{port}",
           "--gap", gap]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"udpin:127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def record_demos(cfg: SACConfig, episodes: int, out: Path) -> float:
    """`robotlearn record` of the PID expert on the config's env; returns the child's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "robotlearn.cli.main", "record", "--env", cfg.env, "--backend", cfg.backend,
           "--device", "scripted", "--episodes", str(episodes), "--out", str(out), "--realtime", "off",
           *cfg.env_overrides]
    for key, value in cfg.backend_options.items():
        cmd += ["--backend-opt", f"{key}={value}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def measure(checkpoint: str, episodes: int, mavlink_episodes: int, settle: int, gap: str) -> dict:
    recipe = checkpoint_recipe(read_config(checkpoint), checkpoint)
    policy = load_policy(checkpoint)
    out = {}
    targets = [("mujoco", {}, episodes), ("pybullet", {}, episodes)]
    for backend, options, n in targets:
        env = recipe.with_backend(backend, options).make()
        try:
            out[backend] = {"sac": rms_errors(env, PolicySource(policy), n, 5000, settle),
                            "expert": rms_errors(env, ExpertSource(env), n, 5000, settle)}
        finally:
            env.close()
    if mavlink_episodes:
        # one vehicle per source: a crashed vehicle (on its back on the floor) cannot take off again
        out["mavlink"] = {}
        for name in ("expert", "sac"):
            with emulated_vehicle(gap) as connection:
                env = recipe.with_backend("real", {"connection": connection}).make()
                try:
                    source = ExpertSource(env) if name == "expert" else PolicySource(policy)
                    out["mavlink"][name] = rms_errors(env, source, mavlink_episodes, 5000, settle)
                except (TimeoutError, ConnectionError, RuntimeError) as err:  # report, keep the other figures
                    out["mavlink"][name] = {"error": str(err), "rms_cm_mean": float("nan"), "rms_cm_max": float("nan"),
                                            "crashes": -1, "episodes": mavlink_episodes}
                finally:
                    env.close()
    for result in out.values():
        result["ratio_sac_over_expert"] = round(result["sac"]["rms_cm_mean"] / max(result["expert"]["rms_cm_mean"],
                                                                                    1e-9), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sac_quad_hover")
    parser.add_argument("--steps", type=int, help="override the config's total_steps")
    parser.add_argument("--demos", type=int, default=20, help="expert episodes to record for RLPD (0: none)")
    parser.add_argument("--checkpoint", help="measure this checkpoint instead of training one")
    parser.add_argument("--out", default="runs/bench-quad-sac")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per sim")
    parser.add_argument("--mavlink-episodes", type=int, default=3, help="episodes on the emulated vehicle (real time)")
    parser.add_argument("--settle", type=int, default=100, help="steps before the error counts (2 s at 50 Hz)")
    parser.add_argument("--gap", default="quad_gap", help="the emulated vehicle's reality gap")
    parser.add_argument("overrides", nargs="*", help="SAC config key=value overrides")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result: dict = {"config": args.config}
    checkpoint = args.checkpoint
    if checkpoint is None:
        overrides = parse_overrides(args.overrides)
        if args.steps:
            overrides["total_steps"] = args.steps
        cfg = load_config(SACConfig, "algos", args.config, overrides)
        if cfg.demos is None and args.demos:
            demo_dir = Path(args.out) / "demos"
            if demo_dir.exists():
                raise SystemExit(f"{demo_dir} exists: remove it or pass demos={demo_dir}")
            result["demos"] = {"episodes": args.demos, "cpu_s": round(record_demos(cfg, args.demos, demo_dir), 1)}
            cfg.demos = str(demo_dir)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        trained = train(cfg, Path(args.out), progress_bar=False)
        result["train"] = {"steps": trained["steps"], "cpu_s": round(time.process_time() - cpu0, 1),
                           "wall_s": round(time.perf_counter() - wall0, 1), "eval_success": trained["eval_success"]}
        print(f"trained {trained['steps']} steps: {result['train']['cpu_s']:.0f} CPU s, "
              f"{result['train']['wall_s']:.0f} wall s")
        checkpoint = trained["checkpoint"]
    result.update(measure(checkpoint, args.episodes, args.mavlink_episodes, args.settle, args.gap))
    for backend in ("mujoco", "pybullet", "mavlink"):
        if backend in result:
            r = result[backend]
            print(f"{backend:9s} SAC {r['sac']['rms_cm_mean']:6.2f} cm (max {r['sac']['rms_cm_max']:.2f}, "
                  f"{r['sac']['crashes']} crashes)  expert {r['expert']['rms_cm_mean']:6.2f} cm  "
                  f"ratio {r['ratio_sac_over_expert']:.2f}")
    if "mujoco" in result:
        for backend in ("pybullet", "mavlink"):
            if backend in result:
                result[f"{backend}_over_mujoco_sac"] = round(result[backend]["sac"]["rms_cm_mean"]
                                                             / max(result["mujoco"]["sac"]["rms_cm_mean"], 1e-9), 2)
    result["loadavg"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

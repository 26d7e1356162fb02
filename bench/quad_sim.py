"""Quadrotor sims: cost of our per-tick drive over the raw engine, real-time factor, cross-engine
agreement and expert hover/track error.

* Throughput: control steps/s of `backend.advance()` (Python tick loop: read state -> compiled
  QuadDrive.compute -> apply wrench -> engine step) against stepping the raw engine for the same
  number of physics ticks with a constant wrench, in the same run (rounds alternate; best kept).
* Agreement: max |MuJoCo - PyBullet| over pos/quat/vel/omega for 1 s of random open-loop motor commands
  from a spinning start (the two engines integrate the same wrench on the same rigid body).
* Expert: hover RMS (after 2 s settling, over 3 s) and figure-eight RMS per backend and airframe.
The last line is one JSON object.

    python bench/quad_sim.py [--steps 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time

import mujoco
import numpy as np
import pybullet as pb

from robotlearn.core.robot_config import load_robot_spec
from robotlearn.envs import make_env
from robotlearn.sim.quad_mujoco import MujocoQuadBackend
from robotlearn.sim.quad_pybullet import PybulletQuadBackend
from robotlearn.teleop.quad_expert import QuadExpert

BACKENDS = {"mujoco": MujocoQuadBackend, "pybullet": PybulletQuadBackend}


def raw_engine(backend, ticks: int) -> None:
    """The same physics ticks with a fixed wrench and no drive: the engine's own cost."""
    if isinstance(backend, MujocoQuadBackend):
        backend.data.xfrc_applied[backend._body, 2] = backend.airframe.mass * 9.81
        mujoco.mj_step(backend.model, backend.data, ticks)
        return
    c = backend.client
    for _ in range(ticks):
        pb.applyExternalForce(backend.body, -1, [0, 0, backend.airframe.mass * 9.81], [0, 0, 0], pb.WORLD_FRAME,
                              physicsClientId=c)
        pb.stepSimulation(physicsClientId=c)


def throughput(name: str, steps: int, rounds: int) -> dict:
    spec = load_robot_spec("cf2x")
    backend = BACKENDS[name](spec)
    best_drive = best_raw = float("inf")
    for _ in range(rounds):
        backend.reset(None, {"pos": np.array([0.0, 0.0, 1.0])})
        backend.command(np.array([backend.airframe.hover_thrust, 0.0, 0.0, 0.0]))
        t = time.perf_counter()
        for _ in range(steps):
            backend.advance()
        best_drive = min(best_drive, time.perf_counter() - t)
        backend.reset(None, {"pos": np.array([0.0, 0.0, 1.0])})
        t = time.perf_counter()
        for _ in range(steps):
            raw_engine(backend, backend.ticks)
        best_raw = min(best_raw, time.perf_counter() - t)
    backend.close()
    return {"steps_per_s": steps / best_drive, "raw_steps_per_s": steps / best_raw,
            "cost_vs_raw_engine": best_drive / best_raw, "realtime_factor": steps / spec.control_hz / best_drive}


def agreement(robot: str) -> float:
    spec, trajectories = load_robot_spec(robot), []
    for cls in BACKENDS.values():
        backend = cls(spec)
        backend.reset(None, {"pos": np.array([0.0, 0.0, 5.0]), "omega": np.array([2.0, -1.0, 6.0])})
        seq = np.clip(backend.airframe.hover_thrust * (1 + 0.1 * np.random.default_rng(1).standard_normal((50, 4))),
                      0, 1)
        trajectories.append(backend.play_motor_commands(seq))
        backend.close()
    return float(np.abs(trajectories[0] - trajectories[1]).max())


def expert_rms(task: str, backend: str, robot: str, settle: int = 100, measure: int = 150) -> float:
    env = make_env(task, backend=backend, overrides=[f"robot={robot}"])
    expert, errors = QuadExpert(env), []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        expert.reset(obs)
        for k in range(settle + measure):
            obs, _, _, _, info = env.step(expert.act(obs))
            if k >= settle:
                errors.append(info["distance"])
    env.close()
    return float(np.sqrt(np.mean(np.square(errors))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    out: dict = {}
    for name in BACKENDS:
        r = throughput(name, args.steps, args.rounds)
        out[f"{name}_steps_per_s"] = round(r["steps_per_s"], 1)
        out[f"{name}_cost_vs_raw_engine"] = round(r["cost_vs_raw_engine"], 2)
        out[f"{name}_realtime_factor"] = round(r["realtime_factor"], 1)
        print(f"{name}: {r['steps_per_s']:.0f} control steps/s = {r['realtime_factor']:.1f}x real time; "
              f"{r['cost_vs_raw_engine']:.2f}x the raw engine ({r['raw_steps_per_s']:.0f} steps/s)")
    for robot in ("cf2x", "iris"):
        out[f"agreement_max_abs_{robot}"] = agreement(robot)
        print(f"{robot}: max |mujoco - pybullet| over 1 s open loop = {out[f'agreement_max_abs_{robot}']:.1e}")
        for backend in BACKENDS:
            for task in ("quad_hover", "quad_track"):
                key = f"{task}_rms_cm_{backend}_{robot}"
                out[key] = round(100 * expert_rms(task, backend, robot), 2)
                print(f"{task} expert RMS on {backend}/{robot}: {out[key]:.2f} cm")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

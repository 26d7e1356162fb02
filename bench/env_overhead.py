"""What the sim backends and the env cost on top of the physics engine they wrap.

For each backend: control steps/s of `backend.command + advance` (the compiled servo drive running every
physics tick) against stepping the raw engine, with no controller, for the same number of physics ticks
over the same states in the same run. MuJoCo: `mj_step(m, d, ticks_per_step)` from each control step's
recorded state with the motor torques frozen at their recorded values (restoring the state costs ~3 us per
50 ticks); gravity off instead would let MuJoCo skip its constraint solver and flatter the baseline by
~40%. PyBullet: a `stepSimulation` loop with gravity off, so the arm stays put without torques while the
cube still sits on the table and the joint-friction motors stay in the solver (Bullet runs its fixed
solver iterations either way). The same for a full
`env.step` of ArmReach in both action modes (ee_delta adds IK; observation, reward); and camera frames/s at 84x84 and 224x224.
Rounds alternate between the measured loops and their baselines and the best of each is kept, which
is what makes the ratios usable on a busy machine. The env runs seeded ArmReach episodes (reset every
max_episode_steps, resets not timed); its MuJoCo baseline replays the states those episodes visited. The last line is one JSON object.

    python bench/env_overhead.py [--steps 100] [--rounds 5] [--backends mujoco pybullet]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import mujoco
import numpy as np
import pybullet as pb

from robotlearn.core.robot_config import load_robot_spec
from robotlearn.envs import make_env
from robotlearn.sim.mujoco_arm import MujocoArmBackend
from robotlearn.sim.pybullet_arm import PybulletArmBackend

BACKENDS = {"mujoco": MujocoArmBackend, "pybullet": PybulletArmBackend}
ACTION_MODES = ("ee_delta", "joint_delta")  # ee_delta adds the IK solve to every step
HOLD = np.array([0.0, 0.5, -0.1, 0.0, 1.1, 0.0, 0.04, 0.04])  # gripper down, TCP ~6 cm over the table


def best_time(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def raw_stepper(backend, recorded: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """A function stepping `backend`'s engine with no controller through the recorded control steps."""
    ticks = backend.spec.ticks_per_step
    if isinstance(backend, MujocoArmBackend):
        m, d = backend.model, backend.data

        def run_mujoco() -> None:
            for qpos, qvel, ctrl in recorded:
                d.qpos[:], d.qvel[:], d.ctrl[:] = qpos, qvel, ctrl
                mujoco.mj_step(m, d, ticks)
        return run_mujoco
    pb.setGravity(0, 0, 0, physicsClientId=backend.client)
    step, client, total = pb.stepSimulation, backend.client, ticks * len(recorded)

    def run_pybullet() -> None:
        for _ in range(total):
            step(physicsClientId=client)
    return run_pybullet


def record_states(backend) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MuJoCo state and motor torques at a control step (PyBullet needs none: it is stepped unforced)."""
    if isinstance(backend, MujocoArmBackend):
        return backend.data.qpos.copy(), backend.data.qvel.copy(), backend.data.ctrl.copy()
    return np.zeros(0), np.zeros(0), np.zeros(0)


def bench_backend(name: str, steps: int, rounds: int) -> dict:
    spec = load_robot_spec("arm6")
    cls = BACKENDS[name]
    backend, raw = cls(spec), cls(spec)
    for b in (backend, raw):
        b.reset(np.random.default_rng(0), {"joint_pos": HOLD})
    sweep = [HOLD + 0.05 * np.sin(0.3 * k) * np.r_[np.ones(6), 0, 0] for k in range(steps)]

    def drive_loop(record: list | None = None) -> float:
        backend.reset(np.random.default_rng(0), {"joint_pos": HOLD})
        start = time.perf_counter()
        for target in sweep:
            if record is not None:
                record.append(record_states(backend))
            backend.command(target)
            backend.advance()
        return time.perf_counter() - start

    def make_env_loop(action_mode: str):
        env = make_env("arm_reach", backend=name, overrides=[f"action_mode={action_mode}"])
        horizon = env.task.max_episode_steps
        env.reset(seed=0)
        env.action_space.seed(0)
        actions = [env.action_space.sample() * 0.3 for _ in range(steps)]

        def env_loop(record: list | None = None) -> float:
            """Seeded episodes of the same actions; only env.step is timed, resets are not."""
            elapsed = 0.0
            for k, action in enumerate(actions):
                if k % horizon == 0:
                    env.reset(seed=k)
                if record is not None:
                    record.append(record_states(env.backend))
                start = time.perf_counter()
                env.step(action)
                elapsed += time.perf_counter() - start
            return elapsed

        return env, env_loop

    # untimed passes recording the states the raw engine is stepped from (same seeds -> same episodes)
    drive_states = []
    drive_loop(drive_states)
    loops = {"drive": (drive_loop, raw_stepper(raw, drive_states))}
    envs = []
    for mode in ACTION_MODES:
        env, env_loop = make_env_loop(mode)
        states: list = []
        env_loop(states)
        loops[f"env_{mode}"] = (env_loop, raw_stepper(raw, states))
        envs.append(env)
    t: dict[str, list[float]] = {k: [] for name_ in loops for k in (name_, f"raw_{name_}")}
    for _ in range(rounds):  # interleaved, best of each
        for key, (measured, baseline) in loops.items():
            t[key].append(measured())
            t[f"raw_{key}"].append(best_time(baseline, 1))
    for env in envs:
        env.close()
    best = {k: min(v) for k, v in t.items()}

    fps = {}
    for size in (84, 224):
        cams = tuple(dataclasses.replace(c, width=size, height=size) for c in spec.cameras)
        cam_backend = cls(dataclasses.replace(spec, cameras=cams))
        cam_backend.reset(np.random.default_rng(0), {"joint_pos": HOLD})
        for cam in ("scene", "wrist"):
            cam_backend.render(cam)  # context creation / warm-up
            frames = 20 if size == 84 else 10
            fps[f"{cam}_{size}"] = frames / best_time(
                lambda b=cam_backend, c=cam, k=frames: [b.render(c) for _ in range(k)], rounds)
        cam_backend.close()
    for b in (backend, raw):
        b.close()
    return {
        "control_steps": steps, "ticks_per_step": spec.ticks_per_step,
        "backend_steps_per_s": steps / best["drive"], "raw_engine_steps_per_s": steps / best["raw_drive"],
        "backend_overhead_ratio": best["drive"] / best["raw_drive"],
        **{f"env_{m}_steps_per_s": steps / best[f"env_{m}"] for m in ACTION_MODES},
        **{f"env_{m}_overhead_ratio": best[f"env_{m}"] / best[f"raw_env_{m}"] for m in ACTION_MODES},
        "raw_engine_us_per_tick": 1e6 * best["raw_drive"] / (steps * spec.ticks_per_step),
        "frames_per_s": fps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="control steps per timed loop")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions; the best is kept")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    args = parser.parse_args()
    results = {}
    for name in args.backends:
        r = results[name] = bench_backend(name, args.steps, args.rounds)
        print(f"{name:9s} backend {r['backend_steps_per_s']:7.1f} steps/s  raw engine {r['raw_engine_steps_per_s']:7.1f}"
              f"  ratio {r['backend_overhead_ratio']:.3f} | raw {r['raw_engine_us_per_tick']:.1f} us/tick")
        for m in ACTION_MODES:
            print(" " * 10 + f"env.step ({m:11s}) {r[f'env_{m}_steps_per_s']:7.1f}/s"
                  f"  ratio {r[f'env_{m}_overhead_ratio']:.3f}")
        print(" " * 10 + "camera frames/s: " + "  ".join(f"{k} {v:.0f}" for k, v in r["frames_per_s"].items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

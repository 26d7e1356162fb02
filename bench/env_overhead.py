"""What the sim backends and the env cost on top of the physics engine they wrap.

For each backend, three measured loops, each against a raw-engine baseline doing the same physics with no
controller and no env, in the same run:
  * drive: `backend.command + advance` (the compiled servo drive running every physics tick);
  * env_joint_delta / env_ee_delta: a full `env.step` of seeded ArmReach episodes (resets every
    max_episode_steps, not timed) in each action mode (ee_delta adds the IK solve; observation, reward).
Raw baselines. MuJoCo: `mj_step(m, d, ticks_per_step)` from each control step's recorded state with the
motor torques frozen at their recorded values (restoring the state costs ~3 us per 50 ticks; gravity off
instead would let MuJoCo skip its constraint solver and flatter the baseline). PyBullet: the joint torques
the drive applied, recorded per tick, replayed open loop from the same reset (Bullet rebuilds the world on
reset, so this reproduces the same motion: `replay_max_error_rad` checks it) with the plain pybullet API,
`setJointMotorControlArray(TORQUE_CONTROL) + stepSimulation` per tick - the least any PyBullet user
stepping torques pays. The earlier PyBullet baseline, a `stepSimulation` loop over an unforced arm with
gravity off (the cube still on the table), is kept as `*_over_unforced`: Bullet's solver does less for a
resting, weightless arm than for a loaded moving one, so that ratio includes physics the drive does not add.

Each measured loop and its baseline run back to back, and the loops alternate, for `--rounds` rounds; the
figures are median [min, max] over rounds of the per-round ratio, so a load change hits both sides of a
ratio alike. All of it runs twice: idle, and with `--hogs` busy-loop processes this script starts. Other
agents share the machine: load average and steal time per condition are in the JSON. `ee_over_joint`
is env_ee_delta / env_joint_delta step time, with the joint_delta actions derived from the ee_delta
episodes' joint targets so both step the same physics (`ee_joint_same_path_error_rad` checks it); also
given as the ratio of their overhead ratios. Camera frames/s at 84x84 and 224x224 come last (idle).

    python bench/env_overhead.py [--steps 100] [--rounds 5] [--hogs 2] [--backends mujoco pybullet]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mujoco
import numpy as np
import pybullet as pb

from robotlearn.core.robot_config import load_robot_spec
from robotlearn.envs import make_env
from robotlearn.sim.mujoco_arm import MujocoArmBackend
from robotlearn.sim.pybullet_arm import PybulletArmBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import CpuHogs, MachineSample, loadavg, spread  # noqa: E402

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


@dataclasses.dataclass
class Episode:
    """One measured loop: its reset (untimed, before step k when k % horizon == 0) and its control step."""

    reset: Callable[[int], None]
    horizon: int
    step: Callable[[int], None]
    steps: int
    replay_error: float = 0.0  # PyBullet: largest joint difference between the loop and its torque replay

    def measured(self) -> float:
        elapsed = 0.0
        for k in range(self.steps):
            if k % self.horizon == 0:
                self.reset(k)
            start = time.perf_counter()
            self.step(k)
            elapsed += time.perf_counter() - start
        return elapsed


def mujoco_baseline(ep: Episode, backend: MujocoArmBackend, raw: MujocoArmBackend) -> Callable[[], float]:
    """Untimed pass recording each control step's state and torques; returns the raw baseline."""
    recorded = []
    for k in range(ep.steps):
        if k % ep.horizon == 0:
            ep.reset(k)
        d = backend.data
        state = (d.qpos.copy(), d.qvel.copy())
        ep.step(k)
        recorded.append((*state, d.ctrl.copy()))  # ctrl: the torques of this control step's last tick
    m, d, ticks = raw.model, raw.data, raw.spec.ticks_per_step

    def run() -> float:
        start = time.perf_counter()
        for qpos, qvel, ctrl in recorded:
            d.qpos[:], d.qvel[:], d.ctrl[:] = qpos, qvel, ctrl
            mujoco.mj_step(m, d, ticks)
        return time.perf_counter() - start
    return run


def pybullet_baseline(ep: Episode, backend: PybulletArmBackend) -> Callable[[], float]:
    """Untimed pass recording the per-tick torques the drive applied; returns their open-loop replay."""
    n = len(backend.spec.joints)
    torques, final_q = [], []
    for k in range(ep.steps):
        if k % ep.horizon == 0:
            ep.reset(k)
        ep.step(k)
        torques.append(backend._stepper.applied_torques.reshape(-1, n).tolist())
        final_q.append(backend.read()["joint_pos"])
    set_torques, step, mode = pb.setJointMotorControlArray, pb.stepSimulation, pb.TORQUE_CONTROL

    def run() -> float:
        elapsed, error = 0.0, 0.0
        for k, ticks in enumerate(torques):
            if k % ep.horizon == 0:
                ep.reset(k)
            c, robot, idx = backend.client, backend.robot, backend._idx
            start = time.perf_counter()
            for forces in ticks:
                set_torques(robot, idx, mode, forces=forces, physicsClientId=c)
                step(physicsClientId=c)
            elapsed += time.perf_counter() - start
            error = max(error, float(np.max(np.abs(backend.read()["joint_pos"] - final_q[k]))))
        ep.replay_error = max(ep.replay_error, error)
        return elapsed
    return run


def unforced_stepping(spec, total_ticks: int) -> tuple[Callable[[], float], PybulletArmBackend]:
    """The earlier PyBullet baseline: stepSimulation with gravity off, so the arm stays put with no torques."""
    raw = PybulletArmBackend(spec)
    raw.reset(np.random.default_rng(0), {"joint_pos": HOLD})
    pb.setGravity(0, 0, 0, physicsClientId=raw.client)
    step, client = pb.stepSimulation, raw.client

    def run() -> float:
        start = time.perf_counter()
        for _ in range(total_ticks):
            step(physicsClientId=client)
        return time.perf_counter() - start
    return run, raw


def same_path_actions(ee_env, jd_env, ee_actions: list) -> tuple[list, float]:
    """joint_delta actions that give the joint targets the ee_delta episodes produced, so both modes step
    the same physics and their step times differ by what ee_delta adds (IK, goal bookkeeping); and how far
    the two runs' joint paths end up apart (untimed passes)."""
    horizon = ee_env.unwrapped.task.max_episode_steps
    robot = ee_env.unwrapped.robot
    deltas, paths = [], []
    for k, a in enumerate(ee_actions):
        if k % horizon == 0:
            ee_env.reset(seed=k)
        before = robot.joint_target
        obs, *_ = ee_env.step(a)
        paths.append(obs["joint_pos"])
        deltas.append(robot.joint_target - before)
    # IK may move a joint further in one step than joint_delta's default scale allows: widen the scale
    # (only the action's normalization; the joint env's limits and lead clipping are unchanged)
    jd_robot = jd_env.unwrapped.robot
    jd_robot.p["max_joint_delta"] = max(jd_robot.p["max_joint_delta"], max(float(np.max(np.abs(d))) for d in deltas))
    actions = [np.r_[d / jd_robot.p["max_joint_delta"], a[-1]] for d, a in zip(deltas, ee_actions, strict=True)]
    error = 0.0
    for k, a in enumerate(actions):
        if k % horizon == 0:
            jd_env.reset(seed=k)
        obs, *_ = jd_env.step(a)
        error = max(error, float(np.max(np.abs(obs["joint_pos"] - paths[k]))))
    return actions, error


def build_loops(name: str, steps: int) -> tuple[dict[str, tuple[Episode, Callable[[], float]]], list, dict]:
    """{loop: (measured episode, raw baseline)} for one backend, what to close afterwards, and checks."""
    spec = load_robot_spec("arm6")
    cls = BACKENDS[name]
    backend = cls(spec)
    sweep = [HOLD + 0.05 * np.sin(0.3 * k) * np.r_[np.ones(6), 0, 0] for k in range(steps)]

    def drive_step(k: int) -> None:
        backend.command(sweep[k])
        backend.advance()

    episodes = {"drive": (Episode(lambda k: backend.reset(np.random.default_rng(0), {"joint_pos": HOLD}), steps,
                                  drive_step, steps), backend)}
    closers: list = [backend]
    ee_env, ee_actions = make_env("arm_reach", backend=name, overrides=["action_mode=ee_delta"]), []
    ee_env.reset(seed=0)
    ee_env.action_space.seed(0)
    ee_actions = [ee_env.action_space.sample() * 0.3 for _ in range(steps)]
    jd_env = make_env("arm_reach", backend=name, overrides=["action_mode=joint_delta"])
    jd_actions, path_error = same_path_actions(ee_env, jd_env, ee_actions)
    for mode, env, actions in (("ee_delta", ee_env, ee_actions), ("joint_delta", jd_env, jd_actions)):
        episodes[f"env_{mode}"] = (Episode(lambda k, env=env: env.reset(seed=k), env.unwrapped.task.max_episode_steps,
                                           lambda k, env=env, a=actions: env.step(a[k]), steps),
                                   env.unwrapped.backend)
        closers.append(env)
    info = {"ee_joint_same_path_error_rad": path_error}
    if name == "mujoco":
        raw = cls(spec)
        closers.append(raw)
        return {k: (ep, mujoco_baseline(ep, b, raw)) for k, (ep, b) in episodes.items()}, closers, info
    return {k: (ep, pybullet_baseline(ep, b)) for k, (ep, b) in episodes.items()}, closers, info


def measure(loops: dict, rounds: int, hogs: int, unforced: Callable[[], float] | None = None) -> dict:
    """`rounds` rounds of every (measured, baseline) pair back to back, with `hogs` busy processes running."""
    t: dict[str, list[float]] = {k: [] for name in loops for k in (name, f"raw_{name}")}
    t["unforced"] = []
    with CpuHogs(hogs):
        machine = MachineSample()
        for _ in range(rounds):
            for key, (ep, baseline) in loops.items():
                t[key].append(ep.measured())
                t[f"raw_{key}"].append(baseline())
            if unforced is not None:
                t["unforced"].append(unforced())
        machine.finish()
    steps = next(iter(loops.values()))[0].steps
    ratio = {k: np.array(t[k]) / np.array(t[f"raw_{k}"]) for k in loops}
    out = {"hogs": hogs, "machine": machine.as_dict(),
           **{f"{k}_overhead_ratio": spread(r) for k, r in ratio.items()},
           **{f"{k}_steps_per_s": spread(steps / np.array(t[k])) for k in loops},
           **{f"raw_{k}_steps_per_s": spread(steps / np.array(t[f"raw_{k}"])) for k in loops},
           "ee_over_joint_step_time": spread(np.array(t["env_ee_delta"]) / np.array(t["env_joint_delta"])),
           "ee_over_joint_overhead": spread(ratio["env_ee_delta"] / ratio["env_joint_delta"])}
    if unforced is not None:
        out.update({f"{k}_over_unforced": spread(np.array(t[k]) / np.array(t["unforced"])) for k in loops})
    return out


def camera_fps(name: str, rounds: int) -> dict:
    spec = load_robot_spec("arm6")
    fps = {}
    for size in (84, 224):
        cams = tuple(dataclasses.replace(c, width=size, height=size) for c in spec.cameras)
        cam_backend = BACKENDS[name](dataclasses.replace(spec, cameras=cams))
        cam_backend.reset(np.random.default_rng(0), {"joint_pos": HOLD})
        for cam in ("scene", "wrist"):
            cam_backend.render(cam)  # context creation / warm-up
            frames = 20 if size == 84 else 10
            fps[f"{cam}_{size}"] = frames / best_time(
                lambda b=cam_backend, c=cam, k=frames: [b.render(c) for _ in range(k)], rounds)
        cam_backend.close()
    return fps


def bench_backend(name: str, steps: int, rounds: int, hogs: int) -> dict:
    spec = load_robot_spec("arm6")
    loops, closers, info = build_loops(name, steps)
    unforced = None
    if name == "pybullet":
        unforced, raw = unforced_stepping(spec, steps * spec.ticks_per_step)
        closers.append(raw)
    result = {"control_steps": steps, "ticks_per_step": spec.ticks_per_step, "rounds": rounds, **info,
              "idle": measure(loops, rounds, 0, unforced), "load": measure(loops, rounds, hogs, unforced)}
    if name == "pybullet":
        result["replay_max_error_rad"] = max(ep.replay_error for ep, _ in loops.values())
    for c in closers:
        c.close()
    result["frames_per_s"] = camera_fps(name, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="control steps per timed loop (one segment)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per condition (>= 3)")
    parser.add_argument("--hogs", type=int, default=2, help="busy-loop processes of the loaded condition")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be >= 3 (a spread needs repetitions)")
    results = {}

    def fmt(x: dict) -> str:
        return f"{x['median']:.3f} [{x['min']:.3f}, {x['max']:.3f}]"

    for name in args.backends:
        r = results[name] = bench_backend(name, args.steps, args.rounds, args.hogs)
        print(f"{name}: {args.steps} control steps x {r['ticks_per_step']} ticks per segment, {args.rounds} "
              "interleaved rounds; ratio to the same-run raw engine, median [min, max]")
        for cond in ("idle", "load"):
            c = r[cond]
            m = c["machine"]
            print(f"  {cond} ({c['hogs']} busy processes; loadavg {m['loadavg_start'][0]:.2f} -> "
                  f"{m['loadavg_end'][0]:.2f}, steal {100 * m['steal_fraction']:.1f} %)")
            for loop in ("drive", "env_joint_delta", "env_ee_delta"):
                extra = f"  (over unforced stepping {fmt(c[f'{loop}_over_unforced'])})" \
                    if f"{loop}_over_unforced" in c else ""
                print(f"    {loop:16s} {c[f'{loop}_steps_per_s']['median']:7.1f} steps/s  "
                      f"ratio {fmt(c[f'{loop}_overhead_ratio'])}{extra}")
            print(f"    ee_delta / joint_delta step time {fmt(c['ee_over_joint_step_time'])}, "
                  f"overhead {fmt(c['ee_over_joint_overhead'])}")
        print(f"  joint_delta replays the ee_delta episodes' joint targets: paths agree to "
              f"{r['ee_joint_same_path_error_rad']:.1e} rad")
        if "replay_max_error_rad" in r:
            print(f"  torque replay reproduces the motion to {r['replay_max_error_rad']:.1e} rad")
        print("  camera frames/s: " + "  ".join(f"{k} {v:.0f}" for k, v in r["frames_per_s"].items()))
    results["loadavg"] = loadavg()
    results["steal_fraction"] = {f"{b}_{c}": results[b][c]["machine"]["steal_fraction"]
                                 for b in args.backends for c in ("idle", "load")}
    print(json.dumps(results))


if __name__ == "__main__":
    main()

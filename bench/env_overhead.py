"""What the sim backends and the env cost on top of the physics engine they wrap.

For each backend, three measured loops, each against a raw-engine baseline doing the same physics with no
controller and no env, in the same run:
  * drive: `backend.command + advance` (the compiled servo drive running every physics tick);
  * env_joint_delta / env_ee_delta: a full `env.step` of seeded ArmReach episodes (resets every
    max_episode_steps, not timed) in each action mode (ee_delta adds the IK solve; observation, reward).
    The joint_delta actions are derived from the ee_delta episodes' joint targets, so both modes step the
    same physics (`ee_joint_same_path_error_rad` checks it) and their step times differ only by what
    ee_delta adds: `ee_over_joint_step_time`.
Raw baselines. MuJoCo: `mj_step(m, d, ticks_per_step)` from each control step's recorded state with the
motor torques frozen at their recorded values (restoring the state costs ~3 us per 50 ticks; gravity off
instead would let MuJoCo skip its constraint solver and flatter the baseline). PyBullet: the joint torques
the drive applied, recorded per tick, replayed open loop on a twin world reset the same way (Bullet
rebuilds the world on reset, so the twin follows the same motion: `replay_max_error_rad` checks it) with
the plain pybullet API, `setJointMotorControlArray(TORQUE_CONTROL) + stepSimulation` per tick - the least
any PyBullet user stepping torques pays. The earlier PyBullet baseline, a `stepSimulation` loop over an
unforced arm with gravity off (the cube still on the table), is kept as `*_over_unforced`: Bullet's
solver does less for a resting, weightless arm than for a loaded moving one, so that ratio includes
physics the drive does not add.

Interleaving: the loops being compared advance in lockstep, one control step (1-5 ms) each in turn,
rotating who goes first, and each step is timed on its own; a round is `--steps` control steps, and the
figures are median [min, max] over `--rounds` rounds of the per-round ratio of summed times, so load
changes on this shared machine land on both sides of every ratio. All of it runs twice: idle, and with
`--hogs` busy-loop processes this script starts. Load average and steal time per condition are in the
JSON. Camera frames/s at 84x84 and 224x224 come last (idle).

    python bench/env_overhead.py [--steps 100] [--rounds 7] [--hogs 2] [--backends mujoco pybullet]

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
LOOPS = ("drive", "env_joint_delta", "env_ee_delta")
HOLD = np.array([0.0, 0.5, -0.1, 0.0, 1.1, 0.0, 0.04, 0.04])  # gripper down, TCP ~6 cm over the table


@dataclasses.dataclass
class Stepper:
    """One side of a comparison: an untimed reset before step k (when k % horizon == 0) and a timed step."""

    reset: Callable[[int], None]
    step: Callable[[int], None]


@dataclasses.dataclass
class Loop:
    """A measured loop: its backend, horizon, reset and step, plus what an untimed pass recorded."""

    backend: object
    horizon: int
    reset: Callable[[int], None]
    step: Callable[[int], None]
    make_twin: Callable[[], tuple[object, Callable[[int], None], object]] | None = None  # (backend, reset, closer)

    def record(self, steps: int) -> list:
        """Untimed pass: per control step, the MuJoCo state + torques, or the PyBullet per-tick torques."""
        out = []
        for k in range(steps):
            if k % self.horizon == 0:
                self.reset(k)
            b = self.backend
            if isinstance(b, MujocoArmBackend):
                state = (b.data.qpos.copy(), b.data.qvel.copy())
                self.step(k)
                out.append((*state, b.data.ctrl.copy()))  # ctrl: the torques of this step's last tick
            else:
                self.step(k)
                n = len(b.spec.joints)
                out.append((b._stepper.applied_torques.reshape(-1, n).tolist(), b.read()["joint_pos"]))
        return out


def mujoco_raw(raw: MujocoArmBackend, recorded: list) -> Stepper:
    m, d, ticks = raw.model, raw.data, raw.spec.ticks_per_step

    def step(k: int) -> None:
        qpos, qvel, ctrl = recorded[k]
        d.qpos[:], d.qvel[:], d.ctrl[:] = qpos, qvel, ctrl
        mujoco.mj_step(m, d, ticks)
    return Stepper(lambda k: None, step)


def pybullet_replay(twin: PybulletArmBackend, reset: Callable[[int], None], recorded: list, errors: list) -> Stepper:
    set_torques, step_sim, mode = pb.setJointMotorControlArray, pb.stepSimulation, pb.TORQUE_CONTROL

    last = [-1]  # the last step replayed since the twin's last reset

    def step(k: int) -> None:
        c, robot, idx = twin.client, twin.robot, twin._idx
        for forces in recorded[k][0]:
            set_torques(robot, idx, mode, forces=forces, physicsClientId=c)
            step_sim(physicsClientId=c)
        last[0] = k

    def checked_reset(k: int) -> None:
        if last[0] >= 0:  # untimed: where the twin ended up vs where the measured loop was at that step
            errors.append(float(np.max(np.abs(twin.read()["joint_pos"] - recorded[last[0]][1]))))
        last[0] = -1
        reset(k)
    return Stepper(checked_reset, step)


def unforced_stepping(spec) -> tuple[Stepper, PybulletArmBackend]:
    """The earlier PyBullet baseline: stepSimulation with gravity off, so the arm stays put with no torques."""
    raw = PybulletArmBackend(spec)
    raw.reset(np.random.default_rng(0), {"joint_pos": HOLD})
    pb.setGravity(0, 0, 0, physicsClientId=raw.client)

    def step(k: int) -> None:
        for _ in range(spec.ticks_per_step):
            pb.stepSimulation(physicsClientId=raw.client)
    return Stepper(lambda k: None, step), raw


def same_path_actions(ee_env, jd_env, ee_actions: list) -> tuple[list, float]:
    """joint_delta actions that give the joint targets the ee_delta episodes produced, and how far the two
    runs' joint paths end up apart (untimed passes)."""
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


def build(name: str, steps: int) -> tuple[dict[str, tuple[Stepper, Stepper]], dict, list, dict]:
    """{loop: (measured, raw baseline)}, extra baselines, what to close, and the untimed checks/horizons."""
    spec = load_robot_spec("arm6")
    cls = BACKENDS[name]
    closers: list = []

    def new_backend():
        b = cls(spec)
        closers.append(b)
        return b

    def new_env(mode: str):
        env = make_env("arm_reach", backend=name, overrides=[f"action_mode={mode}"])
        closers.append(env)
        return env

    backend = new_backend()
    sweep = [HOLD + 0.05 * np.sin(0.3 * k) * np.r_[np.ones(6), 0, 0] for k in range(steps)]

    def drive_step(k: int, b=backend) -> None:
        b.command(sweep[k])
        b.advance()

    def drive_reset(k: int, b=backend) -> None:
        b.reset(np.random.default_rng(0), {"joint_pos": HOLD})

    def drive_twin():
        twin = new_backend()
        return twin, lambda k: twin.reset(np.random.default_rng(0), {"joint_pos": HOLD})

    loops = {"drive": Loop(backend, steps, drive_reset, drive_step, drive_twin)}
    ee_env = new_env("ee_delta")
    ee_env.reset(seed=0)
    ee_env.action_space.seed(0)
    actions = {"ee_delta": [ee_env.action_space.sample() * 0.3 for _ in range(steps)]}
    jd_env = new_env("joint_delta")
    actions["joint_delta"], path_error = same_path_actions(ee_env, jd_env, actions["ee_delta"])
    for mode, env in (("joint_delta", jd_env), ("ee_delta", ee_env)):
        def env_twin(mode=mode):
            twin = new_env(mode)
            return twin.unwrapped.backend, lambda k: twin.reset(seed=k)
        loops[f"env_{mode}"] = Loop(env.unwrapped.backend, env.unwrapped.task.max_episode_steps,
                                    lambda k, env=env: env.reset(seed=k),
                                    lambda k, env=env, a=actions[mode]: env.step(a[k]), env_twin)
    info: dict = {"ee_joint_same_path_error_rad": path_error, "horizons": {k: lp.horizon for k, lp in loops.items()}}
    pairs, extra, errors = {}, {}, []
    raw = new_backend() if name == "mujoco" else None
    for key, loop in loops.items():
        recorded = loop.record(steps)
        measured = Stepper(loop.reset, loop.step)
        if raw is not None:
            pairs[key] = (measured, mujoco_raw(raw, recorded))
        else:
            twin, twin_reset = loop.make_twin()
            pairs[key] = (measured, pybullet_replay(twin, twin_reset, recorded, errors))
    if name == "pybullet":
        extra["unforced"], unforced_backend = unforced_stepping(spec)
        closers.append(unforced_backend)
        info["replay_errors"] = errors
    return pairs, extra, closers, info


def run_round(pairs: dict, extra: dict, horizons: dict, steps: int) -> dict[str, float]:
    """One round: within each loop, measured and baseline (and extra baselines) alternate per control step;
    the env loops also alternate with each other, so ee_delta and joint_delta see the same moments."""
    t: dict[str, float] = {}
    groups = [["drive"], ["env_joint_delta", "env_ee_delta"]]
    for group in groups:
        sides = [(f"{k}", pairs[k][0], horizons[k]) for k in group] + \
                [(f"raw_{k}", pairs[k][1], horizons[k]) for k in group]
        if group == ["drive"]:
            sides += [(name, s, steps) for name, s in extra.items()]
        for name, *_ in sides:
            t[name] = 0.0
        for k in range(steps):
            for _, s, horizon in sides:
                if k % horizon == 0:
                    s.reset(k)
            order = sides[k % len(sides):] + sides[:k % len(sides)]
            for name, s, _ in order:
                start = time.perf_counter()
                s.step(k)
                t[name] += time.perf_counter() - start
    return t


def measure(pairs: dict, extra: dict, horizons: dict, steps: int, rounds: int, hogs: int) -> dict:
    with CpuHogs(hogs):
        machine = MachineSample()
        runs = [run_round(pairs, extra, horizons, steps) for _ in range(rounds)]
        machine.finish()
    col = {k: np.array([r[k] for r in runs]) for k in runs[0]}
    out = {"hogs": hogs, "machine": machine.as_dict()}
    for k in LOOPS:
        out[f"{k}_overhead_ratio"] = spread(col[k] / col[f"raw_{k}"])
        out[f"{k}_steps_per_s"] = spread(steps / col[k])
        out[f"raw_{k}_steps_per_s"] = spread(steps / col[f"raw_{k}"])
        for name in extra:
            out[f"{k}_over_{name}"] = spread(col[k] / col[name])
    out["ee_over_joint_step_time"] = spread(col["env_ee_delta"] / col["env_joint_delta"])
    return out


def best_time(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


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
    pairs, extra, closers, info = build(name, steps)
    horizons = info["horizons"]
    result = {"control_steps": steps, "ticks_per_step": spec.ticks_per_step, "rounds": rounds,
              "idle": measure(pairs, extra, horizons, steps, rounds, 0),
              "load": measure(pairs, extra, horizons, steps, rounds, hogs)}
    result["ee_joint_same_path_error_rad"] = info["ee_joint_same_path_error_rad"]
    if "replay_errors" in info:
        result["replay_max_error_rad"] = max(info["replay_errors"], default=0.0)
    for c in closers:
        c.close()
    result["frames_per_s"] = camera_fps(name, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="control steps per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per condition (>= 3)")
    parser.add_argument("--hogs", type=int, default=2, help="busy-loop processes of the loaded condition")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be >= 3 (a spread needs repetitions)")

    def fmt(x: dict) -> str:
        return f"{x['median']:.3f} [{x['min']:.3f}, {x['max']:.3f}]"

    results = {}
    for name in args.backends:
        r = results[name] = bench_backend(name, args.steps, args.rounds, args.hogs)
        print(f"{name}: {args.rounds} rounds of {args.steps} control steps x {r['ticks_per_step']} ticks, "
              "interleaved per control step; median [min, max] over rounds")
        for cond in ("idle", "load"):
            c = r[cond]
            m = c["machine"]
            print(f"  {cond} ({c['hogs']} busy processes; loadavg {m['loadavg_start'][0]:.2f} -> "
                  f"{m['loadavg_end'][0]:.2f}, steal {100 * m['steal_fraction']:.1f} %)")
            for loop in LOOPS:
                extra = f"  (over unforced stepping {fmt(c[f'{loop}_over_unforced'])})" \
                    if f"{loop}_over_unforced" in c else ""
                print(f"    {loop:16s} {c[f'{loop}_steps_per_s']['median']:7.1f} steps/s  "
                      f"ratio to raw {fmt(c[f'{loop}_overhead_ratio'])}{extra}")
            print(f"    ee_delta / joint_delta step time {fmt(c['ee_over_joint_step_time'])}")
        print(f"  joint_delta follows the ee_delta episodes' joint targets to {r['ee_joint_same_path_error_rad']:.1e} rad")
        if "replay_max_error_rad" in r:
            print(f"  the torque replay follows the drive to {r['replay_max_error_rad']:.1e} rad")
        print("  camera frames/s: " + "  ".join(f"{k} {v:.0f}" for k, v in r["frames_per_s"].items()))
    results["loadavg"] = loadavg()
    results["steal_fraction"] = {f"{b}_{c}": results[b][c]["machine"]["steal_fraction"]
                                 for b in args.backends for c in ("idle", "load")}
    print(json.dumps(results))


if __name__ == "__main__":
    main()

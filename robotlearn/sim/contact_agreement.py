"""How far MuJoCo and PyBullet disagree on contact, measured on identical joint-target streams.

A scripted grasp-lift-place is run once in MuJoCo and its joint targets (what the compiled drive
receives, fingers included) are replayed open loop on a fresh backend of each sim from the same start:
any difference in where the cube goes is then the engines' contact handling (friction, softness,
gripper squeeze), not the policy or the expert reacting to it. The slip probe holds the lifted cube
with a chosen finger squeeze and measures how far it slides down. bench/sim_contact.py runs it over
many seeds; tests/test_sim_contact.py keeps the agreement within the stated tolerances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robotlearn.core.rotations import yaw_of
from robotlearn.envs import make_env

SIMS = ("mujoco", "pybullet")
LIFT_PHASE = 4  # PickPlaceExpert phase after the lift: carrying the cube to the target


@dataclass(frozen=True)
class JointTrajectory:
    """A start state (joints, cube pose) and the joint targets commanded at each control step."""

    start: dict[str, np.ndarray]
    targets: np.ndarray  # (T, n_joints)
    lift_step: int       # first step of the carry phase (the cube is held above the table)
    expert_success: bool


class _RecordingBackend:
    """Delegates to a backend and keeps every joint target commanded through it."""

    def __init__(self, backend):
        self._backend, self.targets = backend, []

    def command(self, target: np.ndarray) -> None:
        self.targets.append(np.array(target, dtype=np.float64))
        self._backend.command(target)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def expert_trajectory(seed: int, sim: str = "mujoco") -> JointTrajectory:
    """The scripted pick-place expert's joint targets on `sim` for episode `seed`."""
    from robotlearn.teleop.scripted import PickPlaceExpert

    env = make_env("arm_pick_place", backend=sim, overrides=["action_mode=ee_pose"])
    try:
        recorder = _RecordingBackend(env.unwrapped.backend)
        env.unwrapped.backend = recorder
        expert = PickPlaceExpert(env)
        obs, _ = env.reset(seed=seed)
        expert.reset(obs)
        pos, quat = recorder.object_pose("cube")
        start = {"joint_pos": recorder.read()["joint_pos"].copy(), "object/cube/pos": pos, "object/cube/quat": quat}
        lift_step, info, done = -1, {}, False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            done = terminated or truncated
            if lift_step < 0 and expert.phase >= LIFT_PHASE:
                lift_step = len(recorder.targets)
        env.unwrapped.backend = recorder._backend
    finally:
        env.close()
    return JointTrajectory(start, np.array(recorder.targets), lift_step, bool(info.get("is_success")))


def replay_cube(sim: str, traj: JointTrajectory, steps: int | None = None) -> np.ndarray:
    """Replay the targets open loop on `sim`; rows of [cube x, y, z, yaw] after each control step."""
    env = make_env("arm_pick_place", backend=sim)
    backend = env.unwrapped.backend
    try:
        backend.reset(np.random.default_rng(0), traj.start)
        rows = []
        for target in traj.targets[:steps]:
            backend.command(target)
            backend.advance()
            pos, quat = backend.object_pose("cube")
            rows.append([*pos, yaw_of(quat)])
    finally:
        env.close()
    return np.array(rows)


def held_slip(sim: str, traj: JointTrajectory, squeeze: float, seconds: float = 1.0) -> float:
    """Lift the cube as the trajectory does, then hold it with each finger's target `squeeze` (m) inside the
    cube's face for `seconds`; returns how far the cube slid down (m). A dropped cube slides to the table."""
    env = make_env("arm_pick_place", backend=sim)
    backend = env.unwrapped.backend
    try:
        backend.reset(np.random.default_rng(0), traj.start)
        for target in traj.targets[:traj.lift_step]:
            backend.command(target)
            backend.advance()
        z0 = backend.object_pose("cube")[0][2]
        hold = traj.targets[traj.lift_step - 1].copy()
        n_arm = int(backend.spec.params.get("arm_joints") or 6)
        hold[n_arm:] = env.unwrapped.task.cube_half - squeeze
        for _ in range(int(round(seconds * backend.spec.control_hz))):
            backend.command(hold)
            backend.advance()
        return float(z0 - backend.object_pose("cube")[0][2])
    finally:
        env.close()


def compare(seeds, squeezes=(0.003, 0.02)) -> dict[str, Any]:
    """Per seed: cube position difference between the sims (final and worst over the trajectory, m), final
    yaw difference (rad), and the held slip on each sim per squeeze."""
    rows = []
    for seed in seeds:
        traj = expert_trajectory(seed)
        mj, pb = (replay_cube(sim, traj) for sim in SIMS)
        dist = np.linalg.norm(mj[:, :3] - pb[:, :3], axis=1)
        slip = {sim: [held_slip(sim, traj, s) for s in squeezes] for sim in SIMS}
        rows.append({"seed": seed, "expert_success": traj.expert_success, "final_pos_diff": float(dist[-1]),
                     "max_pos_diff": float(dist.max()), "final_yaw_diff": float(abs(mj[-1, 3] - pb[-1, 3])),
                     "slip": slip})
    return {"squeezes": list(squeezes), "episodes": rows}

"""Collect a sysid recording through the env, on any backend (the production driver on `real`).

The recording is one `Rollout` episode of the arm-reach env in ``joint_delta`` mode (no start jitter,
an episode as long as the excitation) driven by `ExcitationSource`; `SysidSink` stores the backend-level
commands and states (data.py says why not the policy dataset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from robotlearn.rollout import EnvRecipe, Rollout, Sink, Transition
from robotlearn.sysid.data import SysidData
from robotlearn.sysid.excitation import (
    PERIOD_S,
    SETTLE_S,
    ExcitationSource,
    Multisine,
    candidate_designs,
    random_multisine,
)

ARM_ENV = "ArmReach-v0"


class SysidSink(Sink):
    """Records the backend state before each step, its tick time, and the joint target the step sent."""

    def __init__(self, env):
        self.backend, self.robot = env.unwrapped.backend, env.unwrapped.robot
        self.commands: list[np.ndarray] = []
        self.states: list[dict[str, np.ndarray]] = []
        self.timestamps: list[float] = []

    def start_episode(self, obs, info, seed) -> None:
        self.commands, self.states, self.timestamps = [], [self.backend.read()], [float(info["timestamp"])]

    def add(self, tr: Transition) -> None:
        robot = self.robot
        fingers = np.full(robot.n_fingers, (float(tr.action[-1]) + 1.0) * 0.5 * robot.finger_open)
        self.commands.append(np.concatenate([robot.joint_target, fingers]))
        self.states.append(self.backend.read())
        self.timestamps.append(float(tr.info["timestamp"]))


def arm_recipe(backend: str, options: Mapping[str, Any], steps: int, robot_overrides=()) -> EnvRecipe:
    return EnvRecipe(ARM_ENV, backend, overrides=("action_mode=joint_delta", f"max_episode_steps={steps}",
                                                  "params.start_jitter=0.0"),
                     robot_overrides=tuple(robot_overrides), backend_options=dict(options))


def choose_design(excite: str, env, seed: int, design_sim: str = "mujoco", candidates: int = 16,
                  progress: bool = True) -> tuple[Multisine, dict[str, Any]]:
    """The excitation: a random multisine, or the most informative of `candidates` (active)."""
    robot = env.unwrapped.robot
    spec = env.unwrapped.backend.spec
    center = robot.home_state()["joint_pos"]
    rng = np.random.default_rng(seed)
    if excite == "random":
        return random_multisine(spec, center, rng, robot.n_arm), {"excite": "random"}
    if excite != "active":
        raise ValueError(f"--excite must be random or active, got {excite!r}")
    from robotlearn.sysid.active import most_informative

    designs = candidate_designs(spec, center, robot.n_arm, rng, candidates)
    best, scores, peaks = most_informative(designs, spec, robot, design_sim, progress=progress)
    return designs[best], {"excite": "active", "design_scores": scores, "design_peak_effort": peaks,
                           "design_index": best}


def collect(backend: str, options: Mapping[str, Any], seconds: float, excite: str = "random", seed: int = 0,
            design_sim: str = "mujoco", robot_overrides=(), progress: bool = True) -> SysidData:
    """Run the excitation for `seconds` (after a settle of SETTLE_S) on `backend`; returns the recording."""
    if seconds < PERIOD_S / 2:
        raise ValueError(f"--seconds must be at least {PERIOD_S / 2} (half a multisine period), got {seconds}")
    probe = arm_recipe(backend, options, 1, robot_overrides)
    env = probe.make()
    try:
        control_hz = env.unwrapped.backend.spec.control_hz
        steps = int(round((seconds + SETTLE_S) * control_hz))
        design, info = choose_design(excite, env, seed, design_sim, progress=progress)
    finally:
        env.close()
    recipe = arm_recipe(backend, options, steps, robot_overrides)
    env = recipe.make()
    try:
        robot = env.unwrapped.robot
        source = ExcitationSource(design, control_hz, robot.p["max_joint_delta"], robot.n_arm)
        sink = SysidSink(env)
        Rollout(env, source, [sink]).run_episode(seed)
        spec, goal_ticks = env.unwrapped.backend.spec, env.unwrapped.backend.goal_ticks
    finally:
        env.close()
    return SysidData.from_states(sink.commands, sink.states, control_hz, spec.name,
                                 {**info, "backend": backend, "goal_ticks": goal_ticks, "recipe": recipe.to_dict(),
                                  "seed": seed,
                                  "design": {"center": design.center.tolist(), "amp": design.amp.tolist(),
                                             "freq": design.freq.tolist()}},
                                 sink.timestamps)

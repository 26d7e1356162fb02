"""Typed `params:` of each task (configs/tasks/*.yaml), validated before a task is built.

Every task declares its schema as ``Params``; `robotlearn.envs.make_env` validates the config's params
against it (one-line error naming file and key) and passes the validated values to the constructor,
so `params.tolerance=-0.5` or a misspelt key is refused instead of silently used.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from robotlearn.core.config import Strict

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Vec3 = tuple[float, float, float]


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"range must be [low, high] with low <= high, got {list(pair)}")
    return pair


Range = Annotated[tuple[float, float], AfterValidator(_ordered)]


class ArmReachParams(Strict):
    tolerance: Positive = 0.03                 # m: success radius
    goal_radius: Range = (0.16, 0.34)          # m from the base axis
    goal_angle: Range = (-0.8, 0.8)            # rad about the base axis, 0 = +x
    goal_height: Range = (0.04, 0.18)          # m above the table
    start_jitter: NonNegative = 0.1            # rad, uniform on each arm joint around home
    n_arm: int = Field(6, gt=0)


class ArmPickPlaceParams(Strict):
    tolerance: Positive = 0.03                 # m, cube centre to target
    cube_half: Positive = 0.02                 # m, half edge of the cube
    cube_low: tuple[float, float] = (0.20, -0.16)
    cube_high: tuple[float, float] = (0.34, 0.16)
    target_low: tuple[float, float] = (0.20, -0.16)
    target_high: tuple[float, float] = (0.34, 0.16)
    min_separation: NonNegative = 0.10         # m between cube and target
    max_cube_yaw: NonNegative = 0.6            # rad
    start_jitter: NonNegative = 0.05           # rad
    n_arm: int = Field(6, gt=0)


class QuadGoalParams(Strict):
    tolerance: Positive = 0.1                  # m: success radius
    init_pos_range: NonNegative = 0.5          # m, uniform per axis around the goal
    init_vel_range: NonNegative = 0.3          # m/s
    init_tilt: Annotated[float, Field(ge=0, lt=1.5)] = 0.2  # rad, roll and pitch
    init_rate_range: NonNegative = 0.3         # rad/s
    min_height: NonNegative = 0.05             # m: below ends the episode as a crash
    max_distance: Positive = 3.0               # m from the goal: farther is a crash
    rate_penalty: NonNegative = 0.01
    crash_reward: float = -10.0
    velocity_penalty: NonNegative = 0.0        # per m/s of velocity error (dense reward)
    precision_bonus: NonNegative = 0.0         # dense reward bonus at the goal, decaying as exp(-d / radius)
    precision_radius: Positive = 0.05          # m
    alive_bonus: NonNegative = 0.0             # dense reward per flown step


class QuadHoverParams(QuadGoalParams):
    goal: Vec3 = (0.0, 0.0, 1.0)               # m, world


class QuadTrackParams(QuadGoalParams):
    tolerance: Positive = 0.15
    shape: Literal["figure8", "random"] = "figure8"
    center: Vec3 = (0.0, 0.0, 1.0)             # m, world
    size: Vec3 = (1.0, 0.5, 0.0)               # m: x, y amplitudes
    period: Positive = 8.0                     # s


class ArmStackParams(Strict):
    cube_half: Positive = 0.02                 # m, half edge of the cubes
    cube_low: tuple[float, float] = (0.20, -0.15)
    cube_high: tuple[float, float] = (0.32, 0.15)
    min_separation: Positive = 0.08            # m between any two cubes at the start
    max_cube_yaw: NonNegative = 0.4            # rad
    stack_tolerance: Positive = 0.015          # m, horizontal offset of a cube from the one below it
    start_jitter: NonNegative = 0.05           # rad
    n_arm: int = Field(6, gt=0)

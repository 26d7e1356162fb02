"""Pieces both sim backends share: the compiled servo drive, and checking commands and reset states."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from robotlearn import _rt
from robotlearn.core.backend import BackendOptions, State
from robotlearn.core.config import ConfigError
from robotlearn.core.spec import Interpolation, RobotSpec
from robotlearn.sim.physical import ArmPhysicalParams, apply_arm_params, load_calibration


class SimArmOptions(BackendOptions):
    """Options of both arm sims."""

    #: override the robot config's target interpolation (None: the robot's, which the real arm runs too)
    interpolation: Interpolation | None = None
    #: a calib.yaml (robotlearn sysid fit): build the sim with its estimated physical parameters
    calibration: str | None = None
    #: a calib.yaml: draw the physical parameters around its estimates, by its uncertainty, at every reset
    domain_randomization: str | None = None
    #: the servos track their goal rounded to the register's ticks (the robot config's goal_ticks_per_rev), as
    #: real servos do. Sysid replays turn it on: at kp 200 the rounding is up to 0.15 N m of present current.
    #: Off by default: a rounded goal jumps a whole tick at a rounding edge, and a policy gains nothing from it
    #: (a 0.7 mrad change of a squeezing grasp's pose made PyBullet's held cube creep 0.2 mm up its fingers).
    goal_ticks: bool = False
    #: the whole round trip (2 x latency_s) delays the commands, and readings are current. Sysid replays turn it
    #: on (see `DelayedIO`). Off by default: a closed loop sees the same round trip either way, and a reading as
    #: old as the robot's is what a policy is trained on.
    latency_on_commands: bool = False


def make_drive(spec: RobotSpec, interpolation: str | None = None, backlash: float = 0.0,
               goal_ticks: bool = False) -> _rt.JointDrive:
    """The compiled joint drive (target interpolation + servo PD with torque-speed limits) for `spec`.

    Both sims call it every physics tick, and the real-time loop runs the same C++, so a sim and the
    hardware turn the same targets into the same setpoint stream. `interpolation` overrides the robot's.
    The servos track that stream (with `goal_ticks`, rounded to their goal register: the robot config's
    goal_ticks_per_rev) through `backlash` (rad) of gear play on the arm joints: both every physics tick on
    each servo's goal, where a real servo has them and the emulated servos apply them (play on the 10 Hz
    commands would take up at a command, not where the setpoint stream reverses).
    """
    mode = _rt.Interpolation[spec.joint_interpolation(interpolation).upper()]
    limits = _rt.JointLimits([j.lower for j in spec.joints], [j.upper for j in spec.joints],
                             [j.max_velocity for j in spec.joints], [j.max_effort for j in spec.joints])
    ticks = [j.goal_ticks_per_unit if goal_ticks else 0.0 for j in spec.joints]
    return _rt.JointDrive(limits, [j.servo_kp for j in spec.joints], [j.servo_kd for j in spec.joints],
                          mode, 1.0 / spec.physics_hz, ticks, play_widths(spec, backlash))


def play_widths(spec: RobotSpec, backlash: float) -> list[float]:
    """Per joint, the gear play (dead band width) of `backlash` on the arm joints; the fingers have none."""
    n_arm = int(spec.params.get("arm_joints") or len(spec.joints))
    return [backlash if i < n_arm else 0.0 for i in range(len(spec.joints))]


def check_target(target, n: int) -> np.ndarray:
    """A joint-target command as a contiguous float64 (n,) array; non-finite or misshapen input raises."""
    arr = np.ascontiguousarray(target, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"joint target must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"joint target contains NaN/inf: {arr}; command rejected")
    return arr


def command_drive(drive: _rt.JointDrive, spec: RobotSpec, target, delay_s: float = 0.0) -> None:
    """Backend.command for the sims: validate, then hand the target to the compiled drive for one period
    (starting `delay_s` into the next physics tick: a sub-tick command latency)."""
    if not drive.set_target(check_target(target, len(spec.joints)), 1.0 / spec.control_hz, delay_s):
        raise ValueError("joint drive rejected the target")


def initial_value(initial: Mapping[str, np.ndarray], key: str, default, shape: tuple[int, ...]) -> np.ndarray:
    """`initial[key]` checked for shape and finiteness, or `default` when the key is absent."""
    if key not in initial:
        return np.array(default, dtype=np.float64)
    arr = np.asarray(initial[key], dtype=np.float64)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ValueError(f"reset state {key!r} must be a finite array of shape {shape}, got {initial[key]!r}")
    return arr


def unknown_scene_keys(initial: Mapping[str, np.ndarray], objects, markers) -> list[str]:
    """Reset keys naming no robot state, object or marker of this scene (a typo would be silently ignored)."""
    known = {"joint_pos", "joint_vel", "joint_target", "servo_goal"}
    known |= {f"object/{o}/{k}" for o in objects for k in ("pos", "quat")}
    known |= {f"marker/{m}/pos" for m in markers}
    return sorted(set(initial) - known)


def armature(spec: RobotSpec) -> np.ndarray:
    """Per-joint reflected rotor inertia (spec.params["armature"]; zeros when absent)."""
    values = np.asarray(spec.params.get("armature") or np.zeros(len(spec.joints)), dtype=np.float64)
    if values.shape != (len(spec.joints),) or not np.all(values >= 0):
        raise ValueError(f"robot {spec.name!r}: params.armature needs {len(spec.joints)} non-negative values")
    return values


class PhysicalSetup:
    """The spec an arm sim is built from: nominal, calibrated (``calibration=calib.yaml``), or drawn
    around a calibration at every reset (``domain_randomization=calib.yaml``).

    The calibrated description is written by sim/physical.py `apply_arm_params` (the code the emulator's
    gap uses) into a temporary folder this object owns and removes on `close`.
    """

    def __init__(self, spec: RobotSpec, options: SimArmOptions):
        if options.calibration and options.domain_randomization:
            raise ConfigError("give either calibration= or domain_randomization= (which samples around its "
                              "calibration), not both")
        self.nominal = spec
        path = options.calibration or options.domain_randomization
        self.calibration = load_calibration(path, "arm") if path else None
        self.randomize = bool(options.domain_randomization)
        self._workdir: Path | None = None
        self.params = self.calibration.params if self.calibration else ArmPhysicalParams()
        self.spec = self._apply(self.params)

    def _apply(self, params: ArmPhysicalParams) -> RobotSpec:
        if params.model_dump(exclude={"latency_s"}) == ArmPhysicalParams().model_dump(exclude={"latency_s"}):
            return self.nominal
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="rl-calib-"))
        return apply_arm_params(self.nominal, params, self._workdir)

    def resample(self, rng: np.random.Generator) -> RobotSpec | None:
        """With domain randomization: new parameters and the spec carrying them; otherwise None."""
        if not self.randomize:
            return None
        self.params = self.calibration.sample(rng)
        self.spec = self._apply(self.params)
        return self.spec

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


class DelayedIO:
    """Command and sensing latency of `latency_s` each, inside one control period.

    A target commanded at t reaches the drive at t + L, and a read at t returns the state at t - L, as on
    a servo bus whose goals and present values both travel late (the emulator's ``latency_s``). The period
    is stepped in parts: L with the previous target, then the new one; the state read is the one at T - L.
    L need not be a whole number of physics ticks: the target's segment starts the remaining fraction of a
    tick late (the drive's ``delay``), and the read blends the states of the two ticks around T - L. A
    latency rounded to ticks would make a sysid fit's loss a staircase in latency (2 ms steps at 500 Hz)
    whose slack the fit filled with wrong damping and servo gains. The round trip must fit into one period.

    With `on_commands` the commands carry the round trip, 2L, and reads none. That is the frame of a replay
    from measured states: a segment starts from a reading, which is already L old, so the robot ran 2L from
    that state to the new command, and each next reading is one period after it. Replayed with L each, the
    emulated arm's 5 ms (4 ms of its gap, 1 ms of its bus) left 10x the noise floor: present current
    [0.022 0.080 0.046] N m on the first three joints at the true parameters, against [0.007 0.021 0.016]
    with the round trip on the commands (30 s recording, no sensor noise).
    """

    def __init__(self, spec: RobotSpec, latency_s: float, on_commands: bool = False):
        ticks = latency_s * spec.physics_hz  # latency in physics ticks, fractional
        self.command_ticks = 2 * ticks if on_commands else ticks
        self.sense_ticks = 0.0 if on_commands else ticks
        self.tick_s = 1.0 / spec.physics_hz
        self.period_ticks = spec.ticks_per_step
        if 2 * ticks > self.period_ticks:
            raise ConfigError(f"latency_s {latency_s} needs 2x{ticks:g} physics ticks, more than one control "
                              f"period ({self.period_ticks} ticks at {spec.physics_hz} Hz)")
        self.pending: np.ndarray | None = None
        self.sensed: State | None = None

    def reset(self) -> None:
        self.pending, self.sensed = None, None

    def advance(self, run: Callable[[int], None], send: Callable[[np.ndarray, float], None],
                sense: Callable[[], State]) -> None:
        """One control period: `run(ticks)` steps physics, `send(target, delay_s)` hands a target to the
        drive (its segment starting `delay_s` into the next tick)."""
        if self.command_ticks == 0:
            if self.pending is not None:
                send(self.pending, 0.0)
                self.pending = None
            run(self.period_ticks)
            return
        whole, fraction = divmod(self.command_ticks, 1.0)
        run(int(whole))
        if self.pending is not None:
            send(self.pending, fraction * self.tick_s)
            self.pending = None
        read_at = self.period_ticks - self.sense_ticks
        before = int(read_at)
        run(before - int(whole))
        self.sensed = sense()
        weight = read_at - before
        if weight > 1e-9:
            run(1)
            after = sense()
            self.sensed = {key: value + weight * (after[key] - value) for key, value in self.sensed.items()}
            before += 1
        run(self.period_ticks - before)

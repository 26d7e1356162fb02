"""The quadrotor model shared by both sims and the MAVLink emulator.

The airframe YAML (sim_assets/quadrotor/*.yaml) is the one description of a quadrotor. From it we
build the compiled `QuadDrive` (rate PID + mixer + motor model + rotor drag), which turns the CTBR
command into a body wrench every physics tick. The engines only integrate that wrench plus gravity
on a rigid body with the airframe's mass and inertia, so MuJoCo and PyBullet receive identical
inputs by construction. `QuadSimBackend` holds everything but the engine calls.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn._rt import QuadDrive, QuadParams
from robotlearn.core.backend import Backend, BackendOptions, State
from robotlearn.core.config import ConfigError, config_path
from robotlearn.core.description import Airframe, load_airframe
from robotlearn.core.spec import RobotSpec
from robotlearn.sim.physical import Calibration, QuadPhysicalParams, apply_quad_params, load_calibration


def quad_params(airframe: Airframe) -> QuadParams:
    """The compiled drive's parameters for `airframe`."""
    p = QuadParams()
    p.mass, p.inertia = airframe.mass, list(airframe.inertia)
    p.rotor_x = [r.x for r in airframe.rotors]
    p.rotor_y = [r.y for r in airframe.rotors]
    p.rotor_spin = [float(r.spin) for r in airframe.rotors]
    p.kf, p.km, p.max_rotor_speed = airframe.kf, airframe.km, airframe.max_rotor_speed
    p.motor_tau_up, p.motor_tau_down = airframe.motor_tau_up, airframe.motor_tau_down
    p.drag = list(airframe.drag)
    p.rate_kp, p.rate_ki, p.rate_kd = list(airframe.rate_kp), list(airframe.rate_ki), list(airframe.rate_kd)
    p.rate_i_limit, p.max_rate = list(airframe.rate_i_limit), list(airframe.max_rate)
    p.validate()
    return p


class QuadSimOptions(BackendOptions):
    """Options of both quadrotor sims."""

    #: include a floor (a vehicle on the ground at reset, as a real one is)
    ground: bool = True
    #: a calib.yaml with quadrotor keys (mass_scale, thrust_scale, drag_scale, motor_tau_scale, latency_s,
    #: wind): build the airframe with those estimates (sim/physical.py apply_quad_params, as the emulated
    #: vehicle's gap), delay each command by latency_s and blow the steady wind
    calibration: str | None = None
    #: a calib.yaml (a path or a configs/hardware/ name, e.g. quad_dr): draw the physical parameters around its
    #: estimates, by its uncertainty, at every reset
    domain_randomization: str | None = None


def _calibration_file(name: str) -> Path:
    """A calib.yaml path, or the name of one shipped in configs/hardware/ (so configs work from any directory)."""
    return Path(name) if Path(name).is_file() else config_path("hardware", name)


class QuadSimBackend(Backend):
    """Everything a quadrotor sim needs except the engine: drive, commands, reset bookkeeping.

    Subclasses implement `_set_state`, `_get_state` and `_tick(wrench)` (apply the world-frame wrench
    about the CoM plus gravity for one physics step). `airframe` (an Airframe overriding the spec's
    description, e.g. with a reality gap) is a constructor argument for code, not a user option.
    """

    Options = QuadSimOptions

    def __init__(self, spec: RobotSpec, options: QuadSimOptions | None = None, airframe: Airframe | None = None):
        super().__init__(spec, options)
        ground = self.options.ground
        if spec.kind != "quadrotor":
            raise ValueError(f"{type(self).__name__} needs a quadrotor spec, got kind {spec.kind!r}")
        if self.options.calibration and self.options.domain_randomization:
            raise ConfigError("give either calibration= or domain_randomization= (which samples around its "
                              "calibration), not both")
        self.nominal_airframe = airframe or load_airframe(spec.description)
        path = self.options.calibration or self.options.domain_randomization
        self.calibration: Calibration | None = load_calibration(_calibration_file(path), "quadrotor") if path else None
        self.params = self.calibration.params if self.calibration else QuadPhysicalParams()
        self.airframe = apply_quad_params(self.nominal_airframe, self.params)
        self.ground = ground
        self.dt = 1.0 / spec.physics_hz
        self.ticks = spec.ticks_per_step
        self.drive = QuadDrive(quad_params(self.airframe), self.dt)
        self._wind = np.zeros(3)
        self._wrench = np.zeros(6)
        self._time = 0.0
        self._tick_count = 0
        # CTBR commands waiting out the setpoint latency: (physics tick they take effect, command)
        self._pending: deque[tuple[int, np.ndarray]] = deque()
        self._latency_ticks = 0
        self._set_latency(self.params.latency_s)
        if np.any(self.params.wind):
            self.set_wind(np.asarray(self.params.wind, dtype=np.float64))

    def _set_latency(self, latency_s: float) -> None:
        self._latency_ticks = int(round(latency_s / self.dt))

    def _randomize(self, rng: np.random.Generator) -> None:
        """Domain randomization: new physical parameters, a drive and an engine body carrying them."""
        self.params = self.calibration.sample(rng)
        self.airframe = apply_quad_params(self.nominal_airframe, self.params)
        self.drive = QuadDrive(quad_params(self.airframe), self.dt)
        self.drive.set_wind(self._wind)
        self._set_inertial(self.airframe.mass, np.asarray(self.airframe.inertia, dtype=np.float64))
        self._set_latency(self.params.latency_s)

    @abstractmethod
    def _set_inertial(self, mass: float, inertia: np.ndarray) -> None:
        """Give the engine's body a new mass and diagonal inertia (domain randomization)."""

    @abstractmethod
    def _set_state(self, pos: np.ndarray, quat: np.ndarray, vel: np.ndarray, omega: np.ndarray) -> None:
        """Teleport the body (world pos, quat wxyz, world vel, body-frame omega) and zero contacts."""

    @abstractmethod
    def _get_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pos, quat wxyz, vel world, omega body) as float64 arrays."""

    @abstractmethod
    def _tick(self, wrench: np.ndarray) -> None:
        """One physics step with `wrench` (force world, torque world about the CoM) applied."""

    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        pos = np.asarray(initial.get("pos", (0.0, 0.0, 1.0)), dtype=np.float64)
        quat = np.asarray(initial.get("quat", (1.0, 0.0, 0.0, 0.0)), dtype=np.float64)
        quat = quat / np.linalg.norm(quat)
        vel = np.asarray(initial.get("vel", np.zeros(3)), dtype=np.float64)
        omega = np.asarray(initial.get("omega", np.zeros(3)), dtype=np.float64)
        for key, val in (("pos", pos), ("quat", quat), ("vel", vel), ("omega", omega)):
            if not np.all(np.isfinite(val)):
                raise ValueError(f"reset: initial {key} is not finite: {val}")
        if self.options.domain_randomization:
            self._randomize(rng)
        self._pending.clear()
        self._set_state(pos, quat, vel, omega)
        # Rotors already at hover speed: an episode starts in flight, not in free fall.
        self.drive.reset(self.airframe.hover_rotor_speed() if pos[2] > 0.05 else 0.0)
        self.drive.set_armed(True)
        self._time = 0.0
        self._pending.clear()
        if "ctbr" in initial:  # the command already in force (sysid replays from a recorded state): rotors at
            ctbr = np.asarray(initial["ctbr"], dtype=np.float64)  # the speed it holds them at
            self.drive.reset(self.airframe.max_rotor_speed * float(np.sqrt(np.clip(ctbr[0], 0.0, 1.0))))
            self.drive.set_armed(True)
            self._set_ctbr(ctbr)

    def place(self, pos: np.ndarray, quat: np.ndarray, vel: np.ndarray, omega: np.ndarray) -> None:
        """Teleport the rigid body, keeping the flight controller's state (rate integrator, rotor speeds,
        commands in flight): sysid re-anchors a replay on measured states without resetting the drive."""
        q = np.asarray(quat, dtype=np.float64)
        self._set_state(*(np.asarray(v, dtype=np.float64) for v in (pos, q / np.linalg.norm(q), vel, omega)))

    def _set_ctbr(self, target: np.ndarray) -> None:
        if not self.drive.set_ctbr(target):
            raise ValueError(f"quadrotor command contains NaN/inf: {target}")

    def command(self, target: np.ndarray) -> None:
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (4,):
            raise ValueError(f"quadrotor command must be [thrust, p, q, r], got shape {target.shape}")
        if not np.all(np.isfinite(target)):
            raise ValueError(f"quadrotor command contains NaN/inf: {target}")
        if self._latency_ticks == 0:
            self.drive.set_ctbr(target)
        else:
            self._pending.append((self._tick_count + self._latency_ticks, target.copy()))

    def command_motors(self, u: np.ndarray) -> None:
        """Open-loop normalized motor commands (0..1) until the next `command`: sysid and sim comparison."""
        u = np.asarray(u, dtype=np.float64)
        self._pending.clear()
        if u.shape != (4,) or not self.drive.set_motors(u):
            raise ValueError(f"motor command must be 4 finite values, got {u}")

    def play_motor_commands(self, commands: np.ndarray) -> np.ndarray:
        """Open loop: one (4,) motor command per control step; returns rows of [pos, quat, vel, omega].

        The common ground for comparing engines (and, later, sim against recorded hardware) on identical inputs.
        """
        rows = []
        for u in commands:
            self.command_motors(u)
            self.advance()
            s = self.read()
            rows.append(np.concatenate([s["pos"], s["quat"], s["vel"], s["omega"]]))
        return np.array(rows)

    def set_wind(self, wind: np.ndarray) -> None:
        self._wind = np.asarray(wind, dtype=np.float64)
        self.drive.set_wind(self._wind)

    def set_armed(self, armed: bool) -> None:
        self.drive.set_armed(armed)

    def step_physics(self, ticks: int) -> None:
        """Advance `ticks` physics steps with the compiled drive computing the wrench each tick."""
        for _ in range(ticks):
            while self._pending and self._pending[0][0] <= self._tick_count:
                self.drive.set_ctbr(self._pending.popleft()[1])
            self._tick_count += 1
            _, quat, vel, omega = self._get_state()
            self.drive.compute(quat, vel, omega, self._wrench)
            self._tick(self._wrench)
            self._time += self.dt

    def advance(self) -> dict[str, Any]:
        self.step_physics(self.ticks)
        return {"timestamp": self._time}

    def read(self) -> State:
        pos, quat, vel, omega = self._get_state()
        quat = quat / np.linalg.norm(quat)  # unit, w >= 0: engines differ in the sign they keep
        return {"pos": pos.copy(), "vel": vel.copy(), "quat": quat if quat[0] >= 0 else -quat, "omega": omega.copy()}

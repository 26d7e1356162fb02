"""The quadrotor model shared by both sims and the MAVLink emulator.

The airframe YAML (sim_assets/quadrotor/*.yaml) is the one description of a quadrotor. From it we
build the compiled `QuadDrive` (rate PID + mixer + motor model + rotor drag), which turns the CTBR
command into a body wrench every physics tick. The engines only integrate that wrench plus gravity
on a rigid body with the airframe's mass and inertia, so MuJoCo and PyBullet receive identical
inputs by construction. `QuadSimBackend` holds everything but the engine calls.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import Field

from robotlearn._rt import QuadDrive, QuadParams
from robotlearn.core.backend import Backend, BackendOptions, State
from robotlearn.core.config import Strict, validate
from robotlearn.core.spec import RobotSpec

GRAVITY = 9.81


class Rotor(Strict):
    x: float
    y: float
    spin: int = Field(..., description="+1 counter-clockwise seen from above, -1 clockwise")


class Airframe(Strict):
    """Schema of sim_assets/quadrotor/<name>.yaml (see cf2x.yaml for the meaning and sources)."""

    name: str
    mass: float = Field(..., gt=0)
    inertia: tuple[float, float, float]
    rotors: list[Rotor] = Field(..., min_length=4, max_length=4)
    kf: float = Field(..., gt=0)
    km: float = Field(..., gt=0)
    max_rotor_speed: float = Field(..., gt=0)
    motor_tau_up: float = Field(..., gt=0)
    motor_tau_down: float = Field(..., gt=0)
    drag: tuple[float, float, float]
    collision_box: tuple[float, float, float]
    rate_kp: tuple[float, float, float]
    rate_ki: tuple[float, float, float]
    rate_kd: tuple[float, float, float]
    rate_i_limit: tuple[float, float, float]
    max_rate: tuple[float, float, float]

    @property
    def max_thrust(self) -> float:
        """Max collective thrust (N): all rotors at max speed."""
        return 4.0 * self.kf * self.max_rotor_speed**2

    @property
    def hover_thrust(self) -> float:
        """Collective thrust fraction that holds the airframe at 1 g."""
        return self.mass * GRAVITY / self.max_thrust

    def with_gap(self, mass_scale: float = 1.0, thrust_scale: float = 1.0, drag_scale: float = 1.0) -> Airframe:
        """A perturbed copy: the emulator's hidden 'true' vehicle differs from the nominal model."""
        return self.model_copy(update={
            "mass": self.mass * mass_scale,
            "inertia": tuple(i * mass_scale for i in self.inertia),
            "kf": self.kf * thrust_scale,
            "drag": tuple(d * drag_scale for d in self.drag),
        })

    def params(self) -> QuadParams:
        p = QuadParams()
        p.mass, p.inertia = self.mass, list(self.inertia)
        p.rotor_x = [r.x for r in self.rotors]
        p.rotor_y = [r.y for r in self.rotors]
        p.rotor_spin = [float(r.spin) for r in self.rotors]
        p.kf, p.km, p.max_rotor_speed = self.kf, self.km, self.max_rotor_speed
        p.motor_tau_up, p.motor_tau_down = self.motor_tau_up, self.motor_tau_down
        p.drag = list(self.drag)
        p.rate_kp, p.rate_ki, p.rate_kd = list(self.rate_kp), list(self.rate_ki), list(self.rate_kd)
        p.rate_i_limit, p.max_rate = list(self.rate_i_limit), list(self.max_rate)
        p.validate()
        return p

    def hover_rotor_speed(self) -> float:
        return float(np.sqrt(self.mass * GRAVITY / (4.0 * self.kf)))


def load_airframe(path: str | Path) -> Airframe:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"airframe {path} does not exist")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    return validate(Airframe, data, path)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate v by the unit quaternion q (w, x, y, z). Scalar code: np.cross costs ~20 us per call,
    and this runs every physics tick in the PyBullet backend."""
    w, x, y, z = (float(c) for c in q)
    vx, vy, vz = (float(c) for c in v)
    tx, ty, tz = 2 * (y * vz - z * vy), 2 * (z * vx - x * vz), 2 * (x * vy - y * vx)  # t = 2 u x v
    return np.array([vx + w * tx + y * tz - z * ty, vy + w * ty + z * tx - x * tz, vz + w * tz + x * ty - y * tx])


def quat_rotate_inv(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    return quat_rotate(np.array([q[0], -q[1], -q[2], -q[3]]), v)


class QuadSimOptions(BackendOptions):
    """Options of both quadrotor sims."""

    #: include a floor (a vehicle on the ground at reset, as a real one is)
    ground: bool = True


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
        self.airframe = airframe or load_airframe(spec.description)
        self.ground = ground
        self.dt = 1.0 / spec.physics_hz
        self.ticks = spec.ticks_per_step
        self.drive = QuadDrive(self.airframe.params(), self.dt)
        self._wrench = np.zeros(6)
        self._time = 0.0

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
        self._set_state(pos, quat, vel, omega)
        # Rotors already at hover speed: an episode starts in flight, not in free fall.
        self.drive.reset(self.airframe.hover_rotor_speed() if pos[2] > 0.05 else 0.0)
        self.drive.set_armed(True)
        self._time = 0.0

    def command(self, target: np.ndarray) -> None:
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (4,):
            raise ValueError(f"quadrotor command must be [thrust, p, q, r], got shape {target.shape}")
        if not self.drive.set_ctbr(target):
            raise ValueError(f"quadrotor command contains NaN/inf: {target}")

    def command_motors(self, u: np.ndarray) -> None:
        """Open-loop normalized motor commands (0..1) until the next `command`: sysid and sim comparison."""
        u = np.asarray(u, dtype=np.float64)
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
        self.drive.set_wind(np.asarray(wind, dtype=np.float64))

    def set_armed(self, armed: bool) -> None:
        self.drive.set_armed(armed)

    def step_physics(self, ticks: int) -> None:
        """Advance `ticks` physics steps with the compiled drive computing the wrench each tick."""
        for _ in range(ticks):
            _, quat, vel, omega = self._get_state()
            self.drive.compute(quat, vel, omega, self._wrench)
            self._tick(self._wrench)
        self._time += ticks * self.dt

    def advance(self) -> dict[str, Any]:
        self.step_physics(self.ticks)
        return {"timestamp": self._time}

    def read(self) -> State:
        pos, quat, vel, omega = self._get_state()
        quat = quat / np.linalg.norm(quat)  # unit, w >= 0: engines differ in the sign they keep
        return {"pos": pos.copy(), "vel": vel.copy(), "quat": quat if quat[0] >= 0 else -quat, "omega": omega.copy()}

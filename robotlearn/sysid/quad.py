"""Quadrotor sysid: thrust and rate doublets around hover, collected through any backend, replayed in a sim.

* **Excitation**: doublets (+a for T, then -a for T: the input integrates to zero, so the vehicle returns
  near where it started) on the collective thrust and on each body rate, in random order with random
  amplitudes and lengths, separated by rests, on top of a weak position hold at the start point (the same
  `CascadedController` the setpoint action modes use), which keeps the flight inside a small box on a
  vehicle whose thrust and drag are unknown. Every command sent (hold + doublet) is recorded, so the
  feedback part costs nothing in the fit: replays use the recorded commands open loop.
* **Collection**: one `Rollout` episode of QuadHover-v0 in ``ctbr`` mode with no start randomization,
  on any backend; on ``real`` the MAVLink driver (SET_ATTITUDE_TARGET out, ATTITUDE_QUATERNION +
  LOCAL_POSITION_NED in).
* **Replay**: segments of `horizon_s` from recorded states (pose, velocity, body rates), the candidate
  parameters applied through the quadrotor sims' own ``calibration=`` option; the flight controller's
  unmeasured state (rate integrator, rotor speeds) runs on through the whole recording. The residual is
  world velocity and (weighted 0.1) body rates.

What pose and velocity feedback can identify, and why (configs/sysid/quadrotor.yaml fits accordingly):
collective acceleration is kf w^2 / m with w set by the command, rotor drag acceleration is
drag * sum(w) * v / m, and the rate loop scales its torques with the airframe's inertia, which scales
with mass: so only **thrust_scale / mass_scale** and **drag_scale / mass_scale** are seen, never the mass
itself (that needs a known payload change or a force measurement). The fit holds mass_scale at 1 and
reports the two ratios as thrust_scale and drag_scale; a sim built with them flies like the vehicle.
Latency and a steady wind (through the drag) are identifiable; motor_tau_scale only weakly (30 ms motors
against 20 ms telemetry).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn.backends import make_backend
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.core.rotations import yaw_of
from robotlearn.core.spec import RobotSpec
from robotlearn.robots.quadrotor import CascadedController
from robotlearn.rollout import ActionSource, EnvRecipe, Rollout, Sink, Transition
from robotlearn.sim.physical import Calibration
from robotlearn.sysid.data import QuadSysidData
from robotlearn.sysid.simulate import replay_segments

QUAD_ENV = "QuadHover-v0"
SETTLE_S = 1.0      # hover before the first doublet
RATE_WEIGHT = 0.1   # residual weight of body rates (rad/s) against velocity (m/s)
AXES = ("thrust", "roll", "pitch", "yaw")


@dataclass(frozen=True)
class Doublets:
    """Doublets: on `axis[i]` (0 thrust, 1-3 body rate p, q, r), +amp[i] from start[i] for half[i] s, then -amp[i]."""

    start: np.ndarray
    axis: np.ndarray
    amp: np.ndarray
    half: np.ndarray

    def offset(self, t: float) -> np.ndarray:
        out = np.zeros(4)
        for s, a, amp, h in zip(self.start, self.axis, self.amp, self.half, strict=True):
            if s <= t < s + h:
                out[a] += amp
            elif s + h <= t < s + 2 * h:
                out[a] -= amp
        return out


def random_doublets(seconds: float, rng: np.random.Generator, hover_thrust: float, max_rate: np.ndarray) -> Doublets:
    """Doublets filling `seconds` after the settle: thrust +-15-30 % of hover for 0.2-0.5 s per half, roll
    and pitch rates +-(1.5-3) rad/s and yaw +-(1-2) rad/s for 0.1-0.2 s per half (tilts of <= 0.6 rad,
    inside the hold's reach), 0.3-0.8 s of rest after each."""
    start, axis, amp, half = [], [], [], []
    t = SETTLE_S
    while True:
        a = int(rng.integers(0, 4))
        if a == 0:
            h, size = rng.uniform(0.2, 0.5), hover_thrust * rng.uniform(0.15, 0.3)
        else:
            h = rng.uniform(0.1, 0.2)
            size = min(float(max_rate[a - 1]) * 0.5, rng.uniform(1.5, 3.0) if a < 3 else rng.uniform(1.0, 2.0))
        if t + 2 * h > SETTLE_S + seconds:
            break
        start.append(t)
        axis.append(a)
        amp.append(size * rng.choice([-1.0, 1.0]))
        half.append(h)
        t += 2 * h + rng.uniform(0.3, 0.8)
    return Doublets(np.array(start), np.array(axis, dtype=int), np.array(amp), np.array(half))


class DoubletSource(ActionSource):
    """Position hold at the first observed position plus the doublets, as ``ctbr`` actions."""

    label = "sysid"

    def __init__(self, doublets: Doublets, robot, control_hz: float):
        self.doublets, self.robot, self.dt = doublets, robot, 1.0 / control_hz
        af = robot.airframe
        # Soft gains: the hold only keeps the vehicle in a box; the doublets must dominate the motion.
        self.hold = CascadedController(af.hover_thrust, np.asarray(af.max_rate), self.dt,
                                       {**robot.p, "pos_kp": 0.6, "vel_kp": 1.5})
        self.k, self.home, self.yaw = 0, np.zeros(3), 0.0

    def reset(self, obs) -> None:
        self.k, self.home = 0, np.asarray(obs["pos"], dtype=np.float64).copy()
        self.yaw = yaw_of(np.asarray(obs["quat"], dtype=np.float64))
        self.hold.reset()

    def act(self, obs) -> tuple[np.ndarray, str]:
        state = {k: np.asarray(obs[k], dtype=np.float64) for k in ("pos", "vel", "quat", "omega")}
        vel_sp = self.hold.velocity_setpoint(state, self.home)
        ctbr = self.hold.ctbr(state, vel_sp, self.yaw) + self.doublets.offset(self.k * self.dt)
        self.k += 1
        ctbr[0] = np.clip(ctbr[0], 0.0, 1.0)
        return self.robot.ctbr_to_action(ctbr), self.label


class QuadSysidSink(Sink):
    """Backend state before each step and the CTBR command each step sent; on a real vehicle also the
    loop's timing (the state's age at each tick, overruns), which a replay assumes is steady."""

    def __init__(self, env):
        self.backend, self.robot = env.unwrapped.backend, env.unwrapped.robot
        self.commands: list[np.ndarray] = []
        self.states: list[np.ndarray] = []
        self.sample_times: list[float] = []  # s, the vehicle's clock, from a real backend's state
        self.state_ages: list[float] = []  # s, from a real backend's loop_stats
        self.overruns = 0

    def timing(self) -> dict[str, float] | None:
        """State age at the tick (ms: median, p99, max) and overruns over the recording; None on a sim."""
        if not self.state_ages:
            return None
        p50, p99 = np.percentile(self.state_ages, [50, 99])
        return {"state_age_ms_p50": round(1e3 * float(p50), 3), "state_age_ms_p99": round(1e3 * float(p99), 3),
                "state_age_ms_max": round(1e3 * max(self.state_ages), 3), "overruns": self.overruns}

    def _read(self) -> None:
        s = self.backend.read()
        self.states.append(np.concatenate([s["pos"], s["quat"], s["vel"], s["omega"]]))
        if "sample_time" in s:
            self.sample_times.append(float(s["sample_time"]))

    def start_episode(self, obs, info, seed) -> None:
        self.commands, self.states, self.sample_times, self.state_ages, self.overruns = [], [], [], [], 0
        self._read()

    def stamps(self) -> np.ndarray | None:
        """The vehicle's sample time of each state, where the backend reported one for every state."""
        return np.array(self.sample_times) if len(self.sample_times) == len(self.states) else None

    def add(self, tr: Transition) -> None:
        self.commands.append(self.robot.action_to_ctbr(np.clip(tr.action, -1.0, 1.0)))
        self._read()
        stats = tr.info.get("loop_stats", {})
        if "state_age_s" in stats:
            self.state_ages.append(stats["state_age_s"])
            self.overruns = int(stats["overruns"])


def quad_recipe(backend: str, options: Mapping[str, Any], steps: int, robot: str = "cf2x") -> EnvRecipe:
    return EnvRecipe(QUAD_ENV, backend, overrides=(
        "action_mode=ctbr", f"max_episode_steps={steps}", f"robot={robot}", "params.init_pos_range=0.0",
        "params.init_vel_range=0.0", "params.init_tilt=0.0", "params.init_rate_range=0.0",
        "params.max_distance=5.0"), backend_options=dict(options))


def collect_quad(backend: str, options: Mapping[str, Any], seconds: float, seed: int = 0,
                 robot: str = "cf2x") -> QuadSysidData:
    """Fly the doublets for `seconds` (after SETTLE_S of hover) on `backend`; returns the recording."""
    if seconds < 2.0:
        raise ValueError(f"--seconds must be at least 2 for a quadrotor recording, got {seconds}")
    spec = load_robot_spec(robot)
    steps = int(round((seconds + SETTLE_S) * spec.control_hz))
    recipe = quad_recipe(backend, options, steps, robot)
    env = recipe.make()
    try:
        model = env.unwrapped.robot
        doublets = random_doublets(seconds, np.random.default_rng(seed), model.airframe.hover_thrust,
                                   np.asarray(model.airframe.max_rate))
        sink = QuadSysidSink(env)
        stats = Rollout(env, DoubletSource(doublets, model, spec.control_hz), [sink]).run_episode(seed)
    finally:
        env.close()
    if len(sink.commands) < steps:
        raise RuntimeError(f"the excitation flight ended after {stats.steps} of {steps} steps (crash or out of "
                           "bounds); check the vehicle, or shorten --seconds")
    return QuadSysidData(np.array(sink.commands), np.array(sink.states), spec.control_hz, robot,
                         {"kind": "quadrotor", "excite": "random", "backend": backend, "recipe": recipe.to_dict(),
                          "seed": seed, "timing": sink.timing(), "doublets": {"start": doublets.start.tolist(),
                                                     "axis": doublets.axis.tolist(), "amp": doublets.amp.tolist(),
                                                     "half": doublets.half.tolist()}}, sink.stamps())


class QuadReplayer:
    """Simulates a `QuadSysidData` on quadrotor sim `sim` for any quadrotor parameter model."""

    def __init__(self, data: QuadSysidData, sim: str = "mujoco", horizon_s: float = 1.0,
                 sim_options: Mapping[str, Any] | None = None):
        if sim == "real":
            raise ValueError("sysid fits in a simulator: --sim mujoco or pybullet, not real")
        self.data, self.sim, self.sim_options = data, sim, dict(sim_options or {})
        if "calibration" in self.sim_options:
            raise ValueError("sysid sets the sim's calibration itself; do not pass calibration= as a sim option")
        self.spec: RobotSpec = load_robot_spec(data.robot, [f"control_hz={data.control_hz}"])
        self.horizon, self.segments = replay_segments(data, horizon_s, SETTLE_S, "hover", data.regular_steps())
        self._scratch = Path(tempfile.mkdtemp(prefix="rl-sysid-quad-"))
        self.evaluations = 0

    @staticmethod
    def _observed(rows: np.ndarray) -> np.ndarray:
        """[vel, RATE_WEIGHT * omega] of state rows [pos, quat, vel, omega]."""
        return np.concatenate([rows[..., 7:10], RATE_WEIGHT * rows[..., 10:13]], axis=-1)

    @property
    def latency_step_s(self) -> float:
        """Finite-difference step of latency (s): one physics tick, as the quadrotor sims round latency to ticks."""
        return 1.0 / self.spec.physics_hz

    @property
    def measured(self) -> np.ndarray:
        d = self.data.states
        return np.concatenate([self._observed(d[s + 1:s + 1 + length]) for s, length in self.segments])

    def simulate(self, params) -> np.ndarray:
        """Predicted observations at every step of every segment, aligned with `measured`.

        One pass over the recording: the drive (rate integrator, rotor speeds, commands in flight) runs
        continuously from the initial hover, since those states are not measured, and only the rigid body
        is put back on the measured state at each segment start. A step that read no new sample of the
        vehicle, or skipped one (data.regular_steps), is stepped but belongs to no segment.
        """
        calib = self._scratch / f"candidate-{self.evaluations}.yaml"
        calib.write_text(Calibration(params=params).to_yaml())
        self.evaluations += 1
        backend = make_backend(self.spec, self.sim, {**self.sim_options, "calibration": str(calib)})
        d, out = self.data, []
        anchors = {s for s, _ in self.segments}
        replayed = {k for s, length in self.segments for k in range(s, s + length)}
        try:
            x = d.states[0]
            backend.reset(np.random.default_rng(0), {"pos": x[0:3], "quat": x[3:7], "vel": x[7:10],
                                                     "omega": x[10:13], "ctbr": d.commands[0]})
            for k in range(len(d.commands)):
                if k in anchors:
                    x = d.states[k]
                    backend.place(x[0:3], x[3:7], x[7:10], x[10:13])
                backend.command(d.commands[k])
                backend.advance()
                if k in replayed:
                    r = backend.read()
                    out.append(self._observed(np.concatenate([r["pos"], r["quat"], r["vel"], r["omega"]])))
        finally:
            backend.close()
            calib.unlink(missing_ok=True)
        return np.array(out)

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

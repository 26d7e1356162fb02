"""Replay a recording in a sim with candidate physical parameters: the model side of the discrepancy.

The recording is cut into segments of `horizon` steps. Each segment starts from the recorded state
(joint positions, velocities, and the setpoint the servos were tracking: the previous command) and
replays the recorded commands open loop, so an error early in the recording does not dominate the rest
and the fit compares multi-step predictions, not one-step ones. The candidate is applied through the
sims' own ``calibration=`` option (a calib.yaml written to a scratch folder), so the model that is fit is
exactly the model a calibrated env builds.

Where the recording has the servos' present current (`joint_effort`), the replay predicts it too: position
alone barely sees the links' masses (a stiff servo loop holds the pose against a heavier link within a
fraction of an encoder tick), present current sees them as the torque that holds them. Each channel is
scaled by its noise floor, so one rad-equivalent unit means the same amount of evidence in both.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import robotlearn._rt as _rt
from robotlearn.backends import make_backend
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.core.spec import RobotSpec
from robotlearn.sim.common import play_widths
from robotlearn.sim.physical import Calibration
from robotlearn.sysid.data import SysidData
from robotlearn.sysid.excitation import SETTLE_S

#: position measurement noise floor (rad): about half an encoder tick at 4096 ticks/rev
NOISE_FLOOR = 1e-3
#: present-current noise floor (N m at the shaft): ~2 units of 2.69 mA on a Dynamixel X
EFFORT_NOISE_FLOOR = 0.01
#: present current in the residual, in rad per N m: the ratio of the two noise floors
EFFORT_WEIGHT = NOISE_FLOOR / EFFORT_NOISE_FLOOR
#: steps at each segment start whose present current is left out: a replay starts from the measured joint
#: state, but the drive's own state (its torque of the last tick, commands in flight) is not measured, and
#: the torque transient it leaves is 0.08 N m rms on the first step at the true parameters, 0.008 on the
#: second, 0.001 on the third (MuJoCo data replayed on MuJoCo: 8x the noise floor, then below it)
EFFORT_SETTLE_STEPS = 2


def replay_segments(data, horizon_s: float, settle_s: float, settling: str,
                    regular: np.ndarray | None = None) -> tuple[int, list[tuple[int, int]]]:
    """(steps per segment, [(start step, steps)]) of a recording replayed in open-loop segments of `horizon_s`
    after its first `settle_s` (which only `settling`). With `regular` ((N,) bool), no segment holds an
    irregular step (one the host took longer than a period over: a replay cannot step it); the next one
    starts after it. A recording with no segment is a one-line error."""
    horizon = max(2, int(round(horizon_s * data.control_hz)))
    first = int(round(settle_s * data.control_hz))
    n = len(data.commands)
    regular = np.ones(n, dtype=bool) if regular is None else np.asarray(regular, dtype=bool)
    segments, k = [], first
    while k < n - 1:
        if not regular[k]:
            k += 1
            continue
        length = 1
        while length < horizon and k + length < n and regular[k + length]:
            length += 1
        segments.append((k, length))
        k += length
    if not segments:
        raise ValueError(f"sysid data: {data.seconds:.1f} s is too short (the first {settle_s} s only {settling})")
    return horizon, segments


class Replayer:
    """Simulates a `SysidData` on sim backend `sim` for any parameter model."""

    def __init__(self, data: SysidData, sim: str = "mujoco", horizon_s: float = 2.0, robot_overrides=(),
                 sim_options: Mapping[str, Any] | None = None, effort: bool = True):
        if sim == "real":
            raise ValueError("sysid fits in a simulator: --sim mujoco or pybullet, not real")
        self.data, self.sim = data, sim
        self.sim_options = dict(sim_options or {})
        if {"calibration", "domain_randomization"} & set(self.sim_options):
            raise ValueError("sysid sets the sim's calibration itself; do not pass calibration= or "
                             "domain_randomization= as a sim option")
        self.spec: RobotSpec = load_robot_spec(data.robot, [*robot_overrides, f"control_hz={data.control_hz}"])
        self.n_arm = int(self.spec.params.get("arm_joints") or len(self.spec.joints))
        #: residual columns: arm joint positions, then (with effort) their present current x EFFORT_WEIGHT
        self.effort = effort and data.joint_effort is not None
        self.horizon, self.segments = replay_segments(data, horizon_s, SETTLE_S, "settle", data.regular_steps())
        self._scratch = Path(tempfile.mkdtemp(prefix="rl-sysid-"))
        self.evaluations = 0

    @property
    def latency_step_s(self) -> float:
        """Finite-difference step of latency (s): a tenth of a physics tick, inside the pieces of the residual
        that the replay's sub-tick latency makes piecewise linear (estimator._fd_steps)."""
        return 0.1 / self.spec.physics_hz

    def _observed(self, joint_pos: np.ndarray, joint_effort: np.ndarray | None) -> np.ndarray:
        """Residual columns of one segment's state rows: arm positions, and their weighted present current
        when fit (zero in the segment's first EFFORT_SETTLE_STEPS)."""
        pos = joint_pos[:, :self.n_arm]
        if not self.effort:
            return pos
        weight = EFFORT_WEIGHT * (np.arange(len(pos)) >= EFFORT_SETTLE_STEPS)
        return np.concatenate([pos, weight[:, None] * joint_effort[:, :self.n_arm]], axis=1)

    @property
    def measured(self) -> np.ndarray:
        """Measured residual columns at the steps `simulate` predicts, (M, n_arm) or (M, 2 n_arm) with effort."""
        d, rows = self.data, []
        for s, length in self.segments:
            span = slice(s + 1, s + 1 + length)
            rows.append(self._observed(d.joint_pos[span], None if d.joint_effort is None else d.joint_effort[span]))
        return np.concatenate(rows)

    def simulate(self, params) -> np.ndarray:
        """Predicted residual columns for every step of every segment, aligned with `measured`."""
        calib = self._scratch / f"candidate-{self.evaluations}.yaml"
        calib.write_text(Calibration(params=params).to_yaml())
        self.evaluations += 1
        # The servos' goals rounded to their ticks where the recorded robot's were (a servo bus): without it the
        # replay's present current at nominal was off by the rounding's torque, [0.029 0.093 0.078] N m on the
        # first three joints of a no-gap recording from the emulated arm, against [0.011 0.034 0.019] with it.
        # The round trip on the commands: each segment starts from a reading that is already latency_s old
        # (sim/common.py DelayedIO says why and by how much).
        backend = make_backend(self.spec, self.sim, {"goal_ticks": bool(self.data.meta.get("goal_ticks", False)),
                                                     **self.sim_options, "calibration": str(calib),
                                                     "latency_on_commands": True})
        d, out = self.data, []
        goals = self._goals_behind_play(params.backlash)
        try:
            for s, length in self.segments:
                previous = d.commands[s - 1] if s > 0 else d.joint_pos[0]
                backend.reset(np.random.default_rng(0), {"joint_pos": d.joint_pos[s], "joint_vel": d.joint_vel[s],
                                                         "joint_target": previous, "servo_goal": goals[s]})
                states = []
                for k in range(s, s + length):
                    backend.command(d.commands[k])
                    backend.advance()
                    states.append(backend.read())
                out.append(self._observed(np.array([r["joint_pos"] for r in states]),
                                          np.array([r["joint_effort"] for r in states]) if self.effort else None))
        finally:
            backend.close()
            calib.unlink(missing_ok=True)
        return np.concatenate(out)

    def _goals_behind_play(self, backlash: float) -> list[np.ndarray]:
        """Per step k: where gear play of `backlash` leaves each servo's goal after the commands before step k.

        A replay starts from the measured joint state, but the play's state is not measured: started at the
        setpoint, each segment ran kp x half the play off (0.4 N m of present current at the shoulder for 4 mrad)
        until its first reversal. The commands so far fix it: a target interpolation never overshoots, so the
        play after the setpoint's sweep through them is the play after the targets themselves.
        """
        start = np.asarray(self.data.joint_pos[0], dtype=np.float64)
        play = _rt.Backlash(play_widths(self.spec, backlash), start.tolist())
        return [start] + [np.asarray(play(np.ascontiguousarray(c, dtype=np.float64))) for c in self.data.commands[:-1]]

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

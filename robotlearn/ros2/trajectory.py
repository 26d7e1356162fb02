"""Sampling a JointTrajectory at the servo rate, as ros2_control's joint_trajectory_controller does.

Pure numpy (no rclpy). A trajectory starts when it arrives (``header.stamp`` is not honoured: bridge and
commander clocks need not agree), from the target the joints had then (the implicit point at t=0) and is interpolated linearly between its points; joints it does
not name keep their target. After the last point has been commanded once, `sample` returns None: the
bridge then sends nothing more, so a silent commander meets the compiled loop's watchdog (hold, then
torque off) exactly as it would calling the backend directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class TrajectoryError(ValueError):
    """A trajectory the bridge refuses (unknown joint, bad shapes, non-finite, times not increasing)."""


class Trajectory:
    """Joint-space trajectory: `times` (s after `start`, increasing, > 0) x `positions` for `joints`."""

    def __init__(self, joint_names: Sequence[str], all_joints: Sequence[str], times: Sequence[float],
                 positions: Sequence[Sequence[float]], start: float, current: np.ndarray):
        unknown = [j for j in joint_names if j not in all_joints]
        if unknown:
            raise TrajectoryError(f"unknown joint {unknown[0]!r}; joints: {', '.join(all_joints)}")
        if len(set(joint_names)) != len(joint_names):
            raise TrajectoryError("a joint is named twice")
        self.index = np.array([list(all_joints).index(j) for j in joint_names], dtype=int)
        pts = np.asarray(positions, dtype=np.float64)
        t = np.asarray(times, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[0] == 0 or pts.shape[1] != len(joint_names) or t.shape != (pts.shape[0],):
            raise TrajectoryError(f"every point needs {len(joint_names)} positions and a time_from_start")
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(t))):
            raise TrajectoryError("trajectory contains NaN/inf; nothing was sent")
        if t[0] < 0 or np.any(np.diff(t) <= 0):
            raise TrajectoryError("time_from_start must be >= 0 and strictly increasing")
        self.start = float(start)
        self.base = np.asarray(current, dtype=np.float64).copy()
        self.times = np.concatenate([[0.0], t]) if t[0] > 0 else t
        first = self.base[self.index][None, :]
        self.points = np.concatenate([first, pts]) if t[0] > 0 else pts
        self._done = False

    @property
    def end(self) -> float:
        return self.start + float(self.times[-1])

    def sample(self, now: float) -> np.ndarray | None:
        """The full joint target at `now`, or None once the final point has been returned."""
        if self._done:
            return None
        t = now - self.start
        if t >= self.times[-1]:
            self._done = True
            q = self.points[-1]
        else:
            t = max(t, 0.0)
            q = np.array([np.interp(t, self.times, self.points[:, k]) for k in range(self.points.shape[1])])
        target = self.base.copy()
        target[self.index] = q
        return target

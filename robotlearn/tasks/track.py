"""QuadTrack: follow a moving reference, a figure-eight or a randomly sampled smooth trajectory.

The reference is a function of episode time, advanced one control period per observation, so the
same seed gives the same reference on every backend. Observations add the reference velocity so a
policy (or the expert) can feed it forward.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from robotlearn.core.backend import Backend, State
from robotlearn.tasks.hover import BODY_FRAME_KEYS, QuadGoalTask, body_frame_extras
from robotlearn.tasks.params import QuadTrackParams


class QuadTrack(QuadGoalTask):
    """`shape`: "figure8" (Lissajous 1:2 of `size` m, `period` s) or "random" (sum of 3 sinusoids/axis)."""

    Params = QuadTrackParams

    def __init__(self, shape: str = "figure8", center=(0.0, 0.0, 1.0), size=(1.0, 0.5, 0.0),
                 period: float = 8.0, **kwargs):
        kwargs.setdefault("tolerance", 0.15)
        super().__init__(**kwargs)
        if shape not in ("figure8", "random"):
            raise ValueError(f"quad_track shape must be 'figure8' or 'random', got {shape!r}")
        if period <= 0:
            raise ValueError(f"quad_track period must be > 0, got {period}")
        self.shape, self.period = shape, float(period)
        self.center, self.size = np.asarray(center, dtype=np.float64), np.asarray(size, dtype=np.float64)
        self._amp = np.zeros((3, 3))
        self._freq = np.zeros((3, 3))
        self._phase = np.zeros((3, 3))
        self._k = 0

    def reference(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        if self.shape == "figure8":
            w = 2 * np.pi / self.period
            pos = self.center + self.size * np.array([np.sin(w * t), 0.5 * np.sin(2 * w * t), np.sin(w * t)])
            vel = self.size * np.array([w * np.cos(w * t), w * np.cos(2 * w * t), w * np.cos(w * t)])
            return pos, vel
        arg = self._freq * t + self._phase
        pos = self.center + np.sum(self._amp * (np.sin(arg) - np.sin(self._phase)), axis=1)
        vel = np.sum(self._amp * self._freq * np.cos(arg), axis=1)
        return pos, vel

    def observation_spaces(self) -> dict[str, spaces.Space]:
        box = spaces.Box(-np.inf, np.inf, (3,), np.float32)
        return {"goal_pos": box, "goal_rel": box, "goal_vel": box, **dict.fromkeys(BODY_FRAME_KEYS, box)}

    def initial_state(self, rng: np.random.Generator, home: State) -> dict[str, np.ndarray]:
        if self.shape == "random":
            # Three harmonics per axis, amplitudes summing to `size`, periods >= period / 3.
            self._amp = self.size[:, None] * rng.dirichlet(np.ones(3), 3)
            self._freq = 2 * np.pi / self.period * rng.uniform(1.0, 3.0, (3, 3))
            self._phase = rng.uniform(-np.pi, np.pi, (3, 3))
        self._k = 0
        start, _ = self.reference(0.0)
        return {**self.sample_start(rng, start), "marker/goal/pos": start}

    def observe(self, robot_obs: dict[str, np.ndarray], backend: Backend) -> dict[str, np.ndarray]:
        pos, vel = self.reference(self._k / backend.spec.control_hz)
        self._k += 1
        self.goal = pos
        goal_rel = pos - robot_obs["pos"].astype(np.float64)
        return {"goal_pos": pos.astype(np.float32), "goal_vel": vel.astype(np.float32),
                "goal_rel": goal_rel.astype(np.float32), **body_frame_extras(robot_obs, goal_rel)}

"""Pieces shared by the arm tasks: sampling boxes and the start-pose jitter."""

from __future__ import annotations

import numpy as np

from robotlearn.core.backend import State


def sample_box(rng: np.random.Generator, low, high) -> np.ndarray:
    return rng.uniform(np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64))


def jittered_home(rng: np.random.Generator, home: State, n_arm: int, scale: float) -> np.ndarray:
    """Home joint pose with uniform noise on the arm joints (fingers untouched)."""
    q = home["joint_pos"].copy()
    q[:n_arm] += rng.uniform(-scale, scale, n_arm)
    return q


"""NED/FRD <-> ENU/FLU conversions: consistent with rotation matrices, involutive, and anchored on
hand-checked cases (a wrong sign would make a real vehicle flip)."""

from __future__ import annotations

import numpy as np
import pytest

from robotlearn.core.rotations import quat_to_rot
from robotlearn.hardware import frames


def _random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_hand_checked_cases():
    # 1 m north, 2 m east, 3 m up (ENU x=east, y=north)
    assert np.allclose(frames.enu_to_ned([2.0, 1.0, 3.0]), [1.0, 2.0, -3.0])
    assert np.allclose(frames.flu_to_frd([0.1, 0.2, 0.3]), [0.1, -0.2, -0.3])
    # Level, nose east in ENU (yaw 0) is heading 90 deg in NED.
    assert frames.yaw_enu_to_ned(0.0) == pytest.approx(np.pi / 2)
    assert frames.yaw_ned_to_enu(0.0) == pytest.approx(np.pi / 2)  # nose north
    q_ned = frames.quat_enu_flu_to_ned_frd([1.0, 0.0, 0.0, 0.0])
    R = quat_to_rot(q_ned)
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])  # body forward = east (NED y)
    assert np.allclose(R @ [0, 0, 1], [0, 0, 1])  # body down = NED down


@pytest.mark.parametrize("q", list(_random_quats(20)))
def test_quaternion_conversion_matches_vector_conversions(q):
    v = np.random.default_rng(1).normal(size=3)
    q_ned = frames.quat_enu_flu_to_ned_frd(q)
    # Rotating a body vector then converting the world vector == converting both, then rotating.
    assert np.allclose(quat_to_rot(q_ned) @ frames.flu_to_frd(v), frames.enu_to_ned(quat_to_rot(q) @ v))
    back = frames.quat_ned_frd_to_enu_flu(q_ned)
    assert np.allclose(back, q if q[0] >= 0 else -q)
    assert q_ned[0] >= 0


def test_yaw_round_trip_and_vector_involution():
    for yaw in np.linspace(-3.1, 3.1, 13):
        assert frames.yaw_ned_to_enu(frames.yaw_enu_to_ned(yaw)) == pytest.approx(yaw)
    v = np.array([0.3, -1.2, 2.5])
    assert np.allclose(frames.ned_to_enu(frames.enu_to_ned(v)), v)
    assert np.allclose(frames.frd_to_flu(frames.flu_to_frd(v)), v)

"""JointTrajectory sampling in the bridge (robotlearn/ros2/trajectory.py), without ROS."""

from __future__ import annotations

import numpy as np
import pytest

from robotlearn.ros2.trajectory import Trajectory, TrajectoryError

JOINTS = ["a", "b", "c"]


def test_interpolates_from_the_current_target_and_keeps_unnamed_joints():
    current = np.array([0.0, 1.0, 2.0])
    traj = Trajectory(["c", "a"], JOINTS, [1.0, 2.0], [[3.0, 1.0], [2.0, 2.0]], start=10.0, current=current)
    np.testing.assert_allclose(traj.sample(10.0), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(traj.sample(10.5), [0.5, 1.0, 2.5])
    np.testing.assert_allclose(traj.sample(11.5), [1.5, 1.0, 2.5])
    np.testing.assert_allclose(traj.sample(12.5), [2.0, 1.0, 2.0])  # the final point, once
    assert traj.sample(12.6) is None  # then nothing: a silent commander meets the watchdog
    assert traj.end == 12.0


def test_a_point_at_time_zero_is_taken_as_given():
    traj = Trajectory(["a"], JOINTS, [0.0, 1.0], [[5.0], [6.0]], start=0.0, current=np.zeros(3))
    np.testing.assert_allclose(traj.sample(0.0), [5.0, 0.0, 0.0])


@pytest.mark.parametrize(("names", "times", "points", "message"), [
    (["a", "x"], [1.0], [[0.0, 0.0]], "unknown joint 'x'"),
    (["a", "a"], [1.0], [[0.0, 0.0]], "named twice"),
    (["a"], [1.0, 1.0], [[0.0], [1.0]], "strictly increasing"),
    (["a"], [1.0], [[np.nan]], "NaN"),
    (["a", "b"], [1.0], [[0.0]], "every point needs 2 positions"),
    (["a"], [], [], "every point needs 1 positions"),
])
def test_bad_trajectories_are_refused(names, times, points, message):
    with pytest.raises(TrajectoryError, match=message):
        Trajectory(names, JOINTS, times, points, start=0.0, current=np.zeros(3))

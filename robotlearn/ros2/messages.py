"""ROS 2 messages as robotlearn backend state, shared by the ROS 2 backend and the recorder node (pure
functions of message fields: no rclpy import)."""

from __future__ import annotations

import numpy as np

from robotlearn.core.backend import State


def joint_state_to_state(msg, names: list[str]) -> State | None:
    """A sensor_msgs/JointState as the arm's backend state, in `names` order; None when the message does not
    name all of them (another robot's joint_states on the same topic)."""
    try:
        order = [list(msg.name).index(n) for n in names]
    except ValueError:
        return None
    pos = np.asarray(msg.position, dtype=np.float64)[order]
    vel = np.asarray(msg.velocity, dtype=np.float64)[order] if len(msg.velocity) else np.zeros(len(order))
    return {"joint_pos": pos, "joint_vel": vel}


def odometry_to_state(msg) -> State:
    """A nav_msgs/Odometry as the quadrotor's backend state (world-frame velocity, body rates)."""
    from robotlearn.core.rotations import quat_to_rot

    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    v, w = msg.twist.twist.linear, msg.twist.twist.angular
    quat = np.array([o.w, o.x, o.y, o.z])
    vel = quat_to_rot(quat) @ np.array([v.x, v.y, v.z])  # odometry twist is in the body frame
    return {"pos": np.array([p.x, p.y, p.z]), "quat": quat, "vel": vel, "omega": np.array([w.x, w.y, w.z])}

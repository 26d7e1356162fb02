"""Shared test setup: headless rendering, one torch thread, and the env ids under test."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

# ROS 2 (tests/test_ros2*.py): real rclpy and DDS on loopback only, in a domain of this session's own, so
# parallel runs and other ROS users on the machine never see each other. robotlearn/ros2/env.py sets what
# the ROS wheels need (and re-executes this pytest once if the loader path had to change).
import random  # noqa: E402

os.environ.setdefault("ROBOTLEARN_TEST_ROS_DOMAIN", str(random.SystemRandom().randint(1, 101)))
os.environ["ROS_DOMAIN_ID"] = os.environ["ROBOTLEARN_TEST_ROS_DOMAIN"]
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def pytest_configure(config):
    from robotlearn.ros2 import env as ros_env

    if ros_env.needs_reexec(os.environ):
        # give the terminal back first (pytest captures fd 1/2 by now), so the restarted run prints to it
        config.pluginmanager.getplugin("capturemanager").stop_global_capturing()
        ros_env.ensure()

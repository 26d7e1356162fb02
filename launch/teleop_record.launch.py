"""Teleoperate a robot over ROS 2 and record a dataset:
``ros2 launch robotlearn teleop_record.launch.py device:=keyboard dataset:=data/reach``.

The bridge runs the robot (a sim by default); the teleop node drives it through the bridge's command topics
with a robotlearn teleop device and writes each episode through the robotlearn recorder (LeRobot v3 layout).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arg = LaunchConfiguration
    return LaunchDescription([
        DeclareLaunchArgument("env", default_value="robotlearn/ArmReach-v0", description="robotlearn env id"),
        DeclareLaunchArgument("backend", default_value="mujoco", description="the bridge's backend"),
        DeclareLaunchArgument("device", default_value="keyboard",
                              description="keyboard, gamepad, spacemouse, leader_arm or scripted"),
        DeclareLaunchArgument("dataset", default_value="", description="dataset directory (empty: do not record)"),
        DeclareLaunchArgument("episodes", default_value="10", description="episodes to record"),
        DeclareLaunchArgument("namespace", default_value="arm", description="namespace of the bridge's topics"),
        Node(
            package="robotlearn", executable="robotlearn_bridge", name="bridge", namespace=arg("namespace"),
            output="screen",
            parameters=[
                PathJoinSubstitution([FindPackageShare("robotlearn"), "config", "arm_bridge.yaml"]),
                {"env": ParameterValue(arg("env"), value_type=str),
                 "backend": ParameterValue(arg("backend"), value_type=str)},
            ],
        ),
        Node(
            package="robotlearn", executable="robotlearn_teleop", name="teleop", namespace=arg("namespace"),
            output="screen", emulate_tty=True,
            parameters=[{
                "env": ParameterValue(arg("env"), value_type=str),
                "backend": "ros2",
                "backend_options": ParameterValue(["namespace=", arg("namespace")], value_type=str),
                "device": ParameterValue(arg("device"), value_type=str),
                "dataset": ParameterValue(arg("dataset"), value_type=str),
                "episodes": ParameterValue(arg("episodes"), value_type=int),
            }],
        ),
    ])

"""The arm in simulation behind ROS 2: ``ros2 launch robotlearn sim_arm.launch.py backend:=pybullet``.

Starts robotlearn_bridge on MuJoCo or PyBullet: joint_states at the physics rate, joint_trajectory / commands
in, reset / estop / enable services, camera images when ``cameras`` names some.
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
        DeclareLaunchArgument("env", default_value="robotlearn/ArmReach-v0", description="robotlearn env id (its robot)"),
        DeclareLaunchArgument("backend", default_value="mujoco", description="simulator: mujoco or pybullet"),
        DeclareLaunchArgument("namespace", default_value="arm", description="namespace of the bridge's topics"),
        DeclareLaunchArgument("cameras", default_value="", description="cameras to publish, comma-separated"),
        Node(
            package="robotlearn", executable="robotlearn_bridge", name="bridge", namespace=arg("namespace"),
            output="screen",
            parameters=[
                PathJoinSubstitution([FindPackageShare("robotlearn"), "config", "arm_bridge.yaml"]),
                {"env": ParameterValue(arg("env"), value_type=str),
                 "backend": ParameterValue(arg("backend"), value_type=str),
                 "cameras": ParameterValue(arg("cameras"), value_type=str)},
            ],
        ),
    ])

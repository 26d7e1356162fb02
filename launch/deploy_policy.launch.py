"""Deploy a checkpoint over ROS 2: ``ros2 launch robotlearn deploy_policy.launch.py checkpoint:=runs/x/checkpoint``.

Starts the bridge on ``backend`` (a sim, or ``real`` with ``port``) and the policy runner, which rebuilds the
checkpoint's env on the ROS 2 backend (the robot behind that bridge) and acts at the env's control rate.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arg = LaunchConfiguration
    bridge_options = PythonExpression(["'port=", arg("port"), "' if '", arg("backend"), "' == 'real' else ''"])
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", description="checkpoint directory (robotlearn train)"),
        DeclareLaunchArgument("env", default_value="robotlearn/ArmReach-v0",
                              description="env id whose robot the bridge runs (the checkpoint's env)"),
        DeclareLaunchArgument("backend", default_value="mujoco", description="the bridge's backend"),
        DeclareLaunchArgument("port", default_value="/tmp/rl-arm0", description="serial port when backend:=real"),
        DeclareLaunchArgument("episodes", default_value="10", description="episodes to run (0: until stopped)"),
        DeclareLaunchArgument("namespace", default_value="arm", description="namespace of the bridge's topics"),
        Node(
            package="robotlearn", executable="robotlearn_bridge", name="bridge", namespace=arg("namespace"),
            output="screen",
            parameters=[
                PathJoinSubstitution([FindPackageShare("robotlearn"), "config", "arm_bridge.yaml"]),
                {"env": ParameterValue(arg("env"), value_type=str),
                 "backend": ParameterValue(arg("backend"), value_type=str),
                 "backend_options": ParameterValue(bridge_options, value_type=str)},
            ],
        ),
        Node(
            package="robotlearn", executable="robotlearn_policy_runner", name="policy", namespace=arg("namespace"),
            output="screen",
            parameters=[{
                "checkpoint": ParameterValue(arg("checkpoint"), value_type=str),
                "backend": "ros2",
                "backend_options": ParameterValue(["namespace=", arg("namespace")], value_type=str),
                "episodes": ParameterValue(arg("episodes"), value_type=int),
            }],
        ),
    ])

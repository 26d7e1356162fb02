"""The real arm behind ROS 2: ``ros2 launch robotlearn real_arm.launch.py port:=/dev/ttyUSB0``.

With ``emulate:=true`` the servo-bus emulator (``robotlearn emulate arm``) starts first on ``port`` and the
bridge drives it with the production driver, exactly as it would drive the robot.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arg = LaunchConfiguration
    return LaunchDescription([
        DeclareLaunchArgument("env", default_value="robotlearn/ArmReach-v0", description="robotlearn env id (its robot)"),
        DeclareLaunchArgument("port", default_value="/tmp/rl-arm0", description="serial device or emulator link"),
        DeclareLaunchArgument("hardware_config", default_value="arm6_emulated",
                              description="hardware config name (configs/hardware/) or YAML path"),
        DeclareLaunchArgument("emulate", default_value="false", description="start the servo-bus emulator on port"),
        DeclareLaunchArgument("namespace", default_value="arm", description="namespace of the bridge's topics"),
        ExecuteProcess(cmd=["robotlearn", "emulate", "arm", "--link", arg("port")], output="screen",
                       condition=IfCondition(arg("emulate"))),
        Node(
            package="robotlearn", executable="robotlearn_bridge", name="bridge", namespace=arg("namespace"),
            output="screen",
            parameters=[
                PathJoinSubstitution([FindPackageShare("robotlearn"), "config", "arm_bridge.yaml"]),
                {"env": ParameterValue(arg("env"), value_type=str),
                 "backend": "real",
                 "backend_options": ParameterValue(["port=", arg("port"), " config=", arg("hardware_config")],
                                                   value_type=str)},
            ],
        ),
    ])

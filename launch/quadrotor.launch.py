"""A quadrotor behind ROS 2: odom out; commands (CTBR), cmd_vel and goal_pose in.

``ros2 launch robotlearn quadrotor.launch.py`` flies it in MuJoCo; ``backend:=real connection:=udpin:...``
flies a PX4/ArduPilot vehicle over MAVLink, and ``emulate:=true`` starts the MAVLink vehicle emulator first.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arg = LaunchConfiguration
    options = PythonExpression(["'connection=", arg("connection"), "' if '", arg("backend"), "' == 'real' else ''"])
    return LaunchDescription([
        DeclareLaunchArgument("env", default_value="robotlearn/QuadHover-v0", description="robotlearn env id (its robot)"),
        DeclareLaunchArgument("backend", default_value="mujoco", description="mujoco, pybullet or real (MAVLink)"),
        DeclareLaunchArgument("connection", default_value="udpin:127.0.0.1:14550",
                              description="MAVLink connection of the real vehicle"),
        DeclareLaunchArgument("emulate", default_value="false",
                              description="start the MAVLink vehicle emulator sending to connection's port"),
        DeclareLaunchArgument("rate_hz", default_value="50.0", description="odometry / control rate (Hz)"),
        DeclareLaunchArgument("namespace", default_value="quad", description="namespace of the bridge's topics"),
        ExecuteProcess(cmd=["robotlearn", "emulate", "quadrotor", "--mavlink",
                            PythonExpression(["'", arg("connection"), "'.replace('udpin', 'udpout')"])],
                       output="screen", condition=IfCondition(arg("emulate"))),
        Node(
            package="robotlearn", executable="robotlearn_bridge", name="bridge", namespace=arg("namespace"),
            output="screen",
            parameters=[
                PathJoinSubstitution([FindPackageShare("robotlearn"), "config", "quadrotor_bridge.yaml"]),
                {"env": ParameterValue(arg("env"), value_type=str),
                 "backend": ParameterValue(arg("backend"), value_type=str),
                 "backend_options": ParameterValue(options, value_type=str),
                 "rate_hz": ParameterValue(arg("rate_hz"), value_type=float)},
            ],
        ),
    ])

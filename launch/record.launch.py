"""Record a robot from its ROS 2 topics, whoever drives it:
``ros2 launch robotlearn record.launch.py namespace:=arm dataset:=data/session bag:=bags/session``.

Starts only the recorder node, under the bridge's namespace: it listens to joint_states / odom, the command
topics and the cameras, and writes a robotlearn dataset (LeRobot v3 layout) and/or a rosbag2 (MCAP storage).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    arg = LaunchConfiguration
    return LaunchDescription([
        DeclareLaunchArgument("env", default_value="robotlearn/ArmReach-v0",
                              description="robotlearn env id whose robot the topics carry"),
        DeclareLaunchArgument("namespace", default_value="arm", description="namespace of the robot's topics"),
        DeclareLaunchArgument("dataset", default_value="", description="dataset directory (empty: none)"),
        DeclareLaunchArgument("bag", default_value="", description="rosbag2 MCAP directory to create (empty: none)"),
        DeclareLaunchArgument("cameras", default_value="", description="cameras to record, comma-separated"),
        DeclareLaunchArgument("episode_s", default_value="0.0",
                              description="episode length in seconds (0: until ~/stop_episode)"),
        DeclareLaunchArgument("episodes", default_value="1", description="episodes to record (0: until stopped)"),
        Node(
            package="robotlearn", executable="robotlearn_recorder", name="recorder", namespace=arg("namespace"),
            output="screen",
            parameters=[{
                "env": ParameterValue(arg("env"), value_type=str),
                "dataset": ParameterValue(arg("dataset"), value_type=str),
                "bag": ParameterValue(arg("bag"), value_type=str),
                "cameras": ParameterValue(arg("cameras"), value_type=str),
                "episode_s": ParameterValue(arg("episode_s"), value_type=float),
                "episodes": ParameterValue(arg("episodes"), value_type=int),
            }],
        ),
    ])

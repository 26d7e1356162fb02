"""ROS 2 integration with rclpy: the bridge, policy runner, recorder and teleop nodes.

Importing this package does not import rclpy (see env.py: the process environment comes first); the node
modules do. The ROS 2 *backend* (a robot behind these topics as one more robotlearn backend) lives in
robotlearn/hardware/ros2.py.
"""

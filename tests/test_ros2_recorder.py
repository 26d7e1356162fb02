"""The recorder node, with real rclpy and DDS: it listens to a bridge while the test commands the robot, and
writes a robotlearn dataset (LeRobot v3 layout) and a rosbag2 with MCAP storage, read back here with the
robotlearn loader, with ``rosbags`` and with the MCAP project's own reader."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mcap.reader import make_reader
from ros2_nodes import ARM_JOINTS, NodeProcess, Probe, wait_for
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robotlearn.data.dataset import load_meta
from robotlearn.data.integrity import check_dataset
from robotlearn.data.loader import load_demos

GOAL = 0.4  # shoulder_pan target (rad) the test commands through the bridge


@pytest.fixture()
def probe():
    p = Probe()
    yield p
    p.close()


def test_recorder_writes_a_dataset_and_an_mcap_bag_of_a_commanded_arm(tmp_path, probe):
    bridge = NodeProcess("robotlearn_bridge", "bridge", "/rec",
                         {"env": "robotlearn/ArmReach-v0", "backend": "mujoco", "rate_hz": 250.0,
                          "cameras": "scene", "camera_hz": 20.0}, tmp_path)
    recorder = None
    try:
        states = probe.joint_states("/rec/joint_states")
        images: list = []
        probe.node.create_subscription(Image, "/rec/scene/image_raw", images.append, 10)
        wait_for(lambda: len(states) > 5 and len(images) > 2, 40, "the bridge's joint states and images")
        recorder = NodeProcess("robotlearn_recorder", "recorder", "/rec",
                               {"env": "robotlearn/ArmReach-v0", "dataset": str(tmp_path / "data"),
                                "bag": str(tmp_path / "bag"), "cameras": "scene", "fps": 20.0,
                                "autostart": False, "episodes": 1, "source": "human"}, tmp_path)
        assert probe.call(Trigger, "/rec/recorder/start_episode", timeout=40).success
        wait_for(lambda: "episode 0 recording" in recorder.output(), 20, "the recorder's first frame")
        pub = probe.node.create_publisher(JointTrajectory, "/rec/joint_trajectory", 10)
        wait_for(lambda: pub.get_subscription_count() >= 2, 10, "bridge and recorder subscribing to joint_trajectory")
        point = JointTrajectoryPoint(positions=[GOAL])
        point.time_from_start.sec = 1
        pub.publish(JointTrajectory(joint_names=["shoulder_pan"], points=[point]))
        wait_for(lambda: abs(states[-1][1].position[0] - GOAL) < 0.02, 10, "the arm reaching the goal")
        time.sleep(1.0)  # frames after the trajectory's end (the recorder samples it on its own clock)
        assert probe.call(Trigger, "/rec/recorder/stop_episode").success
        assert recorder.proc.wait(20) == 0, recorder.output()  # episodes:=1 -> it exits once that one is saved
    finally:
        if recorder is not None:
            recorder.stop()
        bridge.stop()

    # the dataset: robot-level frames, the commanded target as action, the scene camera as video
    meta = load_meta(tmp_path / "data")
    check_dataset(meta, full=True)
    assert meta.fps == 20.0 and meta.info["robot_type"] and len(meta.episodes) == 1
    demos = load_demos(tmp_path / "data")
    n = demos.num_frames
    assert n >= 20, recorder.output()
    pos = demos.data["observation.joint_pos"]
    action = demos.data["action"]
    assert pos.shape == (n, 8) and action.shape == (n, 8)
    assert demos.data["observation.images.scene"].shape[0] == n
    assert set(demos.data["source"]) == {"human"}
    # the trajectory is sampled as the bridge executes it: a ramp from the start to the goal, then the goal
    assert abs(action[-1, 0] - GOAL) < 1e-6
    ramp = action[:, 0][(action[:, 0] > 0.05 * GOAL) & (action[:, 0] < 0.95 * GOAL)]
    assert len(ramp) >= 5, action[:, 0]
    assert np.all(np.diff(action[:, 0]) >= -1e-9)
    assert abs(pos[-1, 0] - GOAL) < 0.03 and abs(pos[0, 0] - GOAL) > 0.3

    # the bag: every topic as it arrived, readable without ROS by rosbags and by the MCAP reader
    typestore = get_typestore(Stores.ROS2_JAZZY)
    with Reader(tmp_path / "bag") as bag:
        counts = {c.topic: c.msgcount for c in bag.connections}
        assert counts["/rec/joint_states"] >= 250, counts  # >= 1 s of a 250 Hz stream
        assert counts["/rec/joint_trajectory"] == 1 and counts["/rec/scene/image_raw"] >= 10
        conn = next(c for c in bag.connections if c.topic == "/rec/joint_trajectory")
        _, _, raw = next(bag.messages(connections=[conn]))
        msg = typestore.deserialize_cdr(raw, conn.msgtype)
        assert list(msg.joint_names) == ["shoulder_pan"] and msg.points[0].positions.tolist() == [GOAL]
        js_conn = next(c for c in bag.connections if c.topic == "/rec/joint_states")
        _, _, raw = next(bag.messages(connections=[js_conn]))
        assert list(typestore.deserialize_cdr(raw, js_conn.msgtype).name) == ARM_JOINTS
    (mcap_file,) = (tmp_path / "bag").glob("*.mcap")
    with open(mcap_file, "rb") as f:
        reader = make_reader(f)
        schemas = {s.name for s in reader.get_summary().schemas.values()}
        total = sum(1 for _ in reader.iter_messages())
    assert {"sensor_msgs/msg/JointState", "trajectory_msgs/msg/JointTrajectory", "sensor_msgs/msg/Image"} <= schemas
    assert total == sum(counts.values())


def test_recorder_bad_parameters_are_one_line_errors(tmp_path):
    (tmp_path / "taken").mkdir()
    cases = [({}, "nothing to record"),
             ({"bag": str(tmp_path / "taken")}, "exists"),
             ({"dataset": str(tmp_path / "d"), "cameras": "nope"}, "has no camera 'nope'"),
             ({"dataset": str(tmp_path / "d"), "source": "robot"}, "parameter 'source'")]
    for k, (params, expected) in enumerate(cases):
        node = NodeProcess("robotlearn_recorder", f"bad{k}", "/bad", params, tmp_path)
        rc = node.proc.wait(60)
        node.stop()
        lines = node.output().strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "Traceback" not in lines[0] and expected in lines[0], lines

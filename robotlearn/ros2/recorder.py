"""``robotlearn_recorder``: record a robot from its ROS 2 topics, as a robotlearn dataset and/or a rosbag2.

It subscribes to what a bridge (or a ros2_control robot speaking the same conventions) publishes and is
commanded with, relative to the node's namespace, and touches nothing: any commander (a teleop node, a
policy runner, ``ros2 topic pub``, MoveIt) can drive the robot while it records.

* **Dataset** (``dataset:=DIR``): robot-level frames at ``fps`` through the one recorder (LeRobot v3 layout,
  per-step ``source`` label): arm ``observation.joint_pos/joint_vel`` and the commanded joint targets
  as ``action`` (a ``commands`` array as it arrived, a ``joint_trajectory`` sampled at the frame time exactly
  as the bridge executes it); quadrotor ``pos/quat/vel/omega`` from ``odom`` and the last CTBR ``commands``.
  Cameras listed in ``cameras`` add ``images/<camera>`` from ``<camera>/image_raw``. What a passive listener
  cannot know (a task's goal, reward, success) is not invented: rewards are 0 and success is false; record
  task-level episodes with the node that runs them (teleop / policy runner ``dataset:=``).
* **Bag** (``bag:=DIR``): every subscribed topic as it arrived (raw CDR, no re-serialisation) into a
  rosbag2 directory with MCAP storage, written with the ``rosbags`` library, readable by ``ros2 bag``.

Episodes: ``episode_s`` seconds each (0: until ``~/stop_episode``), ``episodes`` of them (0: until
stopped); ``~/start_episode`` / ``~/stop_episode`` (std_srvs/Trigger) start and end one by hand. On
shutdown an episode in progress is saved, so Ctrl-C never loses what was recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn.data.dataset import SOURCES
from robotlearn.ros2.params import Param, ParameterError, declare
from robotlearn.ros2.trajectory import Trajectory, TrajectoryError

PARAMETERS: tuple[Param, ...] = (
    Param("env", "robotlearn/ArmReach-v0", "robotlearn env id whose robot the topics carry (joints, rates, cameras)"),
    Param("robot_overrides", "", "robot config key=value overrides, comma-separated"),
    Param("dataset", "", "dataset directory to write (LeRobot v3 layout); empty: no dataset"),
    Param("bag", "", "rosbag2 directory to write with MCAP storage (raw messages of every topic); empty: no bag"),
    Param("fps", 0.0, "dataset frame rate (Hz); 0 = the env's control rate", low=0.0, high=1000.0),
    Param("cameras", "", "cameras to record from <camera>/image_raw, comma-separated (names from the robot config)"),
    Param("episode_s", 0.0, "episode length (s); 0 = until ~/stop_episode", low=0.0, high=86400.0),
    Param("episodes", 1, "episodes to record, then exit (0: until stopped)", low=0, high=1_000_000),
    Param("autostart", True, "start the first episode at once (false: wait for ~/start_episode)"),
    Param("source", "human", "per-step source label stored with every frame", choices=SOURCES),
    Param("task_text", "", "task description stored with each episode (empty: the env id)"),
    Param("stale_s", 0.5, "skip a frame when the newest robot state is older than this (s)", low=0.0, high=60.0),
)


@dataclass
class Latest:
    """The newest value of each input, written by subscription callbacks and read by the frame timer (both
    run on the node's single-threaded executor, so no lock is needed)."""

    state: dict[str, np.ndarray] | None = None
    state_t: float = 0.0
    action: np.ndarray | None = None
    trajectory: Trajectory | None = None
    images: dict[str, np.ndarray] = field(default_factory=dict)


class ArmInputs:
    """joint_states -> state; commands / joint_trajectory -> the commanded joint targets."""

    STATE = ("joint_states", "sensor_msgs/msg/JointState")
    COMMANDS = (("commands", "std_msgs/msg/Float64MultiArray"),
                ("joint_trajectory", "trajectory_msgs/msg/JointTrajectory"))

    def __init__(self, spec):
        self.names = spec.joint_names
        self.lower, self.upper = np.asarray(spec.lower), np.asarray(spec.upper)

    def state_keys(self) -> dict[str, int]:
        n = len(self.names)
        return {"joint_pos": n, "joint_vel": n}

    def action_size(self) -> int:
        return len(self.names)

    def on_state(self, msg, latest: Latest) -> None:
        from robotlearn.ros2.messages import joint_state_to_state

        state = joint_state_to_state(msg, self.names)
        if state is not None:
            latest.state, latest.state_t = state, time.monotonic()

    def on_command(self, topic: str, msg, latest: Latest) -> None:
        now = time.monotonic()
        if topic == "commands":
            data = np.asarray(msg.data, dtype=np.float64)
            if data.shape == (len(self.names),) and np.all(np.isfinite(data)):
                latest.action, latest.trajectory = data, None
            return
        current = self.action(latest, now)
        if current is None:
            return
        try:
            latest.trajectory = Trajectory(list(msg.joint_names), self.names,
                                           [p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in msg.points],
                                           [list(p.positions) for p in msg.points], now, current)
        except TrajectoryError:
            return  # the bridge refuses it too (and says so): nothing was commanded

    def action(self, latest: Latest, now: float) -> np.ndarray | None:
        """The target the robot is commanded to at `now` (the bridge's own trajectory sampling)."""
        if latest.trajectory is not None:
            target = latest.trajectory.sample(now)
            if target is None:  # its final point was returned once and stays the target
                latest.trajectory = None
            else:
                latest.action = target
        if latest.action is None and latest.state is not None:
            return latest.state["joint_pos"].copy()  # nothing commanded yet: the robot holds where it is
        return latest.action


class QuadInputs:
    """odom -> state; commands (CTBR) -> action."""

    STATE = ("odom", "nav_msgs/msg/Odometry")
    COMMANDS = (("commands", "std_msgs/msg/Float64MultiArray"),
                ("cmd_vel", "geometry_msgs/msg/Twist"),
                ("goal_pose", "geometry_msgs/msg/PoseStamped"))

    def __init__(self, spec):
        self.spec = spec

    def state_keys(self) -> dict[str, int]:
        return {"pos": 3, "quat": 4, "vel": 3, "omega": 3}

    def action_size(self) -> int:
        return 4

    def on_state(self, msg, latest: Latest) -> None:
        from robotlearn.ros2.messages import odometry_to_state

        latest.state, latest.state_t = odometry_to_state(msg), time.monotonic()

    def on_command(self, topic: str, msg, latest: Latest) -> None:
        if topic == "commands":  # setpoints (cmd_vel, goal_pose) are only bagged: the bridge flies them
            data = np.asarray(msg.data, dtype=np.float64)
            if data.shape == (4,) and np.all(np.isfinite(data)):
                latest.action = data

    def action(self, latest: Latest, now: float) -> np.ndarray | None:
        return latest.action if latest.action is not None else np.zeros(4)


#: robot kind -> what its topics mean
INPUTS: dict[str, type] = {"arm": ArmInputs, "quadrotor": QuadInputs}


def dataset_features(inputs, cameras: list, fps: float) -> dict[str, dict[str, Any]]:
    """The LeRobot features of the robot-level dataset (the same description the env recorder writes)."""
    import gymnasium as gym

    from robotlearn.data.recorder import features_from_spaces

    spaces: dict[str, gym.spaces.Box] = {
        key: gym.spaces.Box(-np.inf, np.inf, (n,), np.float32) for key, n in inputs.state_keys().items()}
    for cam in cameras:
        spaces[f"images/{cam.name}"] = gym.spaces.Box(0, 255, (cam.height, cam.width, 3), np.uint8)
    action = gym.spaces.Box(-np.inf, np.inf, (inputs.action_size(),), np.float32)
    return features_from_spaces(gym.spaces.Dict(spaces), action, fps)


def message_class(msgtype: str):
    """The rclpy message class of a ROS type name (``sensor_msgs/msg/JointState``)."""
    import importlib

    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class BagWriter:
    """A rosbag2 (MCAP storage) of raw CDR messages, through the ``rosbags`` library (no ROS needed to read
    it back, and ``ros2 bag info`` reads it too)."""

    def __init__(self, path: str):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        if Path(path).exists():
            raise ParameterError(f"parameter 'bag': {path} exists; rosbag2 writes a new directory")
        self._typestore = get_typestore(Stores.ROS2_JAZZY)
        self._writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.messages = 0

    def add_topic(self, topic: str, msgtype: str) -> None:
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._typestore)

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        self._writer.write(self._connections[topic], stamp_ns, data)
        self.messages += 1

    def close(self) -> None:
        self._writer.close()


class Recorder:
    """The node's behaviour: subscriptions (raw CDR), the frame timer, the episode services."""

    def __init__(self, node):
        from std_srvs.srv import Trigger

        from robotlearn.core.config import ConfigError
        from robotlearn.envs import env_robot_spec, resolve_env_id

        self.node = node
        v = self.values = declare(node, PARAMETERS)
        if not (v["dataset"] or v["bag"]):
            raise ParameterError(f"{node.get_name()}: nothing to record; set dataset:=DIR and/or bag:=DIR")
        self.env_id = resolve_env_id(v["env"])
        _, spec = env_robot_spec(self.env_id, [o for o in v["robot_overrides"].split(",") if o])
        self.inputs = INPUTS[spec.kind](spec)
        try:
            self.cameras = [spec.camera(c) for c in v["cameras"].split(",") if c]
        except (KeyError, ValueError, ConfigError) as err:
            raise ParameterError(f"{node.get_name()}: parameter 'cameras': {err}") from None
        self.fps = v["fps"] or spec.control_hz
        self.latest = Latest()
        self.done = False
        self.frames_skipped = 0
        self._episodes_done = 0
        self._episode_start = 0.0
        self.bag = BagWriter(v["bag"]) if v["bag"] else None
        self.dataset = None
        if v["dataset"]:
            from robotlearn.data.recorder import EpisodeRecorder
            from robotlearn.rollout import EnvRecipe

            self.dataset = EpisodeRecorder(v["dataset"], self.fps, dataset_features(self.inputs, self.cameras, self.fps),
                                           spec.name, EnvRecipe(self.env_id).to_dict())
        topics = [(*self.inputs.STATE, self.inputs.on_state),
                  *[(t, ty, self._command_handler(t)) for t, ty in self.inputs.COMMANDS]]
        for cam in self.cameras:
            topics.append((f"{cam.name}/image_raw", "sensor_msgs/msg/Image", self._image_handler(cam)))
            topics.append((f"{cam.name}/camera_info", "sensor_msgs/msg/CameraInfo", None))
        for topic, msgtype, handler in topics:
            self._subscribe(topic, msgtype, message_class(msgtype), handler)
        node.create_service(Trigger, "~/start_episode", self._on_start)
        node.create_service(Trigger, "~/stop_episode", self._on_stop)
        self.timer = node.create_timer(1.0 / self.fps, self._on_frame)
        if v["autostart"]:
            self._start()
        what = " and ".join(x for x in (v["dataset"] and f"dataset {v['dataset']}", v["bag"] and f"bag {v['bag']}") if x)
        node.get_logger().info(f"recorder: {spec.name} at {self.fps:g} Hz into {what}")

    # ---- inputs --------------------------------------------------------------------------------
    def _subscribe(self, topic: str, msgtype: str, cls, handler) -> None:
        """One raw subscription per topic: the bag gets the bytes as they arrived; the dataset, when it needs
        the topic, gets them deserialised."""
        from rclpy.serialization import deserialize_message

        name = self.node.resolve_topic_name(topic)
        if self.bag is not None:
            self.bag.add_topic(name, msgtype)

        def receive(data: bytes) -> None:
            if self.bag is not None:
                self.bag.write(name, self.node.get_clock().now().nanoseconds, data)
            if handler is not None and self.dataset is not None:
                handler(deserialize_message(data, cls), self.latest)

        self.node.create_subscription(cls, topic, receive, 50, raw=True)

    def _command_handler(self, topic: str):
        return lambda msg, latest: self.inputs.on_command(topic, msg, latest)

    @staticmethod
    def _image_handler(cam):
        def handle(msg, latest: Latest) -> None:
            if msg.encoding == "rgb8" and (msg.height, msg.width) == (cam.height, cam.width):
                latest.images[cam.name] = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        return handle

    # ---- episodes ------------------------------------------------------------------------------
    def _start(self) -> str:
        if self.dataset is None:
            return "bag only: it records continuously"
        if self.dataset.recording:
            return "an episode is already being recorded"
        self.dataset.start_episode(self.values["task_text"] or self.env_id)
        self._episode_start = time.monotonic()
        self.node.get_logger().info(f"recorder: episode {self.dataset.num_episodes} started")
        return ""

    def _stop(self) -> str:
        if self.dataset is None or not self.dataset.recording:
            return "no episode is being recorded"
        frames = self.dataset.episode_frames
        if frames == 0:
            self.dataset.discard_episode()
            return "the episode had no frames (no robot state arrived); nothing saved"
        index = self.dataset.save_episode()
        self._episodes_done += 1
        self.node.get_logger().info(f"recorder: episode {index} saved ({frames} frames, "
                                    f"{self.frames_skipped} skipped for a stale state)")
        self.frames_skipped = 0
        episodes = self.values["episodes"]
        if episodes and self._episodes_done >= episodes:
            self.done = True
        return ""

    def _on_start(self, _request, response):
        error = self._start()
        response.success, response.message = not error, error or "episode started"
        return response

    def _on_stop(self, _request, response):
        error = self._stop()
        response.success, response.message = not error, error or "episode saved"
        return response

    def _on_frame(self) -> None:
        if self.dataset is None or not self.dataset.recording:
            return
        now = time.monotonic()
        latest = self.latest
        episode_s = self.values["episode_s"]
        if episode_s and now - self._episode_start >= episode_s:
            self._stop()
            if not self.done:
                self._start()
            return
        if latest.state is None or now - latest.state_t > self.values["stale_s"] or (
                len(latest.images) < len(self.cameras)):
            self.frames_skipped += 1
            return
        action = self.inputs.action(latest, now)
        obs = {**latest.state, **{f"images/{k}": img for k, img in latest.images.items()}}
        if self.dataset.episode_frames == 0:  # tell the operator when frames really start (all inputs arriving)
            self.node.get_logger().info(f"recorder: episode {self.dataset.num_episodes} recording")
        self.dataset.add_frame(obs, action, source=self.values["source"], timestamp=latest.state_t)

    def spin(self) -> None:
        import rclpy

        while rclpy.ok() and not self.done:
            rclpy.spin_once(self.node, timeout_sec=0.1)

    def close(self) -> None:
        try:
            if self.dataset is not None:
                if self.dataset.recording:
                    self._stop()
                self.dataset.close()
        finally:
            if self.bag is not None:
                self.bag.close()
                self.node.get_logger().info(f"recorder: bag {self.values['bag']} closed ({self.bag.messages} messages)")


def main(argv: list[str] | None = None) -> int:
    from robotlearn.ros2.node import run_node

    return run_node("robotlearn_recorder", Recorder, argv)


if __name__ == "__main__":
    raise SystemExit(main())

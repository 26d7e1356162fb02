"""Scene objects over ROS 2: their poses out of the bridge, and the reset's placement into it.

Topics, relative to the bridge's namespace (no rclpy import here: message classes are passed in or imported
inside the functions, so the launch test's "rclpy only in ros2/ and hardware/ros2.py" rule holds):

* ``objects/<name>/pose`` (geometry_msgs/PoseStamped, out, at ``object_hz``): each scene object the env's task
  places at reset (or those named in ``objects``) that the bridge's backend can observe, through the backend's own `object_pose` -- ground truth in the sims, camera perception
  on the real arm (where a hidden marker keeps its last-seen pose). ``frame_id`` is the bridge's frame
  ("world"); the stamp is the time of the state it was read with (the same tick as ``joint_states``).
* ``objects/diagnostics`` (diagnostic_msgs/DiagnosticArray, out, with the poses): only where the backend
  reports perception (``info["perception"]``): one status per object, OK when its marker is visible in the
  newest frame, WARN when the pose is a last-seen (or, before the first sighting, the placed) one, with the
  perception's numbers (visible, seen, age_s, markers, grasped, ...) as key/values, plus one status
  ``objects/perception`` with the rest (frames, detection_rate, latency_s); the ROS 2 backend turns them back into
  the step's ``info["perception"]``, as the real arm's backend reports it directly. Why a diagnostic and not a
  covariance convention on a PoseWithCovarianceStamped: the pose topic stays the plain type that every tool
  reads, "last seen 0.4 s ago" is a fact not an uncertainty we could calibrate, and DiagnosticArray is where
  ROS tools (rqt_robot_monitor, the aggregator) look for a sensor's health.
* ``reset_scene`` (std_msgs/String, in; reliable, transient local, depth 1): a placement for the next reset,
  JSON ``{"id": "<client>:<n>", "scene": {"object/<name>/pos": [x, y, z], "object/<name>/quat": [w, x, y, z],
  "marker/<name>/pos": [...]}}`` -- Backend.reset's scene keys. JSON in a String because no custom .msg/.srv
  can be built from the PyPI message wheels (std_msgs, geometry_msgs, std_srvs only).
* ``reset_scene/received`` (std_msgs/String, out; transient local): the id of the placement the bridge holds
  for its next reset ("" when none).

Order (race-free without a request payload on std_srvs/Trigger): the client publishes a placement, waits until
``reset_scene/received`` shows its id (the bridge holds exactly that one), then calls ``reset``; the bridge's
reset applies the held placement once and answers ``"...; placed scene <id>"``, which the client checks (a
placement of another client in between is detected, not applied silently). Pose messages stamped before the
reset's answer arrived are pre-reset; until the first later one, the client reports the placed pose.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn.core.spec import RobotSpec

#: answer suffix of a reset that applied a placement
PLACED = "placed scene "
_KEY = re.compile(r"^(object|marker)/([A-Za-z0-9_]+)/(pos|quat)$")


class PlacementError(ValueError):
    """A malformed placement; the message is one line."""


def scene_names(spec: RobotSpec) -> tuple[list[str], list[str]]:
    """(object names, marker names) of the robot's table-top scene; ([], []) for a robot without one."""
    from robotlearn.sim.scene import scene_for

    if spec.description is None or not (Path(spec.description).parent / "scene.yaml").is_file():
        return [], []
    scene = scene_for(spec.description)
    return [o.name for o in scene.objects], [m.name for m in scene.markers]


def task_objects(env_id: str, spec: RobotSpec) -> list[str]:
    """The scene objects the env's task places at reset, i.e. the ones it observes (none for a reach task: a
    real arm's bridge then starts no camera perception for nothing)."""
    from robotlearn.envs import ENV_TASK_CONFIGS, env_robot_spec, make_task, resolve_env_id
    from robotlearn.robots import make_robot_model

    task_cfg, _ = env_robot_spec(env_id)
    task = make_task(ENV_TASK_CONFIGS[resolve_env_id(env_id).split("/", 1)[1]], task_cfg, spec.kind, spec.name)
    placed = task.initial_state(np.random.default_rng(0), make_robot_model(spec).home_state())
    return [name for name in scene_names(spec)[0] if f"object/{name}/pos" in placed]


def scene_keys(initial: Mapping[str, Any]) -> dict[str, list[float]]:
    """The scene part of a reset's `initial` (object and marker poses) as JSON-able lists."""
    return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in initial.items()
            if k.startswith(("object/", "marker/"))}


def encode_placement(placement_id: str, scene: Mapping[str, Any]) -> str:
    return json.dumps({"id": placement_id, "scene": scene_keys(scene)})


def decode_placement(text: str, objects: list[str], markers: list[str]) -> tuple[str, dict[str, list[float]]]:
    """(id, scene) of a ``reset_scene`` message; PlacementError (one line) for anything the reset could not use."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlacementError(f"reset_scene: not JSON ({err.msg} at {err.pos})") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("scene"), dict):
        raise PlacementError('reset_scene: need {"id": str, "scene": {key: [numbers]}}')
    scene: dict[str, list[float]] = {}
    for key, value in data["scene"].items():
        m = _KEY.match(key)
        if m is None or (m[1] == "marker" and m[3] != "pos"):
            raise PlacementError(f"reset_scene: unknown key {key!r} (object/<name>/pos|quat, marker/<name>/pos)")
        known = objects if m[1] == "object" else markers
        if m[2] not in known:
            raise PlacementError(f"reset_scene: no {m[1]} {m[2]!r} in the scene; known: {', '.join(known) or 'none'}")
        size = 3 if m[3] == "pos" else 4
        if (not isinstance(value, list) or len(value) != size
                or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in value)):
            raise PlacementError(f"reset_scene: {key} needs {size} finite numbers, got {value!r}")
        if m[3] == "quat" and not 0.5 < float(np.linalg.norm(value)) < 2.0:
            raise PlacementError(f"reset_scene: {key} is not a unit quaternion: {value!r}")
        scene[key] = [float(x) for x in value]
    return data["id"], scene


def fill_pose(msg, pos: np.ndarray, quat: np.ndarray) -> None:
    """Write (pos, quat wxyz) into a geometry_msgs/Pose."""
    msg.position.x, msg.position.y, msg.position.z = (float(x) for x in pos)
    o = msg.orientation
    o.w, o.x, o.y, o.z = (float(x) for x in quat)


def pose_of(msg) -> tuple[np.ndarray, np.ndarray]:
    """(pos, quat wxyz) of a geometry_msgs/Pose."""
    p, o = msg.position, msg.orientation
    return np.array([p.x, p.y, p.z]), np.array([o.w, o.x, o.y, o.z])


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def perception_statuses(perception: Mapping[str, Any], objects: list[str], hardware_id: str) -> list:
    """diagnostic_msgs/DiagnosticStatus per object from a backend's ``info["perception"]`` (module docstring)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    overall = {k: v for k, v in perception.items() if "/" not in k}
    out = [DiagnosticStatus(level=DiagnosticStatus.OK, name="objects/perception", message="camera perception",
                            hardware_id=hardware_id, values=[KeyValue(key=k, value=str(v)) for k, v in overall.items()])]
    for name in objects:
        prefix = f"{name}/"
        values = {k[len(prefix):]: v for k, v in perception.items() if k.startswith(prefix)}
        if not values:
            continue
        visible = bool(values.get("visible", False))
        if visible:
            level, text = DiagnosticStatus.OK, "visible"
        else:
            age = float(values.get("age_s", float("nan")))
            what = "last seen" if values.get("seen", False) else "not seen since the reset; placed pose"
            level, text = DiagnosticStatus.WARN, f"{what} ({age:.2f} s)"
        status = DiagnosticStatus(level=level, name=f"objects/{name}", message=text, hardware_id=hardware_id)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        out.append(status)
    return out


def _number(text: str) -> float | int | bool:
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        return float(text)


def perception_info(statuses) -> dict[str, float | bool]:
    """The ``info["perception"]`` dict back from `perception_statuses`' DiagnosticStatus list."""
    out: dict[str, float | bool] = {}
    for status in statuses:
        if not status.name.startswith("objects/"):
            continue
        name = status.name[len("objects/"):]
        prefix = "" if name == "perception" else f"{name}/"
        for kv in status.values:
            out[prefix + kv.key] = _number(kv.value)
    return out


class BridgeObjects:
    """The bridge's side: publishes poses (+ perception diagnostics) and holds the placement for the next reset.

    `publish` and `take_placement` run in the bridge's loop thread (the only one touching the backend); the
    ``reset_scene`` callback runs in the executor thread and only swaps the held placement under a lock.
    """

    def __init__(self, node, backend, spec: RobotSpec, frame_id: str, hz: float, names: list[str]):
        import threading

        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        self.node, self.backend, self.period = node, backend, (1.0 / hz if hz > 0 else 0.0)
        objects, self.markers = scene_names(spec)
        self.all_objects = objects
        self.objects = [n for n in names if self._observable(n)] if hz > 0 else []
        self._lock = threading.Lock()
        self._held: tuple[str, dict[str, list[float]]] | None = None
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pubs = {n: node.create_publisher(PoseStamped, f"objects/{n}/pose", 10) for n in self.objects}
        self._msg = PoseStamped()
        self._msg.header.frame_id = frame_id
        self._diag_pub = node.create_publisher(DiagnosticArray, "objects/diagnostics", 10) if self.objects else None
        self._received_pub = node.create_publisher(String, "reset_scene/received", latched)
        self._received_pub.publish(String(data=""))
        node.create_subscription(String, "reset_scene", self._on_placement, latched)
        self._next = 0.0
        self._hardware_id = spec.name

    def _observable(self, name: str) -> bool:
        try:
            self.backend.object_pose(name)
        except (NotImplementedError, KeyError) as err:  # a real arm without perception; an object not tracked
            self.node.get_logger().warning(f"objects: no pose topic for {name!r}: {str(err).splitlines()[0]}")
            return False
        return True

    def _on_placement(self, msg) -> None:
        from std_msgs.msg import String

        try:
            held = decode_placement(msg.data, self.all_objects, self.markers)
        except PlacementError as err:
            self.node.get_logger().error(f"{err}; ignored")
            return
        with self._lock:
            self._held = held
        self._received_pub.publish(String(data=held[0]))

    def take_placement(self) -> tuple[str, dict[str, list[float]]] | None:
        """The held placement, once (a later plain reset does not re-apply it)."""
        from std_msgs.msg import String

        with self._lock:
            held, self._held = self._held, None
        self._next = 0.0  # the post-reset poses go out on the first tick after the reset
        if held is not None:
            self._received_pub.publish(String(data=""))
        return held

    def publish(self, now: float, info: Mapping[str, Any], stamp) -> None:
        """At most every 1/object_hz (loop-thread monotonic time `now`): each object's pose, stamped `stamp`."""
        if not self.objects or now < self._next:
            return
        self._next += self.period  # on the rate's own grid (now + period would lose up to a servo tick each time)
        if self._next <= now:  # first publish, after a reset, or fell behind: re-anchor
            self._next = now + self.period
        self._msg.header.stamp = stamp
        for name, pub in self._pubs.items():
            pos, quat = self.backend.object_pose(name)
            fill_pose(self._msg.pose, pos, quat)
            pub.publish(self._msg)
        perception = info.get("perception")
        if perception:
            from diagnostic_msgs.msg import DiagnosticArray

            array = DiagnosticArray(status=perception_statuses(perception, self.objects, self._hardware_id))
            array.header.stamp = stamp
            self._diag_pub.publish(array)

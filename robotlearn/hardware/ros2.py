"""``backend="ros2"``: a robot behind ROS 2 topics (our bridge, or ros2_control) as one more backend.

The backend speaks the bridge's topics (robotlearn/ros2/bridge.py) under ``namespace``:
* arm: reads ``joint_states``; each control period's target goes out as a one-point
  ``joint_trajectory`` reached after ``1/control_hz`` (what the direct backends' interpolating controller
  does with a target), so the robot moves as smoothly as when driven directly;
* quadrotor: reads ``odom``; the CTBR command goes out on ``commands``; a reset flies to the start pose
  through ``goal_pose``.
``reset`` calls the ``reset`` service (home state), then moves to the task's initial pose and waits until
it is reached, as the real backends do. ``advance`` waits for the next control tick on the wall clock.

Scene objects (arm): a reset whose initial state places objects first hands the placement to the bridge on
``reset_scene`` and waits until the bridge holds it, then resets and checks the answer names it (the
race-free order of robotlearn/ros2/objects.py). `object_pose` is the latest ``objects/<name>/pose``; until
the first one stamped after the reset, the placed pose (as camera perception answers before its first
sighting); a pose older than ``max_state_age_s`` stays the last-seen value (its age is in ``advance()``'s
``info["objects"]``), as a hidden marker's does; a topic that has delivered nothing within
``connect_timeout_s`` is a one-line error naming it.

rclpy runs in a private context with its own executor thread, so the backend can live inside any process
(a policy runner node, a script, a test) without touching that process's ROS state. It is imported only
here and in robotlearn/ros2/.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from robotlearn.core.backend import Backend, BackendOptions, State
from robotlearn.core.config import ConfigError
from robotlearn.core.spec import RobotSpec
from robotlearn.ros2.messages import joint_state_to_state, odometry_to_state
from robotlearn.ros2.objects import (
    PLACED,
    encode_placement,
    perception_info,
    pose_of,
    scene_keys,
    scene_names,
    stamp_ns,
)


class Ros2Options(BackendOptions):
    """Options of the ROS 2 backend."""

    #: namespace of the bridge (or robot) topics and services, e.g. "/sim"
    namespace: str = ""
    #: how long to wait for the robot's first state message and for services (s)
    connect_timeout_s: float = Field(10.0, gt=0)
    #: a state message older than this when read is an error (s): the robot or the bridge went silent
    max_state_age_s: float = Field(0.5, gt=0)
    #: joint (rad) or position (m) error under which a reset counts as reached
    reset_tolerance: float = Field(0.03, gt=0)
    #: how long a reset may take to reach the initial pose (s)
    reset_timeout_s: float = Field(20.0, gt=0)


def _import_rclpy():
    from robotlearn.ros2 import env

    env.configure(os.environ)  # AMENT_PREFIX_PATH / RMW_IMPLEMENTATION, read by rclpy at init
    try:
        import rclpy
    except ImportError as err:
        raise ConfigError("backend 'ros2': rclpy cannot load in this process (install the ros2 extra and start "
                          "the process with the ROS libraries on LD_LIBRARY_PATH, e.g. through a robotlearn ROS 2 "
                          f"node or a sourced ROS 2 environment): {str(err).splitlines()[0]}") from None
    return rclpy


class _Ros2Base(Backend):
    """The shared part: a private rclpy context, node and executor thread; services; control-tick pacing."""

    name = "ros2"
    deterministic = False
    Options = Ros2Options
    _SPIN_S = 0.05  # the executor thread's spin_once timeout

    def __init__(self, spec: RobotSpec, options: Ros2Options | None = None):
        super().__init__(spec, options)
        rclpy = _import_rclpy()
        from rclpy.executors import SingleThreadedExecutor

        self._rclpy = rclpy
        self._context = rclpy.Context()
        rclpy.init(args=[], context=self._context)
        ns = "/" + self.options.namespace.strip("/") if self.options.namespace.strip("/") else ""
        self._ns = ns
        self.node = rclpy.create_node(f"robotlearn_backend_{os.getpid()}_{id(self) % 100000}",
                                      namespace=ns or "/", context=self._context, start_parameter_services=False)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_loop, name="robotlearn-ros2-backend", daemon=True)
        self._lock = threading.Lock()
        self._state: State | None = None
        self._state_time = 0.0
        self._idle_at = 0.0  # when the executor last found nothing to do for a whole spin (monotonic s)
        self._closed = False
        try:
            self._setup()
            self._spin.start()
            from std_srvs.srv import Trigger

            self._reset_client = self.node.create_client(Trigger, "reset")
            self._t_connect = time.monotonic()
            self._wait_state(self.options.connect_timeout_s)
        except Exception:
            self.close()
            raise
        self._next_tick = time.monotonic()
        self._t_reset = self._next_tick

    def _spin_loop(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while not self._closed and self._context.ok():
                t0 = time.monotonic()
                self._executor.spin_once(timeout_sec=self._SPIN_S)
                if (t1 := time.monotonic()) - t0 >= 0.9 * self._SPIN_S:  # waited out the timeout: queue drained
                    self._idle_at = t1
        except (ExternalShutdownException, self._rclpy.executors.ShutdownException):
            pass

    def _topic(self, name: str) -> str:
        return f"{self._ns}/{name}" if self._ns else name

    def _set_state(self, state: State) -> None:
        with self._lock:
            self._state, self._state_time = state, time.monotonic()

    def _wait_state(self, timeout_s: float, newer_than: float = 0.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._state is None or self._state_time <= newer_than:
            if time.monotonic() > deadline:
                raise ConnectionError(f"backend 'ros2': no state from {self._topic(self.STATE_TOPIC)!r} within "
                                      f"{timeout_s:g} s; is the bridge running (namespace "
                                      f"{self.options.namespace or '/'!r}, ROS_DOMAIN_ID "
                                      f"{os.environ.get('ROS_DOMAIN_ID', '0')})?")
            time.sleep(0.005)

    def _call_reset(self) -> str:
        """Call the ``reset`` service; its answer's message."""
        from std_srvs.srv import Trigger

        timeout = self.options.connect_timeout_s
        if not self._reset_client.wait_for_service(timeout_sec=timeout):
            raise ConnectionError(f"backend 'ros2': service {self._topic('reset')!r} not available")
        future = self._reset_client.call_async(Trigger.Request())
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise ConnectionError(f"backend 'ros2': {self._topic('reset')!r} did not answer within {timeout:g} s")
        result = future.result()
        if not result.success:
            raise RuntimeError(f"backend 'ros2': reset refused: {result.message}")
        return result.message

    # ---- Backend contract -------------------------------------------------------------------------
    def advance(self) -> dict[str, Any]:
        """Return at the next control tick (wall clock); a caller slower than control_hz re-anchors."""
        period = 1.0 / self.spec.control_hz
        self._next_tick += period
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self._next_tick = time.monotonic()
        return {"timestamp": self._next_tick - self._t_reset}

    def read(self) -> State:
        """The newest state; a ConnectionError when the robot or bridge went silent.

        The age is taken on this process's clock at arrival, so a descheduled process (a busy machine)
        would see every state age while its executor thread was not running, not only a silent robot.
        So a stale state is judged only after the executor has drained what arrived meanwhile (a whole
        spin with nothing to do) or a state came in. A silent robot is reported one spin later, or (while
        other topics keep the executor busy) at most one more limit later."""
        limit = self.options.max_state_age_s
        with self._lock:
            state, stamp = self._state, self._state_time
        if state is None or time.monotonic() - stamp > limit:
            behind_since = time.monotonic()
            deadline = behind_since + limit
            while (self._state_time == stamp and self._idle_at <= behind_since and time.monotonic() < deadline
                   and self._spin.is_alive()):
                time.sleep(0.001)  # until a state comes in or the executor has drained what arrived meanwhile
            with self._lock:
                state, stamp = self._state, self._state_time
        age = time.monotonic() - stamp
        if state is None or age > limit:
            raise ConnectionError(f"backend 'ros2': last state on {self._topic(self.STATE_TOPIC)!r} is {age:.2f} s old "
                                  f"(limit {limit:g} s); the robot or bridge went silent")
        return {k: v.copy() for k, v in state.items()}

    def _reset_done(self) -> None:
        self._next_tick = time.monotonic()
        self._t_reset = self._next_tick

    def close(self) -> None:
        """Stop the executor thread, destroy the node, shut the private context down. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # The executor thread leaves within one spin (_SPIN_S) once it sees _closed. Shut the context down only
        # after that: shut down first, a spin_once between its ok() check and its wait set raised RCLError.
        if self._spin.is_alive():
            self._spin.join(timeout=2.0)
        if self._context.ok():
            self._context.try_shutdown()
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


class Ros2ArmBackend(_Ros2Base):
    """An arm behind ``joint_states`` / ``joint_trajectory`` (see the module docstring)."""

    STATE_TOPIC = "joint_states"

    def _setup(self) -> None:
        from sensor_msgs.msg import JointState
        from trajectory_msgs.msg import JointTrajectory

        self._names = self.spec.joint_names
        self._pub = self.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.node.create_subscription(JointState, "joint_states", self._on_joint_state, 10)
        self._msg = JointTrajectory(joint_names=self._names)
        self._setup_objects()

    def _setup_objects(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        self._object_names = scene_names(self.spec)[0]
        #: name -> (pos, quat, header stamp ns, monotonic arrival time) of the latest pose message
        self._poses: dict[str, tuple[np.ndarray, np.ndarray, int, float]] = {}
        self._placed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._reset_stamp_ns = 0  # pose messages stamped before this are from before the last reset
        for name in self._object_names:
            self.node.create_subscription(PoseStamped, f"objects/{name}/pose",
                                          lambda msg, name=name: self._on_pose(name, msg), 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._placement_pub = self.node.create_publisher(String, "reset_scene", latched)
        self._held_id = ""
        self.node.create_subscription(String, "reset_scene/received", self._on_received, latched)
        self._placements = 0
        self._perception: dict[str, float | bool] | None = None  # the bridge's perception report, where it has one
        self.node.create_subscription(DiagnosticArray, "objects/diagnostics", self._on_diagnostics, 10)

    def _on_pose(self, name: str, msg) -> None:
        pos, quat = pose_of(msg.pose)
        with self._lock:
            self._poses[name] = (pos, quat, stamp_ns(msg.header.stamp), time.monotonic())

    def _on_diagnostics(self, msg) -> None:
        self._perception = perception_info(msg.status)

    def _on_received(self, msg) -> None:
        self._held_id = msg.data

    def _place(self, scene: dict[str, list[float]]) -> str:
        """Hand `scene` to the bridge and wait until it holds it (its id echoed on reset_scene/received)."""
        from std_msgs.msg import String

        self._placements += 1
        placement_id = f"{self.node.get_fully_qualified_name()}:{self._placements}"
        self._placement_pub.publish(String(data=encode_placement(placement_id, scene)))
        deadline = time.monotonic() + self.options.connect_timeout_s
        while self._held_id != placement_id:
            if time.monotonic() > deadline:
                raise ConnectionError(f"backend 'ros2': the bridge did not take the placement on "
                                      f"{self._topic('reset_scene')!r} within {self.options.connect_timeout_s:g} s "
                                      f"(no echo on {self._topic('reset_scene/received')!r}); does it place objects?")
            time.sleep(0.002)
        return placement_id

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The latest pose from the bridge; the placed pose until the first one stamped after the reset."""
        if name not in self._object_names:
            raise KeyError(f"backend 'ros2': no object {name!r}; objects: {self._object_names}")
        deadline = self._t_connect + self.options.connect_timeout_s
        while name not in self._poses:  # nothing yet, ever: wait out connect_timeout_s from the start
            if time.monotonic() > deadline:
                raise ConnectionError(f"backend 'ros2': no pose on {self._topic(f'objects/{name}/pose')!r} within "
                                      f"{self.options.connect_timeout_s:g} s; does the bridge publish objects "
                                      f"(object_hz > 0, a backend that observes {name!r})?")
            time.sleep(0.005)
        with self._lock:
            pos, quat, stamp, _ = self._poses[name]
        if stamp < self._reset_stamp_ns and name in self._placed:
            pos, quat = self._placed[name]
        return pos.copy(), quat.copy()

    def advance(self) -> dict[str, Any]:
        info = super().advance()
        now = time.monotonic()
        with self._lock:
            ages = {name: now - arrival for name, (_, _, _, arrival) in self._poses.items()}
        info["objects"] = {f"{name}/age_s": age for name, age in ages.items()}
        if self._perception is not None:  # the bridge's backend reports camera perception: pass it on
            info["perception"] = dict(self._perception)
        return info

    def _on_joint_state(self, msg) -> None:
        state = joint_state_to_state(msg, self._names)
        if state is not None:
            self._set_state(state)

    def _send(self, target: np.ndarray, duration_s: float) -> None:
        from trajectory_msgs.msg import JointTrajectoryPoint

        point = JointTrajectoryPoint(positions=target.tolist())
        point.time_from_start.sec = int(duration_s)
        point.time_from_start.nanosec = int(round((duration_s - int(duration_s)) * 1e9))
        self._msg.points = [point]
        self._pub.publish(self._msg)

    def command(self, target: np.ndarray) -> None:
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (len(self._names),):
            raise ValueError(f"target must have shape ({len(self._names)},), got {target.shape}")
        if not np.all(np.isfinite(target)):
            raise ValueError(f"target contains NaN/inf: {target}; nothing was sent")
        self._send(np.clip(target, self.spec.lower, self.spec.upper), 1.0 / self.spec.control_hz)

    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        scene = {k: v for k, v in scene_keys(initial).items() if k.startswith("object/")}
        placement_id = self._place(scene_keys(initial)) if scene else None
        answer = self._call_reset()
        if placement_id is not None:
            if not answer.endswith(PLACED + placement_id):
                raise RuntimeError(f"backend 'ros2': the bridge's reset did not apply our placement "
                                   f"{placement_id!r} (answer: {answer!r}); another client placed objects")
            # (clocks: the bridge's stamps against ours, which ROS 2 stamps assume in sync across hosts)
            self._reset_stamp_ns = self.node.get_clock().now().nanoseconds
            self._placed = {name: (np.asarray(scene[f"object/{name}/pos"], dtype=np.float64),
                                   np.asarray(scene.get(f"object/{name}/quat", [1.0, 0.0, 0.0, 0.0]), dtype=np.float64))
                            for name in self._object_names if f"object/{name}/pos" in scene}
        self._wait_state(self.options.connect_timeout_s, newer_than=time.monotonic())
        if "joint_pos" in initial:
            goal = np.clip(np.asarray(initial["joint_pos"], dtype=np.float64), self.spec.lower, self.spec.upper)
            err = np.abs(self.read()["joint_pos"] - goal)
            speed = np.array([0.5 * j.max_velocity for j in self.spec.joints])
            if np.any(err > self.options.reset_tolerance):
                self._send(goal, max(0.1, float(np.max(err / speed))))
            deadline = time.monotonic() + self.options.reset_timeout_s
            while np.any(np.abs(self.read()["joint_pos"] - goal) > self.options.reset_tolerance):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"backend 'ros2': the arm did not reach its reset pose within "
                                       f"{self.options.reset_timeout_s:g} s")
                time.sleep(0.01)
        self._reset_done()


class Ros2QuadBackend(_Ros2Base):
    """A quadrotor behind ``odom`` / ``commands`` / ``goal_pose`` (see the module docstring)."""

    STATE_TOPIC = "odom"

    def _setup(self) -> None:
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Odometry
        from std_msgs.msg import Float64MultiArray

        self._pub = self.node.create_publisher(Float64MultiArray, "commands", 10)
        self._goal_pub = self.node.create_publisher(PoseStamped, "goal_pose", 10)
        self.node.create_subscription(Odometry, "odom", self._on_odom, 10)
        self._msg = Float64MultiArray()

    def _on_odom(self, msg) -> None:
        self._set_state(odometry_to_state(msg))

    def command(self, target: np.ndarray) -> None:
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (4,):
            raise ValueError(f"CTBR target must have shape (4,), got {target.shape}")
        if not np.all(np.isfinite(target)):
            raise ValueError(f"target contains NaN/inf: {target}; nothing was sent")
        self._msg.data = target.tolist()
        self._pub.publish(self._msg)

    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        from geometry_msgs.msg import PoseStamped

        from robotlearn.core.rotations import yaw_of, yaw_quat

        self._call_reset()
        self._wait_state(self.options.connect_timeout_s, newer_than=time.monotonic())
        if "pos" in initial:
            goal = np.asarray(initial["pos"], dtype=np.float64)
            q = yaw_quat(yaw_of(np.asarray(initial.get("quat", [1.0, 0, 0, 0]), dtype=np.float64)))
            msg = PoseStamped()
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(x) for x in goal)
            o = msg.pose.orientation
            o.w, o.x, o.y, o.z = (float(x) for x in q)
            deadline = time.monotonic() + self.options.reset_timeout_s
            while True:
                self._goal_pub.publish(msg)
                state = self.read()
                if (np.linalg.norm(state["pos"] - goal) <= self.options.reset_tolerance
                        and np.linalg.norm(state["vel"]) <= 2 * self.options.reset_tolerance):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"backend 'ros2': the quadrotor did not reach its start pose within "
                                       f"{self.options.reset_timeout_s:g} s")
                time.sleep(0.02)
        self._reset_done()

"""``robotlearn_bridge``: any robotlearn backend as a ROS 2 robot, in ros2_control's conventions.

``robotlearn_bridge --ros-args -p env:=robotlearn/ArmReach-v0 -p backend:=mujoco`` runs the robot of that
env (sim, emulated or real) and, relative to the node's namespace:

arm                                         quadrotor
  pub ``joint_states`` (sensor_msgs/JointState)   pub ``odom`` (nav_msgs/Odometry)
  sub ``joint_trajectory`` (trajectory_msgs/        sub ``commands`` (Float64MultiArray: CTBR thrust 0..1, p, q, r)
      JointTrajectory, like joint_trajectory_      sub ``cmd_vel`` (geometry_msgs/Twist: world velocity, yaw rate)
      controller)                                  sub ``goal_pose`` (geometry_msgs/PoseStamped: position, yaw)
  sub ``commands`` (Float64MultiArray, one
      position per joint, like forward_command_controller)
both: pub ``<camera>/image_raw`` + ``<camera>/camera_info`` per camera in ``cameras``; pub
``objects/<name>/pose`` (geometry_msgs/PoseStamped) per scene object the env's task places, at ``object_hz``
(+ ``objects/diagnostics`` where it reports perception); sub ``reset_scene`` (a placement for the next reset,
robotlearn/ros2/objects.py); services ``reset`` (std_srvs/Trigger: back to the robot's home state, with the
objects where the held placement puts them), ``estop`` (Trigger: latched stop; the compiled loop's
e-stop where the backend has one) and ``enable`` (std_srvs/SetBool: accept commands; torque where the backend
can switch it).

The backend is built with ``control_hz`` = the bridge rate (default: the robot's physics/servo rate), so one
``advance()`` is one servo tick and joint states go out every tick. A loop thread owns the backend (commands,
advance, read, publish, service requests), so callbacks never touch it concurrently. Sims are paced to wall
time here; hardware paces itself (its ``advance`` returns at the next tick of its compiled loop). Commands are
forwarded only when they arrive (or while a trajectory runs): a silent command topic leaves the backend without
new targets, which is what trips the compiled watchdog, as with any direct caller.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robotlearn.ros2.objects import PLACED, BridgeObjects, scene_names, task_objects
from robotlearn.ros2.params import Param, ParameterError, declare
from robotlearn.ros2.sinks import options_param
from robotlearn.ros2.trajectory import Trajectory, TrajectoryError

PARAMETERS: tuple[Param, ...] = (
    Param("env", "", "robotlearn env id whose robot to run, e.g. robotlearn/ArmReach-v0", required=True),
    Param("backend", "mujoco", "robotlearn backend: mujoco, pybullet, real"),
    Param("backend_options", "", "the backend's options: key=value items separated by spaces (or a JSON object), e.g. port=/tmp/rl-arm0"),
    Param("robot_overrides", "", "robot config key=value overrides, comma-separated"),
    Param("rate_hz", 0.0, "servo/publish rate (Hz); 0 = the robot's physics rate", low=0.0, high=2000.0),
    Param("cameras", "", "cameras to publish, comma-separated (names from the robot config)"),
    Param("camera_hz", 10.0, "image publish rate (Hz)", low=0.1, high=120.0),
    Param("object_hz", 50.0, "scene-object pose publish rate (Hz; objects/<name>/pose), 0 = none; above the "
          "tasks' 10-20 Hz control rates so an observation's pose is at most one publish period old",
          low=0.0, high=500.0),
    Param("objects", "", "scene objects whose poses to publish, comma-separated; empty: those the env's task "
          "places at reset (none for a reach task)"),
    Param("frame_id", "world", "frame of odometry and poses"),
    Param("startup_timeout_s", 10.0, "how long to wait for the robot (e.g. an emulator's port) at start (s)",
          low=0.0, high=600.0),
)


def build_backend(values: dict[str, Any]):
    """(backend, spec) for the bridge's parameters: the env's robot with control_hz = the bridge rate."""
    from robotlearn.backends import make_backend
    from robotlearn.core.config import ConfigError
    from robotlearn.core.robot_config import load_robot_spec
    from robotlearn.envs import env_robot_spec

    overrides = [o for o in values["robot_overrides"].split(",") if o]
    task_cfg, base = env_robot_spec(values["env"], overrides)
    rate = values["rate_hz"] or base.physics_hz
    if abs(base.physics_hz / rate - round(base.physics_hz / rate)) > 1e-9:
        raise ParameterError(f"rate_hz {rate:g} must divide the robot's physics rate {base.physics_hz:g} Hz")
    spec = load_robot_spec(task_cfg.robot, [*overrides, f"control_hz={rate}"])
    options = options_param(values, "backend_options")
    deadline = time.monotonic() + values["startup_timeout_s"]
    while True:
        try:
            return make_backend(spec, values["backend"], options), spec
        except ConfigError:
            raise
        except (OSError, ValueError):  # e.g. an emulator whose port is not there yet
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


class Bridge:
    """The node's behaviour; `spin()` runs the executor until shutdown, `close()` releases the backend."""

    def __init__(self, node):
        import rclpy
        from std_srvs.srv import SetBool, Trigger

        from robotlearn.robots import make_robot_model

        self.node = node
        self.values = declare(node, PARAMETERS)
        self.backend, self.spec = build_backend(self.values)
        self.period = 1.0 / self.spec.control_hz
        self.home = make_robot_model(self.spec).home_state()
        self.exit_code = 0
        self._rclpy = rclpy
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._faulted = threading.Event()
        self.enabled, self.estopped = True, False
        self.kind = KINDS[self.spec.kind](self)
        names = [o for o in self.values["objects"].split(",") if o] or task_objects(self.values["env"], self.spec)
        known = scene_names(self.spec)[0]
        unknown = [n for n in names if n not in known]
        if unknown:
            self.backend.close()
            raise ParameterError(f"{node.get_name()}: parameter 'objects': no object {unknown[0]!r} in the scene; "
                                 f"known: {', '.join(known) or 'none'}")
        self.objects = BridgeObjects(node, self.backend, self.spec, self.values["frame_id"], self.values["object_hz"],
                                     names)
        self.cameras = [c for c in self.values["cameras"].split(",") if c]
        for cam in self.cameras:
            self.spec.camera(cam)
        self._camera_pubs = self._make_camera_publishers()
        node.create_service(Trigger, "reset", self._service(self._do_reset))
        node.create_service(Trigger, "estop", self._service(self._do_estop))
        node.create_service(SetBool, "enable", self._service(self._do_enable))
        self.backend.reset(np.random.default_rng(0), self.home)
        self._thread = threading.Thread(target=self._loop, name="robotlearn-bridge", daemon=True)
        self._thread.start()
        objects = (f"objects {', '.join(self.objects.objects)} at {self.values['object_hz']:g} Hz"
                   if self.objects.objects else "no object topics")
        node.get_logger().info(f"bridge: {self.spec.name} on {self.values['backend']} at {self.spec.control_hz:g} Hz; "
                               f"{objects}")

    # ---- services: queued to the loop thread, answered when done --------------------------------
    def _service(self, action: Callable[[Any], tuple[bool, str]]):
        def handle(request, response):
            done = threading.Event()
            result: list = []
            self._requests.put((action, request, result, done))
            if not done.wait(30.0) or not result:
                response.success, response.message = False, "bridge loop did not answer"
            else:
                response.success, response.message = result[0]
            return response
        return handle

    def _do_reset(self, _request) -> tuple[bool, str]:
        if self.estopped:
            return False, "e-stopped: restart the bridge to clear the e-stop"
        self.kind.clear()
        held = self.objects.take_placement()
        if held is None:
            self.backend.reset(np.random.default_rng(), self.home)
            return True, "reset to the home state"
        try:
            self.backend.reset(np.random.default_rng(), {**self.home, **held[1]})
        except Exception as err:  # noqa: BLE001 - e.g. nobody can place objects on this robot: refused, one line
            line = str(err).splitlines()[0] if str(err) else repr(err)
            self.node.get_logger().error(f"reset with placement {held[0]!r} failed: {line}")
            return False, f"placing scene {held[0]} failed: {line}"
        return True, f"reset to the home state; {PLACED}{held[0]}"

    def _do_estop(self, _request) -> tuple[bool, str]:
        self.estopped = True
        self.kind.clear()
        estop = getattr(self.backend, "estop", None)  # a backend with a compiled e-stop (hardware) uses it
        if estop is not None:
            estop()
        return True, "e-stopped"

    def _do_enable(self, request) -> tuple[bool, str]:
        if self.estopped and request.data:
            return False, "e-stopped: restart the bridge to clear the e-stop"
        self.enabled = bool(request.data)
        self.kind.clear()
        torque = getattr(self.backend, "torque", None)  # a backend that can switch torque (hardware) does
        if torque is not None:
            torque(self.enabled)
        return True, "enabled" if self.enabled else "disabled"

    # ---- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        next_t = time.monotonic()
        next_image = next_t
        pace = self.backend.deterministic  # sims run as fast as the CPU: hold them to wall time
        try:
            while not self._stop.is_set():
                while not self._requests.empty():
                    action, request, result, done = self._requests.get()
                    result.append(action(request))
                    done.set()
                target = self.kind.target(time.monotonic())
                if target is not None and self.enabled and not self.estopped:
                    self.backend.command(target)
                info = self.backend.advance()
                state = self.backend.read()
                stamp = self.node.get_clock().now().to_msg()
                self.kind.publish(state, stamp)
                now = time.monotonic()
                self.objects.publish(now, info, stamp)
                if self._camera_pubs and now >= next_image:
                    self._publish_images()
                    next_image = now + 1.0 / self.values["camera_hz"]
                next_t += self.period
                if pace:
                    delay = next_t - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    elif delay < -0.1:  # fell far behind (paused, overloaded): re-anchor instead of bursting
                        next_t = time.monotonic()
        except Exception as err:  # noqa: BLE001 - a robot fault ends the bridge with one line
            if self._stop.is_set() or not self._rclpy.ok():
                return  # shutting down (SIGINT from launch): publishing into a closed context is no fault
            self.node.get_logger().error(f"bridge stopped: {str(err).splitlines()[0] if str(err) else err!r}")
            self.exit_code = 1
            self._faulted.set()  # `spin` ends the node: not from here, see there

    def _make_camera_publishers(self) -> dict:
        from sensor_msgs.msg import CameraInfo, Image

        return {cam: (self.node.create_publisher(Image, f"{cam}/image_raw", 2),
                      self.node.create_publisher(CameraInfo, f"{cam}/camera_info", 2)) for cam in self.cameras}

    def _publish_images(self) -> None:
        from sensor_msgs.msg import CameraInfo, Image

        stamp = self.node.get_clock().now().to_msg()
        for cam, (image_pub, info_pub) in self._camera_pubs.items():
            pixels = np.ascontiguousarray(self.backend.render(cam))
            c = self.spec.camera(cam)
            msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", step=pixels.shape[1] * 3)
            msg.header.stamp, msg.header.frame_id = stamp, cam
            msg.data = pixels.tobytes()
            image_pub.publish(msg)
            # pinhole intrinsics from the vertical field of view the sims render with
            f = 0.5 * c.height / np.tan(np.radians(c.fovy_deg) / 2)
            info = CameraInfo(height=c.height, width=c.width, distortion_model="plumb_bob")
            info.header = msg.header
            info.k = [f, 0.0, c.width / 2, 0.0, f, c.height / 2, 0.0, 0.0, 1.0]
            info.p = [f, 0.0, c.width / 2, 0.0, 0.0, f, c.height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
            info.d = [0.0] * 5
            info_pub.publish(info)

    def spin(self) -> None:
        """Run the executor until shutdown or a fault of the loop.

        The loop thread does not shut rclpy down itself: a fault often follows a service it just ran (the
        e-stop: its next advance() reports the stopped loop), and shutting the context down from that thread
        could beat the executor to sending the service's response (seen under load: the e-stop was done, its
        caller never heard). Here the executor is between callbacks, so every answer has gone out."""
        while self._rclpy.ok() and not self._faulted.is_set():
            self._rclpy.spin_once(self.node, timeout_sec=0.1)
        self._rclpy.try_shutdown()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.backend.close()


class ArmTopics:
    """joint_states out; joint_trajectory and commands in."""

    def __init__(self, bridge: Bridge):
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray
        from trajectory_msgs.msg import JointTrajectory

        self.bridge, self.node = bridge, bridge.node
        self.names = bridge.spec.joint_names
        self.pub = self.node.create_publisher(JointState, "joint_states", 10)
        self.msg = JointState(name=self.names)
        self._lock = threading.Lock()
        self._trajectory: Trajectory | None = None
        self._pending: tuple[str, Any] | None = None
        self._last_target = np.asarray(bridge.home["joint_pos"], dtype=np.float64)
        self.node.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 10)
        self.node.create_subscription(Float64MultiArray, "commands", self._on_commands, 10)

    def _on_trajectory(self, msg) -> None:
        times = [p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in msg.points]
        with self._lock:
            self._pending = ("trajectory", (list(msg.joint_names), times, [list(p.positions) for p in msg.points]))

    def _on_commands(self, msg) -> None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (len(self.names),) or not np.all(np.isfinite(data)):
            self.node.get_logger().error(f"commands: need {len(self.names)} finite positions ({', '.join(self.names)}), "
                                         f"got {data.shape[0]}; ignored", throttle_duration_sec=1.0)
            return
        with self._lock:
            self._pending = ("position", data)

    def clear(self) -> None:
        with self._lock:
            self._pending, self._trajectory = None, None

    def target(self, now: float) -> np.ndarray | None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            kind, data = pending
            if kind == "position":
                self._trajectory = None
                self._last_target = data
                return data
            try:
                self._trajectory = Trajectory(*data[:1], self.names, data[1], data[2], now, self._last_target)
            except TrajectoryError as err:
                self.node.get_logger().error(f"joint_trajectory: {err}; ignored")
        if self._trajectory is None:
            return None
        target = self._trajectory.sample(now)
        if target is None:
            self._trajectory = None
            return None
        self._last_target = target
        return target

    def publish(self, state, stamp) -> None:
        self.msg.header.stamp = stamp
        self.msg.position = state["joint_pos"].tolist()
        self.msg.velocity = state["joint_vel"].tolist()
        self.pub.publish(self.msg)


class QuadTopics:
    """odom out; commands (CTBR), cmd_vel and goal_pose in (setpoints flown by the shared cascaded controller)."""

    def __init__(self, bridge: Bridge):
        from geometry_msgs.msg import PoseStamped, Twist
        from nav_msgs.msg import Odometry
        from std_msgs.msg import Float64MultiArray

        from robotlearn.robots import make_robot_model

        self.bridge, self.node = bridge, bridge.node
        self.model = make_robot_model(bridge.spec)
        self.controller = self.model.controller  # dt = 1/bridge rate: the spec's control_hz is the bridge rate
        self.pub = self.node.create_publisher(Odometry, "odom", 10)
        self.msg = Odometry()
        self.msg.header.frame_id = bridge.values["frame_id"]
        self.msg.child_frame_id = "base_link"
        self._lock = threading.Lock()
        self._mode: tuple[str, Any] | None = None
        self._fresh = False
        self._yaw = 0.0
        self._state = None
        self.node.create_subscription(Float64MultiArray, "commands", self._on_ctbr, 10)
        self.node.create_subscription(Twist, "cmd_vel", self._on_twist, 10)
        self.node.create_subscription(PoseStamped, "goal_pose", self._on_pose, 10)

    def _set(self, mode: str, data) -> None:
        with self._lock:
            if self._mode is None or self._mode[0] != mode:
                self.controller.reset()
            self._mode, self._fresh = (mode, data), True

    def _on_ctbr(self, msg) -> None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (4,) or not np.all(np.isfinite(data)):
            self.node.get_logger().error("commands: need 4 finite values [thrust 0..1, p, q, r]; ignored",
                                         throttle_duration_sec=1.0)
            return
        self._set("ctbr", data)

    def _on_twist(self, msg) -> None:
        self._set("velocity", (np.array([msg.linear.x, msg.linear.y, msg.linear.z]), float(msg.angular.z)))

    def _on_pose(self, msg) -> None:
        from robotlearn.core.rotations import yaw_of

        p, o = msg.pose.position, msg.pose.orientation
        self._set("position", (np.array([p.x, p.y, p.z]), yaw_of(np.array([o.w, o.x, o.y, o.z]))))

    def clear(self) -> None:
        with self._lock:
            self._mode, self._fresh = None, False

    def target(self, now: float) -> np.ndarray | None:
        with self._lock:
            mode, fresh, self._fresh = self._mode, self._fresh, False
        if mode is None or self._state is None:
            return None
        kind, data = mode
        if kind == "ctbr":  # forwarded as it arrives, like forward_command_controller
            return data if fresh else None
        # Setpoints are flown continuously: the controller closes the loop every tick until a new one arrives.
        if kind == "velocity":
            vel_sp = np.clip(data[0], -self.controller.max_velocity, self.controller.max_velocity)
            self._yaw += data[1] * self.controller.dt
        else:
            vel_sp = self.controller.velocity_setpoint(self._state, data[0])
            self._yaw = data[1]
        return self.controller.ctbr(self._state, vel_sp, self._yaw)

    def publish(self, state, stamp) -> None:
        from robotlearn.core.rotations import quat_to_rot, yaw_of

        if self._state is None or self._mode is None:
            self._yaw = yaw_of(state["quat"])
        self._state = state
        m = self.msg
        m.header.stamp = stamp
        p, q, v, w = state["pos"], state["quat"], state["vel"], state["omega"]
        m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z = (float(x) for x in p)
        o = m.pose.pose.orientation
        o.w, o.x, o.y, o.z = (float(x) for x in q)
        v = quat_to_rot(q).T @ v  # nav_msgs: the twist is in the child (body) frame; omega already is
        m.twist.twist.linear.x, m.twist.twist.linear.y, m.twist.twist.linear.z = (float(x) for x in v)
        m.twist.twist.angular.x, m.twist.twist.angular.y, m.twist.twist.angular.z = (float(x) for x in w)
        self.pub.publish(m)


#: robot kind -> its topics (what a kind *is* differs; the loop does not)
KINDS: dict[str, type] = {"arm": ArmTopics, "quadrotor": QuadTopics}


def main(argv: list[str] | None = None) -> int:
    from robotlearn.ros2.node import run_node

    return run_node("robotlearn_bridge", Bridge, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""Starting robotlearn ROS 2 nodes as launch_ros does, and a test-side probe node (shared by the ROS 2 tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState

LIB = Path(sys.prefix) / "lib" / "robotlearn"
ARM_JOINTS = ["shoulder_pan", "shoulder_lift", "elbow", "forearm_roll", "wrist_pitch", "wrist_roll",
              "left_finger", "right_finger"]


class NodeProcess:
    """A robotlearn node in a child process, started as launch_ros would; stopped with SIGINT."""

    def __init__(self, exe: str, name: str, namespace: str, params: dict, tmp: Path, params_file: dict | None = None):
        cmd = [str(LIB / exe), "--ros-args", "-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
        for key, value in params.items():
            cmd += ["-p", f"{key}:={value}"]
        if params_file:
            path = tmp / f"{name}.yaml"
            path.write_text(yaml.safe_dump({f"{namespace}/{name}": {"ros__parameters": params_file}}))
            cmd += ["--params-file", str(path)]
        self.log = tmp / f"{name}.log"
        self._out = open(self.log, "w")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._out.close()
        return rc


class Probe:
    """A test-side node in its own context, spun in a thread."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"probe_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - shutdown races end the thread
            pass

    def joint_states(self, topic: str) -> list[tuple[float, JointState]]:
        received: list[tuple[float, JointState]] = []
        self.node.create_subscription(JointState, topic, lambda m: received.append((time.monotonic(), m)), 100)
        return received

    def call(self, srv_type, name: str, request=None, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        future = client.call_async(request or srv_type.Request())
        deadline = time.monotonic() + timeout
        while not future.done():
            assert time.monotonic() < deadline, f"service {name} did not answer"
            time.sleep(0.01)
        return future.result()

    def close(self):
        self.context.try_shutdown()
        self.thread.join(timeout=2)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)

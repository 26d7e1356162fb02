"""ROS 2 bridge benchmark: joint_states rate and command-to-backend latency, bridge vs direct, same run.

A `Bridge` (robotlearn/ros2/bridge.py) runs in this process on MuJoCo at the robot's servo rate (500 Hz);
a commander node in a second process (as deployed: DDS on loopback between processes, no shared GIL)
subscribes to ``joint_states`` and publishes ``commands`` (Float64MultiArray). Each command carries its
sequence number in the low digits of one joint target, so the bench knows which command reached the backend:
latency = the time the bridge's loop hands it to ``backend.command`` - the time it was published (both
CLOCK_MONOTONIC, which processes on one machine share). It includes
DDS transport, the executor callback and the wait for the next servo tick (<= 2 ms at 500 Hz).
Baseline (same run): the direct path, ``backend.command`` called by the commander itself (what `RobotEnv`
does), and the same loop without DDS: a command handed to the loop thread through memory, so the tick wait
is counted alike. The last line is one JSON object.

    python bench/ros2_bridge.py [--seconds 3] [--repeats 3] [--command-hz 100]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
from robotlearn.ros2 import env as ros_env  # noqa: E402

ros_env.ensure()

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from robotlearn.ros2.bridge import Bridge  # noqa: E402

STEP = 1e-6  # sequence number resolution in the carrier joint (rad); far below any servo's resolution


def spin_in_thread(context, node):
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def run():
        try:
            while context.ok():
                executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - context shut down under the executor
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return executor, thread


def pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": len(values)}


def run_client(seconds: float, command_hz: float, base: list[float], out: str) -> None:
    """The commander, in its own process (``--client``), as a deployed commander is: subscribes to
    joint_states, publishes sequence-numbered commands, writes its send times (CLOCK_MONOTONIC, which the
    bridge's process shares) and the joint-state arrival times to `out`."""
    rclpy.init()
    node = rclpy.create_node("bench_client")
    stamps: list[float] = []
    node.create_subscription(JointState, "/bench/joint_states", lambda m: stamps.append(time.monotonic()), 200)
    pub = node.create_publisher(Float64MultiArray, "/bench/commands", 50)
    executor, thread = spin_in_thread(rclpy.get_default_context(), node)
    sent: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 20
        while pub.get_subscription_count() == 0 or len(stamps) < 50:
            if time.monotonic() > deadline:
                raise RuntimeError("bridge did not connect")
            time.sleep(0.01)
        first = len(stamps)
        t_end = time.monotonic() + seconds
        k = 0
        msg = Float64MultiArray()
        target = np.asarray(base, dtype=np.float64)
        while time.monotonic() < t_end:
            k += 1
            msg.data = [target[0] + k * STEP, *target[1:].tolist()]
            sent[k] = time.monotonic()
            pub.publish(msg)
            time.sleep(1.0 / command_hz)
        time.sleep(0.05)
        with open(out, "w") as f:
            json.dump({"sent": sent, "stamps": stamps[first:]}, f)
    finally:
        rclpy.try_shutdown()
        thread.join(2)


def measure_bridge(bridge: Bridge, seconds: float, command_hz: float) -> dict:
    """Latency from the commander's publish (another process) to the bridge handing the command to the backend."""
    import subprocess
    import sys
    import tempfile

    arrived_at: dict[int, float] = {}
    base = np.asarray(bridge.home["joint_pos"], dtype=np.float64).copy()
    original = bridge.backend.command

    def observed(target):
        arrived_at.setdefault(int(round((target[0] - base[0]) / STEP)), time.monotonic())
        original(target)

    bridge.backend.command = observed
    try:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run([sys.executable, __file__, "--client", "--seconds", str(seconds), "--command-hz",
                            str(command_hz), "--base", json.dumps(base.tolist()), "--out", out.name],
                           check=True, timeout=seconds + 60)
            client = json.loads(Path(out.name).read_text())
    finally:
        bridge.backend.command = original
    sent = {int(k): v for k, v in client["sent"].items()}
    latency = [arrived_at[k] - t for k, t in sent.items() if k in arrived_at]
    window = client["stamps"]
    rate = (len(window) - 1) / (window[-1] - window[0])
    return {"joint_states_hz": rate, "latency": pct(latency), "lost": len(sent) - len(latency)}


def measure_direct(bridge: Bridge, seconds: float, command_hz: float) -> dict:
    """The baselines: the commander calls backend.command itself (call cost), and a command handed to a
    500 Hz loop through memory (the tick wait any loop adds, without DDS)."""
    backend = bridge.backend
    target = np.asarray(bridge.home["joint_pos"], dtype=np.float64)
    call = []
    t_end = time.perf_counter() + seconds / 2
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        backend.command(target)
        call.append(time.perf_counter() - t0)
        backend.advance()
    slot: list[float] = []
    waits: list[float] = []
    stop = threading.Event()

    def loop():
        nxt = time.monotonic()
        while not stop.is_set():
            if slot:
                backend.command(target)
                waits.append(time.perf_counter() - slot.pop())
            backend.advance()
            nxt += bridge.period
            time.sleep(max(0.0, nxt - time.monotonic()))

    thread = threading.Thread(target=loop)
    thread.start()
    t_end = time.perf_counter() + seconds / 2
    while time.perf_counter() < t_end:
        slot.append(time.perf_counter())
        time.sleep(1.0 / command_hz)
    stop.set()
    thread.join()
    return {"call": pct(call), "loop": pct(waits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--command-hz", type=float, default=100.0)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)  # the commander process
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        run_client(args.seconds, args.command_hz, json.loads(args.base), args.out)
        return
    rclpy.init()
    node = rclpy.create_node("bridge", namespace="/bench", parameter_overrides=[
        Parameter("env", value="robotlearn/ArmReach-v0"), Parameter("backend", value="mujoco")])
    bridge = Bridge(node)
    executor, thread = spin_in_thread(rclpy.get_default_context(), node)
    runs = []
    try:
        for _ in range(args.repeats):  # interleaved: bridge, then the direct baselines, per repeat
            b = measure_bridge(bridge, args.seconds, args.command_hz)
            bridge._stop.set()  # the bridge's loop would share the backend with the direct loop
            bridge._thread.join()
            d = measure_direct(bridge, args.seconds, args.command_hz)
            bridge._stop.clear()
            bridge._thread = threading.Thread(target=bridge._loop, daemon=True)
            bridge._thread.start()
            runs.append({"bridge": b, "direct": d})
            print(f"joint_states {b['joint_states_hz']:.0f} Hz; command->backend p50/p99: bridge "
                  f"{b['latency']['p50_ms']:.2f}/{b['latency']['p99_ms']:.2f} ms, loop without DDS "
                  f"{d['loop']['p50_ms']:.2f}/{d['loop']['p99_ms']:.2f} ms, direct call "
                  f"{d['call']['p50_ms']:.3f}/{d['call']['p99_ms']:.3f} ms", flush=True)
    finally:
        bridge.close()
        rclpy.try_shutdown()
        thread.join(2)

    def med(f):
        values = [f(r) for r in runs]
        return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}

    result = {
        "joint_states_hz": med(lambda r: r["bridge"]["joint_states_hz"]),
        "bridge_p50_ms": med(lambda r: r["bridge"]["latency"]["p50_ms"]),
        "bridge_p99_ms": med(lambda r: r["bridge"]["latency"]["p99_ms"]),
        "loop_p99_ms": med(lambda r: r["direct"]["loop"]["p99_ms"]),
        "direct_call_p99_ms": med(lambda r: r["direct"]["call"]["p99_ms"]),
        "added_p99_ms_vs_direct_call": med(lambda r: r["bridge"]["latency"]["p99_ms"] - r["direct"]["call"]["p99_ms"]),
        "added_p99_ms_vs_loop": med(lambda r: r["bridge"]["latency"]["p99_ms"] - r["direct"]["loop"]["p99_ms"]),
        "lost_commands": sum(r["bridge"]["lost"] for r in runs),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

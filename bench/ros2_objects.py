"""Pick-place over ROS 2: the scripted expert's episodes through the bridge vs directly on MuJoCo, same run.

A bridge (``robotlearn_bridge``, its own process, started as launch_ros would) runs robotlearn/ArmPickPlace-v0 on
MuJoCo at the servo rate; this process drives it through ``backend="ros2"`` (objects placed at reset over
``reset_scene``, cube poses from ``objects/cube/pose``). Baseline: the same seeds and expert on the direct
MuJoCo backend. Reported: success rate and steps to success of both (ratio ros2/direct), the wall time of a
reset and of an episode over ROS 2 (10 Hz control: wall time is steps/10 s plus the reset), and the age of the
cube pose when it arrives (receive time - header stamp, both the system clock) with its publish rate.
The last line is one JSON object.

    python bench/ros2_objects.py [--seeds 5] [--object-hz 50]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
from robotlearn.backends import prepare_process  # noqa: E402

prepare_process("ros2")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import robotlearn  # noqa: E402, F401 - registers the envs
from robotlearn.teleop.scripted import PickPlaceExpert  # noqa: E402

ENV = "robotlearn/ArmPickPlace-v0"
NS = "/bench_objects"


def episode(env, seed: int, max_steps: int = 80) -> dict:
    t0 = time.monotonic()
    obs, _ = env.reset(seed=seed)
    t_reset = time.monotonic() - t0
    expert = PickPlaceExpert(env)
    expert.reset(obs)
    steps, success = 0, False
    while steps < max_steps and not success:
        obs, _, _, _, info = env.step(expert.act(obs))
        steps += 1
        success = bool(info["is_success"])
    return {"success": success, "steps": steps, "reset_s": t_reset, "episode_s": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--object-hz", type=float, default=50.0)
    args = ap.parse_args()
    seeds = list(range(100, 100 + args.seeds))

    direct = gym.make(ENV, backend="mujoco")
    base = [episode(direct, s) for s in seeds]
    direct.close()

    exe = Path(sys.prefix) / "lib" / "robotlearn" / "robotlearn_bridge"
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_ros2_objects_{os.getpid()}.log", "w")  # noqa: SIM115
    bridge = subprocess.Popen([str(exe), "--ros-args", "-r", "__node:=bridge", "-r", f"__ns:={NS}",
                               "-p", f"env:={ENV}", "-p", "backend:=mujoco", "-p", f"object_hz:={args.object_hz}"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        env = gym.make(ENV, backend="ros2", backend_options={"namespace": NS, "connect_timeout_s": 30.0})
        backend = env.unwrapped.backend
        from geometry_msgs.msg import PoseStamped

        arrivals: list[tuple[float, int]] = []  # (receive time ns, stamp ns), both the system clock
        backend.node.create_subscription(
            PoseStamped, "objects/cube/pose",
            lambda m: arrivals.append((time.time_ns(), m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)), 50)
        over = [episode(env, s) for s in seeds]
        env.close()
    finally:
        bridge.send_signal(2)
        try:
            bridge.wait(15)
        except subprocess.TimeoutExpired:
            bridge.kill()
            bridge.wait()
        log.close()

    ages = np.array([(r - s) / 1e6 for r, s in arrivals[10:]])
    times = np.array([r / 1e9 for r, _ in arrivals[10:]])
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def summary(rows: list[dict]) -> dict:
        wins = [r for r in rows if r["success"]]
        return {"success": len(wins) / len(rows), "mean_steps_to_success": float(np.mean([r["steps"] for r in wins]))
                if wins else None}

    out = {"seeds": seeds, "direct": summary(base), "ros2": summary(over),
           "ros2_reset_s_median": float(np.median([r["reset_s"] for r in over])),
           "ros2_episode_s_median": float(np.median([r["episode_s"] for r in over])),
           "pose_age_ms": {"p50": float(np.percentile(ages, 50)), "p99": float(np.percentile(ages, 99)),
                           "n": int(len(ages))} if len(ages) else None,
           "pose_rate_hz": rate, "object_hz": args.object_hz, "loadavg": os.getloadavg()}
    out["success_ratio_ros2_vs_direct"] = (out["ros2"]["success"] / out["direct"]["success"]
                                           if out["direct"]["success"] else None)
    for seed, b, o in zip(seeds, base, over, strict=True):
        print(f"seed {seed}: direct {'ok' if b['success'] else 'miss'} in {b['steps']} steps | ros2 "
              f"{'ok' if o['success'] else 'miss'} in {o['steps']} steps, reset {o['reset_s']:.2f} s, "
              f"episode {o['episode_s']:.2f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""ROS 2 with real rclpy and real DDS on loopback (domain and discovery range set in conftest.py).

Every node is started exactly as launch_ros starts it: ``<prefix>/lib/robotlearn/<exe> --ros-args
-r __node:=... -r __ns:=... -p k:=v --params-file f.yaml``, in its own process; the test process talks to
it over DDS like any other ROS 2 node would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from ros2_nodes import ARM_JOINTS, LIB, NodeProcess, Probe, wait_for
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

import robotlearn  # noqa: F401 - registers the envs
from robotlearn.core.config import load_config
from robotlearn.hardware.scene_oracle import read_emulator_info
from robotlearn.policies import load_policy, read_config
from robotlearn.policies.sac.config import SACConfig
from robotlearn.policies.sac.train import train
from robotlearn.rollout import PolicySource, Rollout, checkpoint_recipe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def probe():
    """Per test: a subscription left behind (500 Hz joint states) would load the next test's process."""
    p = Probe()
    yield p
    p.close()


@pytest.fixture(scope="module")
def sim_bridge(tmp_path_factory):
    """The bridge on MuJoCo; rate_hz comes from a params file, the rest from -p, as launch_ros passes them."""
    node = NodeProcess("robotlearn_bridge", "bridge", "/sim", {"env": "robotlearn/ArmReach-v0", "backend": "mujoco"},
                       tmp_path_factory.mktemp("sim_bridge"), params_file={"rate_hz": 500.0})
    yield node
    rc = node.stop()
    assert rc == 0, node.output()


def test_ament_layout_is_installed():
    """What `ros2 launch robotlearn ...` needs in the environment's prefix."""
    prefix = Path(sys.prefix)
    assert (prefix / "share/ament_index/resource_index/packages/robotlearn").is_file()
    assert (prefix / "share/robotlearn/package.xml").read_text().count("<name>robotlearn</name>") == 1
    launch = sorted(p.name for p in (prefix / "share/robotlearn/launch").glob("*.launch.py"))
    assert launch == ["deploy_policy.launch.py", "quadrotor.launch.py", "real_arm.launch.py", "record.launch.py",
                      "sim_arm.launch.py", "teleop_record.launch.py"]
    assert (prefix / "share/robotlearn/config/arm_bridge.yaml").is_file()
    for exe in ("robotlearn_bridge", "robotlearn_policy_runner", "robotlearn_teleop", "robotlearn_recorder"):
        assert os.access(LIB / exe, os.X_OK), exe


def test_joint_states_flow_at_the_servo_rate(sim_bridge, probe):
    received = probe.joint_states("/sim/joint_states")
    wait_for(lambda: len(received) > 10, 30, "the first joint states")
    start = len(received)
    time.sleep(2.0)
    window = received[start:]
    rate = (len(window) - 1) / (window[-1][0] - window[0][0])
    msg = window[-1][1]
    assert list(msg.name) == ARM_JOINTS and len(msg.position) == len(msg.velocity) == 8
    assert np.all(np.isfinite(msg.position))
    assert rate >= 250.0, f"joint_states at {rate:.0f} Hz (stated 500 Hz; load {os.getloadavg()})"


def test_ros2_backend_passes_check_env_with_the_sims_spaces(sim_bridge):
    env = gym.make("robotlearn/ArmReach-v0", backend="ros2", backend_options={"namespace": "/sim"})
    sim = gym.make("robotlearn/ArmReach-v0", backend="mujoco")
    try:
        assert env.observation_space == sim.observation_space
        assert env.action_space == sim.action_space
        check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=3)
        assert sim.observation_space.contains(obs)
    finally:
        env.close()
        sim.close()


def test_a_starved_backend_process_is_not_a_silent_robot_but_a_stopped_bridge_is(sim_bridge):
    """The state's age is taken on arrival in this process. While this process cannot run its executor
    thread (here: the main thread holds the GIL for 0.8 s, as a descheduled process on a busy machine would
    miss it), every state ages; read() must let the executor take what arrived before judging. A bridge
    that really stops (SIGSTOP) must still be reported as silent."""
    env = gym.make("robotlearn/ArmReach-v0", backend="ros2", backend_options={"namespace": "/sim"})
    backend = env.unwrapped.backend
    try:
        env.reset(seed=0)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(5.0)  # the executor thread cannot take the GIL from a busy main thread
        try:
            t_end = time.monotonic() + 0.8
            while time.monotonic() < t_end:
                pass
            state = backend.read()
        finally:
            sys.setswitchinterval(interval)
        assert np.all(np.isfinite(state["joint_pos"]))
        os.kill(sim_bridge.proc.pid, signal.SIGSTOP)  # the bridge stays connected but says nothing
        try:
            time.sleep(0.8)
            t0 = time.monotonic()
            with pytest.raises(ConnectionError, match="went silent"):
                backend.read()
            assert time.monotonic() - t0 < 0.6, "a silent bridge is reported within one more limit"
        finally:
            os.kill(sim_bridge.proc.pid, signal.SIGCONT)
        wait_for(lambda: _reads(backend), 10, "states again after SIGCONT")
    finally:
        env.close()


def _reads(backend) -> bool:
    try:
        backend.read()
        return True
    except ConnectionError:
        return False


def test_bad_parameters_are_one_line_errors(tmp_path):
    cases = [({"backend": "mujoco"}, "parameter 'env' is required"),
             ({"env": "robotlearn/ArmReach-v0", "rate_hz": "fast"}, "parameter 'rate_hz' must be a float"),
             ({"env": "robotlearn/ArmReach-v0", "rate_hz": "5000.0"}, "parameter 'rate_hz' out of range"),
             ({"env": "robotlearn/ArmReach-v0", "rat_hz": "500.0"}, "unknown parameter 'rat_hz'"),
             ({"env": "robotlearn/ArmRech-v0"}, "did you mean 'robotlearn/ArmReach-v0'"),
             ({"env": "robotlearn/ArmReach-v0", "backend_options": "nope"}, "'backend_options': override 'nope' is not"),
             ({"env": "robotlearn/ArmReach-v0", "backend_options": "prt=/dev/null"}, "unknown option 'prt'"),
             # malformed --ros-args: rcl logs its own line first; ours is the last, and there is no traceback
             ({"env": "robotlearn/ArmReach-v0", "backend_options": "{port"}, "Couldn't parse parameter override")]
    for k, (params, expected) in enumerate(cases):
        node = NodeProcess("robotlearn_bridge", f"bad{k}", "/bad", params, tmp_path)
        rc = node.proc.wait(60)
        node.stop()
        lines = node.output().strip().splitlines()
        assert rc == 2, lines
        assert "Traceback" not in "".join(lines) and expected in lines[-1], lines
        assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith("[ERROR]") and "[rcl]" in lines[0]), lines


@pytest.fixture()
def emulated_arm(tmp_path):
    link = tmp_path / "arm"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    emu = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.main", "emulate", "arm", "--link", str(link)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    read_emulator_info(link, timeout_s=30.0)
    yield link
    emu.send_signal(15)
    emu.communicate(timeout=15)


def test_joint_trajectory_moves_the_emulated_arm_silence_trips_the_watchdog_estop_stops(emulated_arm, probe, tmp_path):
    bridge = NodeProcess("robotlearn_bridge", "bridge", "/real",
                         {"env": "robotlearn/ArmReach-v0", "backend": "real",
                          "backend_options": f"port={emulated_arm}"}, tmp_path)
    try:
        received = probe.joint_states("/real/joint_states")
        wait_for(lambda: len(received) > 10, 40, "joint states from the real-arm bridge")
        start = received[-1][1].position[0]
        goal = start + 0.5
        pub = probe.node.create_publisher(JointTrajectory, "/real/joint_trajectory", 10)
        point = JointTrajectoryPoint(positions=[goal])
        point.time_from_start.sec = 1
        msg = JointTrajectory(joint_names=["shoulder_pan"], points=[point])
        wait_for(lambda: pub.get_subscription_count() > 0, 10, "the bridge's joint_trajectory subscription")
        pub.publish(msg)
        wait_for(lambda: abs(received[-1][1].position[0] - goal) < 0.03, 6, "the arm reaching the trajectory goal")
        held = np.array(received[-1][1].position)
        # the trajectory is over and the topic silent: the compiled watchdog holds (0.5 s), then turns torque off
        # (3 s, configs/hardware/arm6_emulated.yaml) and gravity takes the arm, exactly as with a silent direct caller
        time.sleep(1.5)
        assert np.max(np.abs(np.array(received[-1][1].position) - held)[:6]) < 0.03
        wait_for(lambda: np.max(np.abs(np.array(received[-1][1].position) - held)[:6]) > 0.1, 6,
                 "the arm going limp after the watchdog's torque-off")
        # e-stop: the compiled loop's e-stop; the bridge reports the fault in one line and exits non-zero
        assert probe.call(Trigger, "/real/estop").success
        rc = bridge.proc.wait(15)
        assert rc == 1, bridge.output()
        assert "bridge stopped" in bridge.output() and "e-stop" in bridge.output().lower()
    finally:
        bridge.stop()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    cfg = load_config(SACConfig, "algos", "sac_arm_reach",
                      ["total_steps=3000", "learning_starts=300", "eval_every=0", "checkpoint_every=0",
                       "eval_episodes=1", "save_replay=false"])
    return train(cfg, tmp_path_factory.mktemp("sac"), progress_bar=False)["checkpoint"]


def test_a_bridge_that_dies_mid_run_is_one_line_and_status_1_from_the_policy_runner(checkpoint, tmp_path):
    """The robot side goes away while the runner acts: its ros2 backend sees the state go stale (or the reset
    service gone) and the node ends with one line naming it, not a traceback, and status 1 (a fault, not a
    bad parameter)."""
    bridge = NodeProcess("robotlearn_bridge", "bridge", "/gone", {"env": "robotlearn/ArmReach-v0", "backend": "mujoco"},
                         tmp_path)
    runner = None
    try:
        runner = NodeProcess("robotlearn_policy_runner", "runner", "/gone",
                             {"checkpoint": checkpoint, "backend_options": "namespace=/gone", "episodes": 50},
                             tmp_path)
        wait_for(lambda: "episode 0:" in runner.output(), 60, "the runner's first episode")
        bridge.proc.kill()
        rc = runner.proc.wait(30)
        errors = [line for line in runner.output().splitlines() if line and not line.startswith("[INFO]")]
        assert rc == 1, runner.output()
        # mid-episode the state goes stale; in a reset the service is gone: either way one line naming it
        assert len(errors) == 1 and "'/gone/" in errors[0] and "Traceback" not in runner.output(), errors
    finally:
        bridge.stop()
        if runner is not None:
            runner.stop()


def test_sac_checkpoint_deployed_over_ros2_does_as_well_as_directly(checkpoint, emulated_arm, tmp_path):
    """The same checkpoint on the emulated arm: directly (backend real), then policy runner -> bridge -> the same
    emulator, with the same seeds; the ROS 2 path must succeed as often (within one episode) and score alike."""
    episodes, seed = 3, 500
    recipe = checkpoint_recipe(read_config(checkpoint))
    assert recipe.backend == "mujoco"
    env = recipe.with_backend("real", {"port": str(emulated_arm)}).make()
    try:
        direct = Rollout(env, PolicySource(load_policy(checkpoint))).run(episodes, seed=seed)
    finally:
        env.close()  # frees the port for the bridge
    bridge = NodeProcess("robotlearn_bridge", "bridge", "/emu",
                         {"env": recipe.env_id, "backend": "real", "backend_options": f"port={emulated_arm}"},
                         tmp_path)
    summary = tmp_path / "summary.json"
    try:
        runner = NodeProcess("robotlearn_policy_runner", "runner", "/emu",
                             {"checkpoint": checkpoint, "backend_options": "namespace=/emu", "episodes": episodes,
                              "seed": seed, "summary_path": str(summary), "dataset": str(tmp_path / "deployed")},
                             tmp_path)
        rc = runner.proc.wait(150)
        runner.stop()
        assert rc == 0, runner.output() + bridge.output()
    finally:
        bridge.stop()
    over_ros = json.loads(summary.read_text())
    assert over_ros["env"]["backend"] == "ros2"
    info = json.loads((tmp_path / "deployed" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == episodes and info["robotlearn"]["env_recipe"]["backend"] == "ros2"
    print(f"emulated arm, direct: success {direct.success_rate:.2f} return {direct.mean_return:.3f}; over ROS 2: "
          f"success {over_ros['success_rate']:.2f} return {over_ros['mean_return']:.3f}")
    assert over_ros["success_rate"] >= direct.success_rate - 1 / episodes, (over_ros, direct.summary())
    assert over_ros["mean_return"] >= direct.mean_return - 0.5, (over_ros["mean_return"], direct.mean_return)


def test_teleop_node_drives_the_bridge_and_records(sim_bridge, tmp_path):
    """The scripted expert as the teleop device: its actions reach the robot through the bridge's topics and
    the episodes land in a dataset through the recorder."""
    dataset = tmp_path / "reach"
    teleop = NodeProcess("robotlearn_teleop", "teleop", "/sim",
                         {"device": "scripted", "backend_options": "namespace=/sim", "episodes": 2,
                          "dataset": str(dataset)}, tmp_path)
    rc = teleop.proc.wait(90)
    out = teleop.output()
    teleop.stop()
    assert rc == 0, out
    assert out.count("success True") == 2, out
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_frames"] > 10
    assert info["robot_type"] == "arm6" and info["robotlearn"]["env_recipe"]["backend"] == "ros2"


def test_quadrotor_bridge_odometry_setpoints_and_backend(probe, tmp_path):
    """odom at the bridge rate; a goal_pose flies the MuJoCo quadrotor there (the shared cascaded controller);
    the ROS 2 backend over it passes check_env with the sim's spaces."""
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry

    bridge = NodeProcess("robotlearn_bridge", "bridge", "/quad",
                         {"env": "robotlearn/QuadHover-v0", "backend": "mujoco", "rate_hz": 100.0}, tmp_path)
    try:
        odom: list[tuple[float, Odometry]] = []
        probe.node.create_subscription(Odometry, "/quad/odom", lambda m: odom.append((time.monotonic(), m)), 100)
        wait_for(lambda: len(odom) > 20, 30, "odometry")
        start = len(odom)
        time.sleep(1.0)
        window = odom[start:]
        rate = (len(window) - 1) / (window[-1][0] - window[0][0])
        assert rate >= 80.0, f"odom at {rate:.0f} Hz (stated 100 Hz)"
        p0 = odom[-1][1].pose.pose.position
        goal = PoseStamped()
        goal.pose.position.x, goal.pose.position.y, goal.pose.position.z = p0.x + 0.3, p0.y, p0.z + 0.2
        goal.pose.orientation.w = 1.0
        pub = probe.node.create_publisher(PoseStamped, "/quad/goal_pose", 10)
        wait_for(lambda: pub.get_subscription_count() > 0, 10, "the goal_pose subscription")
        pub.publish(goal)

        def near() -> bool:
            p = odom[-1][1].pose.pose.position
            return np.linalg.norm([p.x - goal.pose.position.x, p.y - goal.pose.position.y,
                                   p.z - goal.pose.position.z]) < 0.05
        wait_for(near, 10, "the quadrotor reaching goal_pose")

        env = gym.make("robotlearn/QuadHover-v0", backend="ros2", backend_options={"namespace": "/quad", "reset_tolerance": 0.1})
        sim = gym.make("robotlearn/QuadHover-v0", backend="mujoco")
        try:
            assert env.observation_space == sim.observation_space and env.action_space == sim.action_space
            check_env(env.unwrapped, skip_render_check=True)
        finally:
            env.close()
            sim.close()
    finally:
        assert bridge.stop() == 0, bridge.output()


def test_forward_commands_and_the_reset_and_enable_services(sim_bridge, probe):
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool

    received = probe.joint_states("/sim/joint_states")
    assert probe.call(Trigger, "/sim/reset").success
    wait_for(lambda: len(received) > 10, 20, "joint states")
    home = np.array(received[-1][1].position)
    pub = probe.node.create_publisher(Float64MultiArray, "/sim/commands", 10)
    wait_for(lambda: pub.get_subscription_count() > 0, 10, "the commands subscription")

    def command_pan(offset: float) -> None:
        target = home.copy()
        target[0] += offset
        pub.publish(Float64MultiArray(data=target.tolist()))

    def pan() -> float:
        return received[-1][1].position[0] - home[0]

    command_pan(0.3)
    wait_for(lambda: abs(pan() - 0.3) < 0.02, 5, "shoulder_pan following the forward command")
    assert probe.call(Trigger, "/sim/reset").success
    wait_for(lambda: abs(pan()) < 0.01, 5, "the reset back to home")
    disabled = probe.call(SetBool, "/sim/enable", SetBool.Request(data=False))
    assert disabled.success and disabled.message == "disabled"
    command_pan(-0.3)
    time.sleep(0.5)
    assert abs(pan()) < 0.01, "a disabled bridge forwarded a command"
    assert probe.call(SetBool, "/sim/enable", SetBool.Request(data=True)).success
    command_pan(-0.3)
    wait_for(lambda: abs(pan() + 0.3) < 0.02, 5, "shoulder_pan following after enable")
    assert probe.call(Trigger, "/sim/reset").success


def test_cli_deploy_over_ros2_from_a_plain_process(checkpoint, sim_bridge, tmp_path):
    """`robotlearn deploy --backend ros2` started without the ROS libraries on the loader path (a venv, no
    sourced ROS): the CLI sets up its own process for the backend before any work, and the deploy runs."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "_ROBOTLEARN_ROS_ENV")}
    done = subprocess.run([sys.executable, "-m", "robotlearn.cli.main", "deploy", "--checkpoint", checkpoint,
                           "--backend", "ros2", "--backend-opt", "namespace=/sim", "--episodes", "1",
                           "--no-record"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "ros2" in done.stdout, done.stdout


def test_teleop_node_rac_parameter_errors_are_one_line(tmp_path):
    cases = [({"policy": str(tmp_path)}, "set dataset:=DIR"),
             ({"policy": str(tmp_path), "dataset": str(tmp_path / "d"), "episodes": 0}, "set episodes >= 1"),
             ({"rac_mode": "dagger"}, "parameter 'rac_mode'")]
    for k, (params, expected) in enumerate(cases):
        node = NodeProcess("robotlearn_teleop", f"racbad{k}", "/bad",
                           {"env": "robotlearn/ArmStack-v0", "backend": "mujoco", "device": "simulated", **params},
                           tmp_path)
        rc = node.proc.wait(60)
        node.stop()
        lines = node.output().strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "Traceback" not in lines[0] and expected in lines[0], lines

"""Scene objects over ROS 2 (real rclpy + Fast DDS on loopback): the bridge publishes object poses and places
objects at reset, so pick-place runs on ``backend="ros2"``.

The bridge runs robotlearn/ArmPickPlace-v0 on MuJoCo, started as launch_ros starts it; the test process talks
to it through the ROS 2 backend (gym.make(..., backend="ros2")) and a probe node.
"""

from __future__ import annotations

import json
import os
import time

import gymnasium as gym
import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros2_nodes import NodeProcess, Probe, wait_for
from std_msgs.msg import String
from std_srvs.srv import Trigger

import robotlearn  # noqa: F401 - registers the envs
from robotlearn.ros2.objects import PlacementError, decode_placement, stamp_ns
from robotlearn.teleop.scripted import PickPlaceExpert

ENV = "robotlearn/ArmPickPlace-v0"
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
POS_TOL = 2e-3  # m: the placed cube settles onto the table while the arm moves to its start pose
QUAT_TOL = 5e-3


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    node = NodeProcess("robotlearn_bridge", "bridge", "/objs", {"env": ENV, "backend": "mujoco", "rate_hz": 250.0},
                       tmp_path_factory.mktemp("objects_bridge"))
    yield node
    rc = node.stop()
    assert rc == 0, node.output()


@pytest.fixture()
def probe():
    p = Probe()
    yield p
    p.close()


@pytest.fixture()
def ros2_env(bridge):
    env = gym.make(ENV, backend="ros2", backend_options={"namespace": "/objs"})
    yield env
    env.close()


def poses(probe: Probe, topic: str) -> list[PoseStamped]:
    received: list[PoseStamped] = []
    probe.node.create_subscription(PoseStamped, topic, received.append, 10)
    return received


def placed(seed: int) -> dict[str, np.ndarray]:
    """The scene ArmPickPlace places for `seed` (the same task code, on the sim, without ROS)."""
    sim = gym.make(ENV, backend="mujoco")
    try:
        sim.reset(seed=seed)
        pos, quat = sim.unwrapped.backend.object_pose("cube")
        return {"pos": pos, "quat": quat, "goal": sim.unwrapped.task.goal.copy()}
    finally:
        sim.close()


def first_after(received: list[PoseStamped], t_ns: int, timeout: float = 5.0) -> PoseStamped:
    wait_for(lambda: any(stamp_ns(m.header.stamp) > t_ns for m in received), timeout, "a pose after the reset")
    return next(m for m in received if stamp_ns(m.header.stamp) > t_ns)


def as_arrays(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    p, o = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([o.w, o.x, o.y, o.z])


def test_reset_places_the_seeded_scene_and_the_pose_topic_shows_it(ros2_env, probe):
    received = poses(probe, "/objs/objects/cube/pose")
    want = placed(11)
    obs, _ = ros2_env.reset(seed=11)
    backend = ros2_env.unwrapped.backend
    msg = first_after(received, backend._reset_stamp_ns)
    pos, quat = as_arrays(msg)
    assert msg.header.frame_id == "world"
    np.testing.assert_allclose(pos, want["pos"], atol=POS_TOL)
    np.testing.assert_allclose(quat, want["quat"], atol=QUAT_TOL)
    np.testing.assert_allclose(obs["cube_pos"], want["pos"], atol=POS_TOL)
    np.testing.assert_allclose(obs["goal_pos"], want["goal"], atol=1e-6)
    # once a post-reset pose arrived, object_pose is the topic's value (not the placed pose kept as a fallback)
    wait_for(lambda: backend._poses["cube"][2] > backend._reset_stamp_ns, 5.0, "the backend's post-reset pose")
    got, _ = backend.object_pose("cube")
    np.testing.assert_allclose(got, backend._poses["cube"][0])
    info = backend.advance()
    assert 0.0 <= info["objects"]["cube/age_s"] < 0.5
    # at the stated rate (object_hz default 50 Hz)
    n0, t0 = len(received), time.monotonic()
    time.sleep(1.0)
    rate = (len(received) - n0) / (time.monotonic() - t0)
    assert rate >= 40.0, f"objects/cube/pose at {rate:.1f} Hz (stated 50 Hz; load {os.getloadavg()})"


def test_pick_place_expert_succeeds_over_ros2(ros2_env):
    """The scripted expert of the sims, over ROS 2 (10 Hz control: an episode is a few seconds of wall time)."""
    obs, _ = ros2_env.reset(seed=3)
    expert = PickPlaceExpert(ros2_env)
    expert.reset(obs)
    start_cube, lifted = obs["cube_pos"].copy(), 0.0
    steps = 0
    while steps < 80:
        obs, _, _, _, info = ros2_env.step(expert.act(obs))
        steps += 1
        lifted = max(lifted, float(obs["cube_pos"][2] - start_cube[2]))
        if info["is_success"]:
            break
    print(f"pick-place over ros2: {steps} steps, success {info['is_success']}, cube rose {lifted:.3f} m")
    assert lifted > 0.03, f"the cube was never lifted (max rise {lifted:.3f} m)"
    assert info["is_success"], f"not placed after {steps} steps: distance {info['place_distance']:.3f} m"


def test_placements_and_resets_cannot_be_mixed_up(ros2_env, probe):
    """Back-to-back resets each show their own scene; another client's placement between ours is detected;
    a placement is applied once; a malformed one is refused and changes nothing."""
    received = poses(probe, "/objs/objects/cube/pose")
    backend = ros2_env.unwrapped.backend
    for seed in (21, 22, 23):
        want = placed(seed)
        ros2_env.reset(seed=seed)
        pos, _ = as_arrays(first_after(received, backend._reset_stamp_ns))
        np.testing.assert_allclose(pos, want["pos"], atol=POS_TOL, err_msg=f"seed {seed}")

    # another client's placement lands after ours was taken and before our reset: our reset must refuse it
    intruder = probe.node.create_publisher(String, "/objs/reset_scene", LATCHED)
    held: list[str] = []
    probe.node.create_subscription(String, "/objs/reset_scene/received", lambda m: held.append(m.data), LATCHED)
    call_reset = backend._call_reset

    def reset_after_intruder():
        intruder.publish(String(data=json.dumps({"id": "intruder:1", "scene": {"object/cube/pos": [0.3, 0.0, 0.02]}})))
        wait_for(lambda: held and held[-1] == "intruder:1", 5.0, "the intruder's placement held")
        return call_reset()

    backend._call_reset = reset_after_intruder
    try:
        with pytest.raises(RuntimeError, match="did not apply our placement"):
            ros2_env.reset(seed=24)
    finally:
        backend._call_reset = call_reset

    # applied once: a plain reset afterwards places nothing
    answer = probe.call(Trigger, "/objs/reset")
    assert answer.success and answer.message == "reset to the home state", answer.message
    # malformed: refused with one error line, the bridge keeps running and holds nothing
    intruder.publish(String(data=json.dumps({"id": "bad:1", "scene": {"object/nope/pos": [0, 0, 0]}})))
    time.sleep(0.3)
    assert held[-1] == "", held
    ros2_env.reset(seed=25)  # still works

    # a racing client (fresh publisher, reset called at once, no wait for the echo): whichever way the race goes,
    # the answer says what happened -- placed (the cube is at its pose) or not (default pose, placement still held)
    default = np.array([0.48, 0.32, 0.02])  # sim_assets/arm6/scene.yaml
    outcomes: list[bool] = []
    reset = probe.node.create_client(Trigger, "/objs/reset")
    assert reset.wait_for_service(timeout_sec=5.0)
    for k in range(3):
        racer = probe.node.create_publisher(String, "/objs/reset_scene", LATCHED)
        want = np.array([0.22 + 0.03 * k, -0.1, 0.02])
        racer.publish(String(data=json.dumps({"id": f"racer:{k}", "scene": {"object/cube/pos": want.tolist()}})))
        future = reset.call_async(Trigger.Request())  # right after the publish, on an already-matched client
        wait_for(future.done, 10.0, "the reset's answer")
        answer = future.result()
        pos, _ = as_arrays(first_after(received, probe.node.get_clock().now().nanoseconds))
        outcomes.append(answer.message.endswith(f"placed scene racer:{k}"))
        if outcomes[-1]:
            np.testing.assert_allclose(pos, want, atol=POS_TOL)
        else:
            assert answer.message == "reset to the home state", answer.message
            np.testing.assert_allclose(pos, default, atol=POS_TOL)
            wait_for(lambda k=k: held[-1] == f"racer:{k}", 5.0, "the late placement held for the next reset")
            assert probe.call(Trigger, "/objs/reset").message.endswith(f"placed scene racer:{k}")
        probe.node.destroy_publisher(racer)
    print(f"racing placements applied at the reset called right after them: {outcomes}")


def test_a_missing_object_topic_is_one_line_and_a_silent_one_keeps_the_last_pose(tmp_path, probe):
    """Bridge without object topics (object_hz 0): object_pose names the topic it waited for; a pose that then
    stops coming is the last-seen value, its age reported, not an error."""
    node = NodeProcess("robotlearn_bridge", "quiet", "/objs_quiet",
                       {"env": ENV, "backend": "mujoco", "rate_hz": 100.0, "object_hz": 0.0}, tmp_path)
    try:
        states = probe.joint_states("/objs_quiet/joint_states")
        wait_for(lambda: len(states) > 0, 30.0, "the bridge's joint states")
        # connect_timeout_s bounds the backend's first state too, not only the pose wait it was kept short for:
        # under two CPU hogs the first backend of a test process took 2.6 s to its first state, later ones
        # 0.2-0.5 s (8 connects against a running bridge, load 3.3); 1 s failed a full run there
        env = gym.make(ENV, backend="ros2", backend_options={"namespace": "/objs_quiet", "connect_timeout_s": 8.0,
                                                              "max_state_age_s": 0.5})
        backend = env.unwrapped.backend
        try:
            with pytest.raises(ConnectionError, match="no pose on '/objs_quiet/objects/cube/pose' within 8 s") as err:
                backend.object_pose("cube")
            assert "\n" not in str(err.value)
            pub = probe.node.create_publisher(PoseStamped, "/objs_quiet/objects/cube_b/pose", 10)
            msg = PoseStamped()
            msg.pose.position.x, msg.pose.orientation.w = 0.25, 1.0
            wait_for(lambda: pub.get_subscription_count() > 0, 5.0, "the backend's subscription")
            pub.publish(msg)
            wait_for(lambda: "cube_b" in backend._poses, 5.0, "the pose")
            time.sleep(0.7)  # older than max_state_age_s
            pos, quat = backend.object_pose("cube_b")
            np.testing.assert_allclose(pos, [0.25, 0.0, 0.0])
            np.testing.assert_allclose(quat, [1.0, 0.0, 0.0, 0.0])
            assert backend.advance()["objects"]["cube_b/age_s"] > 0.5
            with pytest.raises(KeyError, match="no object 'table'"):
                backend.object_pose("table")
        finally:
            env.close()
    finally:
        assert node.stop() == 0, node.output()


def test_placement_messages_are_checked():
    objects, markers = ["cube"], ["goal"]
    assert decode_placement('{"id": "a:1", "scene": {"object/cube/pos": [0.1, 0, 0.02], "marker/goal/pos": [0, 0, 1]}}',
                            objects, markers) == ("a:1", {"object/cube/pos": [0.1, 0.0, 0.02],
                                                          "marker/goal/pos": [0.0, 0.0, 1.0]})
    bad = {"{": "not JSON", '{"id": 1, "scene": {}}': "need {",
           '{"id": "a", "scene": {"object/ball/pos": [0, 0, 0]}}': "no object 'ball'",
           '{"id": "a", "scene": {"object/cube/pos": [0, 0]}}': "needs 3 finite numbers",
           '{"id": "a", "scene": {"object/cube/pos": [0, 0, NaN]}}': "needs 3 finite numbers",
           '{"id": "a", "scene": {"object/cube/quat": [0, 0, 0, 0]}}': "not a unit quaternion",
           '{"id": "a", "scene": {"marker/goal/quat": [1, 0, 0, 0]}}': "unknown key"}
    for text, expected in bad.items():
        with pytest.raises(PlacementError, match=expected):
            decode_placement(text, objects, markers)


def test_teleop_node_collects_a_rac_round_over_ros2(tmp_path):
    """RaC needs object poses; with them on the bridge's topics the teleop node's RaC round runs on `ros2`."""
    from robotlearn.correction.loop import collect_demos, train_policy
    from robotlearn.data.loader import load_demos
    from robotlearn.rollout import EnvRecipe

    recipe = EnvRecipe("ArmStack-v0", overrides=("max_episode_steps=60",))
    env = recipe.make()
    try:
        collect_demos(env, recipe, tmp_path / "demos", 2, seed=0, progress=None)
    finally:
        env.close()
    policy = train_policy(tmp_path / "demos", tmp_path / "policy", steps=4, log=lambda line: None,
                          overrides=["train.batch_size=16"])
    bridge = NodeProcess("robotlearn_bridge", "bridge", "/stack", {"env": "robotlearn/ArmStack-v0",
                                                                   "backend": "mujoco", "rate_hz": 250.0}, tmp_path)
    try:
        node = NodeProcess("robotlearn_teleop", "rac", "/rac",
                           {"env": "robotlearn/ArmStack-v0", "backend": "ros2", "backend_options": "namespace=/stack",
                            "overrides": "max_episode_steps=30", "device": "simulated", "policy": str(policy),
                            "dataset": str(tmp_path / "demos"), "episodes": 1, "seed": 7}, tmp_path)
        rc = node.proc.wait(150)
        out = node.output()
        node.stop()
    finally:
        assert bridge.stop() == 0, bridge.output()
    assert rc == 0, out
    assert "RaC round: 1 episodes" in out, out
    demos = load_demos(tmp_path / "demos")
    last = demos.episode(len(demos.episode_ends) - 1)
    assert set(last["source"]) <= {"policy", "rewind", "correction"} and "policy" in set(last["source"])
    # the recorded cube observations came over ROS 2 from the bridge's scene: the seed's placement
    sim = recipe.make()
    try:
        obs, _ = sim.reset(seed=7)
    finally:
        sim.close()
    for key in ("cube_a_pos", "cube_b_pos", "cube_c_pos"):
        np.testing.assert_allclose(np.asarray(last[f"observation.{key}"])[0], obs[key], atol=POS_TOL, err_msg=key)


def test_emulated_real_arm_places_through_its_side_channel_and_publishes_perceived_poses(tmp_path, probe):
    """The bridge on the production arm driver (`robotlearn emulate arm` with a scene camera): a ros2 reset's
    placement goes through the real backend's placer (the emulator's side channel), and objects/cube/pose is the
    camera perception's estimate, with its visibility and age on objects/diagnostics."""
    import subprocess
    import sys
    from pathlib import Path

    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    from robotlearn.hardware.scene_oracle import read_emulator_info

    link = tmp_path / "arm"
    repo = Path(__file__).resolve().parents[1]
    env_vars = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    emu = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.main", "emulate", "arm", "--link", str(link),
                            "--cameras", "scene", "--camera-fps", "10"],
                           env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    bridge = None
    try:
        read_emulator_info(link, timeout_s=30.0)
        bridge = NodeProcess("robotlearn_bridge", "bridge", "/realobj",
                             {"env": ENV, "backend": "real", "backend_options": f"port={link}"}, tmp_path)
        received = poses(probe, "/realobj/objects/cube/pose")
        diagnostics: list[DiagnosticArray] = []
        probe.node.create_subscription(DiagnosticArray, "/realobj/objects/diagnostics", diagnostics.append, 10)
        wait_for(lambda: len(received) > 0, 40.0, "the real-arm bridge's cube pose")
        env = gym.make(ENV, backend="ros2", backend_options={"namespace": "/realobj", "connect_timeout_s": 20.0})
        try:
            want = placed(5)
            env.reset(seed=5)
            t_reset = env.unwrapped.backend._reset_stamp_ns
            def cube_status(array: DiagnosticArray):
                return next(s for s in array.status if s.name == "objects/cube")

            wait_for(lambda: any(stamp_ns(d.header.stamp) > t_reset and cube_status(d).level == DiagnosticStatus.OK
                                 for d in diagnostics), 10.0, "the cube seen after the reset")
            time.sleep(0.1)
            pos, quat = as_arrays(received[-1])
            np.testing.assert_allclose(pos, want["pos"], atol=0.01)  # camera perception: millimetres off
            np.testing.assert_allclose(np.abs(quat @ want["quat"]), 1.0, atol=0.02)
            values = {kv.key: kv.value for kv in cube_status(diagnostics[-1]).values}
            assert values["visible"] == "True" and float(values["age_s"]) < 1.0, values
            got, _ = env.unwrapped.backend.object_pose("cube")
            np.testing.assert_allclose(got, want["pos"], atol=0.01)
            # the step's info["perception"] over ROS 2 is the real backend's own report
            perception = env.unwrapped.backend.advance()["perception"]
            assert perception["cube/visible"] is True and perception["frames"] >= 1, perception
            assert perception["cube/pos_error_m"] < 0.01 and 0.0 <= perception["detection_rate"] <= 1.0, perception
        finally:
            env.close()
    finally:
        if bridge is not None:
            assert bridge.stop() == 0, bridge.output()
        emu.send_signal(15)
        emu.communicate(timeout=15)


def test_bad_object_parameters_are_one_line_errors(tmp_path):
    for k, (params, expected) in enumerate([({"objects": "cube,ball"}, "parameter 'objects': no object 'ball'"),
                                            ({"object_hz": "-1.0"}, "parameter 'object_hz' out of range")]):
        node = NodeProcess("robotlearn_bridge", f"badobj{k}", "/bad", {"env": ENV, "backend": "mujoco", **params},
                           tmp_path)
        rc = node.proc.wait(60)
        node.stop()
        lines = node.output().strip().splitlines()
        assert rc == 2 and len(lines) == 1 and expected in lines[0], lines

"""RaC (robotlearn/correction/): the ArmStack task and its expert, labels and the training filter, assisted
rewind on every backend (and the compiled loop's authority over it), the clutch through a real terminal,
Rule 2 vs continue, a tiny end-to-end round, and the CLI on the emulated real arm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robotlearn  # noqa: F401 - registers the envs
from robotlearn.correction.labels import RAC_FEATURES, episode_info, segment_counts, training_demos
from robotlearn.correction.rac import RaCRecorderSink, RaCSource, rac_recorder
from robotlearn.correction.rewind import AssistedRewind, PathMemory, polyline_distance
from robotlearn.correction.sim_operator import SimulatedOperator
from robotlearn.data.loader import load_demos
from robotlearn.rollout import EnvRecipe, Rollout
from robotlearn.rollout.runner import ActionSource
from robotlearn.teleop.scripted import make_expert

REPO = Path(__file__).resolve().parents[1]
SPEED = 0.5  # assisted rewind at half the action scale


def run_expert(env, obs, steps: int, expert=None):
    expert = expert or make_expert(env)
    info = {}
    for _ in range(steps):
        obs, _, term, trunc, info = env.step(expert.act(obs))
        if term or trunc:
            break
    return obs, info


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_arm_stack_expert_stacks_and_takes_over_from_mid_task_states(backend):
    env = gym.make("robotlearn/ArmStack-v0", backend=backend)
    try:
        if backend == "mujoco":
            from gymnasium.utils.env_checker import check_env

            check_env(env.unwrapped, skip_render_check=True)
        for seed in range(2):
            disturbed = seed == 1  # the grasp is lost early in the carry: the expert resumes from that state
            obs, info = env.reset(seed=seed)
            seen, dropped = [], 0
            expert = make_expert(env)
            for _ in range(120):
                action = expert.act(obs)
                task = env.unwrapped.task
                if disturbed and dropped < 3 and (dropped or task.held(obs, "cube_b") and obs["cube_b_pos"][2] > 0.035):
                    action[-1], dropped = 1.0, dropped + 1
                obs, _, term, trunc, info = env.step(action)
                seen.append(info["subtask_id"])
                if term or trunc:
                    break
            assert info["is_success"], (backend, seed, seen)
            assert term and info["subtask_id"] == 4
            assert {0, 1, 2, 3} <= set(seen)
            if disturbed:
                assert any(a == 1 and b == 0 for a, b in zip(seen, seen[1:], strict=False)), seen  # it lost B and re-picked it
    finally:
        env.close()


class _Stalls(ActionSource):
    """A policy that does the first sub-task and then stops moving: the operator has to take over."""

    def __init__(self, env):
        self.expert, self.task = make_expert(env), env.unwrapped.task

    def act(self, obs):
        if self.task.subtask(obs) >= 1:
            action = np.zeros(5, np.float32)
            action[-1] = -1.0  # keep holding cube B
            return action, "policy"
        return np.asarray(self.expert.act(obs), np.float32), "policy"


def _record(env, root, source, episodes, seed=0):
    sink = RaCRecorderSink(rac_recorder(root, env, EnvRecipe("ArmStack-v0").to_dict()), "stack", source)
    rollout = Rollout(env, source, [sink], realtime=False)
    try:
        return rollout.run(episodes, seed=seed)
    finally:
        rollout.close()


def test_rule2_ends_after_the_correction_and_continue_hands_back(tmp_path):
    env = gym.make("robotlearn/ArmStack-v0", backend="mujoco", overrides=["max_episode_steps=90"])
    try:
        for mode in ("rac", "continue"):
            operator = SimulatedOperator(env, stall_s=1.0)
            source = RaCSource(env, _Stalls(env), operator, mode=mode)
            result = _record(env, tmp_path / mode, source, 1)
            stats = result.episodes[0]
            demos = load_demos(tmp_path / mode)
            src, ids, sub = demos.data["source"], demos.data["intervention_id"], demos.data["subtask_id"]
            # policy, then the intervention: rewind first (Rule 1), then the correction; ids mark the segment
            first = int(np.flatnonzero(src != "policy")[0])
            assert src[first] == "rewind" and "correction" in set(src[first:])
            assert np.all(ids[src == "policy"] == -1) and np.all(ids[src != "policy"] >= 0)
            assert sub[first] == 1 and operator.reasons.get("stall", 0) >= 1
            if mode == "rac":
                # Rule 2: the episode ends right after the correction completed sub-task 1
                began = sub[int(np.flatnonzero(src == "correction")[0])]
                assert stats.outcome == "save" and src[-1] == "correction" and sub[-1] == began + 1
                assert episode_info(demos, 0)["termination"] == "correction_done"
            else:
                # continue: the policy drives again after the correction (and here stalls again: a new intervention)
                after = src[np.flatnonzero(src == "correction")[0]:]
                assert "policy" in set(after) and stats.outcome == "done"
                assert ids.max() >= 1
                assert episode_info(demos, 0)["termination"] == "timeout"
    finally:
        env.close()


def test_dataset_round_trip_and_the_filter_keeps_failed_episodes_policy_steps_out(tmp_path):
    """Episodes: a demo; a failed autonomous one; one with an intervention; a clean autonomous success.
    The action's first element carries an episode code, so any leaked frame is identified."""
    env = gym.make("robotlearn/ArmStack-v0", backend="mujoco")
    rec = rac_recorder(tmp_path / "ds", env, EnvRecipe("ArmStack-v0").to_dict())
    obs, _ = env.reset(seed=0)
    plans = [  # (code, [(source, intervention_id, subtask)], success, termination)
        (0.1, [("demo", -1, 0)] * 4, True, "success"),
        (0.2, [("policy", -1, 0)] * 5, False, "timeout"),
        (0.3, [("policy", -1, 0)] * 3 + [("rewind", 0, 1)] * 2 + [("correction", 0, 1)] * 3, False, "correction_done"),
        (0.4, [("policy", -1, 0)] * 4, True, "success"),
    ]
    for code, steps, success, termination in plans:
        rec.start_episode(task="stack")
        for i, (source, iid, sub) in enumerate(steps):
            action = np.array([code, 0, 0, 0, 1], np.float32)
            rec.add_frame(obs, action, success=success and i == len(steps) - 1, source=source,
                          extras={"intervention_id": iid, "subtask_id": sub})
        rec.save_episode(episode_info={"termination": termination})
    with pytest.raises(KeyError, match="intervention_id"):
        rec.start_episode()
        rec.add_frame(obs, np.zeros(5), source="policy", extras={"subtask_id": 0})
    rec.close()
    env.close()

    demos = load_demos(tmp_path / "ds")
    assert set(RAC_FEATURES) <= set(demos.data)
    assert [episode_info(demos, e)["termination"] for e in range(4)] == [p[3] for p in plans]
    expected = [s for _, steps, _, _ in plans for s in steps]
    assert list(demos.data["source"]) == [s for s, _, _ in expected]
    assert list(demos.data["intervention_id"]) == [i for _, i, _ in expected]
    assert list(demos.data["subtask_id"]) == [k for _, _, k in expected]

    kept = training_demos(demos)
    codes = np.round(kept.data["action"][:, 0], 3)
    sources = kept.data["source"]
    assert not np.any(codes == 0.2), "policy steps of a failed episode leaked into training data"
    assert not np.any((codes == 0.3) & (sources == "policy")), "policy steps before an intervention leaked"
    assert np.sum(codes == 0.1) == 4 and np.sum(codes == 0.4) == 4  # demos, and a clean success, train
    assert np.sum(codes == 0.3) == 5  # the recovery and correction segments train
    # segments: demo | rewind+correction | clean success — no window spans a removed stretch
    assert list(kept.episode_ends) == [4, 9, 13]
    counts = segment_counts(demos)
    assert counts["segments/rewind"] == 1 and counts["segments/correction"] == 1


def _rewind_check(env, seed: int = 3, forward: int = 30, back: int = 20):
    obs, _ = env.reset(seed=seed)
    expert, path = make_expert(env), PathMemory()
    for _ in range(forward):
        action = expert.act(obs)
        path.record(obs, float(action[-1]))
        obs, *_ = env.step(action)
    path.record(obs, float(action[-1]))
    target = len(path) - 1 - back
    rewind = AssistedRewind(env, path, target, speed=SPEED)
    joints, ee, infos = [], [], []
    while not rewind.done:
        action = rewind.act(obs)
        assert np.all(np.abs(action[:-1]) <= SPEED + 1e-6)  # speed-limited
        obs, _, _, _, info = env.step(action)
        joints.append(obs["joint_pos"].astype(np.float64))
        ee.append(obs["ee_pos"].astype(np.float64))
        infos.append(info)
    forward_q = np.array(path.joints)[target:]
    forward_ee = np.array(path.ee)[target:]
    # the first REVERSAL steps are the arm reversing: servo lag carries it on along its last motion for a moment
    return {"steps": rewind.steps, "end_ee": float(np.linalg.norm(ee[-1] - path.ee[target])),
            "end_q": float(np.max(np.abs(joints[-1] - path.joints[target]))),
            "path_ee": float(polyline_distance(np.array(ee[REVERSAL:]), forward_ee).max()),
            "path_q": float(polyline_distance(np.array(joints[REVERSAL:]), forward_q).max()),
            "reversal_ee": float(polyline_distance(np.array(ee[:REVERSAL]), forward_ee).max())}


# Stated tolerance of assisted rewind (20 steps back at half speed), the same on every backend: it ends within
# 1 cm of the target tool position and 0.04 rad (max over joints) of its joints, and once reversed (after the
# first REVERSAL steps) strays at most 2 cm (tool) and 0.2 rad (joint-space distance) from the executed path.
# Measurements (several seeds, with the host loaded) are in the closing note.
REVERSAL = 2
REWIND_TOL = {"end_ee": 0.01, "end_q": 0.04, "path_ee": 0.02, "path_q": 0.2}


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_assisted_rewind_retraces_the_executed_path_in_sim(backend):
    env = gym.make("robotlearn/ArmStack-v0", backend=backend)
    try:
        got = _rewind_check(env)
    finally:
        env.close()
    print(backend, got)
    assert got["steps"] <= 25
    for key, tol in REWIND_TOL.items():
        assert got[key] <= tol, (key, got)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_real_arm import Emulator

    emu = Emulator(tmp_path_factory.mktemp("emu") / "arm")
    yield emu
    emu.stop()


def test_assisted_rewind_on_the_emulated_real_arm_within_tolerance_and_under_the_loops_authority(emulator):
    from robotlearn.hardware.arm import ArmFault

    env = gym.make("robotlearn/ArmStack-v0", backend="real", port=str(emulator.link))
    try:
        got = _rewind_check(env)
        print("real", got)
        for key, tol in REWIND_TOL.items():
            assert got[key] <= tol, (key, got)
        assert got["reversal_ee"] < 0.05  # even while reversing it stays near its path
        # a rewind is an ordinary command: a silent commander meets the compiled watchdog mid-rewind ...
        obs, _ = env.reset(seed=4)
        path = PathMemory()
        expert = make_expert(env)
        for _ in range(15):
            action = expert.act(obs)
            path.record(obs, float(action[-1]))
            obs, _, _, _, info = env.step(action)
        path.record(obs, float(action[-1]))
        holds = info["loop_stats"]["watchdog_holds"]
        rewind = AssistedRewind(env, path, 2, speed=0.5)
        obs, _, _, _, info = env.step(rewind.act(obs))
        time.sleep(0.8)  # > watchdog_hold_ms (configs/hardware/arm6_emulated.yaml)
        obs, _, _, _, info = env.step(rewind.act(obs))
        assert info["loop_stats"]["watchdog_holds"] > holds
        # ... and the e-stop ends it like any other command
        env.unwrapped.backend.estop()
        with pytest.raises(ArmFault):
            for _ in range(5):
                obs, *_ = env.step(rewind.act(obs))
    finally:
        env.close()


def test_keyboard_clutch_through_a_terminal_commands_relative_to_the_engage_point():
    from robotlearn.correction.clutch import ClutchOperator
    from robotlearn.teleop.keyboard import KeyboardDevice

    env = gym.make("robotlearn/ArmStack-v0", backend="mujoco")
    master, slave = os.openpty()
    operator = ClutchOperator(env, KeyboardDevice(env, fd=slave, hold_s=0.05))
    try:
        obs, _ = env.reset(seed=0)
        obs, _ = run_expert(env, obs, 6)  # the policy has moved the tool somewhere
        assert not operator.engage(obs)
        os.write(master, b"c")
        obs = dict(obs)
        assert operator.engage(obs)
        operator.anchor(obs)
        start = obs["ee_pos"].astype(np.float64)
        for _ in range(6):
            os.write(master, b"r")  # +z, held (auto-repeat)
            obs = env.step(operator.act(obs))[0]
            assert operator.engaged(obs)
        moved = obs["ee_pos"].astype(np.float64) - start
        assert moved[2] > 0.08 and np.abs(moved[:2]).max() < 0.02  # up from where the clutch engaged
        os.write(master, b"z")
        obs = dict(obs)
        assert operator.rewind_request(obs) == "auto"
        os.write(master, b"c")
        obs = dict(obs)
        assert not operator.engaged(obs)
    finally:
        operator.close()
        os.close(master)
        os.close(slave)
        env.close()


def test_tiny_end_to_end_round_with_the_simulated_operator(tmp_path):
    """Demos -> train -> one collection round (simulated operator) -> fine-tune -> evaluate; the mechanics
    only (tiny budgets), the measurements are bench/rac.py's."""
    from robotlearn.correction.loop import RunConfig, run

    cfg = RunConfig(env=EnvRecipe("ArmStack-v0", overrides=("max_episode_steps=60",)).to_dict(), demos=2, rounds=1,
                    episodes_per_round=2, train_steps=8, finetune_steps=4, eval_episodes=1,
                    train_overrides=["train.batch_size=16"])
    results = run(cfg, tmp_path / "run", log=lambda line: None, progress=False)
    assert [r["round"] for r in results["rounds"]] == [0, 1]
    one = results["rounds"][1]
    assert one["episodes"] == 2 and one["interventions"] >= 1 and one["round_operator_s"] > 0
    assert one["operator_s"] > results["rounds"][0]["operator_s"]
    demos = load_demos(tmp_path / "run" / "dataset")
    assert {"demo", "policy", "correction"} <= set(demos.data["source"])
    assert (tmp_path / "run" / "round-1" / "config.json").exists()
    done = subprocess.run([sys.executable, "-m", "robotlearn.cli.main", "rac", "report", str(tmp_path / "run"),
                           "--out", str(tmp_path / "plot.png")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "plot.png").stat().st_size > 1000


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "robotlearn.cli.main", "rac", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_rac_cli_errors_are_one_line(tmp_path):
    for args in (["train", "--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "c")],
                 ["collect", "--dataset", str(tmp_path / "d"), "--policy", str(tmp_path / "nockpt")],
                 ["report", str(tmp_path), "--out", str(tmp_path / "p.png")],
                 ["collect", "--env", "ArmReach-v0", "--dataset", str(tmp_path / "e"), "--episodes", "0"]):
        done = _cli(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("robotlearn rac: error:"), done.stderr


def test_rac_run_on_the_emulated_real_arm_completes_a_round(emulator, tmp_path):
    done = _cli("run", "--backend", "real", "--port", str(emulator.link), "--override", "max_episode_steps=70",
                "--out", str(tmp_path / "real"), "--rounds", "1", "--demos", "2", "--episodes", "1",
                "--train-steps", "8", "--finetune-steps", "4", "--eval-episodes", "1", "train.batch_size=16")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "real" / "rac.json").read_text())
    assert [r["round"] for r in results["rounds"]] == [0, 1]
    assert results["config"]["env"]["backend"] == "real"
    assert results["rounds"][1]["episodes"] == 1


def test_leader_arm_clutch_is_relative_to_where_it_engaged(tmp_path):
    """Leader = an emulated servo-bus arm held by the emulator's 'person' in a pose far from the follower's;
    the clutch is a key on a terminal. Engaging must not yank the follower to the leader's pose; moving the
    leader afterwards moves the follower by the same joint offset from where the clutch engaged."""
    from robotlearn.correction.clutch import ClutchOperator
    from robotlearn.emulators.arm import ArmEmulator
    from robotlearn.emulators.reality_gap import load_reality_gap
    from robotlearn.hardware.calibration import load_hardware_config
    from robotlearn.hardware.scene_oracle import read_emulator_info, side_channel_request
    from robotlearn.teleop.keyboard import KeyboardDevice
    from robotlearn.teleop.leader_arm import LeaderArmDevice

    emu = ArmEmulator(load_hardware_config("arm6_emulated"), tmp_path / "leader",
                      gap=load_reality_gap("reality_gap_none"), cameras=()).start()
    address = tuple(read_emulator_info(emu.link)["side_channel"])
    env = gym.make("robotlearn/ArmStack-v0", backend="mujoco")
    master, slave = os.openpty()
    operator = None

    def hold(pose, device):
        side_channel_request(address, {"op": "hold", "joint_pos": list(pose)})
        deadline, prev = time.monotonic() + 20, device.read_joints()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            q = device.read_joints()
            if np.abs(q - prev).max() < 2e-3:
                return q
            prev = q
        raise AssertionError("the held leader did not settle")

    try:
        leader = LeaderArmDevice(env, port=str(emu.link), config="arm6_emulated", timeout_ms=100)
        operator = ClutchOperator(env, leader, KeyboardDevice(env, fd=slave))
        p0 = np.array([0.3, 0.5, 0.4, 0.0, 1.0, 0.2, 0.03, 0.03])
        q0 = hold(p0, leader)
        obs, _ = env.reset(seed=0)
        assert not operator.engage(obs)
        os.write(master, b"c")
        obs = dict(obs)
        assert operator.engage(obs)
        operator.anchor(obs)
        start_q, start_ee = obs["joint_pos"].astype(np.float64), obs["ee_pos"].astype(np.float64)
        kin, n = env.unwrapped.robot.kin, env.unwrapped.robot.n_arm
        absolute, _ = kin.forward(q0[:n])
        assert np.linalg.norm(absolute - start_ee) > 0.05  # an absolute mapping would jump this far
        for _ in range(5):
            obs = env.step(operator.act(obs))[0]
        assert np.linalg.norm(obs["ee_pos"] - start_ee) < 0.015  # engaging does not move the follower
        delta = np.zeros(8)
        delta[0] = 0.25  # the person turns the leader's base
        q1 = hold(p0 + delta, leader)
        expected, _ = kin.forward(start_q + (q1 - q0)[:n])
        for _ in range(25):
            obs = env.step(operator.act(obs))[0]
        assert np.linalg.norm(obs["ee_pos"] - expected) < 0.02
    finally:
        if operator is not None:
            operator.close()
        os.close(master)
        os.close(slave)
        env.close()
        emu.close()

"""Teleop devices: the keyboard through a real pseudo-terminal, the scripted device, optional-device errors."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import termios
import time

import numpy as np
import pytest

from robotlearn.envs import make_env
from robotlearn.teleop import make_device


def _read_until(fd: int, pattern: str, timeout: float) -> str:
    buf, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline and not re.search(pattern, buf):
        if select.select([fd], [], [], 0.1)[0]:
            try:
                buf += os.read(fd, 65536).decode(errors="replace")
            except OSError:
                break
    return buf


def test_keyboard_teleop_through_a_pty():
    """`robotlearn teleop --device keyboard` with its stdin/stdout on a pty: held keys move the tool, the
    gripper toggles, ESC quits, and the terminal is restored to cooked mode afterwards."""
    master, slave = pty.openpty()
    cooked = termios.tcgetattr(slave)
    proc = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.main", "teleop", "--env", "arm_reach", "--backend",
                             "mujoco", "--device", "keyboard", "--realtime", "on"],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=True)
    try:
        out = _read_until(master, r"step 3 ", 60)
        assert "step 3 " in out, out[-2000:]
        for key, presses in (("r", 8), (" ", 1), ("a", 8)):
            for _ in range(presses):  # a held key auto-repeats in a terminal: send presses 50 ms apart
                os.write(master, key.encode())
                time.sleep(0.05)
            out += _read_until(master, r"(?!)", 0.3)
        # let the keys expire (hold_s) and a few more steps run, however slow the machine is
        last = int(re.findall(r"step (\d+) ", out)[-1])
        out += _read_until(master, rf"step {last + 6} ", 30)
        os.write(master, b"\x1b")
        out += _read_until(master, r"episode 0: quit", 20)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    steps = [(np.array(eval(a)), np.array(eval(e))) for a, e in re.findall(r"action (\[[^\]]*\]) ee (\[[^\]]*\])", out)]
    actions = np.array([a for a, _ in steps])
    ee = np.array([e for _, e in steps])
    assert "episode 0: quit" in out
    assert actions[0].tolist() == [0, 0, 0, 0, 1]  # nothing pressed yet: hold still, gripper open
    assert (actions[:, 2] == 1).sum() >= 2 and (actions[:, 1] == 1).sum() >= 2, out[-1500:]  # r -> +z, a -> +y
    assert actions[-1, 4] == -1 and actions[-1, 1] == 0, out[-1500:]  # space closed the gripper; released keys stop
    assert ee[:, 2].max() - ee[0, 2] > 0.03 and ee[:, 1].max() - ee[0, 1] > 0.03
    assert termios.tcgetattr(slave)[3] == cooked[3]  # lflags (ICANON, ECHO) back as they were
    os.close(master)
    os.close(slave)


def test_keyboard_needs_a_terminal():
    env = make_env("arm_reach", backend="mujoco")
    r, w = os.pipe()
    try:
        with pytest.raises(RuntimeError, match="needs a terminal"):
            make_device("keyboard", env, fd=r)
    finally:
        os.close(r)
        os.close(w)
        env.close()


def test_scripted_device_and_unknown_devices():
    env = make_env("arm_reach", backend="mujoco")
    try:
        dev = make_device("scripted", env)
        assert dev.source == "policy"
        obs, _ = env.reset(seed=3)
        dev.reset(obs)
        start = np.linalg.norm(obs["ee_pos"] - obs["goal_pos"])
        for _ in range(30):
            a = dev.act(obs)
            assert env.action_space.contains(a)
            obs, *_ = env.step(a)
        assert np.linalg.norm(obs["ee_pos"] - obs["goal_pos"]) < 0.3 * start
        with pytest.raises(ValueError, match="unknown teleop device"):
            make_device("joystick9000", env)
        # gamepad/SpaceMouse: a clear error when the library or the device is missing, never a traceback
        for name in ("gamepad", "spacemouse"):
            with pytest.raises(RuntimeError, match="pip install|no gamepad|no SpaceMouse"):
                make_device(name, env)
    finally:
        env.close()


def test_leader_arm_reads_the_emulated_bus_and_the_follower_copies_it(tmp_path):
    """Leader = an emulated servo-bus arm (limp, held in a pose by the emulator's 'person'); follower = the
    MuJoCo env. The device reads the leader through the compiled driver and the follower's tool converges to
    where the leader's tool is."""
    from robotlearn.emulators.arm import ArmEmulator
    from robotlearn.emulators.reality_gap import load_reality_gap
    from robotlearn.hardware.calibration import load_hardware_config
    from robotlearn.hardware.scene_oracle import read_emulator_info, side_channel_request

    hw = load_hardware_config("arm6_emulated")
    emu = ArmEmulator(hw, tmp_path / "leader", gap=load_reality_gap("reality_gap_none"), cameras=()).start()
    env = make_env("arm_reach", backend="mujoco")
    device = None
    try:
        pose = np.array([0.3, 0.5, 0.4, 0.0, 1.0, 0.2, 0.03, 0.03])
        side_channel_request(tuple(read_emulator_info(emu.link)["side_channel"]), {"op": "hold", "joint_pos": pose.tolist()})
        device = make_device("leader_arm", env, port=str(emu.link), config="arm6_emulated", timeout_ms=100)
        n = device.n_arm
        deadline, prev = time.monotonic() + 20, device.read_joints()
        while time.monotonic() < deadline:  # wait until the limp, held arm has settled
            time.sleep(0.2)
            q = device.read_joints()
            if np.abs(q - prev).max() < 2e-3:
                break
            prev = q
        truth = side_channel_request(tuple(read_emulator_info(emu.link)["side_channel"]), {"op": "stats"})
        np.testing.assert_allclose(q, truth["sim_joint_pos"], atol=0.01)  # encoder ticks ~1.5 mrad
        assert np.abs(q[:n] - pose[:n]).max() < 0.1  # and it is near where the person holds it
        target, _ = env.unwrapped.robot.kin.forward(q[:n])
        obs, _ = env.reset(seed=0)
        for _ in range(25):
            action = device.act(obs)
            assert env.action_space.contains(action)
            obs, *_ = env.step(action)
        assert np.linalg.norm(obs["ee_pos"] - target) < 0.02
        finger_open = env.unwrapped.robot.finger_open
        assert abs(action[-1] - (2 * q[n:].mean() / finger_open - 1)) < 0.05  # leader fingers -> follower gripper
    finally:
        if device is not None:
            device.close()
        env.close()
        emu.close()


def test_keyboard_operator_takes_over_when_touched_and_hands_back_when_idle():
    """HIL through a real terminal: a key press takes over at once, release_steps idle steps hand back."""
    import os
    import time

    import gymnasium as gym

    from robotlearn.correction.hil import HILController, TeleopOperator
    from robotlearn.teleop.keyboard import KeyboardDevice

    env = gym.make("robotlearn/ArmReach-v0", backend="mujoco")
    obs, _ = env.reset(seed=0)
    master, slave = os.openpty()
    hil = HILController(TeleopOperator(KeyboardDevice(env, fd=slave, hold_s=0.05), release_steps=3))
    policy_action = np.full(5, 0.5, np.float32)
    try:
        action, source = hil.select(obs, policy_action)
        assert source == "policy" and np.array_equal(action, policy_action)
        os.write(master, b"w")  # +x
        action, source = hil.select(obs, policy_action)
        assert source == "human" and action[0] == 1.0 and action[1] == 0.0
        time.sleep(0.1)  # key released: the device rests, the operator keeps control for release_steps
        sources = [hil.select(obs, policy_action)[1] for _ in range(4)]
        assert sources == ["human", "human", "policy", "policy"]
        os.write(master, b" ")  # a gripper toggle alone is a touch too
        action, source = hil.select(obs, policy_action)
        assert source == "human" and action[-1] == -1.0
        assert hil.intervention_rate == 4 / 7
    finally:
        hil.close()
        os.close(master)
        os.close(slave)
        env.close()

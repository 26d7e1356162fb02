"""The emulated servos report present current/load from the physics torque, and the real backend reads it.

A servo holding an arm against gravity draws the current its torque needs: torque / torque constant. The
known load here is gravity on the emulator's own (gapped, heavier) links, computed independently with
MuJoCo's inverse dynamics at the pose the servos report. Checked twice: with dynamixel-sdk as the host
(register 126, in the same group sync read as velocity and position, units from the e-Manual), and through
the production driver (`backend="real"`, the compiled loop's sync read) on Dynamixel and Feetech buses.
"""

from __future__ import annotations

import time

import dynamixel_sdk as dxl
import mujoco
import numpy as np
import pytest
import robotlearn._rt as rt

from robotlearn.backends import make_backend
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.emulators.arm import ArmEmulator
from robotlearn.emulators.reality_gap import load_reality_gap
from robotlearn.hardware.calibration import load_hardware_config

# XM430-W350 e-Manual: Present Current at 126 (2 bytes, signed, 2.69 mA), velocity 128, position 132;
# 4.1 Nm stall torque at 2.3 A. Independent of our YAML.
ADDR_CURRENT, ADDR_GOAL, ADDR_TORQUE = 126, 116, 64
NM_PER_UNIT = 0.00269 * 4.1 / 2.3
TICKS_PER_RAD = 4096 / (2 * np.pi)
LIFT, ELBOW = 1, 2  # joint indices of shoulder_lift and elbow (servo ids 2 and 3)


def gravity_torque(emu: ArmEmulator, q: np.ndarray) -> np.ndarray:
    """Joint torque that holds the emulator's (gapped) arm still at `q`: MuJoCo inverse dynamics, qdd = 0."""
    model = emu.backend.model
    data = mujoco.MjData(model)
    qpos, _ = emu.device.snapshot()  # full qpos (cube included), then the joints at the reported pose
    data.qpos[:] = qpos
    data.qpos[emu.backend._qadr] = q
    mujoco.mj_forward(model, data)
    return data.qfrc_bias[emu.backend._vadr].copy()


def friction(emu: ArmEmulator) -> np.ndarray:
    return emu.backend.model.dof_frictionloss[emu.backend._vadr].copy()


@pytest.fixture
def emulator(tmp_path, request):
    config = getattr(request, "param", "arm6_emulated")
    hw = load_hardware_config(config, ["baud=1000000"])
    emu = ArmEmulator(hw, tmp_path / "arm", gap=load_reality_gap("reality_gap"), cameras=()).start()
    yield emu
    emu.close()


def test_dynamixel_sdk_reads_present_current_that_follows_the_gravity_load(emulator):
    port = dxl.PortHandler(str(emulator.link))
    assert port.openPort() and port.setBaudRate(1_000_000)
    sdk = dxl.PacketHandler(2.0)
    group = dxl.GroupSyncRead(port, sdk, ADDR_CURRENT, 10)  # current, velocity, position in one read
    for sid in (2, 3):
        assert group.addParam(sid)
    cal = {s.servo_id: s for s in emulator.hw.calibration.servos}

    def hold(lift: float, elbow: float) -> tuple[np.ndarray, np.ndarray]:
        """Command a pose, let it settle, return (measured torque, gravity torque) at lift and elbow."""
        for sid, q in ((2, lift), (3, elbow)):
            raw = int(round(cal[sid].offset + cal[sid].sign * q * TICKS_PER_RAD))
            assert sdk.write4ByteTxRx(port, sid, ADDR_GOAL, raw)[1] == dxl.COMM_SUCCESS
        time.sleep(1.5)
        cur, pos = [], []
        for _ in range(20):  # average the noise (and a stalled exchange on this VM) over 20 reads
            if group.txRxPacket() != dxl.COMM_SUCCESS:
                continue
            c = [group.getData(s, ADDR_CURRENT, 2) for s in (2, 3)]
            cur.append([v - 65536 if v >= 32768 else v for v in c])  # two's complement
            pos.append([group.getData(s, ADDR_CURRENT + 6, 4) for s in (2, 3)])
            time.sleep(0.01)
        assert len(cur) >= 10
        signs = np.array([cal[2].sign, cal[3].sign])
        tau = signs * np.mean(cur, axis=0) * NM_PER_UNIT
        q_meas = signs * (np.mean(pos, axis=0) - [cal[2].offset, cal[3].offset]) / TICKS_PER_RAD
        q = emulator.backend.read()["joint_pos"].copy()
        q[[LIFT, ELBOW]] = q_meas
        return tau, gravity_torque(emulator, q)[[LIFT, ELBOW]]

    try:
        for sid in (2, 3):
            assert sdk.write1ByteTxRx(port, sid, ADDR_TORQUE, 1)[1] == dxl.COMM_SUCCESS
        slack = friction(emulator)[[LIFT, ELBOW]] + 0.05  # Coulomb friction holds part of the load; noise
        loaded, g_loaded = hold(0.8, -0.8)  # upper arm leans out, forearm level: ~3.3 N m at the shoulder
        upright, g_upright = hold(-0.5, 1.0)  # the arm's weight nearly over the shoulder axis
        assert abs(g_loaded[0]) > 2.0 and abs(g_loaded[0]) > 3 * abs(g_upright[0]) + 3 * slack[0]
        np.testing.assert_allclose(loaded, g_loaded, atol=slack.max(), err_msg="current does not follow the load")
        np.testing.assert_allclose(upright, g_upright, atol=slack.max())
    finally:
        port.closePort()


@pytest.mark.parametrize("emulator", ["arm6_emulated", "arm6_emulated_feetech"], indirect=True)
def test_real_backend_reads_present_current_into_joint_effort(emulator):
    spec = load_robot_spec("arm6")
    hw_name = "arm6_emulated" if emulator.hw.protocol == "dynamixel2" else "arm6_emulated_feetech"
    real = make_backend(spec, "real", {"port": str(emulator.link), "config": hw_name,
                                       "overrides": ["baud=1000000"]})
    try:
        q = np.zeros(len(spec.joints))
        # Present load is 0.1 % of the STS3215's 1.91 N m stall torque, so it saturates below the 3.3 N m of
        # the first pose (the arm6 description's shoulder is stronger than an STS3215): the Feetech bus holds
        # the second pose, which loads the elbow (1.3 N m) instead.
        q[LIFT], q[ELBOW] = (0.8, -0.8) if emulator.hw.protocol == "dynamixel2" else (-0.5, 1.0)
        real.move_to(q)
        time.sleep(0.5)
        samples = []
        for _ in range(20):
            real.command(q)
            real.advance()
            samples.append(real.read())
        tau = np.mean([s["joint_effort"] for s in samples], axis=0)
        q_meas = np.mean([s["joint_pos"] for s in samples], axis=0)
        expected = gravity_torque(emulator, q_meas)
        slack = friction(emulator) + 0.05
        assert np.abs(expected[[LIFT, ELBOW]]).max() > 1.2
        for j in (LIFT, ELBOW):
            assert abs(tau[j] - expected[j]) < slack[j], (j, tau[j], expected[j], slack[j])
    finally:
        real.close()


def test_sim_servos_track_their_goal_register_not_the_continuous_setpoint():
    """A real servo's goal register is an integer, so it holds a setpoint 0.4 ticks off the grid with the torque
    of that 0.4-tick error (at kp 200: 0.12 N m, 12x a present-current reading's noise); the sims' servos
    do the same on the arm joints with the goal_ticks option (the robot config's goal_ticks_per_rev) and keep
    the fingers continuous."""
    from robotlearn.sim.common import make_drive

    spec = load_robot_spec("arm6")
    ticks = 4096 / (2 * np.pi)
    kp = np.array([j.servo_kp for j in spec.joints])
    q = np.array([0.1, 0.5, -0.6, 0.0, 1.2, 0.0, 0.0, 0.0])
    q[:6] = (np.round(q[:6] * ticks) + 0.4) / ticks
    q[6:] = 0.0123456
    drive = make_drive(spec, goal_ticks=True)  # the sims' goal_ticks option (sysid replays)
    drive.reset(q)
    tau = drive.compute(q, np.zeros(8))
    assert np.array_equal(drive.setpoint, q)  # what a host writes is still the continuous setpoint
    assert np.allclose(tau[:6], -0.4 / ticks * kp[:6], rtol=1e-6) and np.all(tau[6:] == 0.0)
    for continuous in (make_drive(spec), make_drive(load_robot_spec("arm6", ["servo.goal_ticks_per_rev=null"]),
                                                   goal_ticks=True)):
        continuous.reset(q)
        assert np.all(continuous.compute(q, np.zeros(8)) == 0.0)
    with pytest.raises(ValueError, match="goal_ticks_per_unit"):
        rt.JointDrive(rt.JointLimits(*([[v] * 8 for v in (-1.0, 1.0, 1.0, 1.0)])), kp, kp, rt.Interpolation.LINEAR,
                      0.002, [-1.0] * 8)

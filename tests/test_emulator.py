"""The emulated servo bus, checked from the outside: an independent host (dynamixel-sdk) and raw bytes.

The emulator runs in-process here (no cameras), so each test starts in well under a second; the real
backend tests (test_real_arm.py) run it as a separate process, as users do.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dynamixel_sdk as dxl
import numpy as np
import pytest
import robotlearn._rt as rt
import serial
from rt_device import PtyServoChain

from robotlearn.emulators.arm import ArmEmulator
from robotlearn.emulators.reality_gap import load_reality_gap
from robotlearn.hardware.calibration import load_hardware_config
from robotlearn.hardware.scene_oracle import read_emulator_info, side_channel_request
from robotlearn.hardware.servo_tables import load_servo_table

ADDR_TORQUE, ADDR_GOAL, ADDR_PRESENT = 64, 116, 132  # XM430 e-Manual addresses, independent of our YAML
DXL, FT = rt.Codec("dynamixel2"), rt.Codec("feetech")
FT_READ, FT_WRITE = 0x02, 0x03


def dxl_broadcast_write(addr: int, data: bytes) -> bytes:
    """Protocol 2.0 WRITE to the broadcast id, built by hand from the e-Manual (no stuffing needed here)."""
    body = bytes([0x03]) + addr.to_bytes(2, "little") + data
    head = bytes([0xFF, 0xFF, 0xFD, 0x00, 0xFE]) + (len(body) + 2).to_bytes(2, "little") + body
    return head + rt.dxl2_crc16(head).to_bytes(2, "little")


def ft_packet(servo_id: int, instruction: int, params: bytes) -> bytes:
    """Feetech frame built by hand from the manual (FF FF ID LEN INSTR PARAMS ~SUM), independent of the codec."""
    body = bytes([servo_id, len(params) + 2, instruction]) + params
    return b"\xff\xff" + body + bytes([~sum(body) & 0xFF])


class Host:
    """dynamixel-sdk calls with one retry on a timed-out exchange, as host software does (this VM stalls)."""

    def __init__(self, port, ph):
        self.port, self.ph = port, ph

    def __getattr__(self, name):
        call = getattr(self.ph, name)

        def retried(*args):
            for _ in range(3):
                out = call(self.port, *args)
                comm = out[-2] if len(out) == 3 else out[0]
                if comm != dxl.COMM_RX_TIMEOUT:
                    return out
            return out

        return retried


@pytest.fixture
def emulator(tmp_path):
    before = {t.name for t in threading.enumerate()}
    hw = load_hardware_config("arm6_emulated", ["baud=1000000"])
    emu = ArmEmulator(hw, tmp_path / "arm", gap=load_reality_gap("reality_gap"), cameras=()).start()
    yield emu
    emu.close()
    assert not (tmp_path / "arm").exists() and not (tmp_path / "arm.json").exists()
    assert {t.name for t in threading.enumerate()} <= before


def test_crc16_matches_protocol_2_reference_packet():
    # e-Manual Protocol 2.0 example: PING to ID 1 is FF FF FD 00 01 03 00 01 19 4E.
    ping = bytes.fromhex("FFFFFD0001030001")
    assert rt.dxl2_crc16(ping) == 0x4E19
    assert DXL.ping(1) == bytes.fromhex("FFFFFD00010300011" "94E")


def test_dynamixel_sdk_pings_reads_and_moves_a_joint(emulator):
    port = dxl.PortHandler(str(emulator.link))
    assert port.openPort() and port.setBaudRate(1_000_000)
    sdk = dxl.PacketHandler(2.0)
    ph = Host(port, sdk)
    try:
        for sid in range(1, 8):
            model, comm, err = ph.ping(sid)
            assert comm == dxl.COMM_SUCCESS and err == 0 and model == 1020, (sid, comm, err)
        _, comm, _ = ph.ping(9)
        assert comm == dxl.COMM_RX_TIMEOUT  # nobody home at ID 9
        start, comm, err = ph.read4ByteTxRx(1, ADDR_PRESENT)
        assert comm == dxl.COMM_SUCCESS and abs(start - 2048) < 20  # calibration: zero pose at 2048
        goal = start + 300  # +0.46 rad on shoulder_pan
        # Without torque the goal is stored but nothing moves.
        assert ph.write4ByteTxRx(1, ADDR_GOAL, goal)[0] == dxl.COMM_SUCCESS
        time.sleep(0.2)
        assert abs(ph.read4ByteTxRx(1, ADDR_PRESENT)[0] - start) < 20
        assert ph.write1ByteTxRx(1, ADDR_TORQUE, 1)[0] == dxl.COMM_SUCCESS
        assert ph.write4ByteTxRx(1, ADDR_GOAL, goal)[0] == dxl.COMM_SUCCESS
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            pos = ph.read4ByteTxRx(1, ADDR_PRESENT)[0]
            if abs(pos - goal) < 15:
                break
            time.sleep(0.05)
        assert abs(pos - goal) < 15, f"joint did not reach goal: {pos} vs {goal}"
        # EEPROM is locked while torque is on (the servo answers with an access error).
        _, err = ph.write1ByteTxRx(1, 11, 1)
        assert err == 0x07
        # Group sync read of present position for all seven servos, as a host loop would do.
        group = dxl.GroupSyncRead(port, sdk, ADDR_PRESENT, 4)
        for sid in range(1, 8):
            group.addParam(sid)
        for exchange in (group.txRxPacket, group.fastSyncRead):
            assert dxl.COMM_SUCCESS in [exchange() for _ in range(3)]  # at most two stalls tolerated
            assert abs(group.getData(1, ADDR_PRESENT, 4) - goal) < 15
    finally:
        port.closePort()


def test_wire_time_is_added_at_the_configured_baud(emulator):
    """At 57600 baud a 4-byte READ (14 + 15 bytes) occupies the wire for ~5 ms; a pty alone takes ~0.1 ms."""
    with serial.Serial(str(emulator.link), timeout=0.5) as ser:
        def rtt(n: int = 10) -> float:
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                ser.write(DXL.read(2, 132, 4))
                assert len(ser.read(15)) == 15
                times.append(time.perf_counter() - t0)
            return float(np.median(times))

        fast = rtt()
        ser.write(dxl_broadcast_write(8, bytes([1])))  # broadcast: baud 57600
        time.sleep(0.05)
        slow = rtt()
    wire = 29 * 10 / 57600
    assert slow >= wire * 0.9 and slow - fast > 0.8 * (wire - 29 * 10 / 1e6)


def test_feetech_device_answers_read_and_write_and_skips_bad_frames():
    with PtyServoChain(load_servo_table("sts3215"), [1, 2]) as chain, serial.Serial(chain.port, timeout=0.5) as ser:
        chain.set(2, "present_position", 3000)
        corrupted = bytearray(ft_packet(1, FT_READ, bytes([56, 2])))
        corrupted[-1] ^= 0xFF
        ser.write(bytes(corrupted) + b"\x00\x13" + ft_packet(2, FT_READ, bytes([56, 2])))
        assert ser.read(8) == ft_packet(2, 0, (3000).to_bytes(2, "little"))
        assert ser.read(1) == b""  # the corrupted request got no answer
        assert chain.device.stats()["bad_frames"] >= 1
        ser.write(ft_packet(1, FT_WRITE, bytes([40, 1])))
        assert ser.read(6) == ft_packet(1, 0, b"") and chain.get(1, "torque_enable") == 1
        chain.set(1, "present_velocity", -25)  # sign-magnitude at bit 15
        ser.write(ft_packet(1, FT_READ, bytes([58, 2])))
        assert ser.read(8) == ft_packet(1, 0, (0x8000 | 25).to_bytes(2, "little"))
        assert chain.get(1, "present_velocity") == -25


def test_dynamixel_device_resynchronizes_and_unstuffs():
    with PtyServoChain(load_servo_table("xm430_w350"), [3]) as chain, serial.Serial(chain.port, timeout=0.5) as ser:
        payload = bytes([0xFF, 0xFF, 0xFD, 0x01])  # needs byte stuffing inside the frame
        frame = DXL.write(3, 116, payload)
        assert b"\xff\xff\xfd\xfd" in frame[7:]
        bad = bytearray(frame)
        bad[9] ^= 0x10
        ser.write(b"\x01\xff" + bytes(bad) + frame[:5])
        time.sleep(0.05)
        ser.write(frame[5:])
        assert ser.read(11) == DXL.status(3, 0, b"")
        assert ser.read(1) == b""  # one answer: the corrupted copy was skipped
        assert chain.get(3, "goal_position") == int.from_bytes(payload, "little", signed=True)
        assert chain.device.stats()["bad_frames"] >= 1


def test_side_channel_reports_and_places_the_cube(emulator):
    info = read_emulator_info(emulator.link)
    addr = tuple(info["side_channel"])
    side_channel_request(addr, {"op": "place", "scene": {"object/cube/pos": [0.25, 0.1, 0.02]}})
    time.sleep(0.1)
    pose = side_channel_request(addr, {"op": "object_pose", "name": "cube"})
    assert np.allclose(pose["pos"][:2], [0.25, 0.1], atol=1e-3)
    with pytest.raises(RuntimeError, match="unknown op"):
        side_channel_request(addr, {"op": "teleport_robot"})


def test_reality_gap_changes_the_description_and_servo_path(tmp_path):
    from robotlearn.core.robot_config import load_robot_spec
    from robotlearn.sim.physical import apply_arm_params

    spec = load_robot_spec("arm6")
    gap = load_reality_gap("reality_gap")
    gapped = apply_arm_params(spec, gap, tmp_path)
    assert gapped.description != spec.description and (Path(gapped.description).parent / "scene.yaml").exists()
    text = Path(gapped.description).read_text()
    assert 'value="' + repr(0.35 * 1.15) + '"' in text  # upper_arm_link mass scaled
    assert gapped.joints[1].servo_kp == pytest.approx(spec.joints[1].servo_kp * gap.servo_kp_scale)
    with pytest.raises(ValueError, match="unknown links"):
        apply_arm_params(spec, load_reality_gap("reality_gap", ["link_mass_scale={nope: 2.0}"]), tmp_path / "x")
    play = rt.Backlash([0.01], [0.0])
    assert play(np.array([0.004]))[0] == 0.0 and play(np.array([0.02]))[0] == pytest.approx(0.015)
    assert play(np.array([0.018]))[0] == pytest.approx(0.015)  # reversing inside the play: no motion
    delay = rt.DelayLine(0.01, 1)
    assert delay(0.0, np.array([1.0]))[0] == 1.0
    assert delay(0.005, np.array([2.0]))[0] == 1.0 and delay(0.011, np.array([3.0]))[0] == 1.0
    assert delay(0.016, np.array([4.0]))[0] == 2.0
    # a delay of whole ticks is whole ticks at every tick, whatever the rounding of the tick times
    ticks = rt.DelayLine(0.004, 1)
    out = [ticks(k * 0.002, np.array([float(k)]))[0] for k in range(1000)]
    assert all(out[k] == k - 2 for k in range(2, 1000))


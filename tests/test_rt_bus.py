"""Serial transport and ServoBus against a servo chain on a pty (tests/rt_device.py)."""

from __future__ import annotations

import os
import statistics
import time
import tty

import pytest
import robotlearn._rt as rt
from rt_device import PtyServoChain, eventually

from robotlearn.hardware.servo_tables import load_servo_table

IDS = [1, 2, 3, 4, 5, 6]
MODELS = {"dynamixel2": "xm430_w350", "feetech": "sts3215"}


def make_bus(chain: PtyServoChain, **kw) -> rt.ServoBus:
    args = dict(timeout_ms=20.0, retries=1) | kw
    return rt.ServoBus(chain.port, 1_000_000, chain.protocol, chain.ids, chain.table.host_table(), **args)


@pytest.fixture(params=["dynamixel2", "feetech"])
def chain(request):
    with PtyServoChain(load_servo_table(MODELS[request.param]), IDS) as c:
        yield c


def test_serial_port_raw_deadlines_and_custom_baud() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        port = rt.SerialPort(os.ttyname(slave), 1_234_567)  # not a Bxxx constant: termios2/BOTHER
        assert port.custom_baud
        payload = bytes(range(256))  # raw mode: 0x03, 0x0A, 0x0D, 0x11 pass untouched
        os.write(master, payload)
        got = b""
        while len(got) < 256:
            got += port.read(4096, 0.1)
        assert got == payload
        assert port.write(payload, 0.1)
        assert os.read(master, 4096) == payload
        waits = []
        for _ in range(15):
            t = time.perf_counter()
            assert port.read(16, 0.005) == b""
            waits.append(time.perf_counter() - t)
        assert 0.004 < statistics.median(waits) < 0.015  # ppoll deadline, not VTIME's 100 ms
        os.close(master)
        master = -1
        with pytest.raises(RuntimeError, match="serial read"):
            port.read(16, 0.05)  # the other end went away: an error, not a silent timeout
    finally:
        if master >= 0:
            os.close(master)
        os.close(slave)


def test_bad_arguments_give_clear_errors(chain: PtyServoChain) -> None:
    table = chain.table.host_table()
    with pytest.raises(ValueError, match="unknown servo protocol"):
        rt.ServoBus(chain.port, 1_000_000, "dxl", IDS, table, 5.0)
    with pytest.raises(ValueError, match="present_position"):
        rt.ServoBus(chain.port, 1_000_000, chain.protocol, IDS, {"goal_position": (1, 2)}, 5.0)
    with pytest.raises(ValueError, match="duplicate"):
        rt.ServoBus(chain.port, 1_000_000, chain.protocol, [1, 1], table, 5.0)
    with pytest.raises(RuntimeError, match="cannot open"):
        rt.ServoBus("/dev/does-not-exist", 1_000_000, chain.protocol, IDS, table, 5.0)


def test_ping_read_write(chain: PtyServoChain) -> None:
    bus = make_bus(chain)
    assert bus.ping(3) == chain.table.model_number
    goal = chain.table.register("goal_position")
    bus.write(2, goal.addr, goal.size, 1000)
    assert chain.get(2, "goal_position") == 1000
    assert bus.read(2, goal.addr, goal.size) == 1000
    chain.silent.add(4)
    before = bus.stats()
    with pytest.raises(RuntimeError, match="servo 4"):
        bus.ping(4)
    after = bus.stats()
    assert after["timeouts"] - before["timeouts"] == 2 and after["retries"] - before["retries"] == 1


@pytest.mark.parametrize(("protocol", "fast"), [("dynamixel2", False), ("dynamixel2", True), ("feetech", False)])
def test_sync_cycle_reads_state_and_writes_goals(protocol: str, fast: bool) -> None:
    with PtyServoChain(load_servo_table(MODELS[protocol]), IDS) as chain:
        _sync_cycle(chain, make_bus(chain, fast_sync_read=fast))


def _sync_cycle(chain: PtyServoChain, bus: rt.ServoBus) -> None:
    chain.set(5, "present_velocity", -37)  # signed: two's complement (Dynamixel), sign-magnitude (Feetech)
    chain.set(6, "present_position", 100)
    pos, vel, eff, fresh = bus.read_state()
    assert all(fresh) and pos == [2048] * 4 + [2048, 100] and vel[4] == -37
    bus.set_torque(True)
    assert eventually(lambda: all(chain.get(i, "torque_enable") == 1 for i in IDS))
    goals = [2000 + 10 * i for i in IDS]
    assert bus.write_goal(goals)
    assert eventually(lambda: [chain.get(i, "goal_position") for i in IDS] == goals)
    for _ in range(30):
        bus.read_state()
        bus.write_goal(goals)
    s = bus.stats()
    assert s["timeouts"] == 0 and s["crc_errors"] == 0 and s["cycles"] == 31
    assert s["rtt_p50_us"] < 5000


def test_timeouts_and_corruption_are_counted(chain: PtyServoChain) -> None:
    bus = make_bus(chain, timeout_ms=3.0)
    chain.silent.add(3)
    _, _, _, fresh = bus.read_state()
    assert fresh == [True, True, False, True, True, True]
    s = bus.stats()
    assert s["timeouts"] == 1 and s["partial_cycles"] == 1 and "servo 3" in s["last_error"]
    chain.silent.clear()
    chain.corrupt_next(2)
    _, _, _, fresh = bus.read_state()
    assert fresh.count(False) == 2
    s = bus.stats()
    assert s["crc_errors"] == 2 and s["timeouts"] == 3
    _, _, _, fresh = bus.read_state()
    assert all(fresh)


def test_servo_tables_load_and_reject_bad_files(tmp_path) -> None:
    from robotlearn.core.config import ConfigError
    from robotlearn.hardware.servo_tables import known_models

    assert {"xm430_w350", "sts3215"} <= set(known_models())
    xm = load_servo_table("xm430_w350")
    assert xm.model_number == 1020 and xm.host_table()["present_position"] == (132, 4)
    assert load_servo_table("sts3215").host_table()["present_velocity"] == (58, 2, 15)
    with pytest.raises(ConfigError, match="unknown servo model 'nope'"):
        load_servo_table("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: dynamixel2\nregisters:\n  present_position: {addr: 132, size: 3}\n")
    with pytest.raises(ConfigError, match="size must be 1, 2 or 4"):
        load_servo_table(bad)
    bad.write_text("protocol: dynamixel2\nregisters:\n  present_position: [132, 4]\n")
    with pytest.raises(ConfigError, match="missing required register"):
        load_servo_table(bad)


def _usb_port(device: str, vid: int, pid: int, serial_number: str):
    """A port as pyserial's Linux backend describes a USB-serial adapter (no such hardware on a CI machine)."""
    from serial.tools.list_ports_common import ListPortInfo

    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid, port.serial_number = vid, pid, serial_number
    port.description = f"USB serial {serial_number}"
    port.hwid = port.usb_info()
    return port


def test_port_discovery_and_the_ftdi_latency_timer(tmp_path) -> None:
    from serial.tools.list_ports_common import ListPortInfo

    from robotlearn.hardware.ports import find_servo_port, latency_timer_ms, list_serial_ports

    # A sysfs tree as the usb-serial driver lays it out: only the FTDI port has a latency timer.
    sysfs = tmp_path / "usb-serial"
    (sysfs / "ttyUSB0").mkdir(parents=True)
    (sysfs / "ttyUSB0" / "latency_timer").write_text("16\n")
    (sysfs / "ttyACM0").mkdir()
    u2d2 = _usb_port("/dev/ttyUSB0", 0x0403, 0x6014, "FT4NQ0XY")
    ch340 = _usb_port("/dev/ttyACM0", 0x1A86, 0x7523, "5A7B")
    onboard = ListPortInfo("/dev/ttyS0", skip_link_detection=True)
    ports = list_serial_ports([onboard, ch340, u2d2], sysfs)
    assert [p.device for p in ports] == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyS0"]  # adapters first
    by_device = {p.device: p for p in ports}
    assert by_device["/dev/ttyUSB0"].adapter.startswith("ROBOTIS U2D2")
    assert by_device["/dev/ttyUSB0"].latency_timer_ms == 16
    assert by_device["/dev/ttyACM0"].latency_timer_ms is None and by_device["/dev/ttyS0"].adapter is None
    assert latency_timer_ms("/dev/pts/0", sysfs) is None  # only FTDI USB adapters have one
    assert find_servo_port(comports=[onboard, u2d2], sysfs=sysfs) == "/dev/ttyUSB0"
    assert find_servo_port("5A7B", comports=[onboard, ch340, u2d2], sysfs=sysfs) == "/dev/ttyACM0"
    with pytest.raises(RuntimeError, match=r"several servo adapters found: /dev/ttyACM0 \(CH340"):
        find_servo_port(comports=[ch340, u2d2], sysfs=sysfs)
    with pytest.raises(RuntimeError, match=r"no servo bus adapter found \(serial ports seen: /dev/ttyS0\)"):
        find_servo_port(comports=[onboard], sysfs=sysfs)
    # And on this machine, through pyserial and the real /sys: whatever it has, described without error.
    for port in list_serial_ports():
        assert port.device.startswith("/dev/")
    with pytest.raises(RuntimeError, match="no servo bus adapter"):
        find_servo_port(serial_number="no-such-adapter")

"""The production driver against both autopilot flavours, one test per defect of issue 19 (ArduCopter could
not take off under the driver), plus QuadHover in every action mode on ArduPilot and PX4."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from test_quad_mavlink import FAST_RESET, Gcs, emulator, free_udp_port

from robotlearn.backends import make_backend
from robotlearn.core.env import RobotEnv
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.envs import make_env
from robotlearn.hardware.frames import mavlink2_common
from robotlearn.hardware.quadrotor import LinkLostError, NotReadyError
from robotlearn.robots import make_robot_model
from robotlearn.teleop.quad_expert import QuadExpert

mav = mavlink2_common()
ARDUPILOT = ("--autopilot", "ardupilot", "--boot-scale", "0.05")  # position estimate 2.1 s after power-on


@pytest.mark.parametrize("autopilot", ["ardupilot", "px4"])
def test_quad_hover_takes_off_hovers_in_every_mode_lands_and_disarms(tmp_path, autopilot, caplog):
    """Defect 1: the ArduPilot takeoff must not be cancelled by the driver's own targets."""
    args = ARDUPILOT if autopilot == "ardupilot" else ("--autopilot", "px4")
    with emulator(tmp_path, *args) as (_, port), caplog.at_level(logging.INFO):
        env = make_env("quad_hover", backend="real", overrides=[*FAST_RESET, "action_mode=position"],
                       connection=f"udpin:127.0.0.1:{port}")
        backend = env.unwrapped.backend
        assert backend.autopilot == autopilot
        spec = backend.spec
        for mode in ("position", "velocity", "ctbr"):
            mode_env = env if mode == "position" else RobotEnv(backend, make_robot_model(spec, mode), env.unwrapped.task)
            obs, _ = mode_env.reset(seed=0)
            expert = QuadExpert(mode_env)
            expert.reset(obs)
            errors = []
            for k in range(200):
                obs, _, terminated, _, info = mode_env.step(expert.act(obs))
                assert not terminated, f"{mode}: episode ended at step {k}"
                if k >= 100:
                    errors.append(info["distance"])
            rms = float(np.sqrt(np.mean(np.square(errors))))
            print(f"{autopilot} {mode}: hover RMS {rms * 100:.2f} cm")
            assert rms < 0.05, f"{autopilot} {mode}: RMS {rms:.3f} m"
        backend.land(wait=True, timeout=15.0)
        assert not backend.armed and backend.landed
        env.close()
    if autopilot == "ardupilot":
        assert any("takeoff to" in r.getMessage() for r in caplog.records)


def test_ardupilot_ctbr_thrust_semantics_are_explicit(tmp_path):
    """Defect 2: GUID_OPTIONS bit 3 set by the driver, so thrust 0.5 (above hover 0.44) climbs; climb_rate holds.

    "Holds" is judged on the climb rate over the last 0.4 s: reset hands over once the vehicle is within
    0.2 m/s of rest, and the decay of that residual speed moves it a few cm whatever the thrust semantics.
    """
    with emulator(tmp_path, *ARDUPILOT) as (_, port):
        backend = make_backend(load_robot_spec("cf2x"), "real", {"connection": f"udpin:127.0.0.1:{port}"})
        assert int(backend.params.get("GUID_OPTIONS")) & 8 and backend.thrust_semantics == "thrust"
        backend.reset(np.random.default_rng(0), {"pos": np.array([0.0, 0.0, 1.0])})
        climbs, final_rates, start_vz = [], [], []
        for semantics in ("thrust", "climb_rate"):
            backend.set_thrust_semantics(semantics)
            start = backend.read()
            heights = []
            for _ in range(60):  # 1.2 s of thrust 0.5, no rates
                backend.command(np.array([0.5, 0.0, 0.0, 0.0]))
                backend.advance()
                heights.append(backend.read()["pos"][2])
            climbs.append(heights[-1] - start["pos"][2])
            final_rates.append((heights[-1] - heights[-21]) / (20 * backend.dt))
            start_vz.append(start["vel"][2])
            backend.reset(np.random.default_rng(0), {"pos": np.array([0.0, 0.0, 1.0])})
        backend.close()
    report = (f"thrust 0.5 for 1.2 s: climbed {climbs[0]:.2f} m as thrust, {climbs[1]:.2f} m as a climb rate "
              f"(final rates {final_rates[0]:.2f} / {final_rates[1]:.3f} m/s, start vz {start_vz})")
    print(report)
    assert climbs[0] > 0.15 and final_rates[0] > 0.3, report
    assert abs(final_rates[1]) < 0.05 and abs(climbs[1]) < 0.15, report


def test_cold_start_waits_with_progress_and_names_the_missing_piece(tmp_path, caplog):
    """Defect 3: no LOCAL_POSITION_NED before the EKF uses GPS: wait for it, and say so on timeout."""
    with emulator(tmp_path, "--autopilot", "ardupilot", "--boot-scale", "0.25") as (_, port):  # position at 10.4 s
        t0 = time.monotonic()
        with pytest.raises(NotReadyError, match="not ready to arm after 3 s: waiting for a position estimate"):
            make_backend(load_robot_spec("cf2x"), "real", {"connection": f"udpin:127.0.0.1:{port}",
                                                           "ready_timeout": 3.0})
        assert time.monotonic() - t0 < 6.0
    with emulator(tmp_path, *ARDUPILOT) as (_, port), caplog.at_level(logging.INFO):
        backend = make_backend(load_robot_spec("cf2x"), "real", {"connection": f"udpin:127.0.0.1:{port}"})
        got = [r.getMessage() for r in caplog.records if "got " in r.getMessage()]
        assert any("position estimate" in m for m in got) and any("prearm" in m for m in got), got
        backend.close()


def test_link_loss_goes_through_the_timeout_path_without_a_thread_crash(tmp_path, monkeypatch):
    """Defect 4: a TCP link (as SITL's) reset by the vehicle's death must not kill the receive thread."""
    crashes = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args))
    port = free_udp_port()
    with emulator(tmp_path, "--autopilot", "px4", mavlink=f"tcpin:127.0.0.1:{port}") as (proc, _):
        time.sleep(2.0)  # the emulator's listening socket
        env = make_env("quad_hover", backend="real", overrides=FAST_RESET, connection=f"tcp:127.0.0.1:{port}")
        obs, _ = env.reset(seed=0)
        expert = QuadExpert(env)
        proc.kill()
        t_kill = time.monotonic()
        with pytest.raises(LinkLostError, match="nothing from the vehicle"):
            for _ in range(100):
                obs, *_ = env.step(expert.act(obs))
        detected = time.monotonic() - t_kill
        time.sleep(0.3)
        env.close()
    assert not crashes, f"thread crashed: {crashes[0].exc_value!r}"
    assert detected < 1.0


def test_failsafe_reported_warned_and_settable(tmp_path, caplog):
    """Defect 5: FS_GCS_ENABLE=0 means GUIDED keeps holding if the driver dies: report, warn, offer to set."""
    with emulator(tmp_path, *ARDUPILOT) as (_, port), caplog.at_level(logging.INFO):
        connection = f"udpin:127.0.0.1:{port}"
        backend = make_backend(load_robot_spec("cf2x"), "real", {"connection": connection})
        assert backend.failsafe == {"FS_GCS_ENABLE": 0, "FS_GCS_TIMEOUT": 5, "GUID_TIMEOUT": 3}
        assert not backend.failsafe_armed
        assert any(r.levelno == logging.WARNING and "no failsafe armed" in r.getMessage() and "FS_GCS_ENABLE=0"
                   in r.getMessage() for r in caplog.records)
        backend.close()
        caplog.clear()
        backend = make_backend(load_robot_spec("cf2x"), "real", {"connection": connection, "set_failsafe": True,
                                                                 "failsafe_timeout": 2.0})
        assert backend.failsafe["FS_GCS_ENABLE"] == 5 and backend.failsafe["FS_GCS_TIMEOUT"] == 2
        assert backend.failsafe_armed and not any(r.levelno >= logging.WARNING for r in caplog.records)
        backend.close()
    with emulator(tmp_path, "--autopilot", "px4") as (_, port):
        backend = make_backend(load_robot_spec("cf2x"), "real", {"connection": f"udpin:127.0.0.1:{port}"})
        assert backend.failsafe == {"COM_OF_LOSS_T": 0.5, "COM_OBL_RC_ACT": 4} and backend.failsafe_armed
        backend.close()


def test_flavour_drops_a_velocity_target_older_than_guid_timeout(tmp_path):
    """ArduCopter GUIDED: a velocity target is followed for GUID_TIMEOUT s after the last one, then it stops."""
    with emulator(tmp_path, *ARDUPILOT, "--param", "GUID_TIMEOUT=1") as (_, port):
        gcs = Gcs(port)
        gcs.pump(2.5)  # boot to armable (position estimate at 2.1 s)
        assert gcs.command(mav.MAV_CMD_DO_SET_MODE, 1, 4) == mav.MAV_RESULT_ACCEPTED
        assert gcs.command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == mav.MAV_RESULT_ACCEPTED
        assert gcs.command(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 1.0) == mav.MAV_RESULT_ACCEPTED
        assert gcs.pump(10.0, lambda: gcs.z_up > 0.95), f"takeoff: {gcs.z_up:.2f} m"

        def north_speed_after(seconds: float, stream: bool) -> float:
            deadline, vx = time.monotonic() + seconds, None
            while time.monotonic() < deadline:
                if stream:
                    gcs.conn.mav.set_position_target_local_ned_send(0, *gcs.target, mav.MAV_FRAME_LOCAL_NED, 0x0DC7,
                                                                    0, 0, 0, 0.5, 0, 0, 0, 0, 0, 0, 0)
                msg = gcs.conn.recv_match(type="LOCAL_POSITION_NED", blocking=True, timeout=0.05)
                vx = msg.vx if msg is not None else vx
            return vx

        assert north_speed_after(2.0, stream=True) == pytest.approx(0.5, abs=0.1)
        assert north_speed_after(0.5, stream=False) == pytest.approx(0.5, abs=0.1)  # still within GUID_TIMEOUT
        assert abs(north_speed_after(2.0, stream=False)) < 0.1  # timed out: stopped
        gcs.conn.close()

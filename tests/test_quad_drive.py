"""The compiled quadrotor loop (rate PID + mixer + motor model): physics sanity and bad-input handling."""

from __future__ import annotations

import numpy as np
import pytest
from robotlearn._rt import QuadDrive

from robotlearn.core.description import GRAVITY, load_airframe
from robotlearn.core.robot_config import ASSET_ROOT
from robotlearn.sim.quad_model import quad_params

LEVEL = np.array([1.0, 0.0, 0.0, 0.0])


@pytest.fixture(params=["cf2x", "iris"])
def airframe(request):
    return load_airframe(ASSET_ROOT / "quadrotor" / f"{request.param}.yaml")


def _settle(drive: QuadDrive, ticks: int, vel: np.ndarray | None = None) -> np.ndarray:
    """Run `ticks` physics ticks level and not rotating; returns the last wrench."""
    wrench, omega = np.zeros(6), np.zeros(3)
    vel = np.zeros(3) if vel is None else vel
    for _ in range(ticks):
        drive.compute(LEVEL, vel, omega, wrench)
    return wrench


def test_hover_thrust_balances_gravity(airframe):
    drive = QuadDrive(quad_params(airframe), 0.002)
    drive.reset(0.0)
    assert drive.set_ctbr(np.array([airframe.hover_thrust, 0.0, 0.0, 0.0]))
    wrench = _settle(drive, 1000)
    assert wrench[2] == pytest.approx(airframe.mass * GRAVITY, rel=1e-3)
    assert np.allclose(wrench[[0, 1, 3, 4, 5]], 0.0, atol=1e-9)
    assert drive.hover_thrust == pytest.approx(airframe.hover_thrust)


def test_motor_lag_is_first_order(airframe):
    dt = 0.002
    drive = QuadDrive(quad_params(airframe), dt)
    drive.reset(0.0)
    drive.set_motors(np.ones(4))
    ticks = int(round(airframe.motor_tau_up / dt))
    _settle(drive, ticks)
    # After one time constant the rotor speed has covered 1 - 1/e of the step.
    assert drive.rotor_speed[0] / airframe.max_rotor_speed == pytest.approx(1 - np.exp(-1), abs=0.02)


@pytest.mark.parametrize(("axis", "sign"), [(0, 1), (1, 1), (2, 1), (0, -1)])
def test_rate_command_torques_the_right_way(airframe, axis, sign):
    drive = QuadDrive(quad_params(airframe), 0.002)
    drive.reset(airframe.hover_rotor_speed())
    cmd = np.array([airframe.hover_thrust, 0.0, 0.0, 0.0])
    cmd[1 + axis] = sign * 1.0
    drive.set_ctbr(cmd)
    wrench = _settle(drive, 25)  # 50 ms: motors have responded
    assert np.sign(wrench[3 + axis]) == sign
    assert abs(wrench[3 + axis]) > 5 * np.abs(np.delete(wrench[3:], axis)).max()


def test_drag_opposes_air_velocity_and_wind(airframe):
    drive = QuadDrive(quad_params(airframe), 0.002)
    drive.reset(airframe.hover_rotor_speed())
    drive.set_ctbr(np.array([airframe.hover_thrust, 0.0, 0.0, 0.0]))
    assert _settle(drive, 5, vel=np.array([2.0, 0.0, 0.0]))[0] < 0
    drive.set_wind(np.array([3.0, 0.0, 0.0]))  # still air relative to a body moving at 3 m/s
    assert _settle(drive, 5, vel=np.array([3.0, 0.0, 0.0]))[0] == pytest.approx(0.0, abs=1e-12)
    assert _settle(drive, 5)[0] > 0  # wind pushes a hovering vehicle downwind


def test_disarmed_produces_no_thrust_and_bad_input_is_refused(airframe):
    drive = QuadDrive(quad_params(airframe), 0.002)
    drive.reset(airframe.hover_rotor_speed())
    drive.set_ctbr(np.array([0.8, 0.0, 0.0, 0.0]))
    assert not drive.set_ctbr(np.array([np.nan, 0.0, 0.0, 0.0]))
    assert not drive.set_motors(np.array([0.5, np.inf, 0.5, 0.5]))
    drive.set_armed(False)
    assert _settle(drive, 2000)[2] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="expected length 4"):
        drive.set_ctbr(np.zeros(3))
    params = quad_params(airframe)
    params.rotor_spin = [1.0, 1.0, 1.0, 1.0]  # no yaw authority: allocation is singular
    with pytest.raises(ValueError, match="not controllable"):
        QuadDrive(params, 0.002)
    params = quad_params(airframe)
    params.mass = -1.0
    with pytest.raises(ValueError, match="mass"):
        QuadDrive(params, 0.002)

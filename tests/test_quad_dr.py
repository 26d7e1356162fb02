"""Domain randomization and setpoint latency on both quadrotor sims (the options SAC trains with to fly
the emulated vehicle): draws land in the engine's body and the drive, and latency delays commands exactly."""

from __future__ import annotations

import numpy as np
import pybullet as pb
import pytest

from robotlearn.core.config import ConfigError
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.envs import make_env
from robotlearn.sim.quad_mujoco import MujocoQuadBackend
from robotlearn.sim.quad_pybullet import PybulletQuadBackend

SIMS = {"mujoco": MujocoQuadBackend, "pybullet": PybulletQuadBackend}


def engine_mass(backend) -> float:
    if isinstance(backend, MujocoQuadBackend):
        return float(backend.model.body_mass[backend._body])
    return float(pb.getDynamicsInfo(backend.body, -1, physicsClientId=backend.client)[0])


@pytest.mark.parametrize("sim", SIMS)
def test_domain_randomization_draws_mass_thrust_latency_every_reset(sim):
    env = make_env("quad_hover", backend=sim, backend_options={"domain_randomization": "quad_dr"})
    backend, nominal = env.unwrapped.backend, env.unwrapped.backend.nominal_airframe
    draws = []
    for seed in range(6):
        env.reset(seed=seed)
        p = backend.params
        draws.append((p.mass_scale, p.thrust_scale, p.latency_s))
        assert engine_mass(backend) == pytest.approx(nominal.mass * p.mass_scale)
        assert backend.airframe.kf == pytest.approx(nominal.kf * p.thrust_scale)
        assert backend._latency_ticks == round(p.latency_s * sim_hz(backend))
        env.step(np.zeros(4, np.float32))
    draws = np.array(draws)
    assert np.all(draws.std(axis=0) > 0), draws  # each key varies
    assert np.all(np.abs(draws[:, :2] - 1.0) < 0.35) and np.all(draws[:, 2] >= 0)
    env.reset(seed=0)
    assert backend.params.mass_scale == draws[0, 0]  # a seed gives the same draw
    env.close()


def sim_hz(backend) -> float:
    return 1.0 / backend.dt


@pytest.mark.parametrize("sim", SIMS)
def test_latency_delays_ctbr_commands_by_exactly_its_ticks(sim, tmp_path):
    """With one control period of latency, command k acts during period k+1: the trajectory is the
    nominal one under the same commands shifted by one step (the first period holds hover)."""
    spec = load_robot_spec("cf2x")
    calib = tmp_path / "calib.yaml"
    calib.write_text(f"latency_s: {1.0 / spec.control_hz}\n")
    delayed = SIMS[sim](spec, SIMS[sim].Options(calibration=str(calib)))
    nominal = SIMS[sim](spec)
    hover = (nominal.airframe.hover_rotor_speed() / nominal.airframe.max_rotor_speed) ** 2
    rng = np.random.default_rng(0)
    commands = [np.array([0.3 + 0.4 * rng.random(), *rng.uniform(-1, 1, 3)]) for _ in range(8)]
    start = {"pos": np.array([0.0, 0.0, 1.0])}
    for b in (delayed, nominal):
        b.reset(np.random.default_rng(0), start)
    out_delayed, out_nominal = [], []
    for cmd_d, cmd_n in zip(commands, [np.array([hover, 0, 0, 0]), *commands[:-1]], strict=True):
        for b, cmd, out in ((delayed, cmd_d, out_delayed), (nominal, cmd_n, out_nominal)):
            b.command(cmd)
            b.advance()
            out.append(np.concatenate([b.read()["pos"], b.read()["vel"]]))
    np.testing.assert_allclose(out_delayed, out_nominal, atol=1e-9)
    assert np.abs(np.array(out_nominal)[-1] - np.array(out_nominal)[0]).max() > 1e-3  # the commands did something
    with pytest.raises(ValueError, match="NaN"):
        delayed.command(np.array([np.nan, 0, 0, 0]))
    delayed.close()
    nominal.close()


def test_calibration_and_randomization_together_is_one_line_error():
    with pytest.raises(ConfigError, match="either calibration= or domain_randomization="):
        make_env("quad_hover", backend="mujoco",
                 backend_options={"calibration": "quad_dr", "domain_randomization": "quad_dr"})
    with pytest.raises(ConfigError, match="unknown hardware config"):
        make_env("quad_hover", backend="mujoco", backend_options={"domain_randomization": "no_such_dr"})

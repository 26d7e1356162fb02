"""Quadrotor envs on MuJoCo and PyBullet: gym API, identical spaces, the expert flies, and the two
engines integrate the same motor commands to the same trajectory."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robotlearn  # noqa: F401  (registers the envs)
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.envs import make_env
from robotlearn.sim.quad_mujoco import MujocoQuadBackend
from robotlearn.sim.quad_pybullet import PybulletQuadBackend
from robotlearn.teleop.quad_expert import QuadExpert

QUAD_ENVS = ["robotlearn/QuadHover-v0", "robotlearn/QuadTrack-v0"]
SIMS = ["mujoco", "pybullet"]


@pytest.mark.parametrize("backend", SIMS)
@pytest.mark.parametrize("env_id", QUAD_ENVS)
def test_check_env(env_id, backend):
    env = gym.make(env_id, backend=backend)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("action_mode", ["ctbr", "velocity", "position"])
@pytest.mark.parametrize("env_id", QUAD_ENVS)
def test_spaces_equal_across_backends(env_id, action_mode):
    envs = [gym.make(env_id, backend=b, overrides=[f"action_mode={action_mode}"]) for b in SIMS]
    assert envs[0].observation_space == envs[1].observation_space
    assert envs[0].action_space == envs[1].action_space
    first = [env.reset(seed=3)[0] for env in envs]
    for env, obs in zip(envs, first, strict=True):
        assert env.observation_space.contains(obs)
        assert all(v.dtype == np.float32 for v in obs.values())
        env.close()
    for key in first[0]:
        assert np.array_equal(first[0][key], first[1][key]), key  # same seed -> same start everywhere


def hover_rms(env, seeds=(0, 1), settle_steps=100, measure_steps=100) -> float:
    """RMS distance to the goal after `settle_steps`, over `measure_steps`, pooled over episodes."""
    expert, errors = QuadExpert(env), []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert.reset(obs)
        for k in range(settle_steps + measure_steps):
            obs, _, terminated, _, info = env.step(expert.act(obs))
            assert not terminated, f"crashed at step {k}: {obs['pos']}"
            if k >= settle_steps:
                errors.append(info["distance"])
    return float(np.sqrt(np.mean(np.square(errors))))


@pytest.mark.parametrize("robot", ["cf2x", "iris"])
@pytest.mark.parametrize("backend", SIMS)
def test_expert_hovers_within_5cm(backend, robot):
    env = make_env("quad_hover", backend=backend, overrides=[f"robot={robot}"])
    rms = hover_rms(env)
    env.close()
    print(f"hover RMS {backend}/{robot}: {rms * 100:.2f} cm")
    assert rms < 0.05


@pytest.mark.parametrize("action_mode", ["ctbr", "velocity", "position"])
def test_expert_tracks_figure_eight(action_mode):
    env = make_env("quad_track", backend="mujoco", overrides=[f"action_mode={action_mode}"])
    expert = QuadExpert(env)
    obs, _ = env.reset(seed=0)
    expert.reset(obs)
    errors = []
    for k in range(env.task.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        assert not terminated
        if k >= 50:
            errors.append(info["distance"])
    assert truncated
    rms = float(np.sqrt(np.mean(np.square(errors))))
    print(f"track RMS {action_mode}: {rms * 100:.1f} cm")
    assert rms < 0.15
    env.close()


def test_doing_nothing_fails():
    """Guards against a success/crash check that cannot fail: zero thrust falls and crashes."""
    env = make_env("quad_hover", backend="mujoco")
    obs, _ = env.reset(seed=0)
    for _ in range(env.task.max_episode_steps):
        obs, reward, terminated, _, info = env.step(np.array([-1.0, 0.0, 0.0, 0.0], np.float32))
        if terminated:
            break
    assert terminated and info["crashed"] and reward == env.task.crash_reward
    env.close()


@pytest.mark.parametrize("robot", ["cf2x", "iris"])
def test_engines_agree_open_loop(robot):
    """Same initial state, same random motor-command sequence -> same trajectory in both engines.

    Both integrate our wrench with semi-implicit Euler on a free rigid body; measured agreement is at
    machine precision (~1e-14) over 1 s, including gyroscopic coupling from a fast initial spin.
    """
    spec = load_robot_spec(robot)
    rng = np.random.default_rng(0)
    start = {"pos": np.array([0.0, 0.0, 5.0]), "omega": np.array([2.0, -1.0, 6.0])}
    trajectories = []
    for cls in (MujocoQuadBackend, PybulletQuadBackend):
        backend = cls(spec)
        backend.reset(rng, start)
        hover = backend.airframe.hover_thrust
        seq = np.clip(hover * (1 + 0.1 * np.random.default_rng(1).standard_normal((50, 4))), 0, 1)
        trajectories.append(backend.play_motor_commands(seq))
        backend.close()
    moved = np.abs(trajectories[0][-1, :3] - start["pos"]).max()
    diff = np.abs(trajectories[0] - trajectories[1]).max()
    print(f"{robot}: moved {moved:.2f} m open loop, max |mujoco - pybullet| = {diff:.1e}")
    assert moved > 0.05  # the sequence actually excites the dynamics
    assert diff < 1e-9


def test_bad_commands_raise():
    env = make_env("quad_hover", backend="pybullet")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([0.0, np.nan, 0.0, 0.0], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.backend.command(np.array([np.inf, 0, 0, 0]))
    with pytest.raises(ValueError, match="shape"):
        env.backend.command(np.zeros(3))
    env.close()
    with pytest.raises(ValueError, match="action_mode"):
        make_env("quad_hover", backend="mujoco", overrides=["action_mode=joint_delta"])


@pytest.mark.parametrize("robot", ["cf2x", "iris"])
def test_both_engines_build_the_airframe_from_one_description(robot):
    import pybullet as pb

    spec = load_robot_spec(robot)
    mj, bt = MujocoQuadBackend(spec), PybulletQuadBackend(spec)
    af = mj.airframe
    assert mj.model.body_mass[mj._body] == pytest.approx(af.mass)
    assert np.allclose(mj.model.body_inertia[mj._body], af.inertia)
    info = pb.getDynamicsInfo(bt.body, -1, physicsClientId=bt.client)
    assert info[0] == pytest.approx(af.mass) and np.allclose(info[2], af.inertia)
    assert mj.dt == bt.dt == 1.0 / spec.physics_hz
    mj.close()
    bt.close()

"""The env contract on both sims: check_env, experts, determinism, bad input.

Spaces equal on every backend (real ones included) and the env-level NaN check: test_backend_parity.py.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robotlearn  # noqa: F401  (registers the envs)
from robotlearn.core.config import ConfigError
from robotlearn.envs import make_env

ARM_ENVS = ["robotlearn/ArmReach-v0", "robotlearn/ArmPickPlace-v0"]
SIMS = ["mujoco", "pybullet"]


def run_episodes(env, policy: str, episodes: int, seed: int) -> tuple[float, None]:
    """Success rate of the scripted expert (or random actions) over seeded episodes, via the rollout runner."""
    from robotlearn.rollout import DeviceSource, RandomSource, Rollout
    from robotlearn.teleop import make_device

    source = DeviceSource(make_device("scripted", env)) if policy == "expert" else RandomSource(env.action_space, seed)
    return Rollout(env, source).run(episodes, seed).success_rate, None


@pytest.mark.parametrize("backend", SIMS)
@pytest.mark.parametrize("env_id", ARM_ENVS)
@pytest.mark.parametrize("cameras", [(), ("scene", "wrist")])
def test_check_env(env_id, backend, cameras):
    env = gym.make(env_id, backend=backend, cameras=cameras)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    for cam in cameras:
        img = obs[f"images/{cam}"]
        assert img.dtype == np.uint8 and img.ndim == 3 and img.std() > 1.0, f"{cam} image is blank"
    env.close()


@pytest.mark.parametrize("backend", SIMS)
@pytest.mark.parametrize(("env_id", "episodes", "min_rate"),
                         [("robotlearn/ArmReach-v0", 20, 0.95), ("robotlearn/ArmPickPlace-v0", 15, 0.80)])
def test_scripted_expert_succeeds(env_id, backend, episodes, min_rate):
    env = gym.make(env_id, backend=backend)
    rate, _ = run_episodes(env, "expert", episodes, seed=100)
    env.close()
    assert rate >= min_rate, f"{env_id} on {backend}: expert success {rate:.0%} < {min_rate:.0%}"


def test_random_policy_rarely_succeeds_at_pick_place():
    """Guards against a success check that is always true."""
    env = gym.make("robotlearn/ArmPickPlace-v0", backend="mujoco")
    rate, _ = run_episodes(env, "random", 3, seed=5)
    env.close()
    assert rate == 0.0


@pytest.mark.parametrize("backend", SIMS)
def test_same_seed_same_episode(backend):
    def rollout():
        env = gym.make("robotlearn/ArmPickPlace-v0", backend=backend)
        env.action_space.seed(3)
        obs, _ = env.reset(seed=7)
        trace = [np.concatenate([obs["joint_pos"], obs["cube_pos"]])]
        for _ in range(15):
            obs, *_ = env.step(env.action_space.sample())
            trace.append(np.concatenate([obs["joint_pos"], obs["cube_pos"]]))
        env.close()
        return np.array(trace)

    first, second = rollout(), rollout()
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("backend", SIMS)
def test_bad_actions(backend):
    env = gym.make("robotlearn/ArmReach-v0", backend=backend)
    env.reset(seed=0)
    before = env.unwrapped.backend.read()["joint_pos"].copy()
    for bad in (np.full(5, np.nan), np.array([0, 0, np.inf, 0, 0])):
        with pytest.raises(ValueError, match="NaN/inf"):
            env.step(bad)
    np.testing.assert_array_equal(env.unwrapped.backend.read()["joint_pos"], before)  # nothing moved
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    for _ in range(5):  # documented clamp: huge actions are clipped, physics stays sane
        obs, _, _, _, info = env.step(np.full(5, 1e6))
        assert info["action_clipped"]
        assert np.all(np.isfinite(obs["joint_pos"])) and np.all(np.abs(obs["joint_vel"]) < 50)
    # In-range actions, the box's own corners included, are not flagged; one component just outside is.
    for action, clipped in ((np.zeros(5), False), (np.ones(5), False), (-np.ones(5), False),
                            (np.array([0, 0, 0, 1.001, 0]), True), (np.array([-1.5, 0, 0, 0, 0]), True)):
        _, _, _, _, info = env.step(action.astype(np.float32))
        assert info["action_clipped"] is clipped, action
    env.close()


def test_unknown_names_give_one_line_errors():
    with pytest.raises(gym.error.Error):
        gym.make("robotlearn/NoSuchEnv-v0")
    cases = [(lambda: make_env("arm_reach", backend="gazebo"), ValueError, "unknown backend 'gazebo'.*mujoco"),
             (lambda: make_env("arm_reach", overrides=["rewrd=sparse"]), ConfigError,
              r"arm_reach.yaml: rewrd: unknown key"),
             (lambda: make_env("arm_reach", overrides=["max_episode_steps=-1"]), ConfigError,
              r"arm_reach.yaml: max_episode_steps: .*greater than 0"),
             (lambda: make_env("arm_reach", overrides=["params.tolerence=0.1"]), ConfigError,
              r"arm_reach.yaml: params: .*tolerence"),
             (lambda: make_env("nope"), ConfigError, "unknown tasks config 'nope'")]
    for build, error, pattern in cases:
        with pytest.raises(error, match=pattern) as caught:
            build()
        assert "\n" not in str(caught.value), f"not one line: {caught.value}"


@pytest.mark.parametrize("backend", SIMS)
def test_pushing_past_the_reach_stops_the_tool_without_sinking(backend):
    """ee_delta goals are clamped to the reachable shell keeping their height, so +x stops the tool."""
    env = gym.make("robotlearn/ArmReach-v0", backend=backend)
    obs, _ = env.reset(seed=0)
    start_z = float(obs["ee_pos"][2])
    for _ in range(20):
        obs, *_ = env.step(np.array([1, 0, 0, 0, 1], np.float32))
    assert abs(float(obs["ee_pos"][2]) - start_z) < 0.02
    reached_x = float(obs["ee_pos"][0])
    for _ in range(5):
        obs, *_ = env.step(np.array([0, 0, 1, 0, 1], np.float32))
    assert float(obs["ee_pos"][2]) > start_z + 0.05  # still responsive after hitting the limit
    assert reached_x > 0.3
    env.close()


@pytest.mark.parametrize("action_mode", ["ee_pose", "joint_delta"])
def test_pick_place_expert_in_every_action_mode(action_mode):
    env = gym.make("robotlearn/ArmPickPlace-v0", backend="mujoco", overrides=[f"action_mode={action_mode}"])
    rate, _ = run_episodes(env, "expert", 8, seed=200)
    env.close()
    assert rate >= 0.75, f"{action_mode}: expert success {rate:.0%}"

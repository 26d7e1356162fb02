"""The quadrotor options a learner trains with (configs/algos/sac_quad_hover.yaml): a task's `robot_params`
narrowing the ctbr action range, and the hover reward's velocity penalty, precision bonus and alive bonus."""

from __future__ import annotations

import numpy as np
import pytest

from robotlearn.core.config import ConfigError
from robotlearn.envs import make_env
from robotlearn.teleop.quad_expert import QuadExpert

NARROW = ["robot_params.ctbr_max_rate=[3.0, 3.0, 1.5]", "robot_params.ctbr_thrust_range=[0.15, 0.75]"]


def test_task_robot_params_set_the_ctbr_scaling():
    env = make_env("quad_hover", overrides=NARROW)
    robot = env.unwrapped.robot
    np.testing.assert_allclose(robot.action_to_ctbr(np.array([-1.0, 1.0, -1.0, 0.5])), [0.15, 3.0, -3.0, 0.75])
    np.testing.assert_allclose(robot.action_to_ctbr(np.ones(4))[0], 0.75)
    ctbr = np.array([0.45, 0.3, -1.2, 0.2])
    np.testing.assert_allclose(robot.action_to_ctbr(robot.ctbr_to_action(ctbr)), ctbr, atol=1e-6)
    np.testing.assert_allclose(robot.max_rate, [10.0, 10.0, 5.0])  # the airframe (the rate loop's clip) unchanged
    # the command the backend gets is the scaled one
    env.reset(seed=0)
    np.testing.assert_allclose(robot.command(np.array([0.0, 0.5, 0.0, 0.0]), env.unwrapped.backend.read()),
                               [0.45, 1.5, 0.0, 0.0])
    env.close()
    default = make_env("quad_hover").unwrapped.robot
    np.testing.assert_allclose(default.action_to_ctbr(np.array([-1.0, 1.0, -1.0, 0.5])), [0.0, 10.0, -10.0, 2.5])


def test_expert_hovers_with_the_narrow_action_range():
    env = make_env("quad_hover", overrides=NARROW)
    expert = QuadExpert(env)
    obs, _ = env.reset(seed=3)
    expert.reset(obs)
    errors = []
    for k in range(env.unwrapped.task.max_episode_steps):
        obs, _, terminated, _, info = env.step(expert.act(obs))
        assert not terminated
        if k >= 100:
            errors.append(info["distance"])
    env.close()
    assert np.sqrt(np.mean(np.square(errors))) < 0.05


@pytest.mark.parametrize("override, needle", [
    ("robot_params.ctbr_thrust_range=[0.8, 0.2]", "ctbr_thrust_range"),
    ("robot_params.ctbr_max_rate=[3.0, -1.0, 1.0]", "ctbr_max_rate"),
    ("robot_params.max_rat=[3.0, 3.0, 1.0]", "max_rat"),
])
def test_bad_robot_params_are_one_line_errors(override, needle):
    with pytest.raises(ConfigError) as err:
        make_env("quad_hover", overrides=[override])
    assert needle in str(err.value) and "\n" not in str(err.value)


def _obs(dist: float, speed: float) -> dict[str, np.ndarray]:
    return {"pos": np.array([dist, 0.0, 1.0], np.float32), "goal_pos": np.array([0.0, 0.0, 1.0], np.float32),
            "vel": np.array([0.0, speed, 0.0], np.float32), "omega": np.zeros(3, np.float32)}


def test_precision_bonus_and_velocity_penalty_shape_the_reward():
    plain = make_env("quad_hover").unwrapped.task
    shaped = make_env("quad_hover", overrides=["params.precision_bonus=0.5", "params.precision_radius=0.05",
                                               "params.velocity_penalty=0.2"]).unwrapped.task
    for d in (0.0, 0.05, 0.2):
        assert plain.evaluate(_obs(d, 0.0))[0] == pytest.approx(-d, abs=1e-6)
        assert shaped.evaluate(_obs(d, 0.0))[0] == pytest.approx(-d + 0.5 * np.exp(-d / 0.05), abs=1e-6)
        assert shaped.evaluate(_obs(d, 0.5))[0] == pytest.approx(-d + 0.5 * np.exp(-d / 0.05) - 0.1, abs=1e-6)
    # the point of the bonus: moving 5 cm -> 0 cm is worth much more than moving 20 cm -> 15 cm
    gain_near = shaped.evaluate(_obs(0.0, 0.0))[0] - shaped.evaluate(_obs(0.05, 0.0))[0]
    gain_far = shaped.evaluate(_obs(0.15, 0.0))[0] - shaped.evaluate(_obs(0.2, 0.0))[0]
    assert gain_near > 5 * gain_far
    assert shaped.evaluate({**_obs(0.0, 0.0), "pos": np.array([0, 0, 0.01], np.float32)})[0] == plain.crash_reward


def test_alive_bonus_makes_flying_beat_crashing():
    """The config's formulation: +2 per flown step, 0 for a crash; any step within ~2 m is worth more than a crash."""
    task = make_env("quad_hover", overrides=["params.alive_bonus=2", "params.crash_reward=0"]).unwrapped.task
    assert task.evaluate(_obs(0.0, 0.0))[0] == pytest.approx(2.0, abs=1e-6)
    assert task.evaluate(_obs(1.5, 0.0))[0] == pytest.approx(0.5, abs=1e-6)
    reward, crashed, _ = task.evaluate({**_obs(0.0, 0.0), "pos": np.array([0, 0, 0.01], np.float32)})
    assert crashed and reward == 0.0


def test_track_velocity_penalty_is_relative_to_the_reference():
    task = make_env("quad_track", overrides=["params.velocity_penalty=1.0"]).unwrapped.task
    moving = {**_obs(0.0, 0.5), "goal_vel": np.array([0.0, 0.5, 0.0], np.float32)}
    assert task.evaluate(moving)[0] == pytest.approx(0.0, abs=1e-6)
    assert task.evaluate({**moving, "goal_vel": np.zeros(3, np.float32)})[0] == pytest.approx(-0.5, abs=1e-6)

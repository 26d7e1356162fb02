"""Active excitation: the candidates' centre poses are reached smoothly during the settle, and the ranking
passes over a candidate that would drive a servo into its effort limit, however informative it looks."""

from __future__ import annotations

import numpy as np
import pytest

from robotlearn.sysid.active import MAX_EFFORT_SHARE, design_summary, most_informative
from robotlearn.sysid.collect import arm_recipe
from robotlearn.sysid.excitation import MOVE_SHARE, PERIOD_S, SETTLE_S, candidate_designs


@pytest.fixture(scope="module")
def arm():
    env = arm_recipe("mujoco", {}, 1).make()
    try:
        yield env.unwrapped.robot, env.unwrapped.backend.spec
    finally:
        env.close()


def test_a_candidate_moves_from_the_start_pose_to_its_centre_and_holds_before_it_excites(arm):
    robot, spec = arm
    home = robot.home_state()["joint_pos"][:robot.n_arm]
    designs = candidate_designs(spec, robot.home_state()["joint_pos"], robot.n_arm, np.random.default_rng(0), 4)
    assert max(np.abs(d.center - home).max() for d in designs) > 0.2  # the centres really move
    t = np.linspace(0.0, SETTLE_S, 501)
    for d in designs:
        q = d(t)
        np.testing.assert_allclose(q[0], home)
        held = q[t >= MOVE_SHARE * SETTLE_S]
        np.testing.assert_allclose(held, np.broadcast_to(d.center, held.shape))
        speed = np.abs(np.diff(q, axis=0)).max() / (t[1] - t[0])
        assert speed <= np.pi / 2 * np.abs(d.center - home).max() / (MOVE_SHARE * SETTLE_S) + 1e-6
        whole = d(np.linspace(0.0, SETTLE_S + PERIOD_S, 3001))
        assert np.all(whole > spec.lower[:robot.n_arm]) and np.all(whole < spec.upper[:robot.n_arm])


def test_the_active_ranking_passes_over_a_candidate_that_would_saturate_a_servo(arm):
    robot, spec = arm
    designs = candidate_designs(spec, robot.home_state()["joint_pos"], robot.n_arm, np.random.default_rng(3), 16)
    chosen = [designs[i] for i in (13, 11, 5)]  # on the nominal sim: saturating, and two that are not
    best, scores, peaks = most_informative(chosen, spec, robot, progress=False)
    assert peaks[0] > MAX_EFFORT_SHARE >= max(peaks[1:]), peaks
    assert scores[0] < min(scores[1:]), scores  # the clamped torque looks like the most information
    assert best == 1 + int(np.argmin(scores[1:])), (best, scores)


def test_collect_says_which_design_ran_and_when_none_was_safe():
    meta = {"excite": "active", "design_index": 1, "design_scores": [0.01, 0.035], "design_peak_effort": [1.0, 0.6]}
    line = design_summary(meta)
    assert line.startswith("active design 2 of 2: worst predicted std 3.5 %") and "peak effort 60 %" in line
    assert "no candidate" not in line
    assert "no candidate stayed under 70 %" in design_summary({**meta, "design_peak_effort": [1.0, 0.9]})
    assert design_summary({"excite": "random"}) is None

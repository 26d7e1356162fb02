"""MuJoCo and PyBullet agree on contact: the same joint-target stream (a scripted grasp-lift-place) moves the
cube to the same place, and a held cube slips the same under the same squeeze (robotlearn/sim/contact_agreement.py).

Tolerances, stated: cube position within 1.5 mm at the end and 3 mm over the whole trajectory (the transient
while the fingers close), yaw within 1 deg; slip within 0.5 mm of each other and under 2 mm per second. With MuJoCo's default contact softness
(solref 0.02 s) the final difference was 2-5 mm on these seeds; bench/sim_contact.py measures more.
"""

from __future__ import annotations

import numpy as np
import pytest

from robotlearn.sim.contact_agreement import SIMS, expert_trajectory, held_slip, replay_cube


@pytest.fixture(scope="module")
def trajectory():
    traj = expert_trajectory(seed=1)
    assert traj.expert_success and traj.lift_step > 0
    return traj


def test_same_joint_targets_put_the_cube_in_the_same_place(trajectory):
    mj, pb = (replay_cube(sim, trajectory) for sim in SIMS)
    dist = np.linalg.norm(mj[:, :3] - pb[:, :3], axis=1)
    assert mj[:, 2].max() > 0.08 and pb[:, 2].max() > 0.08  # both lifted it
    assert dist[-1] < 1.5e-3 and dist.max() < 3e-3, (dist[-1], dist.max())
    assert abs(np.degrees(mj[-1, 3] - pb[-1, 3])) < 1.0


@pytest.mark.parametrize("squeeze", [0.003, 0.02])
def test_held_cube_slips_alike(trajectory, squeeze):
    slips = {sim: held_slip(sim, trajectory, squeeze) for sim in SIMS}
    assert all(0 <= s < 2e-3 for s in slips.values()), slips
    assert abs(slips["mujoco"] - slips["pybullet"]) < 0.5e-3, slips

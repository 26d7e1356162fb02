"""The compiled arm IK (`_rt.MujocoArmIK`) gives the damped-least-squares solution the MuJoCo Python API gives.

The reference below is the same DLS written against `mujoco`'s Python bindings (mj_kinematics, mj_comPos,
mj_jacBody, mju_subQuat and numpy's solve) on a separate MjData, so the two share nothing but the model.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from robotlearn.core.robot_config import load_robot_spec
from robotlearn.robots.arm_kinematics import ArmKinematics


def reference_inverse(kin: ArmKinematics, data: mujoco.MjData, pos, quat, seed, iterations=25, tol=2e-4,
                      damping=1e-3, rot_weight=0.3) -> np.ndarray:
    model, ee = kin.model, kin.ee_body
    jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    q = np.clip(np.asarray(seed, dtype=np.float64).copy(), kin.lower, kin.upper)
    n_err = 6 if quat is not None else 3
    err, err_rot, previous = np.zeros(n_err), np.zeros(3), np.inf
    jac = np.zeros((n_err, kin.n_arm))
    for _ in range(iterations):
        data.qpos[kin.qpos_index] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        err[:3] = pos - data.xpos[ee]
        if quat is not None:
            mujoco.mju_subQuat(err_rot, quat, data.xquat[ee].copy())
            err[3:] = rot_weight * (data.xmat[ee].reshape(3, 3) @ err_rot)
        size = float(np.sqrt(err @ err))
        if size < tol or size > 0.99 * previous:
            break
        previous = size
        mujoco.mj_jacBody(model, data, jacp, jacr, ee)
        jac[:3] = jacp[:, kin.dof_index]
        if quat is not None:
            jac[3:] = rot_weight * jacr[:, kin.dof_index]
        q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(n_err), err), kin.lower, kin.upper)
    return q


@pytest.fixture(scope="module")
def kin() -> ArmKinematics:
    return ArmKinematics(load_robot_spec("arm6"))


def test_forward_matches_mujoco(kin):
    data = mujoco.MjData(kin.model)
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.uniform(kin.lower, kin.upper)
        pos, quat = kin.forward(q)
        data.qpos[kin.qpos_index] = q
        mujoco.mj_kinematics(kin.model, data)
        np.testing.assert_array_equal(pos, data.xpos[kin.ee_body])
        np.testing.assert_array_equal(quat, data.xquat[kin.ee_body])


def test_inverse_matches_python_dls(kin):
    """Reachable and unreachable goals, with and without orientation, warm and cold seeds."""
    data = mujoco.MjData(kin.model)
    rng = np.random.default_rng(1)
    worst = 0.0
    for trial in range(200):
        q_goal = rng.uniform(kin.lower, kin.upper)
        pos, quat = kin.forward(q_goal)
        if trial % 4 == 1:
            pos = pos + rng.normal(0.0, 0.3, 3)  # often out of reach: stops when the error stops shrinking
        seed = q_goal + rng.normal(0.0, 0.3 if trial % 2 else 1.0, kin.n_arm)
        orientation = None if trial % 3 == 0 else kin.tool_quat(rng.uniform(-1.5, 1.5)) if trial % 3 == 1 else quat
        got = kin.inverse(pos, orientation, seed)
        want = reference_inverse(kin, data, pos, orientation, seed)
        worst = max(worst, float(np.max(np.abs(got - want))))
    # Only the 3x3/6x6 solve differs (Cholesky vs LAPACK's LU): rounding, amplified a little by the iterations.
    assert worst < 1e-9, worst


def test_inverse_reaches_a_reachable_pose(kin):
    q_goal = 0.5 * (kin.lower + kin.upper) + 0.2
    pos, quat = kin.forward(q_goal)
    q = kin.inverse(pos, quat, q_goal + 0.1, iterations=100)
    got_pos, got_quat = kin.forward(q)
    assert np.linalg.norm(got_pos - pos) < 2e-4
    assert abs(abs(float(got_quat @ quat)) - 1.0) < 1e-5


def test_bad_input_is_one_clear_error(kin):
    with pytest.raises(ValueError, match="seed: expected length 6"):
        kin.inverse(np.zeros(3), None, np.zeros(5))
    with pytest.raises(ValueError, match="pos: expected length 3"):
        kin.inverse(np.zeros(2), None, np.zeros(6))

"""Arm forward/inverse kinematics on the MuJoCo kinematic model of the robot description.

Every backend (MuJoCo, PyBullet, the real driver) computes `ee_pos`/`ee_quat` and end-effector IK with
this one model, so the end-effector action mode means exactly the same thing everywhere. The model is
built from the same URDF the sims load, with no scene, so it costs microseconds per call.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robotlearn.core.spec import RobotSpec


class ArmKinematics:
    """FK and damped-least-squares IK of the arm joints (the gripper is not part of the chain)."""

    def __init__(self, spec: RobotSpec):
        self.model = mujoco.MjModel.from_xml_path(str(spec.description))
        self.data = mujoco.MjData(self.model)
        self.n_arm = int(spec.params.get("arm_joints", 6))
        names = spec.joint_names[: self.n_arm]
        self.qpos_index = np.array([self.model.joint(n).qposadr[0] for n in names])
        self.dof_index = np.array([self.model.joint(n).dofadr[0] for n in names])
        self.lower = spec.lower[: self.n_arm]
        self.upper = spec.upper[: self.n_arm]
        self.ee_body = self.model.body(spec.params.get("ee_link", "ee")).id
        # Orientation of the tool pointing straight down at yaw 0 (robot config `tool_down_quat`, wxyz):
        # top-down grasps are expressed as a yaw about world z applied to it.
        self.down_quat = np.asarray(spec.params["tool_down_quat"], dtype=np.float64)
        self.down_quat /= np.linalg.norm(self.down_quat)
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def tool_quat(self, yaw: float) -> np.ndarray:
        """wxyz orientation of the downward-pointing tool rotated by `yaw` about world z."""
        out = np.empty(4)
        mujoco.mju_mulQuat(out, np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]), self.down_quat)
        return out

    def tool_yaw(self, quat: np.ndarray) -> float:
        """Inverse of `tool_quat` for a (roughly) downward tool: its yaw about world z."""
        rel = np.empty(4)
        conj = self.down_quat * np.array([1.0, -1.0, -1.0, -1.0])
        mujoco.mju_mulQuat(rel, np.asarray(quat, dtype=np.float64), conj)
        mat = np.empty(9)
        mujoco.mju_quat2Mat(mat, rel)
        mat = mat.reshape(3, 3)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def forward(self, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ee_pos (3,), ee_quat wxyz (4,)) for arm joint angles `q_arm`."""
        self.data.qpos[self.qpos_index] = q_arm
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # the Jacobians in inverse() need cdof
        return self.data.xpos[self.ee_body].copy(), self.data.xquat[self.ee_body].copy()

    def inverse(self, pos: np.ndarray, quat: np.ndarray | None, q_seed: np.ndarray, iterations: int = 25,
                tol: float = 2e-4, damping: float = 1e-3, rot_weight: float = 0.3) -> np.ndarray:
        """Joint angles reaching `pos` (and `quat` if given), starting from `q_seed`, within joint limits.

        Damped least squares: robust near singularities, and warm-started from the previous target so
        consecutive solutions stay on the same branch (no elbow flips between control steps). It stops
        when the error is below `tol` or stops shrinking (an unreachable goal): the control loop calls
        it every step, so a partial answer is refined on the next call rather than iterated to death.
        """
        q = np.clip(np.asarray(q_seed, dtype=np.float64).copy(), self.lower, self.upper)
        n_err = 6 if quat is not None else 3
        regularizer = damping * np.eye(n_err)
        err_rot = np.zeros(3)
        err = np.zeros(n_err)
        jac = np.zeros((n_err, self.n_arm))
        previous = np.inf
        for _ in range(iterations):
            cur_pos, cur_quat = self.forward(q)
            err[:3] = pos - cur_pos
            if quat is not None:
                mujoco.mju_subQuat(err_rot, np.asarray(quat, dtype=np.float64), cur_quat)
                # mju_subQuat gives the rotation in the current body frame; the Jacobian is in world frame.
                err[3:] = rot_weight * (self.data.xmat[self.ee_body].reshape(3, 3) @ err_rot)
            size = float(np.sqrt(err @ err))
            if size < tol or size > 0.99 * previous:
                break
            previous = size
            mujoco.mj_jacBody(self.model, self.data, self._jacp, self._jacr, self.ee_body)
            jac[:3] = self._jacp[:, self.dof_index]
            if quat is not None:
                jac[3:] = rot_weight * self._jacr[:, self.dof_index]
            q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + regularizer, err), self.lower, self.upper)
        return q

"""Arm forward/inverse kinematics on the MuJoCo kinematic model of the robot description.

Every backend (MuJoCo, PyBullet, the real driver) computes `ee_pos`/`ee_quat` and end-effector IK with
this one model, so the end-effector action mode means exactly the same thing everywhere. The model is
built from the same URDF the sims load, with no scene. FK and the IK iterations run in C++
(`_rt.MujocoArmIK`) on libmujoco's own mj_kinematics / mj_comPos / mj_jacBody: the solve runs every
control step, and in Python its small-array overhead cost more than the control step's physics.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from robotlearn import _rt
from robotlearn.core.libmujoco import function_address
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
        self._down = tuple(float(v) for v in self.down_quat)
        d = self.data
        self._ik = _rt.MujocoArmIK(
            function_address("mj_kinematics"), function_address("mj_comPos"), function_address("mj_jacBody"),
            function_address("mju_subQuat"), self.model._address, d._address, d.qpos.ctypes.data,
            d.xpos.ctypes.data, d.xquat.ctypes.data, d.xmat.ctypes.data, self.model.nv,
            self.qpos_index.tolist(), self.dof_index.tolist(), self.lower.tolist(), self.upper.tolist(),
            int(self.ee_body))

    def tool_quat(self, yaw: float) -> np.ndarray:
        """wxyz orientation of the downward-pointing tool rotated by `yaw` about world z."""
        c, s = math.cos(yaw / 2), math.sin(yaw / 2)
        w, x, y, z = self._down
        return np.array([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w])  # (c, 0, 0, s) * down

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
        """(ee_pos (3,), ee_quat wxyz (4,)) for arm joint angles `q_arm`; leaves `data` at that pose."""
        return self._ik.forward(np.ascontiguousarray(q_arm, dtype=np.float64))

    def inverse(self, pos: np.ndarray, quat: np.ndarray | None, q_seed: np.ndarray, iterations: int = 25,
                tol: float = 2e-4, damping: float = 1e-3, rot_weight: float = 0.3) -> np.ndarray:
        """Joint angles reaching `pos` (and `quat` if given), starting from `q_seed`, within joint limits.

        Damped least squares, dq = J^T (J J^T + damping I)^-1 err, with the orientation error (mju_subQuat,
        rotated to the world frame) weighted by `rot_weight` m/rad: robust near singularities, and
        warm-started from the previous target so consecutive solutions stay on the same branch (no elbow
        flips between control steps). It stops when the error is below `tol` or stops shrinking (an
        unreachable goal): the control loop calls it every step, so a partial answer is refined on the next
        call rather than iterated to death.
        """
        as_f64 = np.ascontiguousarray
        return self._ik.inverse(as_f64(pos, dtype=np.float64),
                                None if quat is None else as_f64(quat, dtype=np.float64),
                                as_f64(q_seed, dtype=np.float64), iterations, tol, damping, rot_weight)

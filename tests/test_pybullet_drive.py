"""The compiled PyBullet per-tick drive (`_rt.PybulletStepper`) does what the same loop written against the
pybullet Python API does: read joint states -> drive -> armature-corrected torques -> stepSimulation.

The reference below makes every call through `pybullet` itself on a second backend; both start from the
same rebuilt world and get the same targets, so their trajectories must agree to rounding.
"""

from __future__ import annotations

import numpy as np
import pybullet as pb
import pytest

from robotlearn.core.robot_config import load_robot_spec
from robotlearn.sim.common import armature, command_drive
from robotlearn.sim.pybullet_arm import PybulletArmBackend

HOLD = np.array([0.0, 0.5, -0.1, 0.0, 1.1, 0.0, 0.04, 0.04])


class PythonTickLoop:
    """The per-tick loop through the pybullet module (one Python round trip per call, per tick)."""

    def __init__(self, b: PybulletArmBackend):
        self.b, self.n = b, len(b.spec.joints)
        self.rotor = np.diag(armature(b.spec))
        self.dt = 1.0 / b.spec.physics_hz
        self.reset()

    def reset(self) -> None:
        self.first, self.tick_in_refresh = True, 0
        self.stacked = np.zeros(3 * self.n)

    def refresh_mass(self, q: np.ndarray) -> None:
        b = self.b
        mass = np.asarray(pb.calculateMassMatrix(b.robot, q.tolist(), physicsClientId=b.client))
        self.gain = np.linalg.solve(mass + self.rotor, self.rotor).T
        self.correction = np.hstack([np.eye(self.n) - self.gain, self.gain, self.gain @ mass / self.dt])

    def advance(self) -> None:
        b, n, stacked = self.b, self.n, self.stacked
        if b._io.pending is not None:  # the backend hands the commanded target to the drive at the period's start
            command_drive(b.drive, b.spec, b._io.pending)
            b._io.pending = None
        for _ in range(b.spec.ticks_per_step):
            states = pb.getJointStates(b.robot, b._idx, physicsClientId=b.client)
            q = np.array([s[0] for s in states])
            qd = np.array([s[1] for s in states])
            tau = b.drive.compute(q, qd) - b._damping * qd
            if self.tick_in_refresh == 0:
                self.refresh_mass(q)
            self.tick_in_refresh = (self.tick_in_refresh + 1) % b.mass_refresh_ticks
            if self.first:
                bias = np.asarray(pb.calculateInverseDynamics(b.robot, q.tolist(), qd.tolist(), [0.0] * n,
                                                              physicsClientId=b.client))
                applied = tau - self.gain @ (tau - bias)
                self.first = False
            else:
                stacked[:n], stacked[2 * n:] = tau, stacked[2 * n:] - qd
                applied = self.correction @ stacked
            pb.setJointMotorControlArray(b.robot, b._idx, pb.TORQUE_CONTROL, forces=applied.tolist(),
                                         physicsClientId=b.client)
            pb.stepSimulation(physicsClientId=b.client)
            stacked[n:2 * n], stacked[2 * n:] = applied, qd


@pytest.fixture(scope="module")
def pair():
    spec = load_robot_spec("arm6")
    # Linear interpolation, explicitly: with the robot's min-jerk setpoints this sweep brings a finger onto the
    # cube exactly in its last step, and that contact onset turns a 2e-11 rad rounding difference into 7e-7 in
    # one step (measured). The setpoint law runs in the same compiled drive on both sides; what is compared
    # here is the pybullet call path, so the sweep avoids that knife edge rather than widening the bound.
    options = PybulletArmBackend.Options(interpolation="linear")
    compiled, reference = PybulletArmBackend(spec, options), PybulletArmBackend(spec, options)
    yield compiled, reference
    compiled.close()
    reference.close()


def test_compiled_drive_matches_the_python_tick_loop(pair):
    compiled, reference = pair
    loop = PythonTickLoop(reference)
    worst = 0.0
    for episode in range(2):
        start = {"joint_pos": HOLD + 0.1 * episode, "object/cube/pos": np.array([0.26, 0.0, 0.0125])}
        for b in pair:
            b.reset(np.random.default_rng(0), start)
        loop.reset()
        for k in range(25):
            # sweep the arm and close the gripper over the cube, so contacts and joint limits are in play
            target = HOLD + 0.3 * np.sin(0.3 * k) * np.r_[np.ones(6), 0, 0] - np.r_[np.zeros(6), 0.04, 0.04] * (k > 12)
            for b in pair:
                b.command(target)
            compiled.advance()
            loop.advance()
            got, want = compiled.read(), reference.read()
            worst = max(worst, float(np.max(np.abs(got["joint_pos"] - want["joint_pos"]))),
                        1e-2 * float(np.max(np.abs(got["joint_vel"] - want["joint_vel"]))))
            np.testing.assert_allclose(compiled.object_pose("cube")[0], reference.object_pose("cube")[0], atol=1e-9)
    # only the linear algebra differs (LU here vs LAPACK, summation order): rounding, 1e-10 rad measured
    # after contacts moved the cube; a different servo law, damping or correction is off by > 1e-4
    assert worst < 1e-8, worst


def test_applied_torques_are_this_steps_ticks(pair):
    compiled, _ = pair
    compiled.reset(np.random.default_rng(0), {"joint_pos": HOLD})
    compiled.command(HOLD + 0.1)
    compiled.advance()
    torques = compiled._stepper.applied_torques.reshape(-1, len(compiled.spec.joints))
    assert torques.shape == (compiled.spec.ticks_per_step, len(compiled.spec.joints))
    assert np.all(np.isfinite(torques)) and np.any(torques != 0.0)


def test_closed_backend_refuses_to_step():
    b = PybulletArmBackend(load_robot_spec("arm6"))
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.advance()

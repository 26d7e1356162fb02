"""PyBullet quadrotor backend: the same airframe numbers and the same compiled wrench as MuJoCo.

The body is created from the airframe YAML (mass, diagonal inertia, collision box); PyBullet's
default damping is switched off so drag comes only from our rotor-drag model. External forces are
cleared by PyBullet after every step, so the wrench is re-applied every tick.
"""

from __future__ import annotations

import numpy as np
import pybullet as pb

from robotlearn.core.description import GRAVITY, Airframe
from robotlearn.core.rotations import quat_rotate, quat_rotate_inv
from robotlearn.core.spec import RobotSpec
from robotlearn.sim.quad_model import QuadSimBackend, QuadSimOptions


class PybulletQuadBackend(QuadSimBackend):
    name = "pybullet"

    def __init__(self, spec: RobotSpec, options: QuadSimOptions | None = None, airframe: Airframe | None = None):
        super().__init__(spec, options, airframe)
        ground = self.ground
        self.client = pb.connect(pb.DIRECT)
        c = self.client
        pb.setGravity(0, 0, -GRAVITY, physicsClientId=c)
        pb.setTimeStep(self.dt, physicsClientId=c)
        if ground:
            plane = pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=c)
            pb.createMultiBody(0, plane, physicsClientId=c)
        box = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=list(self.airframe.collision_box), physicsClientId=c)
        self.body = pb.createMultiBody(self.airframe.mass, box, basePosition=[0, 0, 1], physicsClientId=c)
        pb.changeDynamics(self.body, -1, localInertiaDiagonal=list(self.airframe.inertia), linearDamping=0.0,
                          angularDamping=0.0, physicsClientId=c)
        self._state: tuple[np.ndarray, ...] | None = None

    def _set_state(self, pos, quat, vel, omega) -> None:
        c = self.client
        pb.resetBasePositionAndOrientation(self.body, pos, [quat[1], quat[2], quat[3], quat[0]], physicsClientId=c)
        pb.resetBaseVelocity(self.body, vel, quat_rotate(quat, omega), physicsClientId=c)
        self._state = None

    def _set_inertial(self, mass: float, inertia: np.ndarray) -> None:
        pb.changeDynamics(self.body, -1, mass=mass, localInertiaDiagonal=list(inertia), physicsClientId=self.client)

    def _get_state(self):
        if self._state is None:
            c = self.client
            pos, q = pb.getBasePositionAndOrientation(self.body, physicsClientId=c)
            vel, ang = pb.getBaseVelocity(self.body, physicsClientId=c)
            quat = np.array([q[3], q[0], q[1], q[2]])
            self._state = (np.array(pos), quat, np.array(vel), quat_rotate_inv(quat, np.array(ang)))
        return self._state

    def _tick(self, wrench: np.ndarray) -> None:
        c = self.client
        pos = self._get_state()[0]
        pb.applyExternalForce(self.body, -1, wrench[:3], pos, pb.WORLD_FRAME, physicsClientId=c)
        pb.applyExternalTorque(self.body, -1, wrench[3:], pb.WORLD_FRAME, physicsClientId=c)
        pb.stepSimulation(physicsClientId=c)
        self._state = None

    def close(self) -> None:
        if self.client is not None and pb.isConnected(self.client):
            pb.disconnect(self.client)
        self.client = None

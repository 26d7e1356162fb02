"""MuJoCo quadrotor backend: a free rigid body driven by the compiled quad drive's wrench.

The MJCF is generated from the airframe YAML (mass, diagonal inertia, collision box), so there is no
second description to keep in sync. Per physics tick: read state -> `QuadDrive.compute` -> write
`xfrc_applied` -> `mj_step`.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robotlearn.core.description import GRAVITY, Airframe
from robotlearn.core.spec import RobotSpec
from robotlearn.sim.quad_model import QuadSimBackend, QuadSimOptions


def airframe_mjcf(af: Airframe, timestep: float, ground: bool = True) -> str:
    """MJCF for one quadrotor; explicit inertial so MuJoCo ignores geom-derived inertia."""
    hx, hy, hz = af.collision_box
    ixx, iyy, izz = af.inertia
    floor = '<geom name="floor" type="plane" size="0 0 1" friction="1 0.005 0.0001"/>' if ground else ""
    return f"""<mujoco model="{af.name}">
  <option timestep="{timestep!r}" gravity="0 0 {-GRAVITY!r}" integrator="Euler"/>
  <worldbody>
    {floor}
    <body name="quad" pos="0 0 1">
      <freejoint name="root"/>
      <inertial pos="0 0 0" mass="{af.mass!r}" diaginertia="{ixx!r} {iyy!r} {izz!r}"/>
      <geom name="frame" type="box" size="{hx!r} {hy!r} {hz!r}" rgba="0.2 0.2 0.8 1"/>
    </body>
  </worldbody>
</mujoco>"""


class MujocoQuadBackend(QuadSimBackend):
    name = "mujoco"

    def __init__(self, spec: RobotSpec, options: QuadSimOptions | None = None, airframe: Airframe | None = None):
        super().__init__(spec, options, airframe)
        ground = self.ground
        self.model = mujoco.MjModel.from_xml_string(airframe_mjcf(self.airframe, self.dt, ground))
        self.data = mujoco.MjData(self.model)
        self._body = self.model.body("quad").id
        # Views into mjData (free joint: qpos = pos, quat wxyz; qvel = world linear, body angular).
        self._pos, self._quat = self.data.qpos[0:3], self.data.qpos[3:7]
        self._vel, self._omega = self.data.qvel[0:3], self.data.qvel[3:6]
        self._xfrc = self.data.xfrc_applied[self._body]

    def _set_state(self, pos, quat, vel, omega) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[0:3], self.data.qpos[3:7] = pos, quat
        self.data.qvel[0:3], self.data.qvel[3:6] = vel, omega
        mujoco.mj_forward(self.model, self.data)

    def _set_inertial(self, mass: float, inertia: np.ndarray) -> None:
        self.model.body_mass[self._body] = mass
        self.model.body_inertia[self._body] = inertia

    def _get_state(self):
        return self._pos, self._quat, self._vel, self._omega

    def _tick(self, wrench: np.ndarray) -> None:
        self._xfrc[:] = wrench
        mujoco.mj_step(self.model, self.data)

    def close(self) -> None:
        self.data = None

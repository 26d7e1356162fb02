"""PyBullet backend for arms: the same URDF, scene and compiled servo drive as the MuJoCo backend.

PyBullet has no C-level hook per physics tick, so `_rt.PybulletStepper` makes, in C++, the calls a
Python loop would make every tick through the pybullet module (read joint states -> `drive.compute` ->
joint torques -> `stepSimulation`), through the C API the pybullet extension exports, on the same
connection (robotlearn/sim/libpybullet.py): one Python call per control step, not per physics tick.
The URDF's <dynamics> are applied the way MuJoCo applies them: Coulomb friction as a constraint
(PyBullet's per-joint velocity motor with target 0 and the friction as its force cap, like MuJoCo's
`frictionloss`), viscous damping as a torque -damping * qd added in the loop (PyBullet's own
`jointDamping` is integrated differently).

Bullet has no joint armature (reflected rotor inertia), which MuJoCo has and geared servos are
dominated by. Each tick therefore solves the joint-space dynamics with the armature added,
(M + A) qdd = tau - c + f, where f is the last tick's generalized constraint force (contacts, joint
friction) read back from Bullet's own motion, and applies tau - A qdd, so that Bullet's M qdd =
tau' - c + f yields that same qdd. Exact in free space and in static contact; while contacts or
friction change, f lags one tick (2 ms). With G = A (M + A)^-1 (M refreshed every
`mass_refresh_ticks`), the torque applied is tau - G (tau - c + f), where f = M (qd - qd_prev) / dt
+ c_prev - applied_prev; taking c as unchanged over one tick leaves one linear map of
[tau, applied_prev, qd_prev - qd] (the first tick after a reset uses c from inverse dynamics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pybullet as pb

from robotlearn import _rt
from robotlearn.core.backend import Backend, State
from robotlearn.core.description import urdf_actuated_joints
from robotlearn.core.spec import RobotSpec
from robotlearn.sim import libpybullet
from robotlearn.sim.cameras import camera_axes
from robotlearn.sim.common import (
    DelayedIO,
    PhysicalSetup,
    SimArmOptions,
    armature,
    check_target,
    command_drive,
    initial_value,
    make_drive,
    unknown_scene_keys,
)
from robotlearn.sim.fiducial_visuals import pybullet_fiducial_visual
from robotlearn.sim.scene import scene_for

GRAVITY = -9.81


def _xyzw(wxyz) -> list[float]:
    return [wxyz[1], wxyz[2], wxyz[3], wxyz[0]]


def _wxyz(xyzw) -> np.ndarray:
    return np.array([xyzw[3], xyzw[0], xyzw[1], xyzw[2]])


class PybulletArmBackend(Backend):
    """Arm + table scene in PyBullet (DIRECT mode, TinyRenderer). Options: sim/common.py SimArmOptions."""

    name = "pybullet"
    #: physics ticks between mass-matrix updates of the armature correction (M changes little in 20 ms)
    mass_refresh_ticks = 10

    Options = SimArmOptions

    def __init__(self, spec: RobotSpec, options: SimArmOptions | None = None):
        super().__init__(spec, options)
        self.physical = PhysicalSetup(spec, self.options)
        self.scene = scene_for(spec.description)
        self.client = pb.connect(pb.DIRECT)
        self._closed = False
        self._configure(self.physical.spec)
        try:
            self._build_world()
        except Exception:
            pb.disconnect(physicsClientId=self.client)
            self.physical.close()
            raise
        self._ticks = 0
        self.reset(np.random.default_rng(0), {})

    def _configure(self, spec: RobotSpec) -> None:
        """Everything taken from `spec` (again at a reset that draws new physical parameters). The compiled
        stepper carries the spec's damping and armature, so it is built anew with the next world."""
        self.spec = spec
        dynamics = {j.get("name"): j.find("dynamics") for j in urdf_actuated_joints(spec.description)}
        self._friction, self._damping = (
            np.array([float(dynamics[j.name].get(key, 0.0)) if dynamics.get(j.name) is not None else 0.0
                      for j in spec.joints]) for key in ("friction", "damping"))
        self._lower, self._upper = spec.lower, spec.upper
        self.goal_ticks = self.options.goal_ticks
        self.drive = make_drive(spec, self.options.interpolation, self.physical.params.backlash, self.goal_ticks)
        self._io = DelayedIO(spec, self.physical.params.latency_s, self.options.latency_on_commands)
        self._stepper = None

    def _make_stepper(self) -> _rt.PybulletStepper:
        return _rt.PybulletStepper(
            libpybullet.api(), libpybullet.client_handle(self.client), self.robot, self._q_index, self._u_index,
            self._damping.tolist(), armature(self.spec).tolist(), 1.0 / self.spec.physics_hz,
            self.mass_refresh_ticks, pb.TORQUE_CONTROL)

    def _build_world(self) -> None:
        """Empty the engine and load robot + scene afresh.

        Done on every reset: Bullet keeps broadphase pair and contact-manifold order across
        `restoreState`, so only a rebuilt world replays an episode bit-exactly (~10 ms).
        """
        c, spec = self.client, self.spec
        pb.resetSimulation(physicsClientId=c)
        pb.setPhysicsEngineParameter(fixedTimeStep=1.0 / spec.physics_hz, numSubSteps=0,
                                     deterministicOverlappingPairs=1, physicsClientId=c)
        pb.setGravity(0, 0, GRAVITY, physicsClientId=c)
        self.robot = pb.loadURDF(str(spec.description), [0, 0, 0], [0, 0, 0, 1], useFixedBase=True,
                                 flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=c)
        self._links = {pb.getBodyInfo(self.robot, physicsClientId=c)[0].decode(): -1}
        self._joint_index = {}
        state_index = {}
        for i in range(pb.getNumJoints(self.robot, physicsClientId=c)):
            info = pb.getJointInfo(self.robot, i, physicsClientId=c)
            self._joint_index[info[1].decode()] = i
            self._links[info[12].decode()] = i
            state_index[i] = (info[3], info[4])  # position / velocity index in Bullet's state vectors
        missing = [j.name for j in spec.joints if j.name not in self._joint_index]
        if missing:
            raise ValueError(f"pybullet backend: joints {missing} not in {spec.description.name}")
        self._idx = [self._joint_index[j.name] for j in spec.joints]
        movable = [i for i in range(pb.getNumJoints(self.robot, physicsClientId=c))
                   if pb.getJointInfo(self.robot, i, physicsClientId=c)[2] != pb.JOINT_FIXED]
        if movable != self._idx:  # the armature correction works on Bullet's joint-space (dof-ordered) matrices
            raise ValueError("pybullet backend: the spec's joints must be all movable URDF joints, in file order")
        self._q_index = [state_index[i][0] for i in self._idx]
        self._u_index = [state_index[i][1] for i in self._idx]
        self._build_scene()
        # Coulomb friction: a velocity motor holding zero speed with at most the friction force
        pb.setJointMotorControlArray(self.robot, self._idx, pb.VELOCITY_CONTROL, targetVelocities=[0.0] * len(self._idx),
                                     forces=self._friction.tolist(), physicsClientId=c)

    def _build_scene(self) -> None:
        """Table, floor, cube and markers; frictions set so Bullet's product rule gives scene.yaml's pairs."""
        c, s = self.client, self.scene
        slide_t, torsion_t = s.cube_table_friction
        slide_r, torsion_r = s.cube_robot_friction
        for i in [-1, *range(pb.getNumJoints(self.robot, physicsClientId=c))]:
            pb.changeDynamics(self.robot, i, lateralFriction=slide_r, spinningFriction=torsion_r, rollingFriction=0.0,
                              linearDamping=0.0, angularDamping=0.0, jointDamping=0.0, physicsClientId=c)
        for box in (s.table, s.floor):
            half = np.array(box.size) / 2
            body = pb.createMultiBody(
                0.0, pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=c),
                pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=box.rgba, physicsClientId=c),
                basePosition=box.center, physicsClientId=c)
            pb.changeDynamics(body, -1, lateralFriction=slide_t, spinningFriction=torsion_t, rollingFriction=0.0,
                              physicsClientId=c)
        self._objects = {}
        for obj in s.objects:
            half = np.array(obj.size) / 2
            visual, texture = (pybullet_fiducial_visual(pb, obj, c) if obj.fiducials is not None else
                               (pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=obj.rgba,
                                                     physicsClientId=c), None))
            body = pb.createMultiBody(
                obj.mass, pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=c), visual,
                basePosition=obj.pos, baseOrientation=_xyzw(obj.quat), physicsClientId=c)
            if texture is not None:
                pb.changeVisualShape(body, -1, textureUniqueId=texture, physicsClientId=c)
            # the object is the neutral element (1.0) of the product, so pairs take the other body's value
            pb.changeDynamics(body, -1, lateralFriction=1.0, spinningFriction=1.0, rollingFriction=0.0,
                              linearDamping=0.0, angularDamping=0.0, localInertiaDiagonal=obj.inertia.tolist(),
                              physicsClientId=c)
            self._objects[obj.name] = body
        self._markers = {}
        for marker in s.markers:
            vis = pb.createVisualShape(pb.GEOM_SPHERE, radius=marker.radius, rgbaColor=marker.rgba, physicsClientId=c)
            self._markers[marker.name] = pb.createMultiBody(0.0, -1, vis, basePosition=marker.pos, physicsClientId=c)

    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        unknown = unknown_scene_keys(initial, self._objects, self._markers)
        if unknown:
            raise ValueError(f"pybullet backend: unknown reset keys {unknown}")
        drawn = self.physical.resample(rng)
        if drawn is not None:
            self._configure(drawn)
        c = self.client
        n = len(self.spec.joints)
        q = initial_value(initial, "joint_pos", np.clip(np.zeros(n), self._lower, self._upper), (n,))
        q = np.clip(q, self._lower, self._upper)
        qd = initial_value(initial, "joint_vel", np.zeros(n), (n,))
        self._build_world()
        for i, qi, qdi in zip(self._idx, q, qd, strict=True):
            pb.resetJointState(self.robot, i, float(qi), float(qdi), physicsClientId=c)
        for obj in self.scene.objects:
            pos = initial_value(initial, f"object/{obj.name}/pos", obj.pos, (3,))
            quat = initial_value(initial, f"object/{obj.name}/quat", obj.quat, (4,))
            body = self._objects[obj.name]
            pb.resetBasePositionAndOrientation(body, pos.tolist(), _xyzw(quat / np.linalg.norm(quat)), physicsClientId=c)
            pb.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=c)
        for marker in self.scene.markers:
            pos = initial_value(initial, f"marker/{marker.name}/pos", marker.pos, (3,))
            pb.resetBasePositionAndOrientation(self._markers[marker.name], pos.tolist(), [0, 0, 0, 1], physicsClientId=c)
        # the drive starts from the setpoint the servos were tracking (sysid replays from recorded states)
        setpoint = np.clip(initial_value(initial, "joint_target", q, (n,)), self._lower, self._upper)
        # and, behind the gear play, the goal their position loops tracked (default: the setpoint itself)
        self.drive.reset(setpoint, np.clip(initial_value(initial, "servo_goal", setpoint, (n,)), self._lower, self._upper))
        self._io.reset()
        if self._stepper is None:
            self._stepper = self._make_stepper()
        else:
            self._stepper.reset(self.robot)
        self._ticks = 0

    def command(self, target: np.ndarray) -> None:
        target = check_target(target, len(self.spec.joints))
        self._io.pending = target

    def _check_open(self) -> None:
        # the compiled stepper holds the raw client handle, which disconnect frees: never touch it after close
        if self._closed:
            raise RuntimeError("pybullet backend is closed")

    def advance(self) -> dict[str, Any]:
        self._check_open()
        self._io.advance(lambda ticks: self._stepper.step(self.drive, ticks),
                         lambda target, delay: command_drive(self.drive, self.spec, target, delay), self._read_now)
        self._ticks += self.spec.ticks_per_step
        return {"timestamp": self._ticks / self.spec.physics_hz}

    def _read_now(self) -> State:
        q, qd = self._stepper.read()
        return {"joint_pos": q, "joint_vel": qd, "joint_effort": self._stepper.servo_torque}

    def read(self) -> State:
        """The joint state (with ``latency_s``: as it was that long ago)."""
        self._check_open()
        return self._io.sensed if self._io.sensed is not None else self._read_now()

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._objects:
            raise KeyError(f"pybullet backend: no object {name!r}; objects: {sorted(self._objects)}")
        pos, quat = pb.getBasePositionAndOrientation(self._objects[name], physicsClientId=self.client)
        return np.array(pos), _wxyz(quat)

    def link_pose(self, link: str) -> tuple[np.ndarray, np.ndarray]:
        """World (pos, quat wxyz) of a URDF link frame, e.g. "ee"."""
        if link not in self._links:
            raise KeyError(f"pybullet backend: no link {link!r}")
        i, c = self._links[link], self.client
        if i >= 0:
            state = pb.getLinkState(self.robot, i, computeForwardKinematics=True, physicsClientId=c)
            return np.array(state[4]), _wxyz(state[5])
        # the base pose PyBullet reports is its inertial frame; undo the URDF <inertial> offset
        com_pos, com_quat = pb.getBasePositionAndOrientation(self.robot, physicsClientId=c)
        local = pb.getDynamicsInfo(self.robot, -1, physicsClientId=c)
        inv_pos, inv_quat = pb.invertTransform(local[3], local[4])
        pos, quat = pb.multiplyTransforms(com_pos, com_quat, inv_pos, inv_quat)
        return np.array(pos), _wxyz(quat)

    def set_joint_positions(self, q: np.ndarray) -> None:
        """Kinematic pose for tests and tools: set the joints, no dynamics."""
        for i, qi in zip(self._idx, q, strict=True):
            pb.resetJointState(self.robot, i, float(qi), 0.0, physicsClientId=self.client)

    def render(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        cam = self.spec.camera(camera)
        width, height = size or (cam.width, cam.height)
        right, up, forward = camera_axes(cam)
        pos = np.asarray(cam.pos, float)
        if cam.parent != "world":
            if cam.parent not in self._links:
                raise ValueError(f"camera {cam.name!r}: parent link {cam.parent!r} is not in the robot")
            link_pos, link_quat = self.link_pose(cam.parent)
            rot = np.array(pb.getMatrixFromQuaternion(_xyzw(link_quat))).reshape(3, 3)
            pos, forward, up = link_pos + rot @ pos, rot @ forward, rot @ up
        near, far = self.scene.camera_clip
        view = pb.computeViewMatrix(pos.tolist(), (pos + forward).tolist(), up.tolist())
        proj = pb.computeProjectionMatrixFOV(cam.fovy_deg, width / height, near, far)
        light = self.scene.lighting
        _, _, rgba, _, _ = pb.getCameraImage(width, height, view, proj, renderer=pb.ER_TINY_RENDERER,
                                             flags=pb.ER_NO_SEGMENTATION_MASK, lightDirection=list(light.direction),
                                             lightColor=[1.0, 1.0, 1.0], lightAmbientCoeff=light.ambient,
                                             lightDiffuseCoeff=light.diffuse, lightSpecularCoeff=0.0, shadow=0,
                                             physicsClientId=self.client)
        return np.ascontiguousarray(np.reshape(rgba, (height, width, 4))[:, :, :3], dtype=np.uint8)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pb.disconnect(physicsClientId=self.client)
        self.physical.close()

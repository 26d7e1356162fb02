"""MuJoCo backend for arms: the URDF plus the table scene, stepped by the compiled servo drive.

The URDF has no actuators, so one torque motor per actuated joint is added through `mujoco.MjSpec`;
the compiled `_rt.MujocoStepper` then runs interpolation -> servo torque -> `mj_step` for every
physics tick of a control period without returning to Python (a Python round trip per tick would
cost about as much as the physics itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np

from robotlearn import _rt
from robotlearn.core.backend import Backend, State
from robotlearn.core.description import urdf_link_colors
from robotlearn.core.libmujoco import function_address
from robotlearn.core.spec import RobotSpec
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
from robotlearn.sim.fiducial_visuals import add_mujoco_fiducials
from robotlearn.sim.scene import Scene, scene_for

# Collision filtering: robot geoms touch the environment but not each other (as in PyBullet, which has
# no self-collision unless asked for); environment geoms touch everything.
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
ENV_CONTYPE, ENV_CONAFFINITY = 1, 3
ROLLING_FRICTION = 1e-4


def build_model(spec: RobotSpec, scene: Scene, max_image: tuple[int, int] = (640, 480)) -> mujoco.MjModel:
    """Robot URDF + scene + motors + cameras as one MjModel."""
    ms = mujoco.MjSpec.from_file(str(spec.description))
    # the URDF asks MuJoCo to drop its <visual> duplicates of the collision shapes; the markers added
    # below are visual-only geoms that must survive compilation
    ms.compiler.discardvisual = False
    ms.option.timestep = 1.0 / spec.physics_hz
    ms.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    ms.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    solref = [scene.contact.time_constant, scene.contact.damping_ratio]
    colors = urdf_link_colors(spec.description)
    slide_r, torsion_r = scene.cube_robot_friction
    for geom in ms.geoms:  # before the scene is added: robot geoms only
        geom.contype, geom.conaffinity = ROBOT_CONTYPE, ROBOT_CONAFFINITY
        geom.priority, geom.condim = 1, 4
        geom.friction = [slide_r, torsion_r, ROLLING_FRICTION]
        geom.solref = solref
        link = geom.parent.name
        if link in colors:
            geom.rgba = colors[link]
    for j, rotor in zip(spec.joints, armature(spec), strict=True):
        ms.joint(j.name).armature = rotor
        ms.add_actuator(name=f"{j.name}_motor", target=j.name, trntype=mujoco.mjtTrn.mjTRN_JOINT)

    world = ms.worldbody
    slide_t, torsion_t = scene.cube_table_friction
    for name, box in (("table", scene.table), ("floor", scene.floor)):
        world.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=np.array(box.size) / 2, pos=box.center,
                       rgba=box.rgba, contype=ENV_CONTYPE, conaffinity=ENV_CONAFFINITY, priority=1, condim=4,
                       friction=[slide_t, torsion_t, ROLLING_FRICTION], solref=solref)
    for obj in scene.objects:
        body = world.add_body(name=obj.name, pos=obj.pos, quat=obj.quat, mass=obj.mass, ipos=[0, 0, 0],
                              iquat=[1, 0, 0, 0], inertia=obj.inertia, explicitinertial=True)
        body.add_freejoint(name=f"{obj.name}_free")
        # priority 0: the pair takes the (table / robot) geom's friction, as the pair values in scene.yaml say
        box = body.add_geom(name=obj.name, type=mujoco.mjtGeom.mjGEOM_BOX, size=np.array(obj.size) / 2,
                            rgba=obj.rgba, contype=ENV_CONTYPE, conaffinity=ENV_CONAFFINITY, priority=0, condim=4,
                            solref=solref)
        if obj.fiducials is not None:
            add_mujoco_fiducials(ms, body, obj, box)
    for marker in scene.markers:
        body = world.add_body(name=f"marker_{marker.name}", pos=marker.pos, mocap=True)
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[marker.radius, 0, 0], rgba=marker.rgba,
                      contype=0, conaffinity=0, group=2)
    ms.add_texture(name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
                   rgb1=[1, 1, 1], rgb2=[1, 1, 1], width=8, height=8)  # white, like PyBullet's TinyRenderer
    # scene.yaml's lighting, in TinyRenderer's model: ambient from the headlight, diffuse from one directional
    # light, no specular anywhere (bench/perception.py and tests/test_render_alignment.py measure the match)
    light = scene.lighting
    world.add_light(pos=[0.3, 0.0, 1.5], dir=[-v for v in light.direction], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
                    diffuse=[light.diffuse] * 3, specular=[0.0] * 3, ambient=[0.0] * 3, castshadow=False)
    ms.visual.headlight.ambient = [light.ambient] * 3
    ms.visual.headlight.diffuse = ms.visual.headlight.specular = [0.0] * 3

    for cam in spec.cameras:
        right, up, _ = camera_axes(cam)
        parent = world if cam.parent == "world" else ms.body(cam.parent)
        if parent is None:
            raise ValueError(f"camera {cam.name!r}: parent link {cam.parent!r} is not in {spec.description.name}")
        parent.add_camera(name=cam.name, pos=cam.pos, xyaxes=[*right, *up], fovy=cam.fovy_deg)
    near, far = scene.camera_clip
    ms.stat.extent = 1.0  # so znear/zfar below are metres
    ms.visual.map.znear, ms.visual.map.zfar = near, far
    widths = [c.width for c in spec.cameras] + [max_image[0]]
    heights = [c.height for c in spec.cameras] + [max_image[1]]
    ms.visual.global_.offwidth, ms.visual.global_.offheight = max(widths), max(heights)
    return ms.compile()


class _OffscreenRenderer:
    """Headless camera rendering with a GL context this object owns.

    MuJoCo picks its default GL platform when `mujoco` is first imported, which may happen before
    anyone set MUJOCO_GL; creating the context here (EGL unless MUJOCO_GL says otherwise) makes
    headless rendering independent of import order.
    """

    def __init__(self, model: mujoco.MjModel):
        platform = os.environ.get("MUJOCO_GL", "egl").lower()
        if platform == "osmesa":
            from mujoco.osmesa import GLContext
        elif platform == "glfw":
            from mujoco.glfw import GLContext
        else:
            from mujoco.egl import GLContext
        width, height = model.vis.global_.offwidth, model.vis.global_.offheight
        self._gl = GLContext(width, height)
        self._gl.make_current()
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._scene = mujoco.MjvScene(model, maxgeom=500)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED

    def render(self, model: mujoco.MjModel, data: mujoco.MjData, cam_id: int, width: int, height: int) -> np.ndarray:
        self._gl.make_current()
        self._camera.fixedcamid = cam_id
        mujoco.mjv_updateScene(model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL,
                               self._scene)
        viewport = mujoco.MjrRect(0, 0, width, height)
        mujoco.mjr_render(viewport, self._scene, self._ctx)
        image = np.empty((height, width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(image, None, viewport, self._ctx)
        return np.ascontiguousarray(image[::-1])

    def close(self) -> None:
        self._ctx.free()
        self._gl.free()


class MujocoArmBackend(Backend):
    """Arm + table scene in MuJoCo. Options: sim/common.py SimArmOptions (``interpolation``, ``calibration``,
    ``domain_randomization``)."""

    name = "mujoco"

    Options = SimArmOptions

    def __init__(self, spec: RobotSpec, options: SimArmOptions | None = None):
        super().__init__(spec, options)
        self.physical = PhysicalSetup(spec, self.options)
        self.scene = scene_for(spec.description)
        self._renderer: _OffscreenRenderer | None = None
        self._render_data: mujoco.MjData | None = None  # render_qpos's own state, never the stepped one
        self._closed = False
        self._build(self.physical.spec)
        self.reset(np.random.default_rng(0), {})

    def _build(self, spec: RobotSpec) -> None:
        """Model, data, drive and compiled stepper for `spec` (again at a reset that draws new parameters)."""
        self.spec = spec
        self.model = build_model(spec, self.scene)
        self.data = mujoco.MjData(self.model)
        m = self.model
        jids = [m.joint(j.name).id for j in spec.joints]
        self._qadr = np.array([m.jnt_qposadr[i] for i in jids])
        self._vadr = np.array([m.jnt_dofadr[i] for i in jids])
        ctrl = [m.actuator(f"{j.name}_motor").id for j in spec.joints]
        self._obj_qadr = {o.name: m.jnt_qposadr[m.joint(f"{o.name}_free").id] for o in self.scene.objects}
        self._mocap = {k.name: m.body_mocapid[m.body(f"marker_{k.name}").id] for k in self.scene.markers}
        self._lower, self._upper = spec.lower, spec.upper
        self.goal_ticks = self.options.goal_ticks
        self.drive = make_drive(spec, self.options.interpolation, self.physical.params.backlash, self.goal_ticks)
        self._io = DelayedIO(spec, self.physical.params.latency_s, self.options.latency_on_commands)
        d = self.data
        self._stepper = _rt.MujocoStepper(function_address("mj_step"), m._address, d._address, d.qpos.ctypes.data,
                                          d.qvel.ctypes.data, d.ctrl.ctypes.data, self._qadr.tolist(),
                                          self._vadr.tolist(), ctrl)
        self._ticks = 0
        if self._renderer is not None:  # its GL context holds the previous model
            self._renderer.close()
            self._renderer = None
        self._render_data = None

    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        unknown = unknown_scene_keys(initial, self._obj_qadr, self._mocap)
        if unknown:
            raise ValueError(f"mujoco backend: unknown reset keys {unknown}")
        drawn = self.physical.resample(rng)
        if drawn is not None:
            self._build(drawn)
        n = len(self.spec.joints)
        q = initial_value(initial, "joint_pos", np.clip(np.zeros(n), self._lower, self._upper), (n,))
        q = np.clip(q, self._lower, self._upper)
        qd = initial_value(initial, "joint_vel", np.zeros(n), (n,))
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)  # also clears warm-start caches, so a reset episode replays bit-exactly
        d.qpos[self._qadr] = q
        d.qvel[self._vadr] = qd
        for obj in self.scene.objects:
            pos = initial_value(initial, f"object/{obj.name}/pos", obj.pos, (3,))
            quat = initial_value(initial, f"object/{obj.name}/quat", obj.quat, (4,))
            adr = self._obj_qadr[obj.name]
            d.qpos[adr:adr + 3] = pos
            d.qpos[adr + 3:adr + 7] = quat / np.linalg.norm(quat)
        for marker in self.scene.markers:
            d.mocap_pos[self._mocap[marker.name]] = initial_value(initial, f"marker/{marker.name}/pos",
                                                                  marker.pos, (3,))
        mujoco.mj_forward(m, d)
        # the drive starts from the setpoint the servos were tracking (sysid replays from recorded states)
        setpoint = np.clip(initial_value(initial, "joint_target", q, (n,)), self._lower, self._upper)
        # and, behind the gear play, the goal their position loops tracked (default: the setpoint itself)
        self.drive.reset(setpoint, np.clip(initial_value(initial, "servo_goal", setpoint, (n,)), self._lower, self._upper))
        self._io.reset()
        self._ticks = 0

    def command(self, target: np.ndarray) -> None:
        target = check_target(target, len(self.spec.joints))
        self._io.pending = target

    def advance(self) -> dict[str, Any]:
        self._io.advance(lambda ticks: self._stepper.step(self.drive, ticks),
                         lambda target, delay: command_drive(self.drive, self.spec, target, delay), self._read_now)
        self._ticks += self.spec.ticks_per_step
        return {"timestamp": self._ticks / self.spec.physics_hz}

    def _read_now(self) -> State:
        return {"joint_pos": self.data.qpos[self._qadr].copy(), "joint_vel": self.data.qvel[self._vadr].copy(),
                "joint_effort": self._stepper.torque}  # the servos' last torque, as present current reports it

    def read(self) -> State:
        """The joint state (with ``latency_s``: as it was that long ago)."""
        return self._io.sensed if self._io.sensed is not None else self._read_now()

    def object_pose(self, name: str, qpos: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(pos, quat) of a scene object in the sim, or in `qpos` (a snapshot of the full qpos vector)."""
        if name not in self._obj_qadr:
            raise KeyError(f"mujoco backend: no object {name!r}; objects: {sorted(self._obj_qadr)}")
        adr = self._obj_qadr[name]
        q = self.data.qpos if qpos is None else qpos
        return q[adr:adr + 3].copy(), q[adr + 3:adr + 7].copy()

    def link_pose(self, link: str) -> tuple[np.ndarray, np.ndarray]:
        """World (pos, quat wxyz) of a URDF link frame, e.g. "ee"."""
        body = self.model.body(link)
        mujoco.mj_kinematics(self.model, self.data)  # mj_step leaves frames at the pre-step state
        return self.data.xpos[body.id].copy(), self.data.xquat[body.id].copy()

    def set_joint_positions(self, q: np.ndarray) -> None:
        """Kinematic pose for tests and tools: set the joints, recompute frames, no dynamics."""
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)

    def render(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        cam = self.spec.camera(camera)
        width, height = size or (cam.width, cam.height)
        limit = (self.model.vis.global_.offwidth, self.model.vis.global_.offheight)
        if width > limit[0] or height > limit[1]:
            raise ValueError(f"render size {width}x{height} exceeds the offscreen buffer {limit[0]}x{limit[1]}")
        if self._renderer is None:
            self._renderer = _OffscreenRenderer(self.model)
        mujoco.mj_kinematics(self.model, self.data)  # frames and cameras at the current state, not the
        mujoco.mj_camlight(self.model, self.data)  # one before the last mj_step
        return self._renderer.render(self.model, self.data, self.model.camera(camera).id, width, height)

    def compiled_stepper(self) -> dict[str, Any]:
        """What a device emulator needs to step this sim from its own real-time thread: the compiled
        stepper and drive, and the addresses of the qpos/qvel arrays with each joint's index in them."""
        d = self.data
        return {"stepper": self._stepper, "drive": self.drive, "qpos": d.qpos.ctypes.data, "nq": self.model.nq,
                "qvel": d.qvel.ctypes.data, "qpos_index": self._qadr.tolist(), "qvel_index": self._vadr.tolist()}

    def render_qpos(self, camera: str, qpos: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Render the state `qpos` (a snapshot of the full qpos vector) without touching the stepped
        mjData, so a camera thread can render while another thread steps the sim; `size` as in render."""
        cam = self.spec.camera(camera)
        width, height = size or (cam.width, cam.height)
        if self._renderer is None:
            self._renderer = _OffscreenRenderer(self.model)
        if self._render_data is None:
            self._render_data = mujoco.MjData(self.model)
        data = self._render_data
        data.qpos[:] = qpos
        data.mocap_pos[:] = self.data.mocap_pos  # markers move only on reset
        mujoco.mj_kinematics(self.model, data)
        mujoco.mj_camlight(self.model, data)
        return self._renderer.render(self.model, data, self.model.camera(camera).id, width, height)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.physical.close()

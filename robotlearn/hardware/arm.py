"""The real arm backend: the compiled servo bus and control loop behind the Backend contract.

``backend="real"`` drives a chain of Dynamixel/Feetech servos (or `robotlearn emulate arm`) through
`robotlearn._rt.ServoBus` + `robotlearn._rt.ControlLoop`: a C++ thread at 500 Hz-1 kHz that reads the
servos, interpolates toward the latest target, applies limits/NaN rejection/watchdog, and writes goals,
never taking the GIL. Python only sets targets and reads state, so the action modes and observations of
`robotlearn.robots.arm` run unchanged on top, exactly as on the sims.

Semantics that differ from a sim, on purpose:
* ``advance()`` does not step anything: it returns at the next control tick of the running loop
  (ticks every ``1/control_hz`` on the loop's clock) with ``info["timestamp"]`` (loop clock, seconds since
  the last reset, as the sims count it) and ``info["loop_stats"]``.
* Timing as a sim's: ``read()`` returns the state the loop read at the last control tick (a sim's read is
  the state at its last step), however late the caller asks; a ``command()`` made after that tick starts
  its segment at the tick (the loop catches up the few cycles the host took to compute it). A host's
  compute time thus shifts nothing the servos do, as it shifts nothing in a sim; without this, that time
  (2-6 ms here, jittering) showed as 3-5 mrad of replay error in a sysid fit of a gap-free emulator.
* ``reset()`` ramps to the initial pose at ``home_speed`` from wherever the arm is (safe start); scene
  keys go to whoever places objects: the emulator's side channel (hardware/scene_oracle.py), or the
  person the CLI prompts (`placer`) on a real robot.
* Object poses come from pixels: the hardware config's ``perception_camera`` (a fixed camera of the
  spec) is read through the production camera driver and the objects' ArUco markers are tracked
  (robotlearn/perception/), in a worker thread off the control step. ``info["perception"]`` reports
  latency, detection rate, each object's visibility and pose age (a lost marker keeps its last-seen pose),
  and on an emulator the pose error.
* A loop fault (bus gone, e-stop, watchdog torque-off) raises `ArmFault` from the next call, and the
  loop stops commanding.
* The gripper is one servo: its position (in finger metres, see hardware/calibration.py) is copied to
  both finger joints on read, and the finger targets' mean is sent to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from robotlearn import _rt
from robotlearn.core.backend import Backend, BackendOptions, State
from robotlearn.core.config import ConfigError
from robotlearn.core.cpu_latency import CpuLatencyRequest
from robotlearn.core.spec import RobotSpec
from robotlearn.hardware.calibration import check_against_spec, load_hardware_config, servo_limits
from robotlearn.hardware.cameras.base import Camera
from robotlearn.hardware.ports import check_port
from robotlearn.hardware.scene_oracle import EmulatorOracle, SceneOracle
from robotlearn.hardware.servo_tables import load_servo_table


class ArmFault(RuntimeError):
    """The control loop stopped commanding the arm (bus lost, e-stop, watchdog). Reset is not possible."""


class RealArmOptions(BackendOptions):
    """Options of the real arm."""

    #: serial device or emulator link (e.g. /dev/ttyUSB0, /tmp/rl-arm0)
    port: str | None = None
    #: hardware config: a name in configs/hardware/ or a YAML path
    config: str = "arm6_emulated"
    #: YAML written by `robotlearn calibrate` (offsets, directions, limits)
    calibration_file: str | None = None
    #: hardware-config key=value overrides
    overrides: dict[str, Any] | list[str] | None = None
    #: {camera: device index | file | URL}; on an emulator its MJPEG URLs by default
    camera_sources: dict[str, int | str] | None = None
    #: a camera frame older than this raises StaleFrameError (s)
    camera_max_age_s: float = Field(0.5, gt=0)
    #: how long to wait for the servos to answer at start (s)
    start_timeout_s: float = Field(5.0, gt=0)


class RealArmBackend(Backend):
    """The real arm (see RealArmOptions)."""

    name = "real"
    deterministic = False
    goal_ticks = True  # the bus writes each goal as whole ticks
    Options = RealArmOptions

    def __init__(self, spec: RobotSpec, options: RealArmOptions | None = None,
                 scene_oracle: SceneOracle | None = None):
        """`scene_oracle` (code, not a user option): who places objects at reset (and, on an emulator,
        knows their true poses for the perception error figures); by default the emulator's side channel
        when the hardware config says ``emulator: true``, else none (the CLI then sets `placer`)."""
        super().__init__(spec, options)
        opts = self.options
        port, camera_sources, camera_max_age_s = opts.port, opts.camera_sources, opts.camera_max_age_s
        start_timeout_s = opts.start_timeout_s
        if not port:
            raise ConfigError("backend 'real' needs a port: --backend-opt port=<serial device or emulator link>, "
                              "e.g. port=/tmp/rl-arm0")
        check_port(str(port))
        self.port = str(port)
        self.hw = load_hardware_config(opts.config, opts.overrides, opts.calibration_file)
        cal = self.hw.calibration
        check_against_spec(cal, spec)
        self._servo_joint = np.array([spec.joint_names.index(s.joint) for s in cal.servos])
        self._mirrors = [(spec.joint_names.index(d), spec.joint_names.index(s)) for d, s in cal.mirrored_joints.items()]
        if scene_oracle is None and self.hw.emulator:
            scene_oracle = EmulatorOracle.discover(self.port)
        self.scene_oracle = scene_oracle
        default_cameras = scene_oracle.cameras if isinstance(scene_oracle, EmulatorOracle) else {}
        self._camera_sources = dict(camera_sources or default_cameras)
        self._camera_max_age = camera_max_age_s
        self._cameras: dict[str, Camera] = {}
        self._perception: Any = None  # CameraObjectPerception, built at the first need
        self._kinematics: Any = None  # ArmKinematics, for grasp following (built with the perception)
        self._kinematics_lock = threading.Lock()
        #: who puts objects where a reset asks, when no scene oracle can (the CLI's person prompt)
        self.placer = None
        self._closed = False
        self._late_ticks = 0
        #: ticks whose own cycle's state was not there (skipped by a loop overrun, or overwritten: the host
        #: came back more than HISTORY cycles late); their state is blended from the cycles either side
        self._stale_ticks = 0
        self._cpu_latency = CpuLatencyRequest(self.hw.cpu_latency_us)
        table = load_servo_table(self.hw.servo_model)
        ids = [s.servo_id for s in cal.servos]
        # Present current/load rides in the same sync-read as velocity and position (one contiguous span).
        self.bus = _rt.ServoBus(self.port, self.hw.baud, self.hw.protocol, ids, table.host_table(), self.hw.timeout_ms,
                                effort_register=table.effort_register or "")
        self._effort_scale = self._effort_per_unit(table, cal)
        try:
            for sid in ids:
                model = self._ping(sid, start_timeout_s)
                if table.model_number and model != table.model_number:
                    raise ValueError(f"servo {sid} on {self.port} reports model {model}, config "
                                     f"{self.hw.servo_model!r} expects {table.model_number}")
            lower, upper = servo_limits(cal, spec)
            joints = [spec.joints[j] for j in self._servo_joint]
            limits = _rt.JointLimits(lower.tolist(), upper.tolist(), [j.max_velocity for j in joints],
                                     [j.max_effort for j in joints])
            self._cpu_latency.acquire()
            self.loop = _rt.ControlLoop(
                self.bus, rate_hz=self.hw.rate_hz, limits=limits,
                interpolation=_rt.Interpolation[spec.joint_interpolation(self.hw.interpolation).upper()],
                target_duration_s=1.0 / spec.control_hz,
                ticks_per_unit=[s.ticks_per_unit for s in cal.servos], offset_ticks=[s.offset for s in cal.servos],
                sign=[s.sign for s in cal.servos],
                velocity_scale=[table.velocity_unit_rad_s * table.resolution / (2 * np.pi) / s.ticks_per_unit
                                for s in cal.servos],
                watchdog_hold_ms=self.hw.watchdog_hold_ms,
                watchdog_off_ms=self.hw.watchdog_off_ms, max_consecutive_timeouts=self.hw.max_consecutive_timeouts,
                spin_us=self.hw.spin_us)
            self._start_loop(start_timeout_s)
            self._check_torque(table.register("torque_enable"), ids)
            self._cycles_per_tick = max(1, int(round(self.hw.rate_hz / spec.control_hz)))
            self._tick_cycle = self.loop.wait_cycle(0, start_timeout_s)
            self._tick_state = self.loop.state()
            self._t_reset = float(self._tick_state["timestamp"])
        except Exception:
            self._shutdown()
            raise

    def _effort_per_unit(self, table, cal) -> np.ndarray:
        """Joint torque (N m; N at a finger) per raw effort unit of each servo: the servo's torque
        constant through its gearing, shared equally by the joints one servo drives (both fingers).

        Converted here rather than by the loop's `effort_scale`, which would also switch on the loop's
        effort-limit hold: a servo at its stall torque would then freeze its setpoint, which the sims
        do not do."""
        if table.effort_register is None:
            return np.zeros(len(cal.servos))
        shaft = np.array([table.resolution / (2 * np.pi) / s.ticks_per_unit for s in cal.servos])
        share = np.array([1 + sum(1 for _, src in self._mirrors if src == j) for j in self._servo_joint])
        return table.effort_unit_nm / shaft / share

    def _ping(self, sid: int, timeout_s: float) -> int:
        """Ping with retries for `timeout_s`: servos that just powered up need a moment."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.bus.ping(sid)
            except RuntimeError as err:
                if time.monotonic() > deadline:
                    raise ArmFault(f"arm on {self.port}: servo {sid} does not answer ({err}); check power, "
                                   f"baud ({self.hw.baud}), protocol ({self.hw.protocol}), or another program "
                                   "using the port") from None
                time.sleep(0.05)

    def _start_loop(self, timeout_s: float) -> None:
        """Start the loop; its first sync-read may miss a reply on a busy host, so retry until `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.loop.start()
                return
            except RuntimeError as err:
                if "did not answer" not in str(err) or time.monotonic() > deadline:
                    raise ArmFault(f"arm on {self.port}: {err}") from None
                time.sleep(0.05)

    def _check_torque(self, reg, ids: list[int]) -> None:
        """Torque-on is a sync write nobody acknowledges: read it back once, so a servo that missed it
        (brown-out, noise) is caught here rather than found limp mid-episode."""
        off = [sid for sid in ids if self.bus.read(sid, reg.addr, reg.size) != 1]
        if off:
            self.bus.set_torque(True)
            off = [sid for sid in ids if self.bus.read(sid, reg.addr, reg.size) != 1]
        if off:
            raise ArmFault(f"arm on {self.port}: servos {off} did not enable torque")

    # -- helpers ---------------------------------------------------------------------------------
    def _check(self) -> None:
        fault = self.loop.fault
        if fault:
            raise ArmFault(f"arm on {self.port}: control loop stopped: {fault}")

    def _to_servo(self, target: np.ndarray) -> np.ndarray:
        servo = target[self._servo_joint].copy()
        for k, j in enumerate(self._servo_joint):
            followers = [d for d, s in self._mirrors if s == j]
            if followers:
                servo[k] = np.mean([target[j], *(target[d] for d in followers)])
        return servo

    def _state(self) -> dict:
        self._check()
        try:
            return self.loop.state()
        except RuntimeError as err:
            raise ArmFault(f"arm on {self.port}: {err}") from None

    # -- Backend contract ----------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        scene = {k: np.asarray(v).tolist() for k, v in initial.items() if k.startswith(("object/", "marker/"))}
        perception = self._object_perception() if any(k.startswith("object/") for k in scene) else None
        if perception is not None:
            perception.place(scene)  # through the oracle or the placer, and forgets old sightings
        elif scene and self.scene_oracle is not None:
            self.scene_oracle.place(scene)
        if "joint_pos" in initial:
            self.move_to(np.asarray(initial["joint_pos"], dtype=np.float64))
        if perception is not None:  # first sighting from a frame taken after the placement
            perception.refresh(wait_s=1.0)
        state = self._state()
        self._tick_cycle, self._t_reset, self._tick_state = int(state["cycle"]), float(state["timestamp"]), state

    def move_to(self, q: np.ndarray, timeout_s: float | None = None) -> None:
        """Ramp from the current pose to `q` (spec joint order) at the config's home speed, then settle."""
        self._check()
        goal = self._to_servo(np.clip(q, self.spec.lower, self.spec.upper))
        start = np.asarray(self._state()["position"], dtype=np.float64)
        joints = [self.spec.joints[j] for j in self._servo_joint]
        speed = np.array([min(self.hw.home_speed, 0.5 * j.max_velocity) for j in joints])
        duration = float(np.max(np.abs(goal - start) / speed))
        period = 1.0 / self.spec.control_hz
        t0 = time.monotonic()
        while True:
            frac = min(1.0, (time.monotonic() - t0) / duration) if duration > 0 else 1.0
            self._send(start + (goal - start) * frac)
            self._wait_cycles(self._cycles_per_tick, period + self.hw.stall_timeout_s)
            if frac >= 1.0:
                break
        tol = np.array([self.hw.settle_tolerance if j.upper - j.lower > 0.2 else 0.005 for j in joints])
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else 3.0)
        while True:
            err = np.abs(np.asarray(self._state()["position"]) - goal)
            if np.all(err <= tol):
                return
            if time.monotonic() > deadline:
                worst = int(np.argmax(err / tol))
                raise ArmFault(f"arm on {self.port}: joint {joints[worst].name!r} did not reach its reset target "
                               f"(error {err[worst]:.3f}, tolerance {tol[worst]:.3f}); is it blocked?")
            self._send(goal)
            self._wait_cycles(self._cycles_per_tick, period + self.hw.stall_timeout_s)

    def _send(self, servo_target: np.ndarray, start_cycle: int = -1) -> None:
        if not self.loop.set_target(np.ascontiguousarray(servo_target, dtype=np.float64), start_cycle):
            self._check()
            raise ValueError(f"control loop rejected target {servo_target}")

    def _wait_cycles(self, n: int, timeout_s: float) -> int:
        """Wait until the loop has run `n` more cycles, polling for faults every 10 ms."""
        target = int(self._state()["cycle"]) + n
        return self._wait_until_cycle(target, timeout_s)

    def _wait_until_cycle(self, target: int, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            self._check()
            try:
                cycle = self.loop.wait_cycle(target - 1, min(0.01, max(0.0, deadline - time.monotonic())))
            except RuntimeError as err:  # the loop stopped while we waited
                raise ArmFault(f"arm on {self.port}: {err}") from None
            if cycle >= target:
                return cycle
            if time.monotonic() >= deadline:
                self._check()
                raise ArmFault(f"arm on {self.port}: control loop made no progress for {timeout_s:.2f} s "
                               f"(cycle {cycle}, waiting for {target})")

    def command(self, target: np.ndarray) -> None:
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (len(self.spec.joints),):
            raise ValueError(f"target must have shape ({len(self.spec.joints)},), got {target.shape}")
        if not np.all(np.isfinite(target)):
            raise ValueError(f"target contains NaN/inf: {target}; nothing was sent")
        self._check()
        self._send(self._to_servo(target), start_cycle=self._tick_cycle)

    def advance(self) -> dict[str, Any]:
        """Return at the next control tick (every rate_hz/control_hz loop cycles) with loop timing; the
        state `read()` returns from now on is the one the loop read at that tick."""
        next_tick = self._tick_cycle + self._cycles_per_tick
        now_cycle = int(self._state()["cycle"])
        if now_cycle >= next_tick:  # the caller was slower than control_hz: re-anchor, count it
            self._late_ticks += 1
            next_tick = now_cycle + 1
        self._wait_until_cycle(next_tick, 1.0 / self.spec.control_hz + self.hw.stall_timeout_s)
        state = self.loop.state_at(next_tick)
        if state is None:  # the loop skipped that cycle (an overrun), or this thread woke HISTORY cycles late
            self._stale_ticks += 1
            state = self._state_between(next_tick)
        # the grid stays: the next tick is a period after this one, whichever cycle's state stands for it
        self._tick_cycle, self._tick_state = next_tick, state
        stats = dict(self.loop.stats())
        stats["late_ticks"], stats["stale_ticks"] = self._late_ticks, self._stale_ticks
        stats["cpu_latency_request"] = self._cpu_latency.describe()
        info = {"timestamp": float(state["timestamp"]) - self._t_reset, "loop_stats": stats}
        if self._perception is not None:
            self._perception.refresh()
            info["perception"] = self._perception.info()
        return info

    def _state_between(self, tick: int) -> dict[str, Any]:
        """The arm at a tick whose cycle the loop skipped (it overran): the two cycles it did run either
        side, blended linearly to the tick's time, as a sim's state at that instant would be. Taking the
        later cycle alone read the arm 2-10 ms late (30 % of ticks on an idle VM, whose halted vCPUs wake
        late), and a sysid fit had to drop those steps. The latest state if the history no longer holds both."""
        span = range(1, _rt.ControlLoop.HISTORY)
        before = next((s for c in span if (s := self.loop.state_at(tick - c)) is not None), None)
        after = next((s for c in span if (s := self.loop.state_at(tick + c)) is not None), None)
        if before is None or after is None:
            return after or self._state()
        w = (tick - before["cycle"]) / (after["cycle"] - before["cycle"])
        state = {k: (1 - w) * np.asarray(before[k]) + w * np.asarray(after[k])
                 for k in ("position", "velocity", "effort", "setpoint")}
        state["timestamp"] = float(before["timestamp"]) + (tick - before["cycle"]) / self.hw.rate_hz
        state["cycle"] = tick
        return state

    def read(self) -> State:
        self._check()
        return self._joint_state(self._tick_state)

    def _joint_state(self, state: Mapping[str, Any]) -> State:
        """A loop state (servo order, SI) as the Backend's joint state (spec order, mirrored fingers filled)."""
        n = len(self.spec.joints)
        q, qd, tau = np.zeros(n), np.zeros(n), np.zeros(n)
        q[self._servo_joint] = state["position"]
        qd[self._servo_joint] = state["velocity"]
        tau[self._servo_joint] = np.asarray(state["effort"]) * self._effort_scale  # the loop applied the sign
        for d, s in self._mirrors:
            q[d], qd[d], tau[d] = q[s], qd[s], tau[s]
        return {"joint_pos": q, "joint_vel": qd, "joint_effort": tau}

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """From camera perception (last-seen pose while the marker is hidden); never the side channel."""
        perception = self._object_perception()
        if perception is None:
            return super().object_pose(name)
        return perception.object_pose(name)

    def _object_perception(self):
        """The marker tracker on the perception camera, built at the first need (None: not configured)."""
        if self._perception is None and self.hw.perception_camera is not None:
            from robotlearn.perception.object_perception import build_perception

            name = self.hw.perception_camera
            mode = self.hw.cameras.get(name)
            oracle = self.scene_oracle
            self._perception = build_perception(
                self.spec, self._camera(name), mode.calibration_file if mode is not None else None,
                placer=oracle.place if oracle is not None else self._place_by_placer,
                truth=oracle.object_pose if isinstance(oracle, EmulatorOracle) else None,
                gripper=self._gripper_state)
            if self.hw.perception_thread:
                self._perception.start()
        return self._perception

    def _gripper_state(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Tool pose (forward kinematics of the measured joints) and finger opening, for grasp following."""
        from robotlearn.robots.arm_kinematics import ArmKinematics

        q = self._joint_state(self._state())["joint_pos"]  # the live pose: a frame is newer than the tick
        with self._kinematics_lock:  # the perception worker and the control step both ask; forward() keeps state
            if self._kinematics is None:
                self._kinematics = ArmKinematics(self.spec)
            n_arm = self._kinematics.n_arm
            pos, quat = self._kinematics.forward(q[:n_arm])
        fingers = q[n_arm:]
        opening = float(np.mean(fingers) / self.spec.upper[n_arm]) if len(fingers) else 1.0
        return np.asarray(pos), np.asarray(quat), opening

    def _place_by_placer(self, scene: dict[str, list[float]]) -> None:
        if self.placer is None:
            raise ArmFault("real arm: this task places objects at reset, but nobody can: run it from the CLI "
                           "(which asks you to place them) or set backend.placer")
        self.placer(scene)

    def _camera(self, camera: str) -> Camera:
        """The capture thread of `camera` (started at the first use), at the hardware config's capture mode."""
        from robotlearn.hardware.cameras import OpenCVCamera

        if camera not in self._cameras:
            if camera not in self._camera_sources:
                raise KeyError(f"real arm: no source for camera {camera!r}; pass camera_sources={{name: url}}")
            mode = self.hw.cameras.get(camera)
            self._cameras[camera] = OpenCVCamera(camera, self._camera_sources[camera],
                                                 width=mode.width if mode else None,
                                                 height=mode.height if mode else None,
                                                 max_age_s=self._camera_max_age).start()
        return self._cameras[camera]

    def render(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        import cv2

        cam = self.spec.camera(camera)
        image = self._camera(camera).latest().image
        width, height = size or (cam.width, cam.height)
        if image.shape[:2] != (height, width):
            return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        # The capture thread hands the same frame to every reader until a new one arrives: each
        # observation gets its own pixels, so a user editing one cannot change another.
        return image.copy()

    def torque(self, enable: bool) -> None:
        """Torque on/off for every servo (off: the arm goes limp; the loop keeps reading)."""
        self.bus.set_torque(enable)

    def estop(self) -> None:
        self.loop.estop()

    def _shutdown(self) -> None:
        perception = getattr(self, "_perception", None)
        if perception is not None:
            perception.close()  # before the cameras and the loop its gripper callback reads
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.stop()
        for cam in self._cameras.values():
            cam.close()
        self._cameras.clear()
        bus = getattr(self, "bus", None)
        if bus is not None and hasattr(bus, "close"):
            bus.close()
        self._cpu_latency.release()

    def close(self) -> None:
        """Stop the loop (the compiled loop turns torque off on stop), close cameras and the port. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._shutdown()

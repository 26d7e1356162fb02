"""The emulated arm: a servo bus on a pty, a physics sim behind it in real time, cameras over HTTP.

`ArmEmulator` is what `robotlearn emulate arm --link /tmp/rl-arm0` runs. The host side cannot tell it
from a USB-serial adapter with a chain of servos: it speaks Dynamixel Protocol 2.0 or Feetech STS on a
pseudo-terminal, answers after the servo's return delay plus the time the bytes would occupy a real
wire at the configured baud, and moves an arm simulated in MuJoCo (default) or PyBullet with a hidden
reality gap (emulators/reality_gap.py).

The device side is compiled (`_rt.ServoEmulator`, drivers/src/emu_*.cpp): one real-time thread
(SCHED_FIFO when granted) decodes instructions (a reader thread takes them off the pty master), answers from the register bank
on the wire schedule, runs the servo model (calibration, torque and mode rules, latency, backlash,
encoder noise, packet corruption) and, for MuJoCo, steps the physics tick by tick on wall-clock
deadlines through the same compiled stepper the sim backend uses. It never takes the GIL, so Python
work here (camera rendering, the side channel) cannot make a reply late. Python threads (all stopped
and joined by `close()`):
* cameras - MuJoCo: renders each camera at ``camera_fps`` from the device's state snapshot into a
  private mjData and publishes MJPEG;
* physics - PyBullet only (its API is Python): steps the sim each servo period, exchanging joint
  targets and state with the compiled servo model (`targets()` / `feedback()`), and renders cameras;
  the bus is still answered by the compiled thread;
* side channel - a localhost UDP JSON endpoint that exposes the *emulator's ground truth* (scene object
  poses) and lets a test or the real backend place scene objects or hold the limp arm in a pose,
  standing in for a perception system and for the person who resets the table or calibrates the arm.
  Real hardware has no such thing; the real backend uses it only when its config says ``emulator: true``.
  It edits the sim with physics paused (bus replies continue meanwhile).

When ready, the emulator writes ``<link>.json`` (pty path, camera URLs, side-channel address) next to
the link and refreshes its ``timing`` entry (reply latency, physics lag) every second; the real backend
and tests read it. Both files are removed on close.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pty
import socket
import sys
import termios
import threading
import time
import traceback
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn import _rt
from robotlearn.backends import make_backend
from robotlearn.core.cpu_latency import CpuLatencyRequest
from robotlearn.core.machine import MachineSample
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.emulators.mjpeg import MjpegServer
from robotlearn.emulators.reality_gap import GapWorkdir, RealityGapConfig
from robotlearn.emulators.servo_bus import POSITION_MODES, baud_code, make_device
from robotlearn.hardware.calibration import ArmHardwareConfig, check_against_spec
from robotlearn.hardware.scene_oracle import info_path
from robotlearn.hardware.servo_tables import load_servo_table
from robotlearn.sim.physical import apply_arm_params


class ArmEmulator:
    """Servo-bus arm emulator. `start()` opens everything; `close()` stops and removes everything."""

    def __init__(self, hw: ArmHardwareConfig, link: str | Path, sim: str = "mujoco",
                 gap: RealityGapConfig | None = None, cameras: tuple[str, ...] | None = None,
                 camera_fps: float = 10.0, mjpeg_port: int = 0, physics_rate_hz: float = 500.0,
                 realtime: bool = True, lock_memory: bool = False):
        self.hw, self.link, self.gap = hw, Path(link), gap or RealityGapConfig()
        self.table = load_servo_table(hw.servo_model)
        if self.table.protocol != hw.protocol:
            raise ValueError(f"servo model {hw.servo_model!r} speaks {self.table.protocol}, config says {hw.protocol}")
        self._eeprom = {"baud_rate": baud_code(hw.protocol, hw.baud), "return_delay_time": hw.return_delay_us // 2,
                        "return_delay": hw.return_delay_us // 2}
        nominal = load_robot_spec(hw.robot, [f"control_hz={physics_rate_hz}"])
        check_against_spec(hw.calibration, nominal)
        self._workdir = GapWorkdir()
        self.spec = apply_arm_params(nominal, self.gap, self._workdir.path)
        self.backend = make_backend(self.spec, sim)
        model = getattr(self.backend, "model", None)
        if model is not None and hasattr(model, "vis"):
            # a webcam frame has no anti-aliasing, and software GL pays 3-10x for MSAA at a 480 px capture
            # (MuJoCo reads this when its renderer is first made)
            model.vis.quality.offsamples = 0
        self.cameras = tuple(c.name for c in self.spec.cameras) if cameras is None else tuple(cameras)
        for cam in self.cameras:
            self.spec.camera(cam)
        self.camera_fps = camera_fps
        self.period = 1.0 / physics_rate_hz
        self._realtime, self._lock_memory = realtime, lock_memory
        # a real servo answers from its own board; the emulated one shares the host's CPUs, whose halted
        # idle vCPUs took 0.3-10 ms to wake for a request: it holds the config's request too (core/cpu_latency.py)
        self._cpu_latency = CpuLatencyRequest(hw.cpu_latency_us if realtime else None)
        self._cal = hw.calibration.servos
        self._ids = [s.servo_id for s in self._cal]
        # MuJoCo is stepped from the compiled thread; a sim without a compiled stepper from Python.
        self._compiled = getattr(self.backend, "compiled_stepper", None)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._mjpeg = MjpegServer(port=mjpeg_port) if self.cameras else None
        self._sock: socket.socket | None = None
        self._master = self._slave = -1
        self.device: _rt.ServoEmulator | None = None
        self.error: str | None = None  # set when a thread crashed
        self._warm = threading.Event()  # set once the first frames are rendered (GL set up): then announce
        self._sim_lock = threading.Lock()  # PyBullet: held by the physics thread while it steps
        self._info: dict[str, Any] = {}
        self._frames = 0
        self._py_lag = LagStats()  # PyBullet physics lag, measured in Python
        self._final: dict[str, Any] | None = None
        self._machine = MachineSample()  # steal since start: what the hypervisor took from the timing below

    def _servo_model(self, q0: np.ndarray) -> _rt.ServoModelConfig:
        """Mounting (calibration) and the hidden servo/wire gap, in the compiled servo model's terms."""
        names = self.spec.joint_names
        m = _rt.ServoModelConfig()
        m.n_joints = len(names)
        m.servo_joint = [names.index(s.joint) for s in self._cal]
        m.mirrors = [(names.index(dst), names.index(src)) for dst, src in self.hw.calibration.mirrored_joints.items()]
        m.lower, m.upper = self.spec.lower.tolist(), self.spec.upper.tolist()
        m.offset = [float(c.offset) for c in self._cal]
        m.sign = [float(c.sign) for c in self._cal]
        m.ticks_per_unit = [float(c.ticks_per_unit) for c in self._cal]
        m.position_modes = list(POSITION_MODES[self.hw.protocol])
        m.resolution, m.velocity_unit_rad_s = self.table.resolution, self.table.velocity_unit_rad_s
        # Backlash and encoder noise live at the servo shaft (rad); in joint units they scale with the gearing.
        shaft = [self.table.resolution / (2 * np.pi) / c.ticks_per_unit for c in self._cal]
        m.latency_s = self.gap.latency_s
        m.backlash = [self.gap.backlash * s for s in shaft]
        noise = np.zeros(len(names))
        noise[m.servo_joint] = np.array(shaft) * self.gap.position_noise
        m.noise_std = noise.tolist()
        if self.table.effort_register is not None:  # present current/load: servo torque through the torque constant
            unit = float(self.table.effort_unit_nm)
            m.effort_register = self.table.effort_register
            m.effort_scale = [unit / s for s in shaft]  # joint torque (N m, or N at a finger) per register unit
            m.effort_noise = [self.gap.effort_noise / unit] * len(shaft)
            reg = self.table.register(self.table.effort_register)
            m.effort_max_raw = float(2 ** (reg.sign_bit if reg.sign_bit is not None else 8 * reg.size - 1) - 1)
        m.seed = self.gap.seed
        return m

    def _eeprom_settings(self, servo: int) -> dict[str, int]:
        """EEPROM as the user configured it: baud, return delay, position limits from the calibration."""
        cal, j = self._cal[servo], self.spec.joint_names.index(self._cal[servo].joint)
        raw = sorted((float(cal.to_raw(self.spec.lower[j])), float(cal.to_raw(self.spec.upper[j]))))
        return {**self._eeprom, "min_position_limit": max(0, int(raw[0])),
                "max_position_limit": min(self.table.resolution - 1, int(raw[1]))}

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> ArmEmulator:
        info_path(self.link).unlink(missing_ok=True)  # never let a host read a previous run's announcement
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave, termios.TCSANOW)
        slave_name = os.ttyname(self._slave)
        state = self.backend.read()
        q0, qd0 = state["joint_pos"], state["joint_vel"]
        physics = _rt.EmulatorPhysics.MUJOCO if self._compiled else _rt.EmulatorPhysics.EXTERNAL
        self._cpu_latency.acquire()
        self.device = make_device(self.table, self._ids, self._master, self._servo_model(q0), physics,
                                  self.spec.physics_hz, settings=[self._eeprom_settings(k) for k in range(len(self._ids))],
                                  ticks_per_update=self.spec.ticks_per_step, realtime=self._realtime,
                                  lock_memory=self._lock_memory)
        if self.gap.packet_corruption:
            self.device.set_corruption(self.gap.packet_corruption, self.gap.seed)
        if self._compiled:
            self.device.attach_mujoco(**self._compiled())
        self.device.set_initial(q0, qd0)
        if self.link.is_symlink() or self.link.exists():
            self.link.unlink()
        self.link.symlink_to(slave_name)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._info = {"pid": os.getpid(), "pty": slave_name, "protocol": self.hw.protocol, "ids": self._ids,
                      "sim": self.backend.name, "side_channel": list(self._sock.getsockname()), "cameras": {}}
        if self._mjpeg is not None:
            for cam in self.cameras:
                self._mjpeg.add_stream(cam)
                self._info["cameras"][cam] = self._mjpeg.url(cam)
            self._mjpeg.start()
        threads = [("side-channel", self._side_channel_loop)]
        if not self._compiled:
            threads.append(("physics", self._physics_loop))
        elif self.cameras:
            threads.append(("cameras", self._camera_loop))
        else:
            self._warm.set()
        self.device.start()
        for name, target in threads:
            t = threading.Thread(target=self._guard, args=(name, target), name=f"emulator-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        if not self._warm.wait(60.0) or self.error:
            self.close()
            raise RuntimeError(self.error or "emulator did not warm up within 60 s")
        self._announce()
        return self

    def _announce(self) -> None:
        tmp = info_path(self.link).with_suffix(".tmp")
        tmp.write_text(json.dumps({**self._info, "timing": self.timing()}))
        tmp.replace(info_path(self.link))

    def close(self) -> None:
        """Stop every thread, close the pty (the host sees the device vanish), remove link and info file."""
        self._stop.set()
        if self.device is not None:
            self.device.stop()
            self._final = self.stats
        for t in self._threads:
            t.join(timeout=5.0)
        self._threads.clear()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self._mjpeg is not None:
            self._mjpeg.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for path in (info_path(self.link), self.link):
            if path.is_symlink() or path.exists():
                path.unlink()
        self.backend.close()
        self._workdir.close()
        self._cpu_latency.release()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until `stop()` (or a signal handler calling it) or `timeout_s`; True if stopped."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._stop.wait(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))):
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def stop(self) -> None:
        self._stop.set()

    def freeze_camera(self, name: str, frozen: bool = True) -> None:
        if self._mjpeg is not None:
            self._mjpeg.freeze(name, frozen)

    # -- reporting -------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        """Counters and timing of the device (the compiled thread's, or the final ones after close)."""
        if self.device is None:
            return {}
        if self._final is not None:
            return self._final
        s = dict(self.device.stats())
        s["frames"] = self._frames
        if not self._compiled:  # PyBullet: the physics thread is Python's
            s["physics_lag"] = self._py_lag.summary()
            s["physics_steps"], s["physics_late"] = self._py_lag.count, self._py_lag.late
            s["physics_time_s"] = self._py_lag.count * self.period
            s["wall_time_s"], s["resync_time_s"] = self._py_lag.wall_s(), self._py_lag.resync_s
        s["physics_overruns"] = s["physics_late"]
        return s

    def timing(self) -> dict[str, Any]:
        """Reply latency (instruction read -> reply written; includes the emulated wire time) and
        physics lag (tick done -> its wall-clock deadline), as the announcement and the CLI report them."""
        s = self.stats
        if not s:
            return {}
        return {"reply_latency_us": s["reply_latency"], "reply_lateness_us": s["reply_lateness"],
                "physics_lag_us": s["physics_lag"], "physics_work_us": s.get("physics_work", {}),
                "wait_excess_us": s.get("wait_excess", {}), "serve_work_us": s.get("serve_work", {}), "physics_tick_s": 1.0 / self.spec.physics_hz,
                "physics_late": s["physics_late"], "physics_steps": s["physics_steps"],
                "physics_resyncs": s["physics_resyncs"], "sched_fifo": s["sched_fifo"], "mlockall": s["mlockall"],
                "cpu_latency_request": self._cpu_latency.describe(),
                "wall_time_s": s["wall_time_s"], "physics_time_s": s["physics_time_s"],
                "resync_time_s": s["resync_time_s"], **_thread_counters(s["tid"]),
                "steal_fraction": self._machine.steal_so_far(),
                "baud": self.device.baud}

    def timing_line(self) -> str:
        t = self.timing()
        r, lag = t["reply_latency_us"], t["physics_lag_us"]
        return (f"emulator timing: reply p50 {r['p50_us']:.0f} us p99 {r['p99_us']:.0f} us max {r['max_us']:.0f} us "
                f"({r['count']} replies, lateness p99 {t['reply_lateness_us']['p99_us']:.0f} us); physics lag p99 "
                f"{lag['p99_us']:.0f} us max {lag['max_us']:.0f} us, {t['physics_late']}/{t['physics_steps']} ticks "
                f"late, {t['physics_resyncs']} resyncs; sched_fifo {t['sched_fifo']}; {t['cpu_latency_request']}; the hypervisor stole "
                f"{100 * t['steal_fraction']:.1f} % of the CPU time")

    # -- threads ---------------------------------------------------------------------------------
    def _guard(self, name: str, target) -> None:
        """Run a thread body; a crash stops the whole device (as a dead board would) and is reported."""
        try:
            target()
        except Exception:  # noqa: BLE001 - reported, then the emulator stops
            self.error = f"{name} thread crashed:\n{traceback.format_exc()}"
            print(f"emulator: {self.error}", file=sys.stderr, flush=True)
            self._stop.set()
            self._warm.set()

    @contextlib.contextmanager
    def _sim_paused(self) -> Iterator[None]:
        """Exclusive access to the sim: the compiled thread skips physics ticks (and keeps answering the
        bus) or the PyBullet thread waits, while the side channel edits the scene."""
        if self._compiled:
            self.device.lock_physics()
            try:
                yield
            finally:
                self.device.unlock_physics()
        else:
            with self._sim_lock:
                yield

    def _stream_size(self, camera: str) -> tuple[int, int] | None:
        """The capture mode the hardware config gives the camera (None: the spec's image size)."""
        mode = self.hw.cameras.get(camera)
        return (mode.width, mode.height) if mode is not None else None

    def _publish_frames(self, render) -> None:
        for cam in self.cameras:
            self._mjpeg.publish(cam, render(cam, self._stream_size(cam)))
        self._frames += 1

    def _camera_loop(self) -> None:
        """MuJoCo: render from the device's state snapshot at the camera rate, never touching the stepped sim."""
        next_frame = time.monotonic()
        while not self._stop.is_set():
            qpos, _ = self.device.snapshot()
            self._publish_frames(lambda cam, size, qpos=qpos: self.backend.render_qpos(cam, qpos, size))
            self._warm.set()  # GL context made: hosts may connect
            next_frame += 1.0 / self.camera_fps
            now = time.monotonic()
            if next_frame < now:
                next_frame = now + 1.0 / self.camera_fps
            self._stop.wait(next_frame - now)

    def _physics_loop(self) -> None:
        """PyBullet: one servo period per iteration; targets and sensing go through the compiled servo model."""
        if self.cameras:  # first frames before hosts connect
            self._publish_frames(self.backend.render)
        self._warm.set()
        t0 = next_t = time.monotonic()
        next_frame = next_t
        while not self._stop.is_set():
            with self._sim_lock:
                target = self.device.targets(next_t - t0)
                self.backend.command(target)
                self.backend.advance()
                state = self.backend.read()
                self.device.feedback(next_t - t0 + self.period, state["joint_pos"], state["joint_vel"],
                                     state.get("joint_effort"))
                now = time.monotonic()
                if self.cameras and now >= next_frame:
                    self._publish_frames(self.backend.render)
                    next_frame = max(next_frame + 1.0 / self.camera_fps, now)
            self._py_lag.add(time.monotonic() - next_t, self.period)
            next_t += self.period
            pause = next_t - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)
            elif pause < -0.1:  # far behind (VM pause): resynchronize instead of racing to catch up
                self._py_lag.resync_s += -pause
                next_t = time.monotonic()

    def _side_channel_loop(self) -> None:
        assert self._sock is not None
        next_announce = time.monotonic() + 1.0
        while not self._stop.is_set():
            if time.monotonic() >= next_announce:
                s = self.device.stats()
                if s["thread_error"]:  # the compiled device thread died: stop, as a dead board would
                    self.error = f"device thread crashed: {s['thread_error']}"
                    print(f"emulator: {self.error}", file=sys.stderr, flush=True)
                    self._stop.set()
                self._announce()
                next_announce += 1.0
            try:
                data, addr = self._sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            try:
                request = json.loads(data)
            except ValueError as err:
                request = f"bad request: {err}"
            if not isinstance(request, dict):
                reply = {"error": request if isinstance(request, str) else "bad request: not a JSON object"}
            else:
                try:
                    reply = self._handle(request)
                except (KeyError, ValueError, TypeError, RuntimeError) as err:
                    reply = {"error": f"{type(err).__name__}: {err}"}
            self._sock.sendto(json.dumps(reply).encode(), addr)

    def _handle(self, request: dict) -> dict:
        op = request.get("op")
        n = len(self.spec.joints)
        if op == "object_pose":
            if self._compiled:  # from the device's snapshot: the stepping thread is never held up
                pos, quat = self.backend.object_pose(str(request["name"]), self.device.snapshot()[0])
            else:
                with self._sim_paused():
                    pos, quat = self.backend.object_pose(str(request["name"]))
            return {"pos": pos.tolist(), "quat": quat.tolist()}
        if op == "place":
            # The person resetting the table: scene keys only; the arm stays where it is.
            scene = {k: np.asarray(v, dtype=np.float64) for k, v in request["scene"].items()
                     if k.startswith(("object/", "marker/"))}
            with self._sim_paused():
                q = self.backend.read()["joint_pos"]
                self.backend.reset(np.random.default_rng(0), {"joint_pos": q, **scene})
            return {"ok": True}
        if op == "hold":
            # The person who holds the limp arm in a pose (calibration); null lets go.
            pose = request.get("joint_pos")
            self.device.set_hold(None if pose is None else np.clip(
                np.asarray(pose, dtype=np.float64).reshape(n), self.spec.lower, self.spec.upper))
            return {"ok": True}
        if op == "stats":
            return {**self.stats, "sim_target": self.device.last_target().tolist(),
                    "sim_joint_pos": self.device.joint_positions().tolist()}
        if op == "registers":
            names = request.get("names", ["torque_enable", "goal_position", "present_position"])
            return {str(i): {str(name): self.device.get(i, str(name)) for name in names if self.device.has(str(name))}
                    for i in self._ids}
        if op == "freeze_camera":
            self.freeze_camera(str(request["name"]), bool(request.get("frozen", True)))
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}; ops: object_pose, place, hold, stats, registers, freeze_camera")


def _thread_counters(tid: int) -> dict[str, int]:
    """Page faults and involuntary switches of the device thread (why a real-time thread was late)."""
    try:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/self/task/{tid}/status").read_text()
    except OSError:
        return {}
    nonvol = next((int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("nonvoluntary_ctxt")), -1)
    return {"device_minor_faults": int(stat[7]), "device_major_faults": int(stat[9]),
            "device_involuntary_switches": nonvol}


class LagStats:
    """Physics lag of a Python-stepped sim: tick done minus its deadline (count, late, quantiles)."""

    def __init__(self, keep: int = 20000):
        self._lags: collections.deque[float] = collections.deque(maxlen=keep)
        self.count = self.late = 0
        self.resync_s = 0.0
        self._start: float | None = None

    def wall_s(self) -> float:
        return 0.0 if self._start is None else time.monotonic() - self._start

    def add(self, lag_s: float, period_s: float) -> None:
        if self._start is None:
            self._start = time.monotonic() - period_s - lag_s
        self._lags.append(lag_s)
        self.count += 1
        self.late += lag_s > period_s

    def summary(self) -> dict[str, float]:
        lags = np.array(self._lags) * 1e6 if self._lags else np.zeros(1)
        return {"count": self.count, "p50_us": float(np.percentile(lags, 50)), "p99_us": float(np.percentile(lags, 99)),
                "p999_us": float(np.percentile(lags, 99.9)), "max_us": float(lags.max()), "mean_us": float(lags.mean())}

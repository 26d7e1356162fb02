"""The emulated arm: a servo bus on a pty, a physics sim behind it in real time, cameras over HTTP.

`ArmEmulator` is what `robotlearn emulate arm --link /tmp/rl-arm0` runs. The host side cannot tell it
from a USB-serial adapter with a chain of servos: it speaks Dynamixel Protocol 2.0 or Feetech STS on a
pseudo-terminal, answers after the servo's return delay plus the time the bytes would occupy a real
wire at the configured baud, and moves an arm simulated in MuJoCo (default) or PyBullet with a hidden
reality gap (emulators/reality_gap.py).

Threads (all stopped and joined by `close()`):
* bus     - reads the pty, decodes requests, answers (optionally corrupting a status packet);
* physics - steps the sim in real time at ``physics_rate_hz`` control periods: servo goals -> sim
  targets, sim state -> present_* registers; renders cameras at ``camera_fps`` and publishes MJPEG;
  serves side-channel requests (MuJoCo is single-threaded, so only this thread touches the sim);
* side channel - a localhost UDP JSON endpoint that exposes the *emulator's ground truth* (scene object
  poses) and lets a test or the real backend place scene objects or hold the limp arm in a pose,
  standing in for a perception system and for the person who resets the table or calibrates the arm. Real hardware has no such thing; the real backend uses it
  only when its config says ``emulator: true``.

When ready, the emulator writes ``<link>.json`` (pty path, camera URLs, side-channel address) next to
the link; the real backend and tests read it. Both files are removed on close.
"""

from __future__ import annotations

import json
import os
import pty
import queue
import select
import socket
import sys
import termios
import threading
import time
import traceback
import tty
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn.backends import make_backend
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.emulators.mjpeg import MjpegServer
from robotlearn.emulators.reality_gap import (
    Backlash,
    DelayLine,
    GapWorkdir,
    RealityGapConfig,
    corrupt,
)
from robotlearn.emulators.servo_bus import BAUD_RATES, Servo, ServoBusDevice
from robotlearn.hardware.calibration import ArmHardwareConfig, check_against_spec
from robotlearn.hardware.scene_oracle import info_path
from robotlearn.hardware.servo_tables import load_servo_table
from robotlearn.sim.physical import apply_arm_params


class ArmEmulator:
    """Servo-bus arm emulator. `start()` opens everything; `close()` stops and removes everything."""

    def __init__(self, hw: ArmHardwareConfig, link: str | Path, sim: str = "mujoco",
                 gap: RealityGapConfig | None = None, cameras: tuple[str, ...] | None = None,
                 camera_fps: float = 10.0, mjpeg_port: int = 0, physics_rate_hz: float = 100.0):
        self.hw, self.link, self.gap = hw, Path(link), gap or RealityGapConfig()
        self.table = load_servo_table(hw.servo_model)
        if self.table.protocol != hw.protocol:
            raise ValueError(f"servo model {hw.servo_model!r} speaks {self.table.protocol}, config says {hw.protocol}")
        nominal = load_robot_spec(hw.robot, [f"control_hz={physics_rate_hz}"])
        check_against_spec(hw.calibration, nominal)
        self._workdir = GapWorkdir()
        self.spec = apply_arm_params(nominal, self.gap, self._workdir.path)
        self.backend = make_backend(self.spec, sim)
        self.cameras = tuple(c.name for c in self.spec.cameras) if cameras is None else tuple(cameras)
        for cam in self.cameras:
            self.spec.camera(cam)
        self.camera_fps = camera_fps
        self.period = 1.0 / physics_rate_hz
        cal = hw.calibration.servos
        self._cal = cal
        self._servo_joint = [self.spec.joint_names.index(s.joint) for s in cal]
        self._mirrors = [(self.spec.joint_names.index(dst), self.spec.joint_names.index(src))
                         for dst, src in hw.calibration.mirrored_joints.items()]
        self.device = ServoBusDevice(self.table, [s.servo_id for s in cal], on_write=self._on_write)
        self._init_eeprom()
        self._rng = np.random.default_rng(self.gap.seed)
        self._lock = threading.Lock()  # guards self.device (bus thread vs physics thread)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._requests: queue.Queue[tuple[dict, Any]] = queue.Queue()
        self._mjpeg = MjpegServer(port=mjpeg_port) if self.cameras else None
        self._sock: socket.socket | None = None
        self._master = self._slave = -1
        self._last_target = np.zeros(len(self.spec.joints))
        self.error: str | None = None  # set when a thread crashed
        self._warm = threading.Event()  # set once the first frames are rendered (GL set up): then announce
        self._held: np.ndarray | None = None  # pose a (emulated) person holds the limp arm in
        self._wake_r, self._wake_w = os.pipe()  # wakes the bus thread at close, so the pty hangs up at once
        q0 = self.backend.read()["joint_pos"]
        self._goal_si = q0[self._servo_joint].copy()
        # Backlash and encoder noise live at the servo shaft (rad); in joint units they scale with the gearing.
        shaft = np.array([self.table.resolution / (2 * np.pi) / c.ticks_per_unit for c in cal])
        self._backlash = Backlash(self.gap.backlash * shaft, self._goal_si)
        self._noise_std = np.zeros(len(self.spec.joints))
        self._noise_std[self._servo_joint] = self.gap.position_noise * shaft
        self._goal_delay = DelayLine(self.gap.latency_s)
        self._sense_delay = DelayLine(self.gap.latency_s)
        self.stats = {"corrupted_replies": 0, "physics_overruns": 0, "physics_steps": 0, "frames": 0}
        self._write_present(q0, np.zeros_like(q0))

    # -- servo memory ------------------------------------------------------------------------------
    def _init_eeprom(self) -> None:
        """EEPROM as the user configured it: baud, return delay, position limits from the calibration."""
        codes = {bps: code for code, bps in BAUD_RATES[self.hw.protocol].items()}
        code = codes.get(self.hw.baud)
        if code is None:
            raise ValueError(f"{self.hw.protocol} servos do not support baud {self.hw.baud}; supported: {sorted(codes)}")
        lower, upper = self.spec.lower, self.spec.upper
        for servo, cal, j in zip(self.device.servos.values(), self._cal, self._servo_joint, strict=True):
            servo.set("baud_rate", code)
            servo.set("return_delay_time", self.hw.return_delay_us // 2)
            servo.set("return_delay", self.hw.return_delay_us // 2)
            raw = sorted((float(cal.to_raw(lower[j])), float(cal.to_raw(upper[j]))))
            servo.set("min_position_limit", max(0, int(raw[0])))
            servo.set("max_position_limit", min(self.table.resolution - 1, int(raw[1])))

    def _on_write(self, servo: Servo, addr: int, size: int) -> None:
        torque = self.table.registers.get("torque_enable")
        if torque is not None and addr <= torque.addr < addr + size and servo.get("torque_enable"):
            # Torque on: the servo holds where it is, so the goal register starts at the present position.
            servo.set("goal_position", servo.get("present_position"))

    def _write_present(self, q: np.ndarray, qd: np.ndarray) -> None:
        vel_unit = self.table.velocity_unit_rad_s
        for servo, cal, j in zip(self.device.servos.values(), self._cal, self._servo_joint, strict=True):
            raw = int(round(float(cal.to_raw(q[j]))))
            servo.set("present_position", max(0, min(self.table.resolution - 1, raw)))
            ticks_per_s = cal.sign * qd[j] * cal.ticks_per_unit
            servo.set("present_velocity", int(round(ticks_per_s * (2 * np.pi / self.table.resolution) / vel_unit)))
            servo.set("moving", int(abs(qd[j]) > 0.01))

    def _read_goals(self, q_now: np.ndarray) -> np.ndarray:
        """Servo goals in SI; a servo with torque off (or not in position mode) follows the arm (limp),
        unless the emulated person holds the arm (side-channel op "hold"), as during calibration."""
        goals = np.empty(len(self._cal))
        for k, (servo, cal, j) in enumerate(zip(self.device.servos.values(), self._cal, self._servo_joint,
                                                strict=True)):
            position_modes = (3, 4) if self.hw.protocol == "dynamixel2" else (0,)  # position / extended position
            position_mode = not servo.has("operating_mode") or servo.get("operating_mode") in position_modes
            if servo.get("torque_enable") and position_mode:
                raw = servo.get("goal_position", signed=True)
                if servo.has("min_position_limit") and servo.has("max_position_limit"):
                    raw = min(max(raw, servo.get("min_position_limit")), servo.get("max_position_limit"))
                goals[k] = float(cal.to_si(raw))
            else:
                goals[k] = q_now[j] if self._held is None else self._held[j]
        return goals

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> ArmEmulator:
        # A servo answers within microseconds; the bus thread must not wait the default 5 ms GIL switch
        # interval behind the physics thread, or the host sees timeouts that real servos never cause.
        sys.setswitchinterval(2e-4)
        info_path(self.link).unlink(missing_ok=True)  # never let a host read a previous run's announcement
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave, termios.TCSANOW)
        slave_name = os.ttyname(self._slave)
        if self.link.is_symlink() or self.link.exists():
            self.link.unlink()
        self.link.symlink_to(slave_name)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        info: dict[str, Any] = {"pid": os.getpid(), "pty": slave_name, "protocol": self.hw.protocol,
                                "ids": list(self.device.servos), "sim": self.backend.name,
                                "side_channel": list(self._sock.getsockname()), "cameras": {}}
        if self._mjpeg is not None:
            for cam in self.cameras:
                self._mjpeg.add_stream(cam)
                info["cameras"][cam] = self._mjpeg.url(cam)
            self._mjpeg.start()
        for name, target in (("bus", self._bus_loop), ("physics", self._physics_loop),
                             ("side-channel", self._side_channel_loop)):
            t = threading.Thread(target=self._guard, args=(name, target), name=f"emulator-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        if not self._warm.wait(60.0) or self.error:
            raise RuntimeError(self.error or "emulator physics thread did not start within 60 s")
        tmp = info_path(self.link).with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(info_path(self.link))
        return self

    def close(self) -> None:
        """Stop every thread, close the pty (the host sees the device vanish), remove link and info file."""
        self._stop.set()
        os.write(self._wake_w, b"x")
        for t in self._threads:  # the bus thread goes first and closes the pty on its way out
            t.join(timeout=5.0)
        self._threads.clear()
        self._hang_up()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1
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

    def _guard(self, name: str, target) -> None:
        """Run a thread body; a crash stops the whole device (as a dead board would) and is reported."""
        try:
            target()
        except Exception:  # noqa: BLE001 - reported, then the emulator stops
            self.error = f"{name} thread crashed:\n{traceback.format_exc()}"
            print(f"emulator: {self.error}", file=sys.stderr, flush=True)
            self._stop.set()
            self._warm.set()

    def _hang_up(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    # -- threads ---------------------------------------------------------------------------------
    def _bus_loop(self) -> None:
        try:
            self._serve_bus()
        finally:
            self._hang_up()

    def _serve_bus(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master, self._wake_r], [], [], 0.5)
            if self._master not in ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:  # no host has the slave open right now
                time.sleep(0.01)
                continue
            t_rx = time.monotonic()
            with self._lock:
                exchanges = list(self.device.feed(data))
                delay = self.device.return_delay_s()
                wire = self.device.wire_time
            for req, reply in exchanges:
                t_rx += wire(req.nbytes)
                if not reply:
                    continue
                if self.gap.packet_corruption and self._rng.random() < self.gap.packet_corruption:
                    reply = corrupt(reply, self._rng)
                    self.stats["corrupted_replies"] += 1
                due = t_rx + delay + wire(len(reply))
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                try:
                    os.write(self._master, reply)
                except OSError:
                    break
                t_rx = max(due, time.monotonic())

    def _physics_loop(self) -> None:
        for cam in self.cameras:  # GL context creation holds the GIL for a while: do it before hosts connect
            self._mjpeg.publish(cam, self.backend.render(cam))
        self._warm.set()
        next_t = time.monotonic()
        next_frame = next_t
        while not self._stop.is_set():
            self._serve_requests()
            state = self.backend.read()
            q = state["joint_pos"]
            now = time.monotonic()
            with self._lock:
                goals = self._read_goals(q)
            goals = self._backlash(self._goal_delay(now, goals))
            target = q.copy()
            target[self._servo_joint] = goals
            for dst, src in self._mirrors:
                target[dst] = target[src]
            self._last_target = np.clip(target, self.spec.lower, self.spec.upper)
            self.backend.command(self._last_target)
            self.backend.advance()
            self.stats["physics_steps"] += 1
            state = self.backend.read()
            sensed = self._sense_delay(now, np.concatenate([state["joint_pos"], state["joint_vel"]]))
            n = len(q)
            q_meas = sensed[:n] + self._rng.normal(0.0, 1.0, n) * self._noise_std
            with self._lock:
                self._write_present(q_meas, sensed[n:])
            if self._mjpeg is not None and now >= next_frame:
                for cam in self.cameras:
                    self._mjpeg.publish(cam, self.backend.render(cam))
                self.stats["frames"] += 1
                next_frame += 1.0 / self.camera_fps
                if next_frame < now:
                    next_frame = now + 1.0 / self.camera_fps
            next_t += self.period
            pause = next_t - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)
            else:
                self.stats["physics_overruns"] += 1
                if pause < -0.1:  # far behind (VM pause): resynchronize instead of racing to catch up
                    next_t = time.monotonic()

    def _side_channel_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            try:
                request = json.loads(data)
                if not isinstance(request, dict):
                    raise ValueError("request must be a JSON object")
            except ValueError as err:
                self._reply({"error": f"bad request: {err}"}, addr)
                continue
            self._requests.put((request, addr))

    def _reply(self, message: dict, addr) -> None:
        if self._sock is not None:
            self._sock.sendto(json.dumps(message).encode(), addr)

    def _serve_requests(self) -> None:
        while True:
            try:
                request, addr = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                self._reply(self._handle(request), addr)
            except (KeyError, ValueError, TypeError) as err:
                self._reply({"error": f"{type(err).__name__}: {err}"}, addr)

    def _handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "object_pose":
            pos, quat = self.backend.object_pose(str(request["name"]))
            return {"pos": pos.tolist(), "quat": quat.tolist()}
        if op == "place":
            # The person resetting the table: scene keys only; the arm stays where it is.
            scene = {k: np.asarray(v, dtype=np.float64) for k, v in request["scene"].items()
                     if k.startswith(("object/", "marker/"))}
            q = self.backend.read()["joint_pos"]
            self.backend.reset(np.random.default_rng(0), {"joint_pos": q, **scene})
            return {"ok": True}
        if op == "hold":
            # The person who holds the limp arm in a pose (calibration); null lets go.
            pose = request.get("joint_pos")
            self._held = None if pose is None else np.clip(np.asarray(pose, dtype=np.float64).reshape(
                len(self.spec.joints)), self.spec.lower, self.spec.upper)
            return {"ok": True}
        if op == "stats":
            with self._lock:
                return {**self.stats, **self.device.counts, "sim_target": self._last_target.tolist(),
                        "sim_joint_pos": self.backend.read()["joint_pos"].tolist()}
        if op == "registers":
            names = request.get("names", ["torque_enable", "goal_position", "present_position"])
            with self._lock:
                return {str(i): {n: s.get(n, signed=True) for n in names if s.has(n)}
                        for i, s in self.device.servos.items()}
        if op == "freeze_camera":
            self.freeze_camera(str(request["name"]), bool(request.get("frozen", True)))
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}; ops: object_pose, place, hold, stats, registers, "
                         "freeze_camera")

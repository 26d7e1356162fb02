"""Leader-arm teleop: a second, passive arm on its own servo bus, read through the compiled driver and
mapped joint-to-joint onto the follower (the low-cost bimanual-rig way: the human moves the leader, the
follower copies its joint angles).

The leader is described by a hardware config (configs/hardware/*.yaml: protocol, baud, servo model,
calibration) exactly like a follower; its calibration maps raw ticks to the same SI joint angles, so no
per-rig mapping code is needed. Torque stays off so the leader can be moved by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robotlearn.teleop.base import TeleopDevice


class LeaderArmDevice(TeleopDevice):
    def __init__(self, env, port: str, config: str | Path = "arm6_emulated", timeout_ms: float | None = None):
        super().__init__(env)
        from robotlearn import _rt
        from robotlearn.hardware.calibration import check_against_spec, load_hardware_config
        from robotlearn.hardware.servo_tables import load_servo_table

        self.robot = env.unwrapped.robot
        spec = self.robot.spec
        self.hw = load_hardware_config(config)
        check_against_spec(self.hw.calibration, spec)
        table = load_servo_table(self.hw.servo_model)
        self.present = table.register("present_position")
        self.servos = list(self.hw.calibration.servos)
        self.joint_index = [spec.joint_names.index(s.joint) for s in self.servos]
        self.n_arm = self.robot.n_arm
        names = spec.joint_names
        self.mirrors = [(names.index(d), names.index(src)) for d, src in self.hw.calibration.mirrored_joints.items()]
        self.bus = _rt.ServoBus(port, self.hw.baud, self.hw.protocol, [s.servo_id for s in self.servos],
                                table.host_table(), timeout_ms or self.hw.timeout_ms)
        self.bus.set_torque(False)

    def read_joints(self) -> np.ndarray:
        """Leader joint positions in SI units, in the follower's joint order (mirrored fingers filled in)."""
        q = np.zeros(len(self.robot.spec.joints))
        for servo, j in zip(self.servos, self.joint_index, strict=True):
            raw = self.bus.read(servo.servo_id, self.present.addr, self.present.size)
            q[j] = servo.to_si(raw)
        for dst, src in self.mirrors:
            q[dst] = q[src]
        return q

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        q = self.read_joints()
        p = self.robot.p
        fingers = q[self.n_arm:]
        grip = 2.0 * float(np.mean(fingers)) / self.robot.finger_open - 1.0 if len(fingers) else 1.0
        if self.robot.action_mode == "joint_delta":
            arm = (q[: self.n_arm] - self.robot.joint_target) / p["max_joint_delta"]
            action = np.concatenate([arm, [grip]])
        else:
            pos, quat = self.robot.kin.forward(q[: self.n_arm])
            action = self.robot.action_toward(pos, self.robot.kin.tool_yaw(quat), grip, self.env.unwrapped.backend.read())
        return np.clip(action, self.action_space.low, self.action_space.high).astype(np.float32)

    def close(self) -> None:
        self.bus.close()

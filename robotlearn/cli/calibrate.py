"""Calibrate an arm's servo offsets (and optionally joint ranges), or a camera, and write a calibration YAML.

    robotlearn calibrate --port /dev/ttyUSB0 --config arm6_emulated --out calib/arm6.yaml
    robotlearn calibrate camera --source 0 --camera scene --out calib/scene.yaml   (see calibrate_camera.py)

Torque goes off; you hold the arm in its reference pose (every joint at 0 rad as drawn in the URDF,
gripper closed) and confirm; the raw positions read there become the offsets. With ``--range-seconds N``
you then move every joint through its full range for N seconds and the extremes become the limits.
Directions (sign) and gear ratios (ticks_per_unit) are kept from the config: they are design data,
not something a pose can reveal. Use the result with ``backend="real", calibration_file=<out>``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robotlearn.cli import calibrate_camera

    parser.add_argument("target", nargs="?", choices=("arm", "camera"), default="arm",
                        help="what to calibrate: the arm's servos (default) or a camera (ChArUco board)")
    parser.add_argument("--port", help="arm: serial device or emulator link (required)")
    parser.add_argument("--config", default="arm6_emulated", help="hardware config in configs/hardware")
    parser.add_argument("--out", help="calibration YAML to write (required)")
    parser.add_argument("--samples", type=int, default=20, help="readings averaged for the reference pose")
    parser.add_argument("--range-seconds", type=float, default=0.0,
                        help="record joint ranges for this long after the reference pose (0: keep URDF limits)")
    parser.add_argument("--yes", action="store_true", help="do not wait for Enter (the arm is already in pose)")
    calibrate_camera.add_arguments(parser.add_argument_group("camera"))


def _read_raw(bus, ids: list[int], addr: int, size: int) -> np.ndarray:
    values = []
    for sid in ids:
        raw = bus.read(sid, addr, size)
        if raw >= 1 << (8 * size - 1):  # two's complement (Dynamixel present_position is signed)
            raw -= 1 << (8 * size)
        values.append(raw)
    return np.array(values, dtype=np.float64)


def run(args: argparse.Namespace) -> int:
    if args.target == "camera":
        from robotlearn.cli import calibrate_camera

        return calibrate_camera.run(args)
    if not args.port or not args.out:
        raise ValueError("calibrate arm needs --port (serial device or emulator link) and --out")
    from robotlearn import _rt
    from robotlearn.core.robot_config import load_robot_spec
    from robotlearn.hardware.calibration import (
        calibrate_offsets,
        check_against_spec,
        load_hardware_config,
        save_calibration,
        with_recorded_limits,
    )
    from robotlearn.hardware.servo_tables import load_servo_table

    hw = load_hardware_config(args.config)
    spec = load_robot_spec(hw.robot)
    cal = hw.calibration
    check_against_spec(cal, spec)
    table = load_servo_table(hw.servo_model)
    present = table.register("present_position")
    ids = [s.servo_id for s in cal.servos]
    bus = _rt.ServoBus(args.port, hw.baud, hw.protocol, ids, table.host_table(), hw.timeout_ms)
    try:
        for sid in ids:
            bus.ping(sid)
        bus.set_torque(False)
        if not args.yes:
            input("Torque is off. Hold the arm in its reference pose (all joints 0, gripper closed), then press Enter: ")
        raw = np.mean([_read_raw(bus, ids, present.addr, present.size) for _ in range(max(1, args.samples))], axis=0)
        reference = np.zeros(len(ids))
        for k, s in enumerate(cal.servos):  # gripper closed = its finger joint's lower limit
            reference[k] = max(0.0, spec.joints[spec.joint_names.index(s.joint)].lower)
        cal = calibrate_offsets(cal, raw, reference)
        if args.range_seconds > 0:
            print(f"Move every joint through its full range for {args.range_seconds:.0f} s ...", flush=True)
            lo, hi = raw.copy(), raw.copy()
            deadline = time.monotonic() + args.range_seconds
            while time.monotonic() < deadline:
                now = _read_raw(bus, ids, present.addr, present.size)
                lo, hi = np.minimum(lo, now), np.maximum(hi, now)
            cal = with_recorded_limits(cal, lo, hi)
    finally:
        bus.close()
    save_calibration(cal, args.out)
    shifts = ", ".join(f"{s.joint}={s.offset:.0f}" for s in cal.servos)
    print(f"wrote {args.out}: offsets (ticks) {shifts}")
    return 0

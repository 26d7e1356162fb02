"""Emulated servo-bus arm on a pty (Dynamixel 2.0 or Feetech STS), physics behind it, MJPEG cameras.

    robotlearn emulate arm --link /tmp/rl-arm0 [--protocol feetech] [--sim pybullet] [--gap reality_gap]

Then drive it like hardware: ``gymnasium.make("robotlearn/ArmReach-v0", backend="real", port="/tmp/rl-arm0")``
or any servo tool (Dynamixel Wizard-style hosts, dynamixel-sdk) on the link. Stops on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys

from robotlearn.backends import backend_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link", default="/tmp/rl-arm0", help="symlink to create for the pty")
    parser.add_argument("--config", default=None,
                        help="hardware config in configs/hardware (default arm6_emulated, or arm6_emulated_feetech "
                             "with --protocol feetech)")
    parser.add_argument("--protocol", choices=("dynamixel2", "feetech"), default=None,
                        help="servo bus protocol (default: the config's; dynamixel2 without --config)")
    parser.add_argument("--sim", choices=[b for b in backend_names("arm") if b != "real"], default="mujoco")
    parser.add_argument("--gap", default="reality_gap",
                        help="reality-gap config in configs/hardware (reality_gap_none: nominal sim)")
    parser.add_argument("--gap-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="reality-gap overrides, e.g. packet_corruption=0.02")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="hardware-config overrides")
    parser.add_argument("--cameras", default="all", help="comma-separated camera names, 'all' or 'none'")
    parser.add_argument("--camera-fps", type=float, default=10.0)
    parser.add_argument("--mjpeg-port", type=int, default=0, help="HTTP port for camera streams (0: any free)")
    parser.add_argument("--physics-rate", type=float, default=500.0,
                        help="servo updates per second: goals are sampled and present_* registers refreshed at this "
                             "rate (a divisor of the robot's physics_hz; physics itself steps every physics tick)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run until killed)")


def run(args: argparse.Namespace) -> int:
    from robotlearn.emulators.arm import ArmEmulator
    from robotlearn.emulators.reality_gap import load_reality_gap
    from robotlearn.hardware.calibration import load_hardware_config
    from robotlearn.hardware.scene_oracle import read_emulator_info

    config = args.config or ("arm6_emulated_feetech" if args.protocol == "feetech" else "arm6_emulated")
    hw = load_hardware_config(config, args.set)
    if args.protocol is not None and hw.protocol != args.protocol:
        raise ValueError(f"config {config!r} is a {hw.protocol} bus but --protocol {args.protocol} was given")
    gap = load_reality_gap(args.gap, args.gap_set)
    if args.cameras == "all":
        cameras = None
    elif args.cameras == "none":
        cameras = ()
    else:
        cameras = tuple(c for c in args.cameras.split(",") if c)
    emulator = ArmEmulator(hw, args.link, sim=args.sim, gap=gap, cameras=cameras, camera_fps=args.camera_fps,
                           mjpeg_port=args.mjpeg_port, physics_rate_hz=args.physics_rate, lock_memory=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: emulator.stop())
    try:
        emulator.start()
        info = read_emulator_info(args.link)
        print(f"emulated {hw.protocol} arm ({args.sim}, gap {args.gap}) on {args.link} -> {info['pty']}; "
              f"ids {info['ids']}; cameras {info['cameras'] or 'off'}", flush=True)
        emulator.wait(args.duration if args.duration > 0 else None)
    finally:
        emulator.close()
        if emulator.stats:
            print(emulator.timing_line(), file=sys.stderr, flush=True)
            print(f"emulator stopped: {emulator.stats}", file=sys.stderr, flush=True)
    return 1 if emulator.error else 0

"""Emulated PX4-style quadrotor speaking MAVLink (UDP or serial), backed by the physics sim.

    robotlearn emulate quadrotor --mavlink udpout:127.0.0.1:14550
    robotlearn emulate quadrotor --mavlink udpin:0.0.0.0:14540 --robot iris --gap quad_gap wind=[1,0,0]
    robotlearn emulate quadrotor --mavlink /dev/ttyUSB0 --baud 921600
    robotlearn emulate quadrotor --mavlink pty     # serial over a pseudo-terminal; prints its path

The endpoint uses pymavlink's connection-string syntax. Then drive it with the production driver:
``make_env("quad_hover", backend="real", connection="udpin:127.0.0.1:14550")``.
"""

from __future__ import annotations

import argparse
import signal
import sys

from robotlearn.core.config import ConfigError, parse_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mavlink", default="udpout:127.0.0.1:14550",
                        help="pymavlink endpoint: udpout:HOST:PORT, udpin:HOST:PORT, tcp:..., a serial device, "
                             "or 'pty' (open a pseudo-terminal and print the path to connect to)")
    parser.add_argument("--baud", type=int, default=57600, help="serial baud rate")
    parser.add_argument("--autopilot", choices=("px4", "ardupilot"), default="px4",
                        help="which autopilot's MAVLink dialect to emulate (modes, OFFBOARD vs GUIDED rules)")
    parser.add_argument("--robot", default="cf2x", help="robot config (configs/robots/) giving the airframe")
    parser.add_argument("--gap", default=None,
                        help="reality-gap config (configs/hardware/<name>.yaml or a path); default: none")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--offboard-loss-timeout", type=float, default=0.5,
                        help="s without setpoints in OFFBOARD before the failsafe lands")
    parser.add_argument("--system-id", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="reality-gap key=value overrides, e.g. mass_scale=1.2")


def run(args: argparse.Namespace) -> int:
    from robotlearn.emulators.mavlink_vehicle import MavlinkVehicle, load_gap

    try:
        gap = load_gap(args.gap, parse_overrides(args.overrides))
        vehicle = MavlinkVehicle(args.mavlink, robot=args.robot, gap=gap, baud=args.baud, autopilot=args.autopilot,
                                 offboard_loss_timeout=args.offboard_loss_timeout, system_id=args.system_id)
    except (ConfigError, OSError, ValueError) as err:
        print(f"emulate quadrotor: {err}", file=sys.stderr)
        return 2
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print(f"emulated quadrotor ({args.robot}) on {vehicle.endpoint}", flush=True)
    try:
        vehicle.run(args.duration, should_stop=lambda: bool(stop))
    except KeyboardInterrupt:
        pass
    finally:
        vehicle.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robotlearn emulate quadrotor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

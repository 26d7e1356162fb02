"""Emulated quadrotor flight controller speaking MAVLink (UDP, TCP or serial), backed by the physics sim.

    robotlearn emulate quadrotor --mavlink udpout:127.0.0.1:14550
    robotlearn emulate quadrotor --mavlink udpin:0.0.0.0:14540 --robot iris --gap quad_gap wind=[1,0,0]
    robotlearn emulate quadrotor --mavlink /dev/ttyUSB0 --baud 921600
    robotlearn emulate quadrotor --mavlink pty     # serial over a pseudo-terminal; prints its path
    robotlearn emulate quadrotor --autopilot ardupilot --mavlink tcpin:127.0.0.1:5760 --boot-scale 0.1 \\
        --param FS_GCS_ENABLE=5

The endpoint uses pymavlink's connection-string syntax. Then drive it with the production driver:
``make_env("quad_hover", backend="real", connection="udpin:127.0.0.1:14550")``.
`--autopilot ardupilot` emulates ArduCopter as recorded from its SITL (a 42 s cold start at
`--boot-scale 1`); `--param` sets the autopilot's parameters at power-on.
"""

from __future__ import annotations

import argparse
import signal
import sys

from robotlearn.core.config import ConfigError, parse_overrides


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not (sep and name):
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--param wants NAME=NUMBER, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mavlink", default="udpout:127.0.0.1:14550",
                        help="pymavlink endpoint: udpout:HOST:PORT, udpin:HOST:PORT, tcpin:HOST:PORT, a serial "
                             "device, or 'pty' (open a pseudo-terminal and print the path to connect to)")
    parser.add_argument("--baud", type=int, default=57600, help="serial baud rate")
    parser.add_argument("--autopilot", choices=("px4", "ardupilot"), default="px4",
                        help="which autopilot to emulate (modes, arming, takeoff, failsafes, parameters)")
    parser.add_argument("--robot", default="cf2x", help="robot config (configs/robots/) giving the airframe")
    parser.add_argument("--gap", default=None,
                        help="reality-gap config (configs/hardware/<name>.yaml or a path); default: none")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many (simulated) seconds")
    parser.add_argument("--speedup", type=float, default=1.0, help="simulated seconds per real second (like SITL)")
    parser.add_argument("--boot-scale", type=float, default=1.0,
                        help="ardupilot: scale the recorded cold-start times (ready 2.4 s, position 41.6 s)")
    parser.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                        help="autopilot parameter at power-on, e.g. COM_OF_LOSS_T=1 or FS_GCS_ENABLE=5")
    parser.add_argument("--system-id", type=int, default=1)
    parser.add_argument("--priority", type=int, default=None,
                        help="SCHED_FIFO priority 1-99 of the vehicle loop when granted (default 90: a flight "
                             "controller has its own board); 0: ordinary priority")
    parser.add_argument("overrides", nargs="*", help="reality-gap key=value overrides, e.g. mass_scale=1.2")


def run(args: argparse.Namespace) -> int:
    from robotlearn.emulators.mavlink_vehicle import load_gap, make_vehicle

    if args.priority is not None and not 0 <= args.priority <= 99:
        print(f"emulate quadrotor: --priority must be 0 (ordinary) or 1-99 (SCHED_FIFO), got {args.priority}",
              file=sys.stderr)
        return 2
    extra = {"boot_scale": args.boot_scale} if args.autopilot == "ardupilot" else {}
    try:
        gap = load_gap(args.gap, parse_overrides(args.overrides))
        vehicle = make_vehicle(args.mavlink, args.autopilot, robot=args.robot, gap=gap, baud=args.baud,
                               system_id=args.system_id, speedup=args.speedup, params=dict(args.param), **extra)
    except (ConfigError, OSError, ValueError) as err:
        print(f"emulate quadrotor: {err}", file=sys.stderr)
        return 2
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print(f"emulated quadrotor ({args.robot}, {args.autopilot}) on {vehicle.endpoint}", flush=True)
    try:
        vehicle.run(args.duration, should_stop=lambda: bool(stop),
                    **({} if args.priority is None else {"priority": args.priority}))
    except KeyboardInterrupt:
        pass
    finally:
        vehicle.close()
        if vehicle.run_timing is not None:
            print(vehicle.run_timing.line(vehicle.loop_dt), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robotlearn emulate quadrotor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

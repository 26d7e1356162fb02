"""`robotlearn emulate arm|quadrotor ...`: emulated hardware speaking the real wire protocols."""

from __future__ import annotations

import argparse
import importlib

# device -> module exposing add_arguments(parser) and run(args)
DEVICES = {
    "arm": "robotlearn.cli.emulate_arm",
    "quadrotor": "robotlearn.cli.emulate_quadrotor",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="device", required=True)
    for device, module_name in DEVICES.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(device, help=(module.__doc__ or "").strip().splitlines()[0],
                                            formatter_class=parser.formatter_class))


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(DEVICES[args.device]).run(args)

"""Options every command shares, so `--backend`, `--backend-opt` and `--port` mean the same everywhere."""

from __future__ import annotations

import argparse
from typing import Any


def add_backend_arguments(parser: argparse.ArgumentParser, default: str | None = "mujoco", repeatable: bool = False,
                          help_default: str | None = None) -> None:
    """--backend NAME, --backend-opt KEY=VALUE (repeatable; validated by the backend's Options model),
    --port PATH (alias for --backend-opt port=PATH)."""
    shown = help_default or default
    if repeatable:
        parser.add_argument("--backend", action="append", default=None,
                            help=f"mujoco | pybullet | real | ros2; repeat to compare backends (default: {shown})")
    else:
        parser.add_argument("--backend", default=default, help=f"mujoco | pybullet | real | ros2 (default: {shown})")
    parser.add_argument("--backend-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="backend option, repeatable: e.g. port=/tmp/rl-arm0 (real arm), "
                             "connection=udpin:127.0.0.1:14550 (real quadrotor); `robotlearn envs --options` lists them")
    parser.add_argument("--port", help="alias for --backend-opt port=PORT (serial device or emulator link)")


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The backend options given on the command line, as a dict for EnvRecipe / make_backend."""
    from robotlearn.core.config import parse_overrides

    options = parse_overrides(args.backend_opt)
    if args.port:
        options["port"] = args.port
    return options


def add_video_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video-size", default="320x240", metavar="WxH", help="video resolution")

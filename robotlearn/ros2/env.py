"""The process environment rclpy needs, set up in one place.

The ROS 2 wheels from PyPI (the ``ros2`` extra) lay out a ROS prefix (``lib/``, ``share/ament_index``) in
the Python prefix they were installed into; robotlearn lays its own ament package into the prefix it is
installed into (a venv may differ from where the ROS wheels live). rclpy's compiled core links against
``<prefix>/lib/*.so`` and the rmw layer finds its implementation through ``AMENT_PREFIX_PATH`` and
``LD_LIBRARY_PATH`` at run time. The dynamic loader reads ``LD_LIBRARY_PATH`` only at process start,
so a process that lacks it re-executes itself once with it set (`ensure`), as the wheels' own
bootstrapper does for the interpreter they were installed into. A sourced ROS 2 Jazzy install already
provides all of this; then nothing changes.

This module never imports rclpy: it must run before rclpy can be imported.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

#: the DDS implementation the ``ros2`` extra installs
DEFAULT_RMW = "rmw_fastrtps_cpp"
_MARKER = Path("share/ament_index/resource_index/packages")


def _rclpy_dist() -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution("ros-rclpy")
    except importlib.metadata.PackageNotFoundError:
        return None


def ros_prefix() -> Path | None:
    """The prefix the ROS 2 wheels laid out (the one holding rclpy's ament index entry), or None."""
    dist = _rclpy_dist()
    for entry in (dist.files or ()) if dist else ():
        if str(entry).endswith(str(_MARKER / "rclpy")):
            marker = Path(dist.locate_file(entry)).resolve()
            return marker.parents[len(_MARKER.parts)]
    return None


def ros_library_dirs() -> list[Path]:
    """``<ros prefix>/lib`` and the wheels' vendored-library folders (``site-packages/ros_*.libs``)."""
    prefix, dist = ros_prefix(), _rclpy_dist()
    if prefix is None or dist is None:
        return []
    site = Path(dist.locate_file("")).resolve()
    return [prefix / "lib", *sorted(p for p in site.glob("ros_*.libs") if p.is_dir())]


def robotlearn_prefix() -> Path:
    """Where robotlearn's ament package is installed: the running environment's prefix."""
    return Path(sys.prefix).resolve()


def _prepend(env: MutableMapping[str, str], key: str, paths: list[Path]) -> bool:
    parts = [p for p in env.get(key, "").split(os.pathsep) if p]
    new = [str(p) for p in paths if str(p) not in parts]
    if new:
        env[key] = os.pathsep.join([*new, *parts])
    return bool(new)


def configure(env: MutableMapping[str, str]) -> bool:
    """Add the ROS prefix and robotlearn's prefix to `env` (AMENT_PREFIX_PATH, LD_LIBRARY_PATH) and
    default RMW_IMPLEMENTATION. Returns whether LD_LIBRARY_PATH changed (then a re-exec is needed)."""
    prefixes = [p for p in dict.fromkeys([robotlearn_prefix(), ros_prefix()]) if p is not None]
    _prepend(env, "AMENT_PREFIX_PATH", prefixes)
    env.setdefault("RMW_IMPLEMENTATION", DEFAULT_RMW)
    return _prepend(env, "LD_LIBRARY_PATH", ros_library_dirs())


def needs_reexec(env: MutableMapping[str, str]) -> bool:
    """Whether `ensure` would restart this process (the loader path lacks the ROS libraries)."""
    return configure(dict(env)) and not env.get("_ROBOTLEARN_ROS_ENV")


def ensure() -> None:
    """Make this process able to import rclpy: set the variables and, if the loader path had to change,
    re-execute the same command line once (guarded, so it can never loop)."""
    if configure(os.environ) and not os.environ.get("_ROBOTLEARN_ROS_ENV"):
        os.environ["_ROBOTLEARN_ROS_ENV"] = "1"
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, dict(os.environ))

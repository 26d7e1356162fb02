"""Starting a robotlearn node the way ``ros2 run`` / ``launch_ros`` start any node.

``lib/robotlearn/<exe> --ros-args -r __node:=name -r __ns:=/ns -p key:=value --params-file f.yaml``: rclpy
reads the ``--ros-args`` (remaps, parameters, log level); the node declares its typed parameters; a bad
parameter or config is one line on stderr and exit status 2, as the robotlearn CLI promises; a fault while
running (the robot's link lost, a robot fault) is one line and exit status 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from robotlearn.ros2 import env


def run_node(default_name: str, build: Callable, argv: list[str] | None = None) -> int:
    """rclpy.init, ``build(node)`` -> an object with ``spin()`` and ``close()``; one-line errors."""
    env.ensure()
    import rclpy
    from rclpy.executors import ExternalShutdownException


    args = list(sys.argv if argv is None else argv)
    node = None
    app = None
    try:
        try:
            rclpy.init(args=args)
            node = rclpy.create_node(default_name)
        except Exception as err:  # rclpy's own argument errors (malformed --ros-args, unreadable params file)
            return _fail(default_name, err)
        try:
            app = build(node)
        except Exception as err:  # noqa: BLE001 - a node's promise: one line, exit 2
            if os.environ.get("ROBOTLEARN_DEBUG"):
                raise
            return _fail(node.get_name(), err)
        try:
            app.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as err:  # noqa: BLE001 - a fault while running (link lost, robot fault): one line, exit 1
            if os.environ.get("ROBOTLEARN_DEBUG"):
                raise
            return _fail(node.get_name(), err, status=1)
        return int(getattr(app, "exit_code", 0))
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if app is not None:
            app.close()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _fail(name: str, err: BaseException, status: int = 2) -> int:
    """One line on stderr; status 2 for a bad parameter or config, 1 for a fault while running."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    first = (str(message).strip().splitlines() or [type(err).__name__])[0]
    print(f"{name}: {first}" if not first.startswith(name) else first, file=sys.stderr)
    return status

"""`robotlearn <command> ...`: dispatches to robotlearn/cli/<command>.py.

Subcommand modules are imported only when chosen, so `robotlearn envs` does not pay for torch and
`robotlearn emulate` does not import the learning stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from robotlearn.core.config import ConfigError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "envs": ("robotlearn.cli.envs", "list environments, backends and their spaces"),
    "sim": ("robotlearn.cli.sim", "run a scripted or random policy on a backend, optionally render a video"),
    "emulate": ("robotlearn.cli.emulate", "run an emulated robot (servo-bus arm on a pty, MAVLink quadrotor)"),
    "calibrate": ("robotlearn.cli.calibrate", "measure an arm's servo offsets (and ranges), write a calibration YAML"),
    "teleop": ("robotlearn.cli.teleop", "drive an env live with a teleop device (keyboard, gamepad, SpaceMouse, leader arm)"),
    "record": ("robotlearn.cli.record", "record teleop or scripted demos into a LeRobot v3 dataset"),
    "dataset": ("robotlearn.cli.dataset", "inspect a recorded dataset: info, stats, visualize"),
    "train": ("robotlearn.cli.train", "train a policy (sac, ...) in sim; checkpoints, eval, --resume"),
    "eval": ("robotlearn.cli.eval", "evaluate a checkpoint on any backend: success rate, returns, video"),
    "deploy": ("robotlearn.cli.deploy", "run a checkpoint on the robot (backend real), record the rollout"),
    "quickstart": ("robotlearn.cli.quickstart", "main job: train SAC in MuJoCo, eval on PyBullet, deploy to emulated arm"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items())
    return argparse.ArgumentParser(
        prog="robotlearn", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="robotlearn: one Gym interface over MuJoCo, PyBullet and real robots.",
        epilog=f"commands:\n{lines}\n\nrun `robotlearn <command> --help` for a command's options.",
        usage="robotlearn <command> [options]",
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _top_parser().print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"robotlearn: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"robotlearn {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"robotlearn {name}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

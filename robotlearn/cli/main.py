"""`robotlearn <command> ...`: dispatches to robotlearn/cli/<command>.py.

Subcommand modules are imported only when chosen, and none imports torch at module level, so
`robotlearn envs` and every `--help` stay fast. A failure is one line on stderr and exit code 2, never a
traceback (set ROBOTLEARN_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "envs": ("robotlearn.cli.envs", "list environments, backends, their spaces and options"),
    "sim": ("robotlearn.cli.sim", "run a scripted or random policy on a backend, optionally render a video"),
    "emulate": ("robotlearn.cli.emulate", "run an emulated robot (servo-bus arm on a pty, MAVLink quadrotor)"),
    "calibrate": ("robotlearn.cli.calibrate", "measure an arm's servo offsets (and ranges), write a calibration YAML"),
    "teleop": ("robotlearn.cli.teleop", "drive an env live with a teleop device (keyboard, gamepad, SpaceMouse, leader arm)"),
    "record": ("robotlearn.cli.record", "record teleop or scripted demos into a LeRobot v3 dataset"),
    "dataset": ("robotlearn.cli.dataset", "inspect, verify and convert datasets: info, stats, verify, convert, visualize"),
    "train": ("robotlearn.cli.train", "train a policy (sac, diffusion); checkpoints, eval, --resume"),
    "eval": ("robotlearn.cli.eval", "evaluate a checkpoint on any backend: success rate, returns, video"),
    "deploy": ("robotlearn.cli.deploy", "run a checkpoint on the robot (backend real), record the rollout"),
    "rac": ("robotlearn.cli.rac", "RaC: collect recoveries + corrections with a clutch, fine-tune, run rounds, report"),
    "sysid": ("robotlearn.cli.sysid", "system identification: collect excitation data, fit a calib.yaml, report"),
    "quickstart": ("robotlearn.cli.quickstart", "main job: train SAC in MuJoCo, eval on PyBullet, deploy to emulated arm"),
}


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default, except where its help already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        empty = default is None or default is False or default == [] or default == argparse.SUPPRESS
        if "default" in text.lower() or empty or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("robotlearn")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items())
    return argparse.ArgumentParser(
        prog="robotlearn", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="robotlearn: one Gym interface over MuJoCo, PyBullet and real robots.",
        epilog=f"commands:\n{lines}\n\nrun `robotlearn <command> --help` for a command's options; "
               "`robotlearn --version` prints the version.",
        usage="robotlearn <command> [options]",
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _top_parser().print_help()
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"robotlearn {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; commands: {', '.join(COMMANDS)}"
        print(f"robotlearn: unknown command {name!r}{hint}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"robotlearn {name}", description=COMMANDS[name][1],
                                     formatter_class=HelpFormatter)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    chosen = getattr(args, "backend", None)
    if chosen:  # before any work: hosting a backend may need this process restarted (ROS 2's loader path)
        from robotlearn.backends import prepare_process

        for backend_name in [chosen] if isinstance(chosen, str) else chosen:
            prepare_process(backend_name)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"robotlearn {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `robotlearn ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # noqa: BLE001 - the CLI's promise: one line, exit 2
        if os.environ.get("ROBOTLEARN_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        first = (str(message).strip().splitlines() or [type(err).__name__])[0]
        kind = "" if isinstance(err, (ValueError, KeyError, FileNotFoundError)) else f"{type(err).__name__}: "
        print(f"robotlearn {name}: error: {kind}{first}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

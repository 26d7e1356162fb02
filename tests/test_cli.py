"""The `robotlearn` command as a user runs it: a subprocess, real arguments, real outputs."""

from __future__ import annotations

import re
import subprocess
import sys

import imageio.v3 as iio
import pytest

from robotlearn.core.config import ConfigError, load_config
from robotlearn.core.robot_config import RobotConfig


def robotlearn(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotlearn.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_envs_lists_every_env_with_its_backends():
    out = robotlearn("envs").stdout
    for env_id in ("ArmReach-v0", "ArmPickPlace-v0", "QuadHover-v0", "QuadTrack-v0"):
        assert f"robotlearn/{env_id}" in out
    assert "mujoco,pybullet,real" in out


def test_sim_runs_the_expert_on_both_sims_and_renders_a_video(tmp_path):
    video = tmp_path / "reach.mp4"
    result = robotlearn("sim", "--env", "robotlearn/ArmReach-v0", "--backend", "mujoco", "--backend", "pybullet",
                        "--episodes", "2", "--render", str(video), "--video-size", "160x128")
    assert result.returncode == 0, result.stderr
    assert re.search(r"mujoco\s+100.0%", result.stdout) and re.search(r"pybullet\s+100.0%", result.stdout)
    frames = iio.imread(video)
    assert frames.shape[1:] == (128, 160, 3) and frames.shape[0] >= 10
    assert frames.std() > 5  # not a blank video


@pytest.mark.parametrize(("args", "message"), [
    (("sim", "--backend", "gazebo", "--episodes", "1"), "unknown backend 'gazebo'"),
    (("sim", "--episodes", "1", "rewrd=1"), "arm_reach.yaml: rewrd: unknown key"),
    (("sim", "--env", "robotlearn/ArmReach-v0", "--render", "x.mp4", "--video-size", "big"), "video size looks like"),
    (("frobnicate",), "unknown command 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = robotlearn(*args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr  # one line, naming the problem; no traceback
    assert result.stdout == ""


def test_list_index_overrides():
    cfg = load_config(RobotConfig, "robots", "arm6", ["cameras.1.width=224", "servo.kp.0=61"])
    assert cfg.cameras[1].width == 224 and cfg.servo.kp[0] == 61
    with pytest.raises(ConfigError, match=r"'9' is not an index of a 2-item list"):
        load_config(RobotConfig, "robots", "arm6", ["cameras.9.width=224"])
    with pytest.raises(ConfigError, match=r"cameras.0.widht: unknown key"):
        load_config(RobotConfig, "robots", "arm6", ["cameras.0.widht=224"])


def _readme_commands() -> list[list[str]]:
    """Every `robotlearn ...` invocation in the README's bash blocks, as argv lists."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():  # a backslash-newline continues the command
            for part in line.split("#")[0].split("&&"):
                words = shlex.split(part.strip().rstrip("&"))
                if words and words[0] == "robotlearn":
                    commands.append(words[1:])
    return commands


def test_readme_commands_match_the_cli():
    """The README's commands name real subcommands and options (docs that drift from code fail here)."""
    import argparse
    import importlib

    from robotlearn.cli.main import COMMANDS

    commands = _readme_commands()
    assert len(commands) >= 10
    for argv in commands:
        name, rest = argv[0], argv[1:]
        assert name in COMMANDS, f"README uses unknown command {name!r}"
        if rest and rest[0] == "--help":
            continue
        parser = argparse.ArgumentParser(prog=f"robotlearn {name}", exit_on_error=False)
        importlib.import_module(COMMANDS[name][0]).add_arguments(parser)
        try:
            try:
                parser.parse_intermixed_args(rest)
            except TypeError:  # sub-commands (emulate arm|quadrotor) cannot be intermixed
                parser.parse_args(rest)
        except (argparse.ArgumentError, SystemExit) as err:
            raise AssertionError(f"README command `robotlearn {' '.join(argv)}` does not parse: {err}") from None

"""Every error a new user meets on the command line is one line on stderr and exit code 2 (a subprocess each)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def robotlearn(*args: str, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotlearn.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture()
def not_a_tty(tmp_path):
    path = tmp_path / "regular-file"
    path.write_text("not a serial port")
    return path


@pytest.mark.parametrize(("args", "fragments"), [
    (("sim", "--env", "ArmRech-v0", "--episodes", "1"), ("unknown env 'ArmRech-v0'", "robotlearn/ArmReach-v0")),
    (("sim", "--env", "robotlearn/QuadHovr-v0", "--episodes", "1"), ("did you mean 'robotlearn/QuadHover-v0'",)),
    (("sim", "--backend", "real", "--episodes", "1"), ("needs a port", "--backend-opt port=")),
    (("sim", "--backend", "real", "--port", "/nonexistent/tty-arm", "--episodes", "1"), ("does not exist",)),
    (("sim", "--backend", "real", "--port", "/dev/null", "--episodes", "1"), ("not a serial device",)),
    (("sim", "--backend", "real", "--backend-opt", "prot=/dev/ttyUSB0", "--episodes", "1"),
     ("unknown option 'prot'", "port")),
    (("sim", "--backend", "real", "--backend-opt", "port=/dev/null", "--backend-opt", "start_timeout_s=-1"),
     ("start_timeout_s", "greater than 0")),
    (("sim", "--episodes", "1", "params.tolerance=-0.5"), ("arm_reach.yaml: params: tolerance",)),
    (("sim", "--env", "robotlearn/QuadHover-v0", "--backend", "real", "--backend-opt", "port=/dev/ttyACM0"),
     ("unknown option 'port'", "connection")),
    (("eval", "--checkpoint", "/nonexistent/ckpt"), ("/nonexistent/ckpt",)),
    (("sim", "--episodes", "0"), ("--episodes must be positive",)),
    (("frobnicate",), ("unknown command 'frobnicate'",)),
    (("evla", "--checkpoint", "x"), ("did you mean 'eval'",)),
])
def test_bad_input_is_one_line_and_exit_2(args, fragments):
    one_line_error(robotlearn(*args), *fragments)


def test_a_regular_file_as_port(not_a_tty):
    one_line_error(robotlearn("sim", "--backend", "real", "--port", str(not_a_tty), "--episodes", "1"),
                   "is a regular file")


def test_short_env_ids_are_accepted_everywhere(tmp_path):
    result = robotlearn("sim", "--env", "ArmReach-v0", "--episodes", "1")
    assert result.returncode == 0, result.stderr
    result = robotlearn("record", "--env", "ArmReach-v0", "--device", "scripted", "--episodes", "1",
                        "--out", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr


def test_version_and_help_do_not_import_torch():
    version = robotlearn("--version")
    assert version.returncode == 0 and version.stdout.startswith("robotlearn ")
    for args in (("--help",), ("train", "sac", "--help"), ("train", "diffusion", "--help"), ("eval", "--help"),
                 ("deploy", "--help"), ("quickstart", "--help"), ("record", "--help")):
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "robotlearn.cli.main", *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-500:]
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert "torch" not in imported, f"`robotlearn {' '.join(args)}` imports torch"


def test_help_shows_defaults_and_train_lists_config_keys():
    sac = robotlearn("train", "sac", "--help").stdout
    assert "--backend-opt" in sac and "utd=" in sac and "batch_size=" in sac
    diffusion = robotlearn("train", "diffusion", "--help").stdout
    assert "--dataset" in diffusion and "train.steps=" in diffusion and "--intervene" not in diffusion
    assert "(default: 10)" in robotlearn("eval", "--help").stdout


def test_debug_env_var_shows_the_traceback():
    env = {**os.environ, "ROBOTLEARN_DEBUG": "1"}
    result = subprocess.run([sys.executable, "-m", "robotlearn.cli.main", "sim", "--env", "Nope-v0"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode != 0 and "Traceback" in result.stderr

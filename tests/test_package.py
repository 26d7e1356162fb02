"""The package installs as a plain (non-editable) wheel and runs from any directory.

Ray workers on other nodes and ROS 2 ament installs import an installed robotlearn, not a checkout: the
configs and robot descriptions must travel inside the wheel (robotlearn/core/resources.py). The test
builds the wheel from this checkout, installs it into a fresh venv that sees the machine's third-party
packages but not this checkout, and runs `robotlearn sim` from an empty directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
         str(ROOT)], cwd=ROOT)
    (wheel,) = wheels.glob("robotlearn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "robotlearn/_data/configs/robots/arm6.yaml" in names
    assert "robotlearn/_data/sim_assets/arm6/arm6.urdf" in names
    assert any(n.startswith("robotlearn/_rt") for n in names)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    # Third-party packages from this interpreter, as a plain path entry: no .pth hooks run from it, so an
    # editable robotlearn installed there cannot shadow the wheel.
    site = next((venv / "lib").glob("python*/site-packages"))
    machine_sites = [p for p in sys.path if p.endswith("site-packages")]
    (site / "_machine_packages.pth").write_text("\n".join(machine_sites) + "\n")
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ROBOTLEARN_CONFIGS", "ROBOTLEARN_ASSETS")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = run([str(python), "-c", "import robotlearn; print(robotlearn.__file__)"], cwd=elsewhere, env=env)
    assert str(site) in where and str(ROOT) not in where, where
    out = run(["robotlearn", "sim", "--env", "ArmReach-v0", "--episodes", "1"], cwd=elsewhere, env=env)
    assert "mujoco" in out and "100.0%" in out, out
    assert run(["robotlearn", "--version"], cwd=elsewhere, env=env).strip() == "robotlearn 0.1.0"

    # the ament package laid into the venv's prefix (what `ros2 launch robotlearn ...` finds), and a node started
    # as launch_ros starts it: lib/robotlearn/<exe> hands over to the console script with this venv's python
    assert (venv / "share/ament_index/resource_index/packages/robotlearn").is_file()
    assert (venv / "share/robotlearn/package.xml").is_file()
    assert (venv / "share/robotlearn/launch/sim_arm.launch.py").is_file()
    assert (venv / "share/robotlearn/config/arm_bridge.yaml").is_file()
    bridge = subprocess.run([str(venv / "lib/robotlearn/robotlearn_bridge"), "--ros-args", "-p", "env:=ArmRech-v0"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert bridge.returncode == 2, bridge.stderr
    assert bridge.stderr.strip() == ("robotlearn_bridge: unknown env 'ArmRech-v0'; did you mean "
                                     "'robotlearn/ArmReach-v0'?"), bridge.stderr

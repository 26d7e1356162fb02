"""The launch files, checked without `launch` / `launch_ros` (they are not on the package registries).

Read from the installed ament layout (share/robotlearn/launch), each file must parse, define
`generate_launch_description`, start only executables that exist in lib/robotlearn (or bin/ for processes),
pass only parameters the node declares (its module's PARAMETERS, also for keys of the config YAMLs it loads),
use only launch arguments it declares, and describe every argument. The checker is checked on a broken file.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PREFIX = Path(sys.prefix)
SHARE = PREFIX / "share" / "robotlearn"
LAUNCH_FILES = sorted((SHARE / "launch").glob("*.launch.py"))


def node_modules() -> dict[str, str]:
    """executable -> module, from the installed package's console scripts (pyproject's [project.scripts])."""
    scripts = importlib.metadata.distribution("robotlearn").entry_points.select(group="console_scripts")
    return {ep.name: ep.value.split(":")[0] for ep in scripts if ep.name.startswith("robotlearn_")}


def declared(module: str) -> set[str]:
    return {p.name for p in importlib.import_module(module).PARAMETERS}


def _const(node: ast.AST):
    return node.value if isinstance(node, ast.Constant) else None


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _callee(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


def problems(source: str, name: str) -> list[str]:
    """Everything wrong with one launch file's structure (empty: fine)."""
    tree = ast.parse(source, filename=name)
    found: list[str] = []
    if not any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body):
        found.append(f"{name}: no generate_launch_description()")
    modules = node_modules()
    arguments: set[str] = set()
    used: set[str] = set()
    nodes = 0
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        callee = _callee(call)
        if callee == "DeclareLaunchArgument":
            arg = _const(call.args[0])
            arguments.add(arg)
            if not _const(_keyword(call, "description") or ast.Constant(None)):
                found.append(f"{name}: argument {arg!r} has no description")
        elif callee == "LaunchConfiguration" or (isinstance(call.func, ast.Name) and call.func.id == "arg"):
            used.add(_const(call.args[0]))
        elif callee == "ExecuteProcess":
            cmd = _keyword(call, "cmd")
            exe = _const(cmd.elts[0]) if isinstance(cmd, ast.List) else None
            if exe is None or not (PREFIX / "bin" / exe).exists():
                found.append(f"{name}: process {exe!r} is not installed in {PREFIX / 'bin'}")
        elif callee == "Node":
            nodes += 1
            exe = _const(_keyword(call, "executable"))
            if _const(_keyword(call, "package")) != "robotlearn":
                found.append(f"{name}: a node of another package")
                continue
            if exe not in modules or not (PREFIX / "lib" / "robotlearn" / str(exe)).exists():
                found.append(f"{name}: executable {exe!r} is not in the installed lib/robotlearn")
                continue
            known = declared(modules[exe])
            params = _keyword(call, "parameters")
            for item in params.elts if isinstance(params, ast.List) else []:
                keys: list[str] = []
                if isinstance(item, ast.Dict):
                    keys = [_const(k) for k in item.keys]
                elif isinstance(item, ast.Call) and _callee(item) == "PathJoinSubstitution":
                    parts = [_const(e) for e in item.args[0].elts[1:]]
                    path = SHARE.joinpath(*parts)
                    if not path.is_file():
                        found.append(f"{name}: parameter file {path} is not installed")
                        continue
                    for section in yaml.safe_load(path.read_text()).values():
                        keys += list(section["ros__parameters"])
                else:
                    found.append(f"{name}: parameters entry it cannot check: {ast.dump(item)[:60]}")
                found += [f"{name}: {exe} does not declare parameter {k!r}" for k in keys if k not in known]
    if nodes == 0:
        found.append(f"{name}: starts no robotlearn node")
    found += [f"{name}: launch argument {a!r} used but not declared" for a in sorted(used - arguments)]
    return found


def test_all_launch_files_are_installed():
    names = sorted(p.name for p in (REPO / "launch").glob("*.launch.py"))
    assert names == ["deploy_policy.launch.py", "quadrotor.launch.py", "real_arm.launch.py", "record.launch.py",
                     "sim_arm.launch.py", "teleop_record.launch.py"]
    assert [p.name for p in LAUNCH_FILES] == names
    for path in LAUNCH_FILES:
        assert path.read_text() == (REPO / "launch" / path.name).read_text(), f"{path} is stale: reinstall"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_structure(path):
    assert problems(path.read_text(), path.name) == []


def test_the_checker_finds_mistakes():
    good = (SHARE / "launch" / "sim_arm.launch.py").read_text()
    assert problems(good.replace('"cameras": ParameterValue', '"camera": ParameterValue'), "typo") == [
        "typo: robotlearn_bridge does not declare parameter 'camera'"]
    assert any("robotlearn_brdge" in p for p in problems(good.replace('"robotlearn_bridge"', '"robotlearn_brdge"'), "x"))
    assert any("no generate_launch_description" in p
               for p in problems(good.replace("def generate_launch_description", "def make"), "x"))
    assert any("'namespace' used but not declared" in p
               for p in problems(good.replace('DeclareLaunchArgument("namespace"', 'DeclareLaunchArgument("ns"'), "x"))


def test_rclpy_is_imported_only_by_the_ros2_nodes_and_backend():
    allowed = {"ros2", "hardware/ros2.py"}
    offenders = []
    for path in sorted((REPO / "robotlearn").rglob("*.py")):
        rel = path.relative_to(REPO / "robotlearn").as_posix()
        if rel.split("/")[0] in allowed or rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{rel} imports {n}" for n in names if n.split(".")[0] == "rclpy"]
    assert not offenders, offenders

"""The layering DESIGN.md promises, checked on the import graph (every import, at any depth of a module).

* production drivers (hardware/) never import the emulators: an emulator is test infrastructure for them;
* robot kinds (robots/) are shared by every backend, so they import neither sims nor hardware;
* core/ is the bottom layer; sysid/ never sees the hidden gap (emulators/); scale/ is imported by nobody below;
* the sim/real choice is made in backends.py alone: nothing else names a backend class's module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robotlearn"

# (importing package, forbidden packages)
RULES = [
    ("hardware", ("emulators",)),
    ("robots", ("sim", "hardware", "emulators")),
    ("core", ("robots", "sim", "hardware", "emulators", "tasks", "policies", "data", "rollout", "cli")),
    ("tasks", ("sim", "hardware", "emulators")),
    ("policies", ("sim", "hardware", "emulators", "scale", "cli")),
    ("data", ("sim", "hardware", "emulators", "cli")),
    ("rollout", ("sim", "hardware", "emulators", "cli")),
    ("sysid", ("emulators",)),
]
BELOW_SCALE = ("core", "robots", "sim", "hardware", "emulators", "tasks", "policies", "data", "rollout", "teleop",
               "correction", "sysid")


def imports_of(path: Path) -> set[str]:
    """Every robotlearn.* module `path` imports (module level or inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("robotlearn.")}


def modules_in(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py")) if (PACKAGE / package).exists() else []


def subpackage(module: str) -> str:
    return module.split(".")[1]


@pytest.mark.parametrize(("package", "forbidden"), RULES)
def test_layering(package, forbidden):
    violations = [f"{path.relative_to(PACKAGE.parent)} imports {name}" for path in modules_in(package)
                  for name in sorted(imports_of(path)) if subpackage(name) in forbidden]
    assert not violations, "\n".join(violations)


def test_nothing_below_scale_imports_it():
    violations = [f"{path.relative_to(PACKAGE.parent)} imports {name}" for package in BELOW_SCALE
                  for path in modules_in(package) for name in imports_of(path) if subpackage(name) == "scale"]
    assert not violations, "\n".join(violations)


def test_backend_classes_are_chosen_only_in_backends_py():
    """Tasks, policies, tools and the CLI get a Backend from backends.make_backend and never name one."""
    from robotlearn.backends import BACKENDS

    backend_modules = {target.split(":")[0] for target in BACKENDS.values()}
    allowed = ("sim", "emulators", "hardware")  # the backends themselves and the device side
    users = [f"{path.relative_to(PACKAGE.parent)} imports {name}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "backends.py" and path.relative_to(PACKAGE).parts[0] not in allowed
             for name in imports_of(path) if name in backend_modules or name.rsplit(".", 1)[0] in backend_modules]
    assert not users, "\n".join(users)


def test_the_rules_see_real_imports():
    """The checker itself: it finds a known import (so the rules above cannot pass vacuously)."""
    assert "robotlearn.hardware.calibration" in imports_of(PACKAGE / "emulators" / "arm.py")
    assert any(subpackage(n) == "core" for n in imports_of(PACKAGE / "hardware" / "arm.py"))

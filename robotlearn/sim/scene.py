"""The table-top scene both sims build: table, floor, objects, visual markers, contact friction.

Kept as data (sim_assets/<robot>/scene.yaml) and turned into engine calls by each backend, so the two
engines cannot disagree about a size, a mass or a friction coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from robotlearn.perception.fiducials import FiducialLayout, layout_from_config


@dataclass(frozen=True)
class Box:
    size: tuple[float, float, float]  # full edge lengths (m)
    center: tuple[float, float, float]
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneObject:
    """A free rigid box (the cube)."""

    name: str
    size: tuple[float, float, float]
    mass: float
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]  # wxyz
    rgba: tuple[float, float, float, float]
    #: ArUco markers printed on its faces (what the real arm's camera perception tracks), if any
    fiducials: FiducialLayout | None = None

    @property
    def inertia(self) -> np.ndarray:
        """Principal inertia of a uniform box, set explicitly so both engines use the same numbers."""
        x, y, z = self.size
        return self.mass / 12.0 * np.array([y * y + z * z, x * x + z * z, x * x + y * y])


@dataclass(frozen=True)
class Marker:
    """A visual-only sphere (no collision, no mass), e.g. the goal."""

    name: str
    radius: float
    pos: tuple[float, float, float]
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class Lighting:
    """One directional light plus ambient, as both renderers compute it (PyBullet TinyRenderer's model:
    colour x (ambient + diffuse x max(0, n . l)), no specular), so the sims' frames of one state match."""

    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)  # towards the light, world frame
    ambient: float = 0.6
    diffuse: float = 0.35


@dataclass(frozen=True)
class Contact:
    """How MuJoCo's soft contacts are stiffened to agree with Bullet's rigid ones (bench/sim_contact.py
    measures the agreement): the solref time constant and damping ratio of every contact. (MuJoCo's noslip
    solver would also remove friction creep, but it makes joint frictionloss sticky too, which changes how a
    limp arm settles; the stiffer contact alone brings the creep within 0.2 mm/s of Bullet's.)"""

    time_constant: float
    damping_ratio: float


@dataclass(frozen=True)
class Scene:
    table: Box
    floor: Box
    objects: tuple[SceneObject, ...]
    markers: tuple[Marker, ...]
    cube_table_friction: tuple[float, float]  # (sliding, torsional) of the object-table pair
    cube_robot_friction: tuple[float, float]  # (sliding, torsional) of the object-robot pair
    camera_clip: tuple[float, float]
    contact: Contact
    lighting: Lighting = Lighting()


def _tuple(values, n: int, what: str, source: Path) -> tuple[float, ...]:
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f"{source}: {what} must be a list of {n} numbers, got {values!r}")
    return tuple(float(v) for v in values)


def _lighting(data, source: Path) -> Lighting:
    if data is None:
        return Lighting()
    unknown = set(data) - {"direction", "ambient", "diffuse"}
    if unknown:
        raise ValueError(f"{source}: lighting: unknown keys {sorted(unknown)}; known: direction, ambient, diffuse")
    direction = np.array(_tuple(data.get("direction", [0.0, 0.0, 1.0]), 3, "lighting.direction", source))
    if np.linalg.norm(direction) < 1e-9:
        raise ValueError(f"{source}: lighting.direction must not be zero")
    return Lighting(tuple(direction / np.linalg.norm(direction)), float(data.get("ambient", 0.6)),
                    float(data.get("diffuse", 0.35)))


def load_scene(path: str | Path) -> Scene:
    """Read a scene YAML; any missing or malformed entry is a one-line error naming it."""
    path = Path(path)
    data = yaml.safe_load(path.read_text())
    try:
        box = {k: Box(_tuple(data[k]["size"], 3, f"{k}.size", path), _tuple(data[k]["center"], 3, f"{k}.center", path),
                      _tuple(data[k]["rgba"], 4, f"{k}.rgba", path)) for k in ("table", "floor")}
        objects = tuple(
            SceneObject(name, _tuple(o["size"], 3, f"{name}.size", path), float(o["mass"]),
                        _tuple(o["pos"], 3, f"{name}.pos", path), _tuple(o["quat"], 4, f"{name}.quat", path),
                        _tuple(o["rgba"], 4, f"{name}.rgba", path),
                        layout_from_config(name, o["size"], o["fiducials"]) if "fiducials" in o else None)
            for name, o in data["objects"].items())
        markers = tuple(
            Marker(name, float(m["radius"]), _tuple(m["pos"], 3, f"{name}.pos", path),
                   _tuple(m["rgba"], 4, f"{name}.rgba", path))
            for name, m in data["markers"].items())
        fr = data["friction"]
        return Scene(box["table"], box["floor"], objects, markers,
                     _tuple(fr["cube_table"], 2, "friction.cube_table", path),
                     _tuple(fr["cube_robot"], 2, "friction.cube_robot", path),
                     _tuple(data["camera_clip"], 2, "camera_clip", path),
                     Contact(float(data["contact"]["time_constant"]), float(data["contact"]["damping_ratio"])),
                     _lighting(data.get("lighting"), path))
    except KeyError as exc:
        raise ValueError(f"{path}: missing key {exc.args[0]!r}") from exc


def scene_for(description: Path) -> Scene:
    """The scene stored next to a robot description (sim_assets/<robot>/scene.yaml)."""
    return load_scene(Path(description).parent / "scene.yaml")

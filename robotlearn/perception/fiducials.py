"""Fiducial markers printed on a box: where each marker's corners sit on the object, and what it looks like.

One description serves both sides of the camera. Perception (perception/tracker.py) needs the 3D corner
of every marker in the object frame to solve the pose; the sims (and so the emulator, which renders with
them) need a textured mesh that shows exactly those markers. Deriving both from one `FiducialLayout`
means the printed cube and its model cannot disagree, which is what a real lab gets by generating the
print-out and the object model from one file.

Layout: one ArUco marker centred on each of the six faces, face order +x, -x, +y, -y, +z, -z (ids in
that order), each marker `marker_fraction` of the face edge wide on a white quiet zone. Marker image
axes on a face: "down" is -z on the side faces, -y on the top and +y on the bottom; "right" is
normal x down, so every face reads correctly seen from outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
_DOWN = np.array([[0, 0, -1], [0, 0, -1], [0, 0, -1], [0, 0, -1], [0, -1, 0], [0, 1, 0]], dtype=np.float64)
#: ArUco corner order (top-left, top-right, bottom-right, bottom-left) in marker image coordinates
_CORNERS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
_TILE_CELLS = 8  # texture tile = quiet zone + marker (4x4 bits + black border = 6 cells) + quiet zone


def aruco_dictionary(name: str) -> cv2.aruco.Dictionary:
    """`cv2.aruco` predefined dictionary by name ("DICT_4X4_50", ...), or a one-line error."""
    code = getattr(cv2.aruco, name, None)
    if not name.startswith("DICT_") or not isinstance(code, int):
        known = ", ".join(n for n in dir(cv2.aruco) if n.startswith("DICT_4X4") or n.startswith("DICT_APRILTAG"))
        raise ValueError(f"unknown ArUco dictionary {name!r}; e.g. {known}")
    return cv2.aruco.getPredefinedDictionary(code)


@dataclass(frozen=True)
class FiducialLayout:
    """Markers on the faces of a box of full edge lengths `size` (m)."""

    object_name: str
    size: tuple[float, float, float]
    dictionary: str
    ids: tuple[int, ...]  # one per face, order +x, -x, +y, -y, +z, -z
    marker_fraction: float = 0.75  # marker edge / face edge (the rest is white quiet zone)

    def __post_init__(self) -> None:
        if len(self.ids) != 6 or len(set(self.ids)) != 6:
            raise ValueError(f"{self.object_name}: fiducial ids must be 6 distinct numbers (one per face), "
                             f"got {list(self.ids)}")
        if not 0.3 <= self.marker_fraction <= 6 / _TILE_CELLS:
            raise ValueError(f"{self.object_name}: marker_fraction must be in [0.3, {6 / _TILE_CELLS}], "
                             f"got {self.marker_fraction}")
        if len(set(self.size)) != 1:
            raise ValueError(f"{self.object_name}: fiducial markers need a cube (equal edges), got {self.size}")
        aruco_dictionary(self.dictionary)

    @property
    def half(self) -> float:
        return self.size[0] / 2

    @property
    def marker_size(self) -> float:
        """Printed marker edge (m): what a pose solver scales by."""
        return self.size[0] * self.marker_fraction

    def _face_axes(self, face: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, down = FACE_NORMALS[face], _DOWN[face]
        return n, np.cross(n, down), down

    @cached_property
    def marker_corners(self) -> dict[int, np.ndarray]:
        """Marker id -> its 4 corners (4x3, object frame, ArUco corner order)."""
        corners = {}
        for face, marker_id in enumerate(self.ids):
            n, right, down = self._face_axes(face)
            offsets = (_CORNERS - 0.5) * self.marker_size
            corners[marker_id] = self.half * n + offsets[:, :1] * right + offsets[:, 1:] * down
        return corners

    # -- appearance --------------------------------------------------------------------------------
    def atlas(self, tile_px: int = 96) -> np.ndarray:
        """Texture atlas (uint8 RGB, 2 x 3 tiles, face k at row k // 3, column k % 3): each face white with
        its marker centred. `tile_px` should be a multiple of 8 so marker cells have whole pixels."""
        marker_px = int(round(tile_px * self.marker_fraction))
        atlas = np.full((2 * tile_px, 3 * tile_px), 255, dtype=np.uint8)
        dictionary = aruco_dictionary(self.dictionary)
        margin = (tile_px - marker_px) // 2
        for face, marker_id in enumerate(self.ids):
            row, col = divmod(face, 3)
            marker = cv2.aruco.generateImageMarker(dictionary, marker_id, marker_px, borderBits=1)
            y0, x0 = row * tile_px + margin, col * tile_px + margin
            atlas[y0:y0 + marker_px, x0:x0 + marker_px] = marker
        return np.repeat(atlas[:, :, None], 3, axis=2)

    def mesh(self, v_up: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The box as 24 vertices (4 per face, so UVs do not blend across edges), 12 outward-wound
        triangles, per-vertex atlas texture coordinates and normals. `v_up`: the engine's texture v axis
        points up the image (OpenGL convention) rather than down its rows."""
        verts, uvs, normals, faces = [], [], [], []
        for face in range(6):
            n, right, down = self._face_axes(face)
            row, col = divmod(face, 3)
            base = len(verts)
            for px, py in _CORNERS:
                verts.append(self.half * (n + (2 * px - 1) * right + (2 * py - 1) * down))
                u, v = (col + px) / 3.0, (row + py) / 2.0
                uvs.append((u, 1.0 - v if v_up else v))
                normals.append(n)
            # corners go TL, TR, BR, BL; seen from outside (right x down = -normal) that is clockwise
            # in a y-down image, i.e. counter-clockwise about the outward normal
            tri = [(0, 3, 2), (0, 2, 1)]
            a, b, c = (verts[base + i] for i in tri[0])
            if np.dot(np.cross(b - a, c - a), n) < 0:
                tri = [(0, 1, 2), (0, 2, 3)]
            faces += [[base + i for i in t] for t in tri]
        return (np.array(verts), np.array(faces, dtype=np.int32), np.array(uvs), np.array(normals))


def layout_from_config(object_name: str, size, config: dict) -> FiducialLayout:
    """A layout from a scene/object YAML block ``{dictionary, ids, marker_fraction}``; one-line errors."""
    unknown = set(config) - {"dictionary", "ids", "marker_fraction"}
    if unknown:
        raise ValueError(f"{object_name}.fiducials: unknown keys {sorted(unknown)}; "
                         "known: dictionary, ids, marker_fraction")
    try:
        return FiducialLayout(object_name, tuple(float(s) for s in size), str(config["dictionary"]),
                              tuple(int(i) for i in config["ids"]), float(config.get("marker_fraction", 0.75)))
    except KeyError as exc:
        raise ValueError(f"{object_name}.fiducials: missing key {exc.args[0]!r}") from None

"""A camera's intrinsics and world pose, from the robot spec or from a calibration file.

The robot spec (configs/robots/<robot>.yaml) states each camera as a pinhole (vertical field of view,
size) and a mount (pos, lookat, up): exactly what the sims render with, so for the emulated arm the
spec *is* the calibration. A real camera has lens distortion and a principal point off centre, which
`robotlearn calibrate camera` measures with a ChArUco board and writes as YAML; `CameraModel.load`
reads that and keeps the spec's mount unless the file has its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from robotlearn.core.spec import CameraSpec
from robotlearn.sim.cameras import camera_axes


@dataclass(frozen=True)
class CameraModel:
    """Pinhole + distortion at `size` (width, height) and the camera's pose in the world.

    `world_from_camera` maps OpenCV camera coordinates (x right, y down, z forward) to world.
    """

    name: str
    size: tuple[int, int]
    matrix: np.ndarray  # 3x3 K
    distortion: np.ndarray  # OpenCV (k1, k2, p1, p2[, k3 ...])
    world_from_camera: np.ndarray  # 4x4

    @classmethod
    def from_spec(cls, cam: CameraSpec) -> CameraModel:
        """The spec's ideal pinhole: square pixels, principal point at the image centre (as both sims render;
        OpenCV puts pixel centres at integers, so the centre of a W-pixel row is (W - 1) / 2)."""
        if cam.parent != "world":
            raise ValueError(f"camera {cam.name!r} is mounted on {cam.parent!r}; object perception needs a "
                             "fixed (parent: world) camera")
        f = 0.5 * cam.height / np.tan(np.radians(cam.fovy_deg) / 2)
        matrix = np.array([[f, 0, (cam.width - 1) / 2], [0, f, (cam.height - 1) / 2], [0, 0, 1.0]])
        right, up, forward = camera_axes(cam)
        pose = np.eye(4)
        pose[:3, :3] = np.column_stack([right, -up, forward])
        pose[:3, 3] = cam.pos
        return cls(cam.name, (cam.width, cam.height), matrix, np.zeros(5), pose)

    def at_size(self, width: int, height: int) -> CameraModel:
        """The same camera delivering `width` x `height` frames (a different capture mode or a resize)."""
        if (width, height) == self.size:
            return self
        sx, sy = width / self.size[0], height / self.size[1]
        matrix = self.matrix.copy()
        matrix[0, 0], matrix[1, 1] = matrix[0, 0] * sx, matrix[1, 1] * sy
        # scaling acts on pixel edges: a centre at c (integer-centred) moves to (c + 0.5) * s - 0.5
        matrix[0, 2], matrix[1, 2] = (matrix[0, 2] + 0.5) * sx - 0.5, (matrix[1, 2] + 0.5) * sy - 0.5
        return replace(self, size=(width, height), matrix=matrix)

    # -- calibration files ---------------------------------------------------------------------
    def to_yaml(self, include_pose: bool = True) -> str:
        """The calibration file; without the pose, loading it takes the mount from the robot spec."""
        data = {"camera": self.name, "width": self.size[0], "height": self.size[1],
                "camera_matrix": self.matrix.round(6).tolist(), "distortion": self.distortion.round(8).tolist()}
        if include_pose:
            data["world_from_camera"] = self.world_from_camera.round(6).tolist()
        return yaml.safe_dump(data, sort_keys=False)

    @classmethod
    def load(cls, path: str | Path, spec_camera: CameraSpec | None = None) -> CameraModel:
        """A calibration YAML (from `robotlearn calibrate camera`); a missing mount falls back to the spec's."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"camera calibration {path}: cannot read ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"camera calibration {path}: expected a mapping")
        try:
            matrix = np.asarray(data["camera_matrix"], dtype=np.float64)
            dist = np.asarray(data.get("distortion", [0, 0, 0, 0, 0]), dtype=np.float64).ravel()
            size = (int(data["width"]), int(data["height"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"camera calibration {path}: bad or missing entry ({err})") from None
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)) or dist.size not in (4, 5, 8, 12, 14):
            raise ValueError(f"camera calibration {path}: camera_matrix must be 3x3 and distortion 4/5/8/12/14 "
                             "numbers")
        if "world_from_camera" in data:
            pose = np.asarray(data["world_from_camera"], dtype=np.float64)
            if pose.shape != (4, 4):
                raise ValueError(f"camera calibration {path}: world_from_camera must be 4x4")
        elif spec_camera is not None:
            pose = cls.from_spec(spec_camera).world_from_camera
        else:
            raise ValueError(f"camera calibration {path}: no world_from_camera and no spec camera to take it from")
        return cls(str(data.get("camera", spec_camera.name if spec_camera else "camera")), size, matrix, dist, pose)

"""Camera pose math shared by both renderers, so both look from the same point in the same direction."""

from __future__ import annotations

import numpy as np

from robotlearn.core.spec import CameraSpec


def camera_axes(cam: CameraSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, up, forward) unit vectors in the camera's parent frame, from its pos/lookat/up."""
    forward = np.asarray(cam.lookat, float) - np.asarray(cam.pos, float)
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError(f"camera {cam.name!r}: lookat equals pos")
    forward /= norm
    right = np.cross(forward, np.asarray(cam.up, float))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError(f"camera {cam.name!r}: up is parallel to the viewing direction")
    right /= np.linalg.norm(right)
    return right, np.cross(right, forward), forward

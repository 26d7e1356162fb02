"""Camera intrinsics from views of a ChArUco board (`robotlearn calibrate camera`).

OpenCV does the work: `cv2.aruco.CharucoDetector` finds the chessboard corners between the board's
markers (so a partly visible board still counts), `CharucoBoard.matchImagePoints` pairs them with the
board's 3D points, `cv2.calibrateCamera` solves pinhole + distortion. What is here is the board
description, the bookkeeping of which views are usable, and one-line errors for the ways a calibration
goes wrong (too few views, too few corners, a poor fit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from robotlearn.perception.fiducials import aruco_dictionary

#: a view needs this many board corners to constrain a homography well
MIN_CORNERS = 8
#: and this many usable views (different tilts) to separate focal length from distance
MIN_VIEWS = 5


@dataclass(frozen=True)
class CharucoSpec:
    """`squares` (columns, rows) of `square_m` edge, markers of `marker_m` from `dictionary`."""

    squares: tuple[int, int] = (7, 5)
    square_m: float = 0.030
    marker_m: float = 0.022
    dictionary: str = "DICT_4X4_50"

    def __post_init__(self) -> None:
        if min(self.squares) < 3:
            raise ValueError(f"a ChArUco board needs at least 3x3 squares, got {self.squares}")
        if not 0 < self.marker_m < self.square_m:
            raise ValueError(f"marker size {self.marker_m} m must be positive and smaller than the square "
                             f"({self.square_m} m)")

    def board(self) -> cv2.aruco.CharucoBoard:
        return cv2.aruco.CharucoBoard(self.squares, self.square_m, self.marker_m, aruco_dictionary(self.dictionary))

    def image(self, px_per_square: int = 100, margin_px: int = 40) -> np.ndarray:
        """The board to print (grey uint8); print at scale so a square measures `square_m`."""
        w, h = self.squares
        return self.board().generateImage((w * px_per_square + 2 * margin_px, h * px_per_square + 2 * margin_px),
                                          marginSize=margin_px)


@dataclass(frozen=True)
class Calibration:
    size: tuple[int, int]
    matrix: np.ndarray
    distortion: np.ndarray
    rms_px: float
    views_used: int
    views_total: int


def calibrate(images: Iterable[np.ndarray], spec: CharucoSpec, max_rms_px: float = 2.0) -> Calibration:
    """Intrinsics from board views (uint8 RGB or grey, all one size); ValueError with one line if it fails."""
    board = spec.board()
    detector = cv2.aruco.CharucoDetector(board)
    obj_points, img_points, size, total = [], [], None, 0
    for image in images:
        total += 1
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if size is None:
            size = (gray.shape[1], gray.shape[0])
        elif size != (gray.shape[1], gray.shape[0]):
            raise ValueError(f"view {total}: size {gray.shape[1]}x{gray.shape[0]} differs from the first view's "
                             f"{size[0]}x{size[1]}")
        corners, ids, _, _ = detector.detectBoard(gray)
        if ids is None or len(ids) < MIN_CORNERS:
            continue
        obj, img = board.matchImagePoints(corners, ids)
        obj_points.append(obj)
        img_points.append(img)
    if total == 0:
        raise ValueError("no images to calibrate from")
    if len(obj_points) < MIN_VIEWS:
        raise ValueError(f"only {len(obj_points)} of {total} views show >= {MIN_CORNERS} ChArUco corners; need "
                         f"{MIN_VIEWS} (is the board {spec.squares[0]}x{spec.squares[1]} {spec.dictionary}, in "
                         "focus, tilted differently in each view?)")
    rms, matrix, dist, _, _ = cv2.calibrateCamera(obj_points, img_points, size, None, None)
    if not np.isfinite(rms) or rms > max_rms_px:
        raise ValueError(f"calibration fit is poor: RMS reprojection {rms:.2f} px > {max_rms_px} px (wrong square "
                         "size, a bent board, or motion blur)")
    return Calibration(size, matrix, dist.ravel(), float(rms), len(obj_points), total)

"""Object pose from ArUco markers in one camera image: detect, solve, express in the world frame.

OpenCV does the hard parts (`cv2.aruco.ArucoDetector` with sub-pixel corners; `cv2.solvePnP`). What is
ours is the glue a fiducial object tracker needs and no library call provides:

* all visible markers of one object are solved as one rigid set of corners (several faces of a cube
  seen at once fix its distance far better than one small square);
* a single visible face has a two-fold planar ambiguity (IPPE returns both); among the solutions that
  explain the corners about equally well, the one standing on a face wins (objects on a table or in a
  top-down grasp do), then the one nearest the previous estimate;
* a monocular pose of a small marker is precise across the image but not in depth (a 25 px marker
  with 0.3 px corner noise is 1-2 cm off along the viewing ray), and a lone 12 px side marker can
  come out tens of degrees wrong. So each object is also fitted as *resting on the support* (standing
  on a face on the known table plane, or on top of another tracked object resting under it: x, y, yaw only, `scipy.optimize.least_squares` on the corner
  reprojection, since OpenCV's PnP takes no constraints); when that explains the corners to within
  `REST_MAX_RMS_PX` and the free solution is not clearly lifted, it is the estimate, as table-top
  perception stacks use the table plane. A lifted object gets the free 6-DoF solution. (At these marker
  sizes a cube raised less than ~3 cm cannot be told from a resting one: the depth cue is a few % of scale);
* a free solution that jumps further from the last estimate than a carried object can move is dropped
  (the object keeps its last pose, as when unseen);
* small markers in low-resolution frames are detected on an upscaled copy, since the detector's
  contour stage needs a few pixels per marker cell.

`MarkerTracker.update(image, time)` returns per-object estimates; objects not seen keep their last
estimate with its age (perception/oracle.py turns that into observations and info).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from robotlearn.core.rotations import quat_to_rot, rot_to_quat
from robotlearn.perception.camera_model import CameraModel
from robotlearn.perception.fiducials import FiducialLayout, aruco_dictionary

#: frames are upscaled until their longer side reaches this before detection (px)
DETECT_MIN_SIDE = 480
#: a pose whose nearest face normal is within this of vertical stands on a face (rad)
UPRIGHT_TOLERANCE = np.radians(15.0)
#: the resting-pose fit is the pose when its RMS corner error is at most this (px, in the frame; JPEG'd
#: 480 px frames of resting cubes: p95 1.4 px) and the free solution is at most `REST_MAX_RISE` (m) above
#: the resting height (free solutions of resting cubes: p95 +17 mm; of cubes lifted 8 cm: p5 +64 mm)
REST_MAX_RMS_PX = 2.0
#: RMS px a resting fit is charged per cm it lies from the object's previous estimate (tie-break only)
REST_TIE_PX = 0.3
REST_MAX_RISE = 0.04
#: a free (not resting) solution further than this speed x elapsed time (at least 0.1 s) from the last
#: estimate is dropped as an outlier: free solutions of small or half-hidden markers are 2-7 cm off in
#: depth (bench/perception.py "free PnP"), while a carried cube moves ~0.1-0.2 m/s
MAX_FREE_JUMP_M_S = 0.3


@dataclass(frozen=True)
class ObjectEstimate:
    """One object's pose from one frame."""

    pos: np.ndarray  # world (m)
    quat: np.ndarray  # world, wxyz
    time: float  # host time of the frame it came from (time.monotonic)
    markers: int  # markers used
    reprojection_px: float  # RMS corner reprojection error, in the frame's pixels
    on_support: bool  # depth fixed by the support plane (see module doc)


def rotation_angle(q1: np.ndarray, q2: np.ndarray) -> float:
    """Angle (rad) of the rotation between two unit quaternions (wxyz)."""
    return float(2 * np.arccos(np.clip(abs(float(np.dot(q1, q2))), 0.0, 1.0)))


class MarkerTracker:
    """Tracks the objects of `layouts` in frames of `camera` (its model at the spec size; frames of
    another size are handled by rescaling the intrinsics). `support_height`: world z of the surface the
    objects rest on (the table top), or None for no support-plane depth fix."""

    def __init__(self, camera: CameraModel, layouts: list[FiducialLayout], support_height: float | None = 0.0,
                 detect_min_side: int = DETECT_MIN_SIDE):
        dictionaries = {layout.dictionary for layout in layouts}
        if len(dictionaries) != 1:
            raise ValueError(f"all tracked objects must use one ArUco dictionary, got {sorted(dictionaries)}")
        ids = [i for layout in layouts for i in layout.ids]
        if len(ids) != len(set(ids)):
            raise ValueError("marker ids are shared between objects; every printed marker must be unique")
        self.camera, self.support_height, self.detect_min_side = camera, support_height, detect_min_side
        self.layouts = {layout.object_name: layout for layout in layouts}
        self._owner = {i: layout.object_name for layout in layouts for i in layout.ids}
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        params.cornerRefinementWinSize = 3
        # small, perspective-distorted markers: finer thresholds, looser polygon and distance checks
        params.minMarkerPerimeterRate = 0.02
        params.adaptiveThreshWinSizeMin, params.adaptiveThreshWinSizeMax, params.adaptiveThreshWinSizeStep = 3, 33, 4
        params.polygonalApproxAccuracyRate = 0.05
        params.minCornerDistanceRate = params.minMarkerDistanceRate = 0.02
        params.perspectiveRemovePixelPerCell, params.perspectiveRemoveIgnoredMarginPerCell = 8, 0.2
        params.minDistanceToBorder = 1
        self._detector = cv2.aruco.ArucoDetector(aruco_dictionary(dictionaries.pop()), params)
        self.last: dict[str, ObjectEstimate] = {}
        self.rejected: dict[str, int] = {}  # free solutions dropped as outliers, per object

    def detect_markers(self, image_rgb: np.ndarray) -> dict[int, np.ndarray]:
        """Marker id -> 4x2 corners in the frame's pixel coordinates (ids not in a layout are ignored)."""
        gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        scale = max(1, int(np.ceil(self.detect_min_side / max(gray.shape))))
        if scale > 1:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        corners, ids, _ = self._detector.detectMarkers(gray)
        if ids is None:
            return {}
        # pixel centres: corner c in the upscaled image is at (c + 0.5) / scale - 0.5 in the frame
        return {int(i): (c.reshape(4, 2) + 0.5) / scale - 0.5 for c, i in zip(corners, ids.ravel(), strict=True)
                if int(i) in self._owner}

    def update(self, image_rgb: np.ndarray, frame_time: float) -> dict[str, ObjectEstimate]:
        """Estimates of the objects seen in this frame (also stored in `last`)."""
        height, width = image_rgb.shape[:2]
        cam = self.camera.at_size(width, height)
        found = self.detect_markers(image_rgb)
        seen = {}
        for name, layout in self.layouts.items():
            visible = [i for i in layout.ids if i in found]
            if not visible:
                continue
            obj_pts = np.concatenate([layout.marker_corners[i] for i in visible])
            img_pts = np.concatenate([found[i] for i in visible])
            solved = self._solve(obj_pts, img_pts, cam, self.last.get(name))
            if solved is None:
                continue
            rot_cam, t_cam, err = solved
            world = cam.world_from_camera
            rot = world[:3, :3] @ rot_cam
            pos = world[:3, :3] @ t_cam + world[:3, 3]
            on_support = False
            if self.support_height is not None:
                previous = self.last.get(name)
                fits = [_fit_resting(obj_pts, img_pts, cam, pos, rest_z, layout, visible)
                        for rest_z in self.support_heights(name, pos) if self._could_rest_at(pos, rest_z, previous)]
                # several supports can explain the corners about equally (depth along the ray is weak): the
                # one nearest where the object was wins ties (REST_TIE_PX per cm of jump)
                rest = min((f for f in fits if f is not None), default=None, key=lambda f: f[2] + (
                    REST_TIE_PX * 100 * np.linalg.norm(f[1] - previous.pos) if previous is not None else 0.0))
                if rest is not None and rest[2] <= REST_MAX_RMS_PX:
                    rot, pos, err, on_support = rest[0], rest[1], rest[2], True
            if not on_support and self.is_free_outlier(name, pos, frame_time):
                self.rejected[name] = self.rejected.get(name, 0) + 1  # a depth outlier, not a move
                continue
            seen[name] = ObjectEstimate(pos, rot_to_quat(rot), frame_time, len(visible), err, on_support)
        self.last.update(seen)
        return seen

    def is_free_outlier(self, name: str, pos: np.ndarray, frame_time: float) -> bool:
        """Whether a free (not resting) solution at `pos` is a depth error rather than where `name` is: further
        from its last estimate than it can have moved, or sunk into the table. The latter is the one a carried
        object's last estimate cannot catch: a cube let go under two CPU hogs was seen at z = -33 mm (5 cm
        under its resting height, 5-7 cm from the truth), close enough to its last carried pose to pass."""
        previous = self.last.get(name)
        if previous is not None and np.linalg.norm(pos - previous.pos) > MAX_FREE_JUMP_M_S * max(
                frame_time - previous.time, 0.1):
            return True
        return self.support_height is not None and pos[2] < self.support_height + self.layouts[name].half - REST_MAX_RISE

    @staticmethod
    def _could_rest_at(pos: np.ndarray, rest_z: float, previous: ObjectEstimate | None) -> bool:
        """Whether a free solution at `pos` may be an object resting at height `rest_z`: not clearly lifted
        above it, and not far below it -- unless it rested at that height last time: a free solution far
        below a stack is a depth error of a few visible corners (an object cannot sink into its support),
        and without this only the table would be left to fit it to, centimetres off."""
        if pos[2] - rest_z >= REST_MAX_RISE:
            return False
        stayed = previous is not None and previous.on_support and abs(previous.pos[2] - rest_z) < 0.005
        return rest_z - pos[2] < REST_MAX_RISE or stayed

    def support_heights(self, name: str, pos: np.ndarray) -> list[float]:
        """Heights of `name`'s centre when it rests on the table, or on top of another tracked object resting
        under it (a stack: its last estimate within half a face of `pos` in x, y)."""
        half = self.layouts[name].half
        heights = [self.support_height + half]
        near = [pos[:2]] + ([self.last[name].pos[:2]] if name in self.last else [])  # free solution, or last pose
        for other, est in self.last.items():
            below = self.layouts[other]
            if other != name and est.on_support and any(np.all(np.abs(est.pos[:2] - xy) < below.half) for xy in near):
                heights.append(est.pos[2] + below.half + half)
        return heights

    def _solve(self, obj_pts: np.ndarray, img_pts: np.ndarray, cam: CameraModel,
               previous: ObjectEstimate | None) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(R camera<-object, t, RMS px) from the corners, or None if OpenCV finds no solution."""
        obj_pts, img_pts = obj_pts.astype(np.float64), img_pts.astype(np.float64)
        planar = np.ptp(obj_pts @ _plane_normal(obj_pts), axis=0) < 1e-9 if len(obj_pts) == 4 else False
        method = cv2.SOLVEPNP_IPPE if planar else cv2.SOLVEPNP_SQPNP
        n, rvecs, tvecs, errs = cv2.solvePnPGeneric(obj_pts, img_pts, cam.matrix, cam.distortion, flags=method)
        if n == 0:
            return None
        candidates = []
        for rvec, tvec, err in zip(rvecs, tvecs, np.ravel(errs), strict=True):
            rvec, tvec = cv2.solvePnPRefineLM(obj_pts, img_pts, cam.matrix, cam.distortion, rvec, tvec)
            if float(tvec[2, 0]) <= 0:  # behind the camera
                continue
            candidates.append((cv2.Rodrigues(rvec)[0], tvec.ravel(), float(err)))
        if not candidates:
            return None
        best = min(c[2] for c in candidates)
        plausible = [c for c in candidates if c[2] <= max(2 * best, best + 0.5)]
        world_rot = cam.world_from_camera[:3, :3]
        prev_rot = quat_to_rot(previous.quat) if previous is not None else None

        def rank(c):
            upright = _tilt(world_rot @ c[0]) < UPRIGHT_TOLERANCE
            near = _angle(world_rot @ c[0], prev_rot) if prev_rot is not None else 0.0
            return (not upright, near, c[2])

        return min(plausible, key=rank)


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _face_up_rotations() -> list[np.ndarray]:
    """The six orientations of a box standing on a face (object +z, -z, +x, -x, +y, -y up), at yaw 0."""
    def rx(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])

    def ry(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])

    return [np.eye(3), rx(np.pi), ry(-np.pi / 2), ry(np.pi / 2), rx(np.pi / 2), rx(-np.pi / 2)]


FACE_UP = _face_up_rotations()


def _hidden_but_larger(layout: FiducialLayout, visible: list[int], rot: np.ndarray, pos: np.ndarray,
                       cam: CameraModel, cam_from_world: np.ndarray) -> bool:
    """Negative evidence: under this pose, some undetected marker would face the camera and look larger
    than a detected one (so it should have been found)."""
    areas = {}
    for marker_id, corners in layout.marker_corners.items():
        world = corners @ rot.T + pos
        normal = rot @ np.cross(corners[1] - corners[0], corners[3] - corners[0])
        if np.dot(normal, cam.world_from_camera[:3, 3] - world.mean(axis=0)) >= 0:
            areas[marker_id] = 0.0  # faces away (the corner order is clockwise seen from outside)
            continue
        cam_pts = world @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
        uv, _ = cv2.projectPoints(cam_pts, np.zeros(3), np.zeros(3), cam.matrix, cam.distortion)
        areas[marker_id] = float(cv2.contourArea(uv.reshape(-1, 2).astype(np.float32)))
    smallest_seen = min(areas[i] for i in visible)
    return smallest_seen <= 0 or any(a > 1.5 * smallest_seen for i, a in areas.items() if i not in visible)


def _fit_resting(obj_pts: np.ndarray, img_pts: np.ndarray, cam: CameraModel, pos: np.ndarray,
                 rest_z: float, layout: FiducialLayout, visible: list[int]
                 ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Best (R world<-object, p world, RMS px) of the object standing on a face with its centre at
    `rest_z`: every face up at four yaw quarters is scored at the free solution's ray (fits under which a
    larger marker should have been seen rank last), the best three are refined (a lone 12 px side marker
    also fits "that face up, further away" to ~1 px)."""
    from scipy.optimize import least_squares

    cam_from_world = np.linalg.inv(cam.world_from_camera)
    origin = cam.world_from_camera[:3, 3]
    ray = pos - origin
    if abs(ray[2]) < 1e-6:
        return None
    start_xy = (origin + ray * (rest_z - origin[2]) / ray[2])[:2]

    def residual(params: np.ndarray, base_rot: np.ndarray) -> np.ndarray:
        r_world = _rot_z(params[2]) @ base_rot
        p_world = np.array([params[0], params[1], rest_z])
        r_cam = cam_from_world[:3, :3] @ r_world
        t_cam = cam_from_world[:3, :3] @ p_world + cam_from_world[:3, 3]
        proj, _ = cv2.projectPoints(obj_pts, cv2.Rodrigues(r_cam)[0], t_cam, cam.matrix, cam.distortion)
        return (proj.reshape(-1, 2) - img_pts).ravel()

    def rms(res: np.ndarray) -> float:
        return float(np.sqrt(np.mean(res.reshape(-1, 2) ** 2) * 2))

    start_pos = np.array([*start_xy, rest_z])
    starts = [(_hidden_but_larger(layout, visible, _rot_z(q * np.pi / 2) @ base, start_pos, cam, cam_from_world),
               rms(residual(np.array([*start_xy, q * np.pi / 2]), base)), q, base)
              for base in FACE_UP for q in range(4)]
    fits = []
    for _, _, quarter, base in sorted(starts, key=lambda s: (s[0], s[1]))[:3]:
        fit = least_squares(residual, [*start_xy, quarter * np.pi / 2], args=(base,), method="lm")
        rot, p_world = _rot_z(fit.x[2]) @ base, np.array([fit.x[0], fit.x[1], rest_z])
        fits.append((_hidden_but_larger(layout, visible, rot, p_world, cam, cam_from_world), rms(fit.fun), rot, p_world))
    _, err, rot, p_world = min(fits, key=lambda f: (f[0], f[1]))
    return rot, p_world, err


def _plane_normal(points: np.ndarray) -> np.ndarray:
    centered = points - points.mean(axis=0)
    return np.linalg.svd(centered)[2][-1]


def _tilt(rot: np.ndarray) -> float:
    """Angle between world up and the object's face normal nearest to it (rad)."""
    return float(np.arccos(np.clip(np.max(np.abs(rot[2, :])), -1.0, 1.0)))


def _angle(r1: np.ndarray, r2: np.ndarray) -> float:
    return float(np.arccos(np.clip((np.trace(r1.T @ r2) - 1) / 2, -1.0, 1.0)))

"""Object observations of a real robot from its camera: the `SceneOracle` a real backend asks for poses.

Perception runs off the control step: after `start()` a worker thread runs the marker tracker on every new
camera frame as it arrives (OpenCV releases the GIL while it detects), and the backend's `refresh()` once
per control tick only takes the newest finished estimate. Marker detection and pose fitting take 5-20 ms
of CPU per frame, which inline would land in the step of whichever tick a frame arrived on. Between
refreshes `object_pose` answers from that copy, so every read within one step agrees. Without `start()`,
`refresh()` runs the tracker itself on the newest frame (the same processing, for callers that want each
refresh to see the current frame, e.g. tests stepping a sim camera by hand).

A marker that is not visible (occluded by the gripper, out of view, motion blur) is a defined state,
never an error: the object keeps its last-seen pose and `info()` says how old it is. Before the first
sighting after a reset, the pose is where the object was asked to be placed (the person or the
emulator was told that pose), with ``seen: False``.

A grasped object is followed through the gripper: its markers are mostly hidden between the fingers and the
few visible corners give poses centimetres off. When the gripper closes with a resting object's estimate
between the fingers, the object is attached at that relative pose and moves with the tool's forward
kinematics (as grasp-aware trackers on real arms do) until the fingers open again; then it rests where it
was let go of until the fingers are clear of it (the opening fingers still hide its markers, and fits of
the few visible corners land on the wrong support). (A slip out of a closed
gripper is not detected: the half-hidden markers' resting fits of a lifted cube are too often wrong to
tell a slip from a carry.)

`info()` is what the backend puts in ``info["perception"]``: per object whether it was seen in the
newest frame, the age of its pose, the markers used, and (when a truth source exists, i.e. on the
emulator) its position/orientation error; plus latency (frame arrival to estimate) and detection rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from robotlearn.core.rotations import quat_conj, quat_mul, quat_rotate
from robotlearn.core.spec import RobotSpec
from robotlearn.hardware.cameras.base import Camera, CameraError, Frame
from robotlearn.perception.camera_model import CameraModel
from robotlearn.perception.tracker import MarkerTracker, ObjectEstimate, rotation_angle
from robotlearn.sim.scene import scene_for

Pose = tuple[np.ndarray, np.ndarray]
#: (tool pos, tool quat wxyz, gripper opening 0 closed .. 1 open) from the robot's joint state
GripperState = Callable[[], tuple[np.ndarray, np.ndarray, float]]
#: an object attaches when its resting centre is this close to the tool point as the gripper closes (m)
GRASP_RADIUS = 0.03
#: the gripper grasps when it is closing and below this opening, and has released once it opens this much wider than
#: the narrowest it closed to on the object. The margin is small: a policy may open the fingers while already
#: lifting, and the 4 cm cube drops as soon as they open a few mm (0.05 of the stroke); holding, the opening varies
#: by about 0.01.
GRASP_OPENING, RELEASE_MARGIN = 0.9, 0.05
#: a released object keeps its release pose until the tool point is this far from it (m): the fingers around a
#: 4 cm cube hide its markers until then
CLEAR_RADIUS = 0.06


@dataclass
class _Counters:
    frames: int = 0
    detections: int = 0
    latency_sum: float = 0.0


@dataclass(frozen=True)
class PerceptionView:
    """Everything one control step reads, copied from the tracker when a frame has been processed."""

    frame_index: int = 0
    last: dict[str, ObjectEstimate] = field(default_factory=dict)      # every object's newest estimate
    seen_now: dict[str, ObjectEstimate] = field(default_factory=dict)  # the objects seen in that frame
    attached: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> tool offset
    rejected: dict[str, int] = field(default_factory=dict)
    latency: float = 0.0
    counters: _Counters = field(default_factory=_Counters)


class CameraObjectPerception:
    """Object poses from `camera` through `tracker`. `placer` puts objects where a reset asks (the
    emulator's side channel, or a person prompted by the CLI); `truth` (emulator only) gives the
    ground-truth pose, used for the error figures in `info()` and nothing else."""

    def __init__(self, camera: Camera, tracker: MarkerTracker, default_poses: dict[str, Pose],
                 placer: Callable[[dict[str, list[float]]], None] | None = None,
                 truth: Callable[[str], Pose] | None = None, settle_frames: int = 2,
                 gripper: GripperState | None = None):
        self.camera, self.tracker, self.placer, self.truth = camera, tracker, placer, truth
        self.gripper = gripper
        self._attached: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}  # name -> (offset pos, quat, closed to)
        self._carried: dict[str, ObjectEstimate] = {}  # name -> its carried pose at the last frame
        self._resting: dict[str, ObjectEstimate] = {}  # name -> its last resting (on-support) estimate
        self._released: dict[str, ObjectEstimate] = {}  # name -> where it was let go of, until the tool is clear
        self._last_opening = 1.0
        self._placed = {name: (np.asarray(p, float), np.asarray(q, float)) for name, (p, q) in default_poses.items()}
        self._settle_frames = settle_frames
        self._last_index = 0
        self._min_index = 0  # frames before this were captured before the last placement
        self._seen_now: dict[str, ObjectEstimate] = {}
        self._latency = 0.0
        self._reset_time = time.monotonic()
        self.counters = _Counters()
        self.view = PerceptionView()  # what object_pose and info answer from (refresh() replaces it)
        self._frame_view = PerceptionView()  # the newest processed frame's view, before carrying (see refresh)
        # worker: _lock guards the tracker state; _published (under _cond) is its newest finished view
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._published = PerceptionView()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None

    @property
    def objects(self) -> list[str]:
        return list(self.tracker.layouts)

    # -- SceneOracle ---------------------------------------------------------------------------
    def place(self, scene: dict[str, list[float]]) -> None:
        """Have the objects put at the reset's poses; forget estimates from before."""
        if self.placer is not None:
            self.placer(scene)
        with self._lock:  # waits for a frame the worker is processing, which then lands before the forgetting
            for name in self.objects:
                pos, quat = self._placed[name]
                self._placed[name] = (np.asarray(scene.get(f"object/{name}/pos", pos), float),
                                      np.asarray(scene.get(f"object/{name}/quat", quat), float))
            self.tracker.last.clear()
            self.tracker.rejected.clear()
            self._attached.clear()
            self._carried.clear()
            self._resting.clear()
            self._released.clear()
            self._seen_now = {}
            self._reset_time = time.monotonic()
            self._min_index = self._newest_index() + self._settle_frames
            self.counters = _Counters()
            self.view = self._frame_view = PerceptionView()
            with self._cond:
                self._published = PerceptionView()

    def object_pose(self, name: str) -> Pose:
        if name not in self.tracker.layouts:
            raise KeyError(f"perception: no marker layout for object {name!r}; tracked: {self.objects}")
        est = self.view.last.get(name)
        if est is None:
            pos, quat = self._placed[name]
            return pos.copy(), quat.copy()
        return est.pos.copy(), est.quat.copy()

    # -- per tick ------------------------------------------------------------------------------
    def _newest_index(self) -> int:
        try:
            return self.camera.latest(max_age_s=float("inf")).index
        except CameraError:
            return self._last_index

    def start(self) -> CameraObjectPerception:
        """Process frames in a worker thread from now on; `refresh()` then only takes its newest estimate."""
        if self._worker is None:
            self._stop.clear()
            self._worker = threading.Thread(target=self._run, name=f"perception-{self.camera.name}", daemon=True)
            self._worker.start()
        return self

    def close(self) -> None:
        """Stop the worker (if started). Idempotent."""
        self._stop.set()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout=2.0)

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            try:
                frame = self.camera.wait_newer(index, 0.2)
            except CameraError:  # no new frame yet, or the camera is down: the control step reports the age
                if self._stop.wait(0.01):
                    return
                continue
            index = frame.index
            try:
                with self._lock:
                    if self._process(frame):
                        view = self._snapshot()
                        with self._cond:
                            self._published = view
                            self._cond.notify_all()
            except BaseException as err:  # e.g. the arm faulted while the gripper's pose was read
                with self._cond:
                    self._error = err
                    self._cond.notify_all()
                return

    def refresh(self, wait_s: float = 0.0) -> bool:
        """Take the newest estimate if it is new (waiting up to `wait_s` for one from a frame taken after the
        last placement). True if the view changed; a stale or missing frame just keeps the last poses.
        Raises what stopped the worker, if anything did."""
        if self._worker is None:
            view = self._refresh_inline(wait_s)
        else:
            deadline = time.monotonic() + wait_s
            with self._cond:
                while (self._error is None and self._published.frame_index < self._min_index
                       and time.monotonic() < deadline):
                    self._cond.wait(max(1e-3, deadline - time.monotonic()))
                if self._error is not None:
                    raise self._error
                view = self._published
        changed = not (view is None or view.frame_index <= self._frame_view.frame_index
                       or view.frame_index < self._min_index)
        if changed:
            self._frame_view = view
        self.view = self._carried_now(self._frame_view)
        return changed

    def _carried_now(self, view: PerceptionView) -> PerceptionView:
        """A grasped object is where the tool is now, not where it was when its last frame was processed (up
        to a camera period plus a control period ago: 2 cm at carrying speed)."""
        if not view.attached or self.gripper is None:
            return view
        tool_pos, tool_quat, _ = self.gripper()
        now = time.monotonic()
        last = dict(view.last)
        for name, (off_pos, off_quat) in view.attached.items():
            markers = last[name].markers if name in last else 0
            last[name] = ObjectEstimate(tool_pos + quat_rotate(tool_quat, off_pos), quat_mul(tool_quat, off_quat),
                                        now, markers, 0.0, False)
        return replace(view, last=last)

    def _refresh_inline(self, wait_s: float) -> PerceptionView | None:
        try:
            frame = self.camera.latest(max_age_s=float("inf"))
            deadline = time.monotonic() + wait_s
            while frame.index < self._min_index and time.monotonic() < deadline:
                frame = self.camera.wait_newer(frame.index, max(1e-3, deadline - time.monotonic()))
        except CameraError:
            return None
        with self._lock:
            return self._snapshot() if self._process(frame) else None

    def _process(self, frame: Frame) -> bool:
        """Run the tracker (and grasp following) on `frame` if it is new and after the placement (holds _lock)."""
        if frame.index <= self._last_index or frame.index < self._min_index:
            return False
        self._last_index = frame.index
        seen = self.tracker.update(frame.image, frame.host_time)
        if self.gripper is not None:
            self._follow_grasp(frame.host_time, seen)
        self._latency = time.monotonic() - frame.host_time
        self._seen_now = seen
        self.counters.frames += 1
        self.counters.detections += bool(seen)
        self.counters.latency_sum += self._latency
        return True

    def _snapshot(self) -> PerceptionView:
        c = self.counters
        return PerceptionView(self._last_index, dict(self.tracker.last), dict(self._seen_now),
                              {n: (p, q) for n, (p, q, _) in self._attached.items()}, dict(self.tracker.rejected),
                              self._latency,
                              _Counters(c.frames, c.detections, c.latency_sum))

    def _follow_grasp(self, frame_time: float, seen: dict[str, ObjectEstimate]) -> None:
        """Attach an object the gripper closes on; move attached objects with the tool; hold a released one
        where it was let go of until the fingers are clear of it (module docstring). Drops from `seen`
        the fits this overrules."""
        tool_pos, tool_quat, opening = self.gripper()
        closing = opening < self._last_opening - 0.01  # (a gripper opening after a release is not grasping)
        self._last_opening = opening
        for name in self.objects:
            est = self.tracker.last.get(name)
            released = self._released.get(name)
            if released is not None:
                if not closing and np.linalg.norm(tool_pos - released.pos) < CLEAR_RADIUS:
                    # the opening fingers still hide most of its markers, and fits of the few visible corners
                    # land centimetres off (on the table instead of the cube it was stacked on): keep the
                    # pose it was let go of
                    self.tracker.last[name] = released
                    seen.pop(name, None)
                    continue
                del self._released[name]
            if name in self._attached:
                off_pos, off_quat, closed = self._attached[name]
                if opening > closed + RELEASE_MARGIN:
                    # released: where it was let go of (the previous frame's carried pose; by now the tool may
                    # be lifting away), resting on whatever is under it
                    del self._attached[name]
                    carried = self._carried.pop(name, None)
                    if carried is not None:
                        held = replace(carried, pos=self._settled(name, carried.pos), on_support=True)
                        self.tracker.last[name] = self._released[name] = self._resting[name] = held
                        seen.pop(name, None)
                    continue
                self._attached[name] = (off_pos, off_quat, min(closed, opening))
                carried = tool_pos + quat_rotate(tool_quat, off_pos)
                self.tracker.last[name] = self._carried[name] = ObjectEstimate(
                    carried, quat_mul(tool_quat, off_quat), frame_time, est.markers if est else 0, 0.0, False)
                continue
            if est is not None and est.on_support:
                self._resting[name] = est
            # the fingers hide the markers as they close: attach at the last resting pose seen before that
            rest = self._resting.get(name)
            if (closing and opening < GRASP_OPENING and rest is not None
                    and np.linalg.norm(rest.pos - tool_pos) < GRASP_RADIUS):
                inv = quat_conj(tool_quat)
                self._attached[name] = (quat_rotate(inv, rest.pos - tool_pos), quat_mul(inv, rest.quat), opening)
                self._resting.pop(name)

    def _settled(self, name: str, pos: np.ndarray) -> np.ndarray:
        """Where an object let go of at `pos` comes to rest: straight below, on the highest support under it
        (the table, or a tracked object resting there). A release seen a frame late, with the tool already
        lifting, would otherwise leave it hanging in the air."""
        if self.tracker.support_height is None:
            return pos
        heights = [h for h in self.tracker.support_heights(name, pos) if h <= pos[2] + 0.005]
        return np.array([pos[0], pos[1], max(heights)]) if heights else pos

    def info(self) -> dict[str, float | int | bool]:
        """Flat numbers for ``info["perception"]`` (see the module docstring), from the current view."""
        now = time.monotonic()
        view = self.view
        c = view.counters
        out: dict[str, float | int | bool] = {
            "frames": c.frames, "detection_rate": c.detections / c.frames if c.frames else 0.0,
            "latency_s": view.latency, "mean_latency_s": c.latency_sum / c.frames if c.frames else 0.0,
            "threaded": self._worker is not None}
        for name in self.objects:
            est = view.last.get(name)
            out[f"{name}/visible"] = name in view.seen_now
            out[f"{name}/seen"] = est is not None
            out[f"{name}/age_s"] = now - est.time if est is not None else now - self._reset_time
            out[f"{name}/markers"] = est.markers if name in view.seen_now else 0
            out[f"{name}/on_support"] = bool(est is not None and est.on_support)
            out[f"{name}/grasped"] = name in view.attached
            out[f"{name}/rejected"] = view.rejected.get(name, 0)
            if self.truth is not None:
                pos, quat = self.object_pose(name)
                true_pos, true_quat = self.truth(name)
                out[f"{name}/pos_error_m"] = float(np.linalg.norm(pos - true_pos))
                out[f"{name}/rot_error_deg"] = float(np.degrees(rotation_angle(quat, true_quat)))
        return out


def build_perception(spec: RobotSpec, camera: Camera, calibration_file: str | None = None,
                     placer: Callable[[dict[str, list[float]]], None] | None = None,
                     truth: Callable[[str], Pose] | None = None,
                     gripper: GripperState | None = None) -> CameraObjectPerception:
    """Perception of the robot's marker-carrying scene objects (scene.yaml ``fiducials``) through `camera`,
    a fixed camera of `spec`, with the spec's pinhole or a `robotlearn calibrate camera` file."""
    spec_camera = spec.camera(camera.name)
    model = CameraModel.load(calibration_file, spec_camera) if calibration_file else CameraModel.from_spec(spec_camera)
    objects = [o for o in scene_for(spec.description).objects if o.fiducials is not None]
    if not objects:
        raise ValueError(f"{spec.name}: no scene object carries fiducial markers (scene.yaml 'fiducials')")
    tracker = MarkerTracker(model, [o.fiducials for o in objects], support_height=spec.params.get("table_height", 0.0))
    return CameraObjectPerception(camera, tracker, {o.name: (np.array(o.pos), np.array(o.quat)) for o in objects},
                                  placer=placer, truth=truth, gripper=gripper)

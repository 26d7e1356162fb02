"""Camera base: one capture thread per camera and three explicit ways to read it.

Policies must never act on an old image without knowing it, and a control loop must never block on
a camera longer than it chose to. So a camera owns a thread that keeps only the newest frame, and
readers pick the semantics they need:

* ``read(timeout_s)``     - blocking: the next frame not yet returned by this camera;
* ``wait_newer(index, timeout_s)`` - a frame newer than ``index`` (e.g. the last one seen) or raise;
* ``latest(max_age_s)``   - the newest frame immediately, raising `StaleFrameError` if it is older than
  ``max_age_s`` (a frozen stream shows up here, within that bound, even while the capture thread is
  still blocked inside the driver).

Each frame carries the host time of capture (``time.monotonic``) and the device's own timestamp when
the hardware provides one. Frames replaced before anyone read them are counted as drops, as are gaps
in device frame numbers. When the source fails, the thread closes it and reopens it after a delay
(counted in ``stats()["reconnects"]``) until `close()`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


class CameraError(RuntimeError):
    """The camera cannot deliver (not started, closed, stream ended, device gone)."""


class StaleFrameError(CameraError):
    """The newest frame is older than the caller's max age: the stream is frozen or too slow."""


class FrameTimeout(CameraError):
    """No (new) frame arrived within the caller's timeout."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray            # uint8 HxWx3, RGB
    index: int                   # per-camera sequence number, 1-based, strictly increasing
    host_time: float             # time.monotonic() when the frame reached the host
    device_time: float | None    # device clock (s) when the sensor captured it, if the device says
    depth: np.ndarray | None = None   # float32 HxW metres, aligned to `image` (depth cameras)
    device_index: int | None = None   # hardware frame counter, used to count device-side drops

    @property
    def age(self) -> float:
        return time.monotonic() - self.host_time


@dataclass
class Grab:
    """What a driver's `_grab` returns; the base class adds sequence number and host time."""

    image: np.ndarray
    device_time: float | None = None
    depth: np.ndarray | None = None
    device_index: int | None = None


class Camera(ABC):
    """A camera with a capture thread. Subclasses implement `_open`, `_grab`, `_release`."""

    def __init__(self, name: str, max_age_s: float = 0.5, reconnect_delay_s: float = 0.5):
        if max_age_s <= 0:
            raise ValueError(f"camera {name!r}: max_age_s must be > 0, got {max_age_s}")
        self.name = name
        self.max_age_s = max_age_s
        self.reconnect_delay_s = reconnect_delay_s
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._last_returned = 0
        self._consumed_upto = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._ended = False
        self._stats = {"frames": 0, "dropped_unread": 0, "dropped_device": 0, "reconnects": 0, "errors": 0}

    # -- driver hooks ----------------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        """Open the source; raise CameraError with a one-line reason if it cannot be opened."""

    @abstractmethod
    def _grab(self) -> Grab | None:
        """Block until the next frame (bounded by a driver timeout). None = source ended / lost."""

    @abstractmethod
    def _release(self) -> None:
        """Close the source. Called from the capture thread only."""

    def _ended_for_good(self) -> bool:
        """True when a None from `_grab` means the end (a finite file), not a lost connection."""
        return False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, open_timeout_s: float = 10.0) -> Camera:
        """Open the source in the capture thread and wait for the first frame (left unread for read())."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        try:
            with self._cond:
                self._wait_for_frame_after(0, open_timeout_s)
        except CameraError:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the capture thread and release the device. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10.0)
            if thread.is_alive():
                raise CameraError(f"camera {self.name!r}: capture thread did not stop within 10 s")
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Camera:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._open()
            except Exception as err:  # noqa: BLE001 - any driver failure becomes a reconnect
                self._fail(f"open failed: {err}")
                continue
            self._error = None
            try:
                self._capture_until_lost()
            except Exception as err:  # noqa: BLE001
                self._fail(f"capture failed: {err}")
            finally:
                self._release()
            if self._ended:
                return
        with self._cond:
            self._cond.notify_all()

    def _capture_until_lost(self) -> None:
        last_device_index = None
        while not self._stop.is_set():
            grab = self._grab()
            if grab is None:
                if self._ended_for_good():
                    with self._cond:
                        self._ended = True
                        self._cond.notify_all()
                else:
                    self._fail("stream lost")
                return
            now = time.monotonic()
            if grab.device_index is not None and last_device_index is not None:
                self._stats["dropped_device"] += max(0, grab.device_index - last_device_index - 1)
            last_device_index = grab.device_index
            with self._cond:
                index = (self._frame.index + 1) if self._frame else 1
                if self._frame is not None and self._frame.index > self._consumed_upto:
                    self._stats["dropped_unread"] += 1
                self._frame = Frame(grab.image, index, now, grab.device_time, grab.depth, grab.device_index)
                self._stats["frames"] += 1
                self._cond.notify_all()

    def _fail(self, reason: str) -> None:
        self._error = reason
        self._stats["errors"] += 1
        if not self._stop.wait(self.reconnect_delay_s):
            self._stats["reconnects"] += 1

    # -- reading ---------------------------------------------------------------------------------
    def _check_alive(self) -> None:
        if self._thread is None:
            raise CameraError(f"camera {self.name!r} is not started (call start())")
        if self._ended:
            raise CameraError(f"camera {self.name!r}: stream ended")

    def _take(self, frame: Frame) -> Frame:
        self._consumed_upto = max(self._consumed_upto, frame.index)
        self._last_returned = frame.index
        return frame

    def _wait_for_frame_after(self, after_index: int, timeout_s: float) -> Frame:
        """The current frame once its index is > `after_index` (caller holds `_cond`); does not consume it."""
        deadline = time.monotonic() + timeout_s
        while self._frame is None or self._frame.index <= after_index:
            if self._ended:
                raise CameraError(f"camera {self.name!r}: stream ended")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._thread is None:
                why = f" (last error: {self._error})" if self._error else ""
                raise FrameTimeout(f"camera {self.name!r}: no new frame within {timeout_s:.3f} s{why}")
            self._cond.wait(remaining)
        return self._frame

    def wait_newer(self, after_index: int, timeout_s: float) -> Frame:
        """A frame with index > `after_index`, waiting at most `timeout_s`."""
        with self._cond:
            return self._take(self._wait_for_frame_after(after_index, timeout_s))

    def read(self, timeout_s: float = 1.0) -> Frame:
        """Blocking read: the next frame this camera has not returned yet."""
        self._check_alive()
        return self.wait_newer(self._last_returned, timeout_s)

    def latest(self, max_age_s: float | None = None) -> Frame:
        """The newest frame now; StaleFrameError if it is older than `max_age_s` (default: the camera's)."""
        self._check_alive()
        max_age = self.max_age_s if max_age_s is None else max_age_s
        with self._cond:
            frame = self._frame
        if frame is None:
            raise FrameTimeout(f"camera {self.name!r}: no frame yet")
        if frame.age > max_age:
            why = f"; last error: {self._error}" if self._error else ""
            raise StaleFrameError(f"camera {self.name!r}: newest frame is {frame.age * 1000:.0f} ms old "
                                  f"(max {max_age * 1000:.0f} ms){why}")
        return self._take(frame)

    def stats(self) -> dict[str, float]:
        """Counters: frames captured, drops (unread, device gaps), reconnects, errors."""
        return dict(self._stats)

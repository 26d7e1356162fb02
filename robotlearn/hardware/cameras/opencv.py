"""OpenCV camera: UVC device index, video file, or an MJPEG/RTSP/HTTP URL.

Network sources are opened through FFmpeg with explicit open/read timeouts, so a hung stream makes
`VideoCapture.read` return instead of blocking the capture thread forever; the thread then reconnects,
and readers see the stall through `latest(max_age_s)` long before that.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from robotlearn.hardware.cameras.base import Camera, CameraError, Grab


def _is_url(source: str) -> bool:
    return "://" in source


class OpenCVCamera(Camera):
    """`source`: an int device index ("0" too), a file path, or a URL (http://, rtsp://, ...).

    `width`/`height` request a capture size from devices and resize other sources to it when given.
    `loop` replays a file from the start when it ends (a file otherwise ends the stream).
    """

    def __init__(self, name: str, source: int | str, width: int | None = None, height: int | None = None,
                 fps: float | None = None, max_age_s: float = 0.5, read_timeout_s: float = 1.0,
                 loop: bool = False, reconnect_delay_s: float = 0.5):
        super().__init__(name, max_age_s=max_age_s, reconnect_delay_s=reconnect_delay_s)
        if isinstance(source, str) and source.isdigit():
            source = int(source)
        if isinstance(source, str) and not _is_url(source) and not Path(source).exists():
            raise CameraError(f"camera {name!r}: {source!r} is neither a device index, an existing file nor a URL")
        self.source = source
        self.width, self.height, self.fps = width, height, fps
        self.read_timeout_s = read_timeout_s
        self.loop = loop
        self._cap: cv2.VideoCapture | None = None
        self._is_file = isinstance(source, str) and not _is_url(source)
        self._eof = False

    def _open(self) -> None:
        timeout_ms = int(self.read_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(timeout_ms, 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        if isinstance(self.source, int):
            cap = cv2.VideoCapture(self.source, cv2.CAP_ANY)
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        else:
            cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"camera {self.name!r}: cannot open {self.source!r}")
        self._cap = cap
        self._eof = False

    def _grab(self) -> Grab | None:
        assert self._cap is not None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if self._is_file:
                self._eof = not self.loop
            return None
        pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.width and self.height and image.shape[:2] != (self.height, self.width):
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        if self._is_file and self.fps:  # pace files like a live camera
            time.sleep(1.0 / self.fps)
        return Grab(image=image, device_time=pos_ms / 1000.0 if pos_ms > 0 else None)

    def _ended_for_good(self) -> bool:
        return self._eof

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

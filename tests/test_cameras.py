"""Camera drivers: read semantics, staleness, drops, reconnect, clean shutdown (no hardware needed).

MJPEG goes through a real HTTP socket and OpenCV/FFmpeg; RealSense goes through librealsense's own
software device, syncer and align.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from robotlearn.emulators.mjpeg import MjpegServer
from robotlearn.hardware.cameras import CameraError, FrameTimeout, OpenCVCamera, StaleFrameError


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


class Publisher:
    """Publishes numbered frames (value = sequence mod 250) to an MJPEG stream at `fps`."""

    def __init__(self, server: MjpegServer, name: str = "cam", fps: float = 50.0, shape=(48, 64)):
        self.server, self.name, self.fps, self.shape = server, name, fps, shape
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        k = 0
        while not self._stop.wait(1.0 / self.fps):
            k += 1
            self.server.publish(self.name, np.full((*self.shape, 3), k % 250, np.uint8))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def mjpeg():
    before = _threads()
    server = MjpegServer().start()
    pub = Publisher(server)
    yield server
    pub.stop()
    server.close()
    time.sleep(0.05)
    assert _threads() <= before | {"MainThread"}, f"threads left behind: {_threads() - before}"


def test_mjpeg_read_semantics_and_frozen_stream(mjpeg):
    cam = OpenCVCamera("cam", mjpeg.url("cam"), max_age_s=0.25, read_timeout_s=0.5).start()
    try:
        first = cam.read(timeout_s=1.0)
        assert first.image.shape == (48, 64, 3) and first.image.dtype == np.uint8
        second = cam.read(timeout_s=1.0)
        assert second.index > first.index and second.host_time >= first.host_time
        newer = cam.wait_newer(second.index, timeout_s=1.0)
        assert newer.index > second.index
        assert cam.latest().age < 0.25
        mjpeg.freeze("cam")
        t0 = time.monotonic()
        with pytest.raises(StaleFrameError, match="old"):
            while time.monotonic() - t0 < 2.0:
                cam.latest()
                time.sleep(0.01)
        assert time.monotonic() - t0 < 0.25 + 0.2  # raised within max_age (+ scheduling slack)
        with pytest.raises(FrameTimeout):
            cam.wait_newer(cam.latest(max_age_s=10).index, timeout_s=0.1)
    finally:
        t0 = time.monotonic()
        cam.close()
    assert time.monotonic() - t0 < 2.0
    assert not cam.running


def test_mjpeg_reconnects_after_server_restart():
    before = _threads()
    server = MjpegServer().start()
    port = server.port
    pub = Publisher(server)
    cam = OpenCVCamera("cam", server.url("cam"), read_timeout_s=0.3, reconnect_delay_s=0.1).start()
    try:
        cam.read(1.0)
        pub.stop()
        server.close()
        time.sleep(0.5)
        server = MjpegServer(port=port).start()
        pub = Publisher(server)
        frame = cam.read(timeout_s=5.0)
        frame = cam.wait_newer(frame.index, timeout_s=2.0)
        assert cam.stats()["reconnects"] >= 1
    finally:
        cam.close()
        pub.stop()
        server.close()
    time.sleep(0.05)
    assert _threads() <= before


def test_file_source_ends_and_unread_frames_are_counted(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (32, 24))
    for k in range(12):
        writer.write(np.full((24, 32, 3), 20 * k, np.uint8))
    writer.release()
    cam = OpenCVCamera("file", str(path)).start()
    try:
        got = []  # indices of the frames this reader was given
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                got.append(cam.read(timeout_s=0.5).index)
            except CameraError as err:
                assert "ended" in str(err)
                break
        else:
            pytest.fail("file stream never ended")
        stats = cam.stats()
        assert stats["frames"] == 12 and got == sorted(set(got))
        # Every frame is either read, dropped unread (replaced before anyone read it), or the unread last one.
        assert stats["dropped_unread"] == 12 - len(got) - (0 if got and got[-1] == 12 else 1), (stats, got)
    finally:
        cam.close()
    # A reader that takes one frame and then looks away: all later frames but the last are dropped unread.
    cam = OpenCVCamera("file", str(path), fps=50).start()
    try:
        first = cam.read(timeout_s=2.0).index
        deadline = time.monotonic() + 5.0
        while cam.running and time.monotonic() < deadline:  # the capture thread exits when the file ends
            time.sleep(0.01)
        assert not cam.running
        stats = cam.stats()
        assert stats["frames"] == 12
        assert stats["dropped_unread"] == 12 - 1 - (first != 12) and stats["dropped_unread"] >= 10, (stats, first)
    finally:
        cam.close()
    with pytest.raises(CameraError, match="neither"):
        OpenCVCamera("bad", str(tmp_path / "missing.avi"))


def test_realsense_software_device_color_aligned_depth_intrinsics():
    from robotlearn.hardware.cameras.realsense import RealSenseCamera, SoftwareRealSense

    before = _threads()
    sw = SoftwareRealSense(width=64, height=48, fps=30, fovy_deg=60.0)
    cam = RealSenseCamera("rs", device=sw, max_age_s=0.3)
    stop = threading.Event()

    def feed():
        k = 0
        while not stop.wait(1 / 60):
            k += 1
            depth = np.full((48, 64), 0.5 + 0.001 * k, np.float32)
            sw.push(np.full((48, 64, 3), k % 250, np.uint8), depth, timestamp_ms=1000.0 + k * 33.3)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        cam.start()
        frame = cam.read(timeout_s=2.0)
        frame = cam.read(timeout_s=2.0)
        assert frame.image.shape == (48, 64, 3) and frame.depth.shape == (48, 64)
        assert frame.depth.dtype == np.float32
        k = int(frame.image[24, 32, 0])
        assert frame.depth[24, 32] == pytest.approx(0.5 + 0.001 * frame.device_index, abs=1.5e-3)
        assert frame.device_index % 250 == k
        assert frame.device_time == pytest.approx((1000.0 + frame.device_index * 33.3) / 1000.0, abs=1e-3)
        intr = cam.intrinsics
        assert intr["width"] == 64 and intr["fy"] == pytest.approx(24 / np.tan(np.deg2rad(30)), rel=1e-3)
        time.sleep(0.3)  # not reading: the capture thread replaces frames nobody took
        assert cam.stats()["dropped_unread"] > 0
        stop.set()
        feeder.join()
        time.sleep(0.35)
        with pytest.raises(StaleFrameError):
            cam.latest()
    finally:
        stop.set()
        feeder.join()
        cam.close()
    time.sleep(0.05)
    assert _threads() <= before

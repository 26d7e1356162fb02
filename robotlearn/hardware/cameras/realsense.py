"""Intel RealSense via pyrealsense2: colour + depth aligned to colour, intrinsics, hardware timestamps.

Three sources, one capture path (frameset -> `rs.align` to colour -> numpy):
* a connected camera (``serial=``, or the first one found) through `rs.pipeline`;
* a recorded ``.bag`` file (``bag=``) through the same pipeline in playback mode;
* a librealsense *software device* (`SoftwareRealSense`, ``device=``): librealsense's own virtual
  camera, fed with numpy images, which runs the real syncer/align code with no hardware attached.
  Tests and bench/camera.py use it.

Depth is returned in metres (float32) aligned pixel-for-pixel to the colour image; frame numbers from
the device feed the drop counter and the sensor timestamp (ms) becomes ``Frame.device_time`` (s).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from robotlearn.hardware.cameras.base import Camera, CameraError, Grab

try:
    import pyrealsense2 as rs
except ImportError as err:  # pragma: no cover - exercised only where the extra is missing
    raise ImportError(f"RealSense support needs pyrealsense2 (pip install 'robotlearn[realsense]'; "
                      f"on Linux also apt libusb-1.0-0): {err}") from None


def _intrinsics(width: int, height: int, fovy_deg: float) -> rs.intrinsics:
    intr = rs.intrinsics()
    intr.width, intr.height = width, height
    intr.fy = intr.fx = (height / 2) / np.tan(np.deg2rad(fovy_deg) / 2)
    intr.ppx, intr.ppy = width / 2, height / 2
    intr.model = rs.distortion.none
    intr.coeffs = [0.0] * 5
    return intr


class SoftwareRealSense:
    """A librealsense software device with an RGB8 colour and a Z16 depth stream sharing one optical frame.

    `push(color, depth_m, timestamp_ms)` injects one synchronized pair; the device's syncer and the
    camera's `rs.align` then treat it like a hardware frameset.
    """

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30, fovy_deg: float = 58.0,
                 depth_units: float = 0.001, serial: str = "robotlearn-sw"):
        self.width, self.height, self.fps, self.depth_units = width, height, fps, depth_units
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, "robotlearn software RealSense")
        self.depth_sensor = self.device.add_sensor("Stereo Module")
        self.color_sensor = self.device.add_sensor("RGB Camera")
        intr = _intrinsics(width, height, fovy_deg)
        self.depth_profile = self.depth_sensor.add_video_stream(
            self._stream(rs.stream.depth, 0, 2, rs.format.z16, intr))
        self.color_profile = self.color_sensor.add_video_stream(
            self._stream(rs.stream.color, 1, 3, rs.format.rgb8, intr))
        self.depth_sensor.add_read_only_option(rs.option.depth_units, depth_units)
        identity = rs.extrinsics()
        identity.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        identity.translation = [0.0, 0.0, 0.0]
        self.depth_profile.register_extrinsics_to(self.color_profile, identity)
        self.device.create_matcher(rs.matchers.dlr_c)
        self._frame_number = 0
        self._lock = threading.Lock()
        self._keepalive: list[np.ndarray] = []  # librealsense reads the pixels after on_video_frame returns

    def _stream(self, kind, uid: int, bpp: int, fmt, intr) -> rs.video_stream:
        s = rs.video_stream()
        s.type, s.index, s.uid = kind, 0, uid
        s.width, s.height, s.fps, s.bpp, s.fmt, s.intrinsics = self.width, self.height, self.fps, bpp, fmt, intr
        return s

    def push(self, color: np.ndarray, depth_m: np.ndarray, timestamp_ms: float) -> int:
        """Inject one colour (uint8 HxWx3 RGB) + depth (metres HxW) pair; returns its frame number."""
        if color.shape != (self.height, self.width, 3) or depth_m.shape != (self.height, self.width):
            raise ValueError(f"expected {(self.height, self.width)} images, got {color.shape} and {depth_m.shape}")
        z16 = np.clip(np.round(depth_m / self.depth_units), 0, 65535).astype(np.uint16)
        color = np.ascontiguousarray(color, dtype=np.uint8)
        with self._lock:
            self._frame_number += 1
            n = self._frame_number
            self._keepalive = [color, z16]
            for sensor, profile, pixels, bpp in ((self.color_sensor, self.color_profile, color, 3),
                                                 (self.depth_sensor, self.depth_profile, z16, 2)):
                f = rs.software_video_frame()
                f.pixels, f.bpp, f.stride = pixels, bpp, self.width * bpp
                f.timestamp, f.domain, f.frame_number = timestamp_ms, rs.timestamp_domain.hardware_clock, n
                f.profile = profile.as_video_stream_profile()
                if bpp == 2:
                    f.depth_units = self.depth_units
                sensor.on_video_frame(f)
        return n


class RealSenseCamera(Camera):
    """Colour + aligned depth from a RealSense (hardware, ``.bag`` file or `SoftwareRealSense`)."""

    def __init__(self, name: str, serial: str | None = None, bag: str | Path | None = None,
                 device: SoftwareRealSense | None = None, width: int = 640, height: int = 480, fps: int = 30,
                 max_age_s: float = 0.5, timeout_s: float = 1.0, reconnect_delay_s: float = 0.5):
        super().__init__(name, max_age_s=max_age_s, reconnect_delay_s=reconnect_delay_s)
        if sum(x is not None for x in (serial, bag, device)) > 1:
            raise CameraError(f"camera {name!r}: give at most one of serial, bag, device")
        if bag is not None and not Path(bag).exists():
            raise CameraError(f"camera {name!r}: bag file {bag} does not exist")
        self.serial, self.bag, self.device = serial, bag, device
        self.width, self.height, self.fps = width, height, fps
        self.timeout_ms = int(timeout_s * 1000)
        self._align = rs.align(rs.stream.color)
        self._pipeline: rs.pipeline | None = None
        self._syncer: rs.syncer | None = None
        self._depth_scale = 0.001
        self._intrinsics: dict | None = None
        self._bag_ended = False

    # -- driver hooks ----------------------------------------------------------------------------
    def _open(self) -> None:
        if self.device is not None:
            dev = self.device
            self._syncer = rs.syncer()
            dev.depth_sensor.open(dev.depth_profile)
            dev.color_sensor.open(dev.color_profile)
            dev.depth_sensor.start(self._syncer)
            dev.color_sensor.start(self._syncer)
            self._depth_scale = dev.depth_units
            self._set_intrinsics(dev.color_profile.as_video_stream_profile().get_intrinsics())
            return
        cfg = rs.config()
        if self.bag is not None:
            cfg.enable_device_from_file(str(self.bag), repeat_playback=False)
        else:
            if self.serial:
                cfg.enable_device(self.serial)
            cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
            cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(cfg)
        except RuntimeError as err:
            raise CameraError(f"camera {self.name!r}: cannot start RealSense: {err}") from None
        self._pipeline = pipeline
        self._depth_scale = profile.get_device().first_depth_sensor().get_depth_scale()
        color = profile.get_stream(rs.stream.color).as_video_stream_profile()
        self._set_intrinsics(color.get_intrinsics())

    def _set_intrinsics(self, intr) -> None:
        self._intrinsics = {"width": intr.width, "height": intr.height, "fx": intr.fx, "fy": intr.fy,
                            "ppx": intr.ppx, "ppy": intr.ppy, "model": str(intr.model), "coeffs": list(intr.coeffs)}

    def _wait(self):
        if self._syncer is not None:
            return self._syncer.wait_for_frames(self.timeout_ms)
        assert self._pipeline is not None
        return self._pipeline.wait_for_frames(self.timeout_ms)

    def _grab(self) -> Grab | None:
        while not self._stop.is_set():
            try:
                frames = self._wait()
            except RuntimeError:  # librealsense's timeout / disconnect
                self._bag_ended = self.bag is not None
                return None
            if frames.size() < 2:  # the syncer emits a lone stream until both have arrived
                continue
            aligned = self._align.process(frames)
            color, depth = aligned.get_color_frame(), aligned.get_depth_frame()
            if not color or not depth:
                continue
            image = np.asanyarray(color.get_data()).copy()
            depth_m = np.asanyarray(depth.get_data()).astype(np.float32) * self._depth_scale
            return Grab(image=image, depth=depth_m, device_time=color.get_timestamp() / 1000.0,
                        device_index=int(color.get_frame_number()))
        return None

    def _ended_for_good(self) -> bool:
        return self._bag_ended

    def _release(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
        if self._syncer is not None and self.device is not None:
            for sensor in (self.device.depth_sensor, self.device.color_sensor):
                sensor.stop()
                sensor.close()
            self._syncer = None

    @property
    def intrinsics(self) -> dict:
        """Colour-stream pinhole intrinsics (depth is aligned to them). Available after start()."""
        if self._intrinsics is None:
            raise CameraError(f"camera {self.name!r}: intrinsics are known once the camera is started")
        return dict(self._intrinsics)

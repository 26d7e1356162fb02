"""Camera drivers with one capture thread each and explicit read semantics (see base.py).

`OpenCVCamera` covers UVC devices, files and MJPEG/RTSP/HTTP URLs; `RealSenseCamera` (imported from
`robotlearn.hardware.cameras.realsense`, optional extra) adds aligned depth and intrinsics.
"""

from robotlearn.hardware.cameras.base import Camera, CameraError, Frame, FrameTimeout, StaleFrameError
from robotlearn.hardware.cameras.opencv import OpenCVCamera

__all__ = ["Camera", "CameraError", "Frame", "FrameTimeout", "OpenCVCamera", "StaleFrameError"]

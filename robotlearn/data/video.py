"""Episode videos: encode (imageio's ffmpeg), decode, probe stream properties (OpenCV), and concatenate.

Concatenation is ffmpeg's concat demuxer with `-c copy`: the packets are remuxed, never re-encoded, so
appending an episode to a multi-episode mp4 (LeRobot v3 packing) loses nothing, and every episode's
segment starts on its own keyframe, as each was encoded separately.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from robotlearn.data.dataset import DatasetError


def open_writer(path: Path, fps: float):
    """An ffmpeg writer for uint8 (H,W,3) frames (h264/yuv420p, what LeRobot's decoders read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                              macro_block_size=1, quality=8, ffmpeg_log_level="error")


def decode_video(path: Path) -> np.ndarray:
    """All frames of an mp4 as uint8 (T,H,W,3); a damaged file raises DatasetError naming it."""
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        try:
            return np.stack([np.asarray(f, dtype=np.uint8) for f in reader])
        finally:
            reader.close()
    except (OSError, RuntimeError, ValueError) as err:
        raise DatasetError(f"{path}: cannot decode video: {str(err).splitlines()[0]}") from None


@dataclass(frozen=True)
class VideoStream:
    """What a video file's container says about its stream."""

    frames: int
    fps: float
    width: int
    height: int


def probe_video(path: Path) -> VideoStream:
    """Stream properties from the container header (no decoding): a truncated or foreign file raises."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DatasetError(f"{path}: not a readable video (truncated or damaged)")
        stream = VideoStream(frames=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), fps=float(cap.get(cv2.CAP_PROP_FPS)),
                             width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    if stream.frames <= 0 or stream.fps <= 0:
        raise DatasetError(f"{path}: video has no frames (truncated or damaged)")
    return stream


def concat_videos(parts: list[Path], out: Path) -> None:
    """Write parts back to back into `out` (mp4), remuxing without re-encoding."""
    import imageio_ffmpeg

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        for p in parts:
            listing.write(f"file '{p.resolve()}'\n")
    try:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
                        "-i", listing.name, "-c", "copy", "-f", "mp4", str(out)], check=True, capture_output=True)
    except subprocess.CalledProcessError as err:
        raise DatasetError(f"{out}: concatenating videos failed: {err.stderr.decode(errors='replace').strip()}") from None
    finally:
        Path(listing.name).unlink(missing_ok=True)

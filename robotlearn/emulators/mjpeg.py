"""MJPEG over HTTP, the way IP cameras and ESP32-cam boards serve video.

``GET /<stream>`` answers ``multipart/x-mixed-replace`` with one JPEG part per new frame, which
OpenCV/FFmpeg, browsers and LeRobot-style clients read as a live camera. The emulator publishes
rendered sim images here, so the camera driver is exercised over a real socket and codec.

`freeze(stream)` keeps connections open but stops sending, as a hung camera does; the client side must
notice through its own max-age check, not through a closed socket.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = b"rlframe"


class _Stream:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.seq = 0
        self.frozen = False


class MjpegServer:
    """Serves named streams on http://host:port/<name>. Start with `start()`, stop with `close()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, quality: int = 85):
        self.quality = quality
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args) -> None:  # quiet: one line per request would flood the log
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                name = self.path.strip("/").split("?")[0]
                stream = server._streams.get(name)
                if stream is None:
                    self.send_error(404, f"no stream {name!r}; streams: {sorted(server._streams)}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                server._serve(stream, self.wfile)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, name: str) -> str:
        host = self._httpd.server_address[0]
        return f"http://{host}:{self.port}/{name}"

    def start(self) -> MjpegServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="mjpeg-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and end every open stream. Idempotent."""
        self._closing.set()
        for stream in self._streams.values():
            with stream.cond:
                stream.cond.notify_all()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5.0)
            self._thread = None
        self._httpd.server_close()

    def add_stream(self, name: str) -> None:
        with self._lock:
            self._streams.setdefault(name, _Stream())

    def publish(self, name: str, image_rgb: np.ndarray) -> None:
        """Encode and publish one frame (uint8 HxWx3 RGB) to every client of `name`."""
        self.add_stream(name)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for stream {name!r}")
        stream = self._streams[name]
        with stream.cond:
            stream.jpeg = buf.tobytes()
            stream.seq += 1
            stream.cond.notify_all()

    def freeze(self, name: str, frozen: bool = True) -> None:
        """Stop (or resume) sending frames on `name` while keeping its connections open."""
        self.add_stream(name)
        self._streams[name].frozen = frozen

    def _serve(self, stream: _Stream, wfile) -> None:
        sent = 0
        while not self._closing.is_set():
            with stream.cond:
                while (stream.seq == sent or stream.frozen) and not self._closing.is_set():
                    stream.cond.wait(0.1)
                if self._closing.is_set():
                    return
                jpeg, sent = stream.jpeg, stream.seq
            part = (b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpeg)).encode() + b"\r\nX-Timestamp: " + f"{time.time():.6f}".encode()
                    + b"\r\n\r\n" + jpeg + b"\r\n")
            try:
                wfile.write(part)
                wfile.flush()
            except OSError:  # client went away
                return

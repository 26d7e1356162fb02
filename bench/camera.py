"""Camera path benchmark: frames/s, drop rate and capture->observation latency.

Paths, each measured for ``--seconds`` in the same run:
* ``handoff``   baseline: a producer thread hands numpy frames to a consumer through a condition
  variable, the floor any capture thread adds;
* ``mjpeg``     `MjpegServer` (JPEG encode + HTTP) -> `OpenCVCamera` (FFmpeg demux + JPEG decode);
* ``realsense`` librealsense software device (colour + depth) -> syncer -> `rs.align` -> `RealSenseCamera`.

Every frame carries its sequence number as a 16-bit pattern of 16x16-pixel blocks (robust to JPEG), so
the consumer knows exactly which frame it got: latency = time the consumer holds the frame - time the
producer published it; drops = published frames the consumer never saw. Ratios are against the
``handoff`` baseline. The last line is one JSON object.

    python bench/camera.py [--seconds 4] [--fps 30] [--width 320 --height 240]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np

BITS, BLOCK = 16, 16


def stamp(seq: int, height: int, width: int) -> np.ndarray:
    """A grey frame whose top-left blocks spell `seq` in binary (white = 1)."""
    img = np.full((height, width, 3), 96, np.uint8)
    for b in range(BITS):
        img[:BLOCK, b * BLOCK:(b + 1) * BLOCK] = 255 if (seq >> b) & 1 else 0
    return img


def read_stamp(img: np.ndarray) -> int:
    centres = img[BLOCK // 2, [b * BLOCK + BLOCK // 2 for b in range(BITS)], :].mean(axis=1)
    return int(sum(1 << b for b, v in enumerate(centres) if v > 128))


class Producer:
    """Publishes stamped frames at `fps` through `publish(seq, image)`, remembering when each went out."""

    def __init__(self, publish, fps: float, height: int, width: int):
        self.publish, self.fps, self.h, self.w = publish, fps, height, width
        self.sent: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def _run(self) -> None:
        seq, next_t = 0, time.monotonic()
        while not self._stop.is_set():
            seq = (seq + 1) % (1 << BITS)
            img = stamp(seq, self.h, self.w)
            self.sent[seq] = time.monotonic()
            self.publish(seq, img)
            next_t += 1.0 / self.fps
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def consume(read, producer: Producer, seconds: float) -> dict:
    """Blocking reads for `seconds` (after a 0.5 s warm-up); latency/fps/drops from the stamps."""
    t_warm = time.monotonic() + 0.5
    while time.monotonic() < t_warm:
        read()
    first_seen = None
    seen, lat = set(), []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        img = read()
        now = time.monotonic()
        seq = read_stamp(img)
        if seq in producer.sent:
            lat.append(now - producer.sent[seq])
            seen.add(seq)
            first_seen = seq if first_seen is None else first_seen
    last = max(seen)
    published = last - first_seen + 1
    lat_ms = np.array(lat) * 1000
    return {"fps": len(seen) / seconds, "drop_rate": 1.0 - len(seen) / published,
            "latency_p50_ms": float(np.percentile(lat_ms, 50)), "latency_p99_ms": float(np.percentile(lat_ms, 99))}


def bench_handoff(args) -> dict:
    cond, box = threading.Condition(), {"img": None, "n": 0}

    def publish(seq, img):
        with cond:
            box["img"], box["n"] = img, box["n"] + 1
            cond.notify_all()

    last = {"n": 0}

    def read():
        with cond:
            cond.wait_for(lambda: box["n"] > last["n"], timeout=1.0)
            last["n"] = box["n"]
            return box["img"]

    prod = Producer(publish, args.fps, args.height, args.width).start()
    try:
        return consume(read, prod, args.seconds)
    finally:
        prod.stop()


def bench_mjpeg(args) -> dict:
    from robotlearn.emulators.mjpeg import MjpegServer
    from robotlearn.hardware.cameras import OpenCVCamera

    server = MjpegServer(quality=90).start()
    prod = Producer(lambda seq, img: server.publish("cam", img), args.fps, args.height, args.width).start()
    cam = OpenCVCamera("cam", server.url("cam")).start()
    try:
        out = consume(lambda: cam.read(timeout_s=2.0).image, prod, args.seconds)
        out["driver_drops"] = cam.stats()["dropped_unread"]
        return out
    finally:
        cam.close()
        prod.stop()
        server.close()


def bench_realsense(args) -> dict:
    from robotlearn.hardware.cameras.realsense import RealSenseCamera, SoftwareRealSense

    sw = SoftwareRealSense(width=args.width, height=args.height, fps=int(args.fps))
    depth = np.full((args.height, args.width), 0.6, np.float32)
    prod = Producer(lambda seq, img: sw.push(img, depth, time.time() * 1000), args.fps, args.height,
                    args.width).start()
    cam = RealSenseCamera("rs", device=sw).start()
    try:
        out = consume(lambda: cam.read(timeout_s=2.0).image, prod, args.seconds)
        stats = cam.stats()
        out["driver_drops"] = stats["dropped_unread"] + stats["dropped_device"]
        return out
    finally:
        cam.close()
        prod.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    results = {}
    for name, fn in (("handoff", bench_handoff), ("mjpeg", bench_mjpeg), ("realsense", bench_realsense)):
        results[name] = fn(args)
        r = results[name]
        print(f"{name:<10} {r['fps']:6.1f} frames/s  drop {100 * r['drop_rate']:5.1f}%  "
              f"latency p50 {r['latency_p50_ms']:6.2f} ms  p99 {r['latency_p99_ms']:6.2f} ms", flush=True)
    base = results["handoff"]["latency_p50_ms"]
    for name in ("mjpeg", "realsense"):
        results[name]["latency_p50_vs_handoff"] = results[name]["latency_p50_ms"] / base
        print(f"{name}: capture->observation p50 latency {results[name]['latency_p50_vs_handoff']:.1f}x the "
              f"bare thread handoff")
    summary = {"fps_target": args.fps, "size": [args.width, args.height]}
    for name, r in results.items():
        for key, value in r.items():
            summary[f"{name}_{key}"] = round(float(value), 4)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""`robotlearn calibrate camera`: a camera's intrinsics and distortion from a ChArUco board.

    robotlearn calibrate camera --print-board board.png            # print it; measure a square
    robotlearn calibrate camera --source 0 --camera scene --views 20 --out calib/scene.yaml
    robotlearn calibrate camera --source shots/ --camera scene --square 0.030 --marker 0.022 --out ...

Hold the board in front of the camera at different tilts and distances; a view is taken every
``--interval`` seconds (or every image of a folder is used). The YAML keeps the robot spec's camera mount
(pos/lookat) and replaces its ideal pinhole; point the hardware config's ``cameras.<name>.calibration_file``
at it so object perception uses it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def add_arguments(group) -> None:
    group.add_argument("--source", help="camera: device index, video file, stream URL, or a folder of images")
    group.add_argument("--camera", default="scene", help="camera: its name in the robot spec")
    group.add_argument("--robot", default="arm6", help="camera: robot config whose spec names the camera")
    group.add_argument("--views", type=int, default=20, help="camera: views to take from a live source")
    group.add_argument("--interval", type=float, default=0.5, help="camera: seconds between live views")
    group.add_argument("--squares", default="7x5", metavar="COLSxROWS", help="camera: board squares")
    group.add_argument("--square", type=float, default=0.030, help="camera: printed square edge (m)")
    group.add_argument("--marker", type=float, default=0.022, help="camera: printed marker edge (m)")
    group.add_argument("--dictionary", default="DICT_4X4_50", help="camera: ArUco dictionary of the board")
    group.add_argument("--print-board", metavar="PNG", help="camera: write the board image to print, and stop")


def _board(args: argparse.Namespace):
    from robotlearn.perception.charuco import CharucoSpec

    try:
        cols, rows = (int(v) for v in args.squares.lower().split("x"))
    except ValueError:
        raise ValueError(f"--squares must be COLSxROWS, e.g. 7x5, got {args.squares!r}") from None
    return CharucoSpec((cols, rows), args.square, args.marker, args.dictionary)


def _views(args: argparse.Namespace):
    import cv2

    source = Path(args.source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: no {'/'.join(IMAGE_SUFFIXES)} images")
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise ValueError(f"{path}: not a readable image")
            yield image
        return
    from robotlearn.hardware.cameras import OpenCVCamera

    with OpenCVCamera(args.camera, args.source) as camera:
        for k in range(args.views):
            yield camera.read(timeout_s=5.0).image
            print(f"view {k + 1}/{args.views}", flush=True)
            time.sleep(args.interval)


def run(args: argparse.Namespace) -> int:
    import cv2

    from robotlearn.core.robot_config import load_robot_spec
    from robotlearn.perception.camera_model import CameraModel
    from robotlearn.perception.charuco import calibrate

    spec_board = _board(args)
    if args.print_board:
        cv2.imwrite(args.print_board, spec_board.image())
        print(f"wrote {args.print_board}: print it flat, check a square measures {args.square * 1000:.1f} mm")
        return 0
    if not args.source or not args.out:
        raise ValueError("calibrate camera needs --source (device, URL, file or image folder) and --out")
    spec = load_robot_spec(args.robot)
    mount = CameraModel.from_spec(spec.camera(args.camera))
    result = calibrate(_views(args), spec_board)
    model = CameraModel(args.camera, result.size, result.matrix, np.asarray(result.distortion),
                        mount.at_size(*result.size).world_from_camera)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(model.to_yaml(include_pose=False))
    fx, fy = result.matrix[0, 0], result.matrix[1, 1]
    print(f"wrote {args.out}: {result.size[0]}x{result.size[1]}, fx {fx:.1f} fy {fy:.1f} px, RMS "
          f"{result.rms_px:.2f} px from {result.views_used}/{result.views_total} views")
    return 0

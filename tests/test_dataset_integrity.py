"""Every corruption the issue lists is detected with a one-line error naming the file and field, by the
loader and by the CLI (exit 2, no traceback); a clean dataset verifies; leftovers are reported and cleaned."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from lerobot_layout import write_lerobot_dataset
from test_dataset_lerobot import CAM2, record

from robotlearn.cli.main import main
from robotlearn.data import load_demos, load_meta
from robotlearn.data.dataset import DatasetError

DATA = "data/chunk-000/file-001.parquet"
VIDEO = f"videos/{CAM2}/chunk-000/file-001.mp4"


@pytest.fixture
def ds(tmp_path):
    root = tmp_path / "ds"
    record(root, episodes=3).close()
    load_demos(root)  # decoded once: a later corruption must not hide behind the frame cache
    return root


def cli_error(capsys, *argv) -> str:
    """Run the CLI expecting failure: exit 2, exactly one line on stderr, no traceback."""
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def edit_info(root, edit) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    path.write_text(json.dumps(edit(info)))


def test_clean_dataset_verifies(ds, capsys):
    assert main(["dataset", "verify", str(ds)]) == 0
    assert "ok: 3 episodes, 27 frames; sha256 of every file" in capsys.readouterr().out
    assert main(["dataset", "verify", str(write_lerobot_dataset(ds.parent / "lr"))]) == 0


def test_flipped_bytes_in_data_parquet(ds, capsys):
    """64 bytes flipped over the stored joint positions: same size, same header, other numbers (the issue's
    0.46 -> -9.23); robotlearn's page CRCs make the load fail, the sha256 makes verify fail."""
    path = ds / DATA
    raw = bytearray(path.read_bytes())
    at = raw.find(np.arange(100, 103, dtype=np.float32).tobytes())  # episode 1's values (dictionary page)
    assert at > 0
    raw[at:at + 64] = bytes(b ^ 0x5A for b in raw[at:at + 64])
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=f"{DATA}: unreadable parquet: .*CRC checksum verification failed"):
        load_demos(ds)
    assert "sha256 differs" in cli_error(capsys, "dataset", "verify", str(ds))


@pytest.mark.parametrize("video", [True, False])
def test_edited_fps(tmp_path, capsys, video):
    root = write_lerobot_dataset(tmp_path / "lr", camera=(48, 64) if video else None)
    edit_info(root, lambda info: {**info, "fps": 15})
    with pytest.raises(DatasetError, match="timestamps step 0.03333 s, meta/info.json field fps 15"):
        load_meta(root)
    assert "field fps" in cli_error(capsys, "dataset", "info", str(root))


def test_video_stream_fps_disagreeing_with_info(tmp_path):
    root = write_lerobot_dataset(tmp_path / "lr", video_fps=25)
    with pytest.raises(DatasetError, match="file-000.mp4: video stream at 25 fps, meta/info.json field fps says 30"):
        load_meta(root)


def test_edited_shape_and_dtype(ds, capsys):
    edit_info(ds, lambda info: {**info, "features": {**info["features"], "observation.joint_pos":
                                                   {"dtype": "float32", "shape": [4], "names": None}}})
    with pytest.raises(DatasetError, match=r"column observation.joint_pos holds 3 values per frame, .*features.observation.joint_pos.shape says \[4\]"):
        load_meta(ds)
    edit_info(ds, lambda info: {**info, "features": {**info["features"], "observation.joint_pos":
                                                   {"dtype": "float64", "shape": [3], "names": None}}})
    with pytest.raises(DatasetError, match="file-000.parquet: column observation.joint_pos holds float32, .*dtype says float64"):
        load_meta(ds)
    assert "features.observation.joint_pos.dtype" in cli_error(capsys, "dataset", "info", str(ds))


def test_edited_video_shape(ds):
    edit_info(ds, lambda info: {**info, "features": {**info["features"], CAM2: {
        **info["features"][CAM2], "shape": [48, 32, 3]}}})
    with pytest.raises(DatasetError, match=f"file-000.mp4: video is 24x32, .*features.{CAM2}.shape says 48x32"):
        load_meta(ds)


def test_deleted_video_reported_by_info(ds, capsys):
    (ds / VIDEO).unlink()
    assert f"{VIDEO}: missing" in cli_error(capsys, "dataset", "info", str(ds))
    with pytest.raises(DatasetError, match="missing"):
        load_demos(ds)


def test_truncated_video(ds, tmp_path, capsys):
    path = ds / VIDEO
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "truncated or modified" in cli_error(capsys, "dataset", "info", str(ds))
    # a LeRobot-written dataset has no recorded sizes: the video stream itself must tell
    lr = write_lerobot_dataset(tmp_path / "lr")
    path = lr / "videos/observation.images.front/chunk-000/file-001.mp4"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="file-001.mp4: (not a readable video|.*frames, episode)"):
        load_demos(lr)


@pytest.mark.parametrize("body, message", [
    ({"codebase_version": "v3.0", "fps": 10, "data_path": "x"}, "field features must be a non-empty object"),
    ([1, 2, 3], "expected a JSON object, got list"),
    ({"codebase_version": "v3.0", "fps": "ten", "features": {}}, "field fps must be a positive number"),
])
def test_malformed_info_json(ds, capsys, body, message):
    (ds / "meta/info.json").write_text(json.dumps(body))
    with pytest.raises(DatasetError, match=message):
        load_meta(ds)
    assert message in cli_error(capsys, "dataset", "info", str(ds))


def test_missing_index_column(ds):
    path = ds / "meta/episodes/chunk-000/file-001.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["dataset_from_index"]), path)
    with pytest.raises(DatasetError, match="file-001.parquet: column dataset_from_index is missing"):
        load_meta(ds)


def test_deleted_episode_index_file(ds, capsys):
    (ds / "meta/episodes/chunk-000/file-002.parquet").unlink()
    assert "field total_episodes says 3, meta/episodes lists 2" in cli_error(capsys, "dataset", "info", str(ds))


def test_leftovers_reported_then_cleaned(ds, capsys):
    stray = ds / "data/chunk-000/file-003.tmp.parquet"
    stray.write_bytes(b"half an episode")
    assert main(["dataset", "info", str(ds)]) == 0
    assert "leftovers: 1 temporary files of an uncommitted episode" in capsys.readouterr().out
    assert main(["dataset", "verify", str(ds), "--clean"]) == 0
    assert not stray.exists() and not load_meta(ds).leftovers


def test_stats_table_and_json(ds, capsys):
    assert main(["dataset", "stats", str(ds)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["feature", "count", "min"]
    row = next(line for line in table if line.startswith("observation.joint_pos"))
    assert row.split()[1:5] == ["27", "0", "0", "0"]
    assert main(["dataset", "stats", str(ds), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["observation.joint_pos"]["max"] == [209.0] * 3 and np.isclose(stats["next.reward"]["max"][0], 4.5)

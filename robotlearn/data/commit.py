"""Crash-safe episode commits: stage every changed file under a temporary name, then a journal, then rename.

An episode changes several files at once (its data file, one video per camera, the episode index,
tasks, info.json with counters and checksums, stats.json). Renames of several files cannot be one
atomic step, so the commit point is the atomic rename of a small journal (`meta/.commit.json`) that lists
the renames still to do. A crash before the journal leaves only temporary files (uncommitted: cleaned by
the recorder, reported by `dataset info`/`verify`); a crash after it is rolled forward by the next open.
With LeRobot's packing (many episodes per file) a file is rewritten as a whole under its temporary name,
so the committed version stays intact until the journal says otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

JOURNAL = "meta/.commit.json"
TMP_MARK = ".tmp"


def staged_path(path: Path) -> Path:
    """file-003.parquet -> file-003.tmp.parquet (the suffix stays last: ffmpeg and imageio infer formats from it)."""
    return path.with_name(f"{path.stem}{TMP_MARK}{path.suffix}")


def is_temporary(path: Path) -> bool:
    return TMP_MARK in path.name or path.name == Path(JOURNAL).name


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames inside `path` durable (POSIX: a rename is durable once its directory is synced)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Commit:
    """Files staged for one episode; `apply()` makes all of them visible, or (after a crash) none."""

    def __init__(self, root: Path):
        self.root = root
        self.renames: list[tuple[Path, Path]] = []  # (staged, final)

    def stage(self, final: Path) -> Path:
        """A temporary path to write `final`'s new content to (its parent is created)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        staged = staged_path(final)
        self.renames = [r for r in self.renames if r[1] != final] + [(staged, final)]
        return staged

    def stage_bytes(self, final: Path, data: bytes) -> Path:
        staged = self.stage(final)
        staged.write_bytes(data)
        return staged

    def stage_json(self, final: Path, obj: object) -> Path:
        return self.stage_bytes(final, (json.dumps(obj, indent=2) + "\n").encode())

    def apply(self, pause: Callable[[str], None] | None = None) -> None:
        """fsync the staged files, write the journal (the commit point), rename, drop the journal.

        `pause` (the recorder's test hook) is called with "staged" before the commit point and "journaled" after.
        """
        for staged, _ in self.renames:
            fsync_file(staged)
        journal = self.root / JOURNAL
        body = {"renames": [[str(s.relative_to(self.root)), str(f.relative_to(self.root))] for s, f in self.renames]}
        tmp = journal.with_name(journal.name + TMP_MARK)
        tmp.write_text(json.dumps(body))
        fsync_file(tmp)
        if pause is not None:
            pause("staged")
        os.replace(tmp, journal)
        fsync_dir(journal.parent)
        if pause is not None:
            pause("journaled")
        roll_forward(self.root)


def roll_forward(root: Path) -> bool:
    """Finish a commit whose journal landed (after a crash, on the next open). Returns whether one was pending."""
    journal = root / JOURNAL
    if not journal.exists():
        return False
    try:
        renames = json.loads(journal.read_text())["renames"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise OSError(f"{journal}: unreadable commit journal") from None
    dirs = set()
    for staged, final in renames:
        src = root / staged
        if src.exists():  # already renamed when a previous roll-forward was interrupted
            os.replace(src, root / final)
            dirs.add((root / final).parent)
    for d in dirs:
        fsync_dir(d)
    journal.unlink()
    fsync_dir(journal.parent)
    return True


def leftovers(root: Path) -> list[Path]:
    """Temporary files of a recording that never reached its commit point (killed, or a disk error)."""
    found = []
    for sub in ("data", "videos", "meta"):
        base = root / sub
        if base.exists():
            found.extend(p for p in base.rglob(f"*{TMP_MARK}*") if p.is_file())
    return sorted(found)

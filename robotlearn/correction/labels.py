"""RaC's labels and its training filter.

Every recorded step carries ``source`` (demo / policy / rewind / correction), ``intervention_id`` (-1 outside
an intervention, else its number within the episode) and ``subtask_id``; every episode carries its
termination reason in its index row (``robotlearn/episode``). Training data (RaC, section "the method") is
all demos plus every recovery and correction segment; the policy's own autonomous steps count only from
episodes that succeeded with no intervention. `training_demos` applies that to a loaded dataset and
splits what remains into contiguous segments, so no observation/action window spans a removed stretch.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from robotlearn.data.loader import Demos

#: the extra per-step columns of a RaC dataset (EpisodeRecorder extra_features)
RAC_FEATURES: dict[str, dict[str, Any]] = {
    "intervention_id": {"dtype": "int64", "shape": [1], "names": None},
    "subtask_id": {"dtype": "int64", "shape": [1], "names": None},
}
NO_INTERVENTION = -1
#: how an episode ended: the task succeeded; Rule 2 ended it after a correction; the step limit; an operator
TERMINATIONS = ("success", "correction_done", "timeout", "operator_save", "operator_discard", "operator_quit")
#: labels whose steps always train
ALWAYS_TRAIN = ("demo", "rewind", "correction", "human")


def termination_reason(outcome: str, success: bool, correction_done: bool) -> str:
    """One of TERMINATIONS from a Rollout outcome ("done", "save", ...) and what the RaC source saw."""
    if correction_done:
        return "correction_done"
    if success:
        return "success"
    return "timeout" if outcome == "done" else f"operator_{outcome}"


def episode_info(demos: Demos, e: int) -> dict[str, Any]:
    """The episode's `robotlearn/episode` JSON ({} when the recorder's caller gave none)."""
    raw = demos.meta.episodes[e].get("robotlearn/episode")
    return json.loads(raw) if raw else {}


def training_mask(demos: Demos) -> np.ndarray:
    """Per frame: does it train? Demo/rewind/correction steps always; autonomous policy steps only in an
    episode that succeeded with no intervention (judged from the frames themselves, not only the row)."""
    source = demos.data["source"]
    intervention = demos.data.get("intervention_id")
    keep = np.isin(source, ALWAYS_TRAIN)
    lo = 0
    for e, hi in enumerate(demos.episode_ends.astype(int)):
        intervened = intervention is not None and bool(np.any(intervention[lo:hi] != NO_INTERVENTION))
        intervened |= bool(np.any(np.isin(source[lo:hi], ("rewind", "correction", "human"))))
        clean_success = bool(demos.meta.episodes[e]["success"]) and not intervened
        if clean_success:
            keep[lo:hi] |= source[lo:hi] == "policy"
        lo = hi
    return keep


def training_demos(demos: Demos) -> Demos:
    """`demos` restricted to `training_mask`, each contiguous kept stretch its own segment (episode_ends)."""
    keep = training_mask(demos)
    starts = np.zeros(len(keep), bool)
    starts[np.concatenate([[0], demos.episode_ends[:-1]]).astype(int)] = True
    # a segment ends where the mask turns off, at an episode end, or where a new episode starts
    ends = []
    n = len(keep)
    for i in np.flatnonzero(keep):
        if i + 1 == n or not keep[i + 1] or starts[i + 1]:
            ends.append(i + 1)
    idx = np.flatnonzero(keep)
    if not len(idx):
        raise ValueError(f"{demos.meta.root}: no frame is training data (no demos, corrections or clean successes)")
    # segment boundaries in the compacted arrays
    compact_ends = np.searchsorted(idx, np.asarray(ends), side="left")
    data = {k: v[idx] for k, v in demos.data.items()}
    return Demos(meta=demos.meta, data=data, episode_ends=compact_ends)


def segment_counts(demos: Demos) -> dict[str, int]:
    """Number of recovery and correction segments and of frames per source (for reports and the bench)."""
    source = demos.data["source"]
    out = {f"frames/{s}": int(np.sum(source == s)) for s in np.unique(source)}
    for label in ("rewind", "correction"):
        is_label = source == label
        starts = is_label & ~np.concatenate([[False], is_label[:-1]])
        firsts = np.zeros(len(source), bool)
        firsts[np.concatenate([[0], demos.episode_ends[:-1]]).astype(int)] = True
        out[f"segments/{label}"] = int(np.sum(starts | (is_label & firsts & ~starts)))
    return out

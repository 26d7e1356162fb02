"""The person who resets the table: the CLI's prompt for placing objects on a real robot.

A real arm cannot put its cube back; at each reset the backend asks whoever can (`backend.placer`).
The emulator does it through its side channel; on hardware the CLI installs this prompt, which tells
the operator where (table frame, metres and degrees) and waits for Enter. Device classes never prompt
(DESIGN.md): the backend only calls the function it was given.
"""

from __future__ import annotations

import sys
from typing import TextIO

import numpy as np

from robotlearn.core.rotations import yaw_of


def placement_lines(scene: dict[str, list[float]]) -> list[str]:
    """One instruction per object in a reset's scene keys."""
    lines = []
    for key in sorted(scene):
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "object" and parts[2] == "pos":
            x, y, z = scene[key]
            quat = scene.get(f"object/{parts[1]}/quat")
            yaw = f", turned {np.degrees(yaw_of(np.asarray(quat))):+.0f} deg about z" if quat is not None else ""
            lines.append(f"place the {parts[1]} at x={x:.3f} m, y={y:.3f} m (table frame, z {z:.3f} m){yaw}")
    return lines


def prompt_placement(scene: dict[str, list[float]], stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    """Print where to put each object and wait for Enter (end of input: a one-line error)."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    lines = placement_lines(scene)
    if not lines:
        return
    for line in lines:
        print(line, file=stdout)
    print("press Enter when done", file=stdout, flush=True)
    if not stdin.readline():
        raise RuntimeError("reset needs the objects placed, but the input ended; run interactively")


def offer_placement_prompt(env) -> None:
    """Let a backend that places objects through a person (the real arm without an emulator) ask via this prompt."""
    backend = env.unwrapped.backend
    if getattr(backend, "placer", False) is None:
        backend.placer = prompt_placement

"""Marker-textured visuals of scene objects, the same mesh and atlas in both renderers.

Each engine keeps colliding with its primitive box (contacts are untouched); only what the cameras see
changes: a visual-only mesh with the `FiducialLayout`'s per-face texture coordinates and atlas, built
from the same arrays for MuJoCo and PyBullet, so both sims (and the emulator rendering through them)
show the markers the real arm's perception looks for at exactly the modelled corners.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import mujoco

from robotlearn.sim.scene import SceneObject

#: texture tile per face (px): 12 px per marker cell, sharp at every camera resolution we render
TILE_PX = 96
#: MuJoCo geom group the hidden collision box goes to (mjvOption shows groups 0-2 by default)
HIDDEN_GROUP = 3


def add_mujoco_fiducials(ms: mujoco.MjSpec, body: mujoco.MjsBody, obj: SceneObject, box: mujoco.MjsGeom) -> None:
    """Hide the collision `box` from cameras and give `body` a marker-textured visual mesh."""
    layout = obj.fiducials
    assert layout is not None
    atlas = layout.atlas(TILE_PX)
    ms.add_texture(name=f"{obj.name}_fiducials", type=mujoco.mjtTexture.mjTEXTURE_2D, width=atlas.shape[1],
                   height=atlas.shape[0], nchannel=3, data=atlas.ravel().tolist())
    material = ms.add_material(name=f"{obj.name}_fiducials", rgba=[1, 1, 1, 1], specular=0.0, shininess=0.0)
    material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = f"{obj.name}_fiducials"
    verts, faces, uvs, normals = layout.mesh(v_up=False)
    ms.add_mesh(name=f"{obj.name}_fiducials", uservert=verts.ravel().tolist(), userface=faces.ravel().tolist(),
                usertexcoord=uvs.ravel().tolist(), usernormal=normals.ravel().tolist())
    body.add_geom(name=f"{obj.name}_visual", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"{obj.name}_fiducials",
                  material=f"{obj.name}_fiducials", contype=0, conaffinity=0, group=1, density=0.0)
    box.group = HIDDEN_GROUP


def pybullet_fiducial_visual(pb, obj: SceneObject, client: int) -> tuple[int, int]:
    """(visual shape id, texture id) of `obj`'s marker mesh in PyBullet (it loads textures from files only)."""
    layout = obj.fiducials
    assert layout is not None
    verts, faces, uvs, normals = layout.mesh(v_up=True)
    shape = pb.createVisualShape(pb.GEOM_MESH, vertices=verts.tolist(), indices=faces.ravel().tolist(),
                                 uvs=uvs.tolist(), normals=normals.tolist(), rgbaColor=[1, 1, 1, 1],
                                 physicsClientId=client)
    with tempfile.TemporaryDirectory(prefix="rl-fiducials-") as tmp:
        path = Path(tmp) / f"{obj.name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(layout.atlas(TILE_PX), cv2.COLOR_RGB2BGR))
        texture = pb.loadTexture(str(path), physicsClientId=client)
    return shape, texture

"""Scanning artefacts for the ScanNet-like profile: what a hand-held RGB-D scan misses.

A ScanNet mesh is what the sensor saw, not the room: there are holes where no
camera looked (under tables, behind and between furniture, the tops of tall
cabinets), thin parts (chair legs, handles) that the depth fusion lost, dropouts
(dark or shiny patches) and a border where the operator stopped, cutting
objects. ``scan_visible`` turns a complete generated mesh into such a scan:

1. visibility: camera positions sampled in the room's free space at hand
   height (1.1-1.7 m); a vertex survives if some camera within ``MAX_RANGE``
   sees its front side (facing the camera at more than ``MIN_COS``) with no
   triangle in between (open3d's ray casting on the mesh itself);
2. thin parts: for about half of the objects, every surface thinner than
   ``THIN`` is dropped;
3. dropouts: a few balls of radius 0.1-0.35 m are cut out;
4. border: in about half of the rooms the scan ends at a vertical plane
   0.2-1.0 m inside one wall, cutting everything beyond it.

All of it is vectorised (ray casting in one call per chunk of rays); the
decisions come from the given generator only, so a seed gives the same scan.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from scene_pe.synthetic.layout import Layout, room_corners
from scene_pe.synthetic.mesh import Mesh, SurfaceArrays

HAND_HEIGHT = (1.1, 1.7)  # m, camera heights
MAX_RANGE = 4.0  # m, farthest depth a camera contributes (the sensor's useful range)
MIN_COS = 0.12  # surfaces seen more obliquely than ~83 degrees are not fused
CAMERAS_PER_M2 = 0.35  # camera positions per square metre of floor (at least 6)
THIN = 0.045  # m, surfaces narrower than this are thin parts (legs, handles, frames)
THIN_LOSS = 0.5  # fraction of objects whose thin parts are lost
DROPOUTS = (0, 4)  # number of dropout balls
BORDER_CUT = 0.5  # fraction of rooms cut by the scan's border
RAY_CHUNK = 2_000_000


def _inside_polygon(xy: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Even-odd rule for points (N, 2) in a simple polygon (K, 2): vectorised over points and edges."""
    a, b = corners, np.roll(corners, -1, axis=0)
    x, y = xy[:, 0:1], xy[:, 1:2]
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (crosses & (x < xint)).sum(axis=1) % 2 == 1


def _owner_boxes(mesh: Mesh, owner: np.ndarray, num: int) -> np.ndarray:
    """(num, 6) axis-aligned bounds (x0, x1, y0, y1, z0, z1) of each owner's vertices (empty: inverted)."""
    lo = np.full((num, 3), np.inf)
    hi = np.full((num, 3), -np.inf)
    np.minimum.at(lo, owner, mesh.vertices)
    np.maximum.at(hi, owner, mesh.vertices)
    return np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1], lo[:, 2], hi[:, 2]], axis=1)


def camera_positions(layout: Layout, boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera centres in the room's free space: inside the floor polygon, clear of tall furniture."""
    corners = room_corners(layout.width, layout.depth, layout.notch)
    area = layout.width * layout.depth
    count = max(6, int(round(CAMERAS_PER_M2 * area)))
    # Walls and floor (the first owners) span the room: only furniture taller than 1 m blocks a camera.
    tall = boxes[(boxes[:, 5] > 1.0) & np.isfinite(boxes[:, 0])]
    out = np.empty((0, 3))
    for _ in range(20):
        xy = rng.uniform([-layout.width / 2, -layout.depth / 2], [layout.width / 2, layout.depth / 2],
                         size=(4 * count, 2))
        ok = _inside_polygon(xy, corners * 0.92)  # keep off the walls
        inside_tall = ((xy[:, None, 0] > tall[None, :, 0] - 0.2) & (xy[:, None, 0] < tall[None, :, 1] + 0.2)
                       & (xy[:, None, 1] > tall[None, :, 2] - 0.2) & (xy[:, None, 1] < tall[None, :, 3] + 0.2))
        ok &= ~inside_tall.any(axis=1)
        z = rng.uniform(*HAND_HEIGHT, size=len(xy))
        out = np.concatenate([out, np.column_stack([xy, z])[ok]])
        if len(out) >= count:
            return out[:count]
    if len(out) == 0:
        raise RuntimeError("no free space for a camera in the room")
    return out


def visible_from(mesh: Mesh, cameras: np.ndarray) -> np.ndarray:
    """(N,) bool: the vertex's front side is seen, unoccluded and in range, from some camera."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                        o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    n = len(mesh.vertices)
    seen = np.zeros(n, dtype=bool)
    per_chunk = max(1, RAY_CHUNK // n)
    # Slack for the hit against the vertex's own triangles: float32 rays and the vertex's triangle fan.
    for k0 in range(0, len(cameras), per_chunk):
        cams = cameras[k0:k0 + per_chunk]
        d = mesh.vertices[None, :, :] - cams[:, None, :]  # (C, N, 3) camera -> vertex
        dist = np.linalg.norm(d, axis=2)
        facing = -(d * mesh.normals[None]).sum(axis=2) > MIN_COS * dist
        cand = facing & (dist < MAX_RANGE) & (dist > 1e-6)
        c_idx, v_idx = np.nonzero(cand)
        if len(v_idx) == 0:
            continue
        dirs = d[c_idx, v_idx] / dist[c_idx, v_idx, None]
        rays = np.concatenate([cams[c_idx], dirs], axis=1).astype(np.float32)
        # Slack for the hit on the vertex's own triangle fan, in float32: 2 mm plus 0.1% of the range.
        hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
        ok = hit >= dist[c_idx, v_idx] - (2e-3 + 1e-3 * dist[c_idx, v_idx])
        seen[v_idx[ok]] = True
    return seen


def scan_visible(mesh: Mesh, sa: SurfaceArrays, layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """(N,) bool: the vertices a scan of this room keeps (see the module doc)."""
    owner = sa.owner[mesh.surface]
    num_owners = len(layout.items)
    boxes = _owner_boxes(mesh, owner, num_owners)
    cameras = camera_positions(layout, boxes, rng)

    thin = np.minimum(sa.length_u, sa.length_v) < THIN
    loses_thin = rng.random(num_owners) < THIN_LOSS
    loses_thin[[it.category in ("floor", "wall") for it in layout.items]] = False
    keep = ~(thin[mesh.surface] & loses_thin[owner])

    for _ in range(int(rng.integers(DROPOUTS[0], DROPOUTS[1] + 1))):
        centre = mesh.vertices[rng.integers(len(mesh.vertices))]
        keep &= np.linalg.norm(mesh.vertices - centre, axis=1) > rng.uniform(0.1, 0.35)

    if rng.random() < BORDER_CUT:
        axis = int(rng.integers(2))
        side = 1.0 if rng.random() < 0.5 else -1.0
        half = (layout.width if axis == 0 else layout.depth) / 2
        plane = side * (half - rng.uniform(0.2, 1.0))
        keep &= side * mesh.vertices[:, axis] < side * plane

    keep &= visible_from(mesh, cameras)
    return keep

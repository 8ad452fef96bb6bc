"""Parametric surfaces -> one triangle mesh with a chosen vertex spacing.

A surface maps the unit square (u, v) into 3D through an origin and a frame
(3x3, orthogonal columns): ``p = origin + frame @ local(u, v)``, where
``local`` depends on the kind:

- PLANE: ``(u, v, amp * sin(2 pi cycles u))``; frame columns a, b, unit normal
  (amp > 0 makes a wavy sheet: curtains).
- CYL: ``(cos 2 pi u, sin 2 pi u, v)``; frame columns r e_x, r e_y, h e_z
  (lateral surface, wraps around in u, normals point away from the axis).
- DISK: the unit square mapped onto the unit disk (Shirley-Chiu concentric
  map: no polar singularity); frame columns r e_x, r e_y, e_z.

Every surface becomes a regular grid of vertices (spacing at most ``h``)
triangulated into 2 triangles per cell; ``flip`` reverses the triangle winding
and the normal so a surface can face either way. Surfaces transform rigidly
(origin and frame), so objects are built in a local frame and then placed.
The whole mesh is built without Python loops over vertices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PLANE, CYL, DISK = 0, 1, 2
BOX_FACES = ("+x", "-x", "+y", "-y", "+z", "-z")
DISK_STRETCH = 1.3  # the concentric map lengthens grid steps by at most ~1.27


@dataclass
class Surface:
    """One parametric surface; ``part`` indexes the owner's colour roles."""

    kind: int
    origin: np.ndarray  # (3,)
    frame: np.ndarray  # (3, 3), orthogonal columns
    flip: bool = False
    amp: float = 0.0  # PLANE only: wave amplitude (m) along the normal
    cycles: float = 0.0  # PLANE only: wave periods across u
    role: int = 0  # colour role within the owning object (0 main, 1 secondary, ...)

    def moved(self, rot: np.ndarray, shift: np.ndarray) -> "Surface":
        """This surface under ``x -> rot @ x + shift`` (rot a rotation)."""
        return Surface(self.kind, rot @ self.origin + shift, rot @ self.frame, self.flip,
                       self.amp, self.cycles, self.role)


def rect(origin, a, b, role: int = 0, flip: bool = False, amp: float = 0.0, cycles: float = 0.0) -> Surface:
    """Planar rectangle ``origin + u a + v b``; it faces ``a x b`` (or the opposite when flipped)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = np.cross(a, b)
    frame = np.stack([a, b, n / np.linalg.norm(n)], axis=1)
    return Surface(PLANE, np.asarray(origin, float), frame, flip, amp, cycles, role)


def box(lo, size, role: int = 0, skip: tuple[str, ...] = (), inward: bool = False) -> list[Surface]:
    """Axis-aligned box from corner ``lo`` with extents ``size``; faces outward (inward: flipped).

    ``skip`` names faces to leave out (from ``BOX_FACES``): hidden faces such as
    a bottom on the floor or a back against a wall.
    """
    x0, y0, z0 = (float(c) for c in lo)
    sx, sy, sz = (float(c) for c in size)
    x1, y1, z1 = x0 + sx, y0 + sy, z0 + sz
    ex, ey, ez = np.array([sx, 0, 0]), np.array([0, sy, 0]), np.array([0, 0, sz])
    faces = {  # each (origin, a, b) with a x b pointing out of the box
        "+x": ((x1, y0, z0), ey, ez), "-x": ((x0, y0, z0), ez, ey),
        "+y": ((x0, y1, z0), ez, ex), "-y": ((x0, y0, z0), ex, ez),
        "+z": ((x0, y0, z1), ex, ey), "-z": ((x0, y0, z0), ey, ex),
    }
    return [rect(o, a, b, role, flip=inward) for name, (o, a, b) in faces.items() if name not in skip]


def cylinder(center_xy, z0: float, radius: float, height: float, role: int = 0,
             top: bool = True, bottom: bool = False, inward: bool = False, ry: float | None = None) -> list[Surface]:
    """Vertical (elliptic when ``ry`` is given) cylinder, lateral surface plus optional caps."""
    cx, cy = (float(c) for c in center_xy)
    ry = radius if ry is None else ry
    out = [Surface(CYL, np.array([cx, cy, z0]), np.diag([radius, ry, height]), inward, role=role)]
    if top:
        out.append(disk((cx, cy, z0 + height), radius, role, up=not inward, ry=ry))
    if bottom:
        out.append(disk((cx, cy, z0), radius, role, up=inward, ry=ry))
    return out


def disk(center, radius: float, role: int = 0, up: bool = True, ry: float | None = None) -> Surface:
    """Horizontal (elliptic) disk facing up or down."""
    ry = radius if ry is None else ry
    return Surface(DISK, np.asarray(center, float), np.diag([radius, ry, 1.0]), not up, role=role)


def move(surfaces: list[Surface], yaw: float, shift) -> list[Surface]:
    """Rotate ``surfaces`` by ``yaw`` (radians, about z) then translate by ``shift``."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    shift = np.asarray(shift, float)
    return [srf.moved(rot, shift) for srf in surfaces]


@dataclass
class SurfaceArrays:
    """Surfaces stacked into arrays (one row per surface) for vectorised meshing."""

    kind: np.ndarray
    origin: np.ndarray
    frame: np.ndarray
    flip: np.ndarray
    amp: np.ndarray
    cycles: np.ndarray
    owner: np.ndarray  # object index per surface
    role: np.ndarray
    length_u: np.ndarray = field(init=False)
    length_v: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        col = np.linalg.norm(self.frame, axis=1)  # (M, 3): lengths of the 3 frame columns
        radius = 0.5 * (col[:, 0] + col[:, 1])
        # A wavy sheet is longer along u than its chord: use its steepest stretch.
        stretch = np.sqrt(1 + (2 * np.pi * self.amp * self.cycles / np.maximum(col[:, 0], 1e-9)) ** 2)
        self.length_u = np.where(self.kind == PLANE, col[:, 0] * stretch,
                                 np.where(self.kind == CYL, 2 * np.pi * radius, DISK_STRETCH * 2 * radius))
        self.length_v = np.where(self.kind == PLANE, col[:, 1],
                                 np.where(self.kind == CYL, col[:, 2], DISK_STRETCH * 2 * radius))

    @classmethod
    def stack(cls, surfaces: list[Surface], owners: list[int]) -> "SurfaceArrays":
        return cls(np.array([s.kind for s in surfaces], np.int64),
                   np.stack([s.origin for s in surfaces]), np.stack([s.frame for s in surfaces]),
                   np.array([s.flip for s in surfaces]), np.array([s.amp for s in surfaces]),
                   np.array([s.cycles for s in surfaces]), np.asarray(owners, np.int64),
                   np.array([s.role for s in surfaces], np.int64))

    @property
    def wraps(self) -> np.ndarray:
        return self.kind == CYL

    def grid_shape(self, spacing: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid vertices per surface along u and v so neighbours are at most ``spacing`` apart."""
        cells_u = np.ceil(self.length_u / spacing - 1e-9).astype(np.int64)
        cells_v = np.ceil(self.length_v / spacing - 1e-9).astype(np.int64)
        nu = np.where(self.wraps, np.maximum(cells_u, 6), np.maximum(cells_u, 1) + 1)
        nv = np.maximum(cells_v, 1) + 1
        return nu, nv

    def count(self, spacing: float) -> int:
        nu, nv = self.grid_shape(spacing)
        return int((nu * nv).sum())

    def spacing_for(self, num_vertices: int) -> float:
        """The largest spacing whose mesh has at least ``num_vertices`` vertices (bisection)."""
        lo, hi = 1e-3, 10.0
        if self.count(hi) >= num_vertices:
            return hi
        if self.count(lo) < num_vertices:
            raise ValueError(f"{num_vertices} vertices need a spacing below {lo} m")
        for _ in range(50):  # count() is non-increasing in the spacing
            mid = np.sqrt(lo * hi)
            lo, hi = (mid, hi) if self.count(mid) >= num_vertices else (lo, mid)
        return lo


@dataclass
class Mesh:
    """Mesh of stacked surfaces: per-vertex position, analytic normal and provenance."""

    vertices: np.ndarray  # (N, 3) float64
    normals: np.ndarray  # (N, 3) unit
    faces: np.ndarray  # (F, 3) int64, counter-clockwise seen from the normal side
    surface: np.ndarray  # (N,) surface index

    def subset(self, keep: np.ndarray) -> "Mesh":
        """The vertices where ``keep`` is True and the faces whose three vertices are all kept."""
        index = np.full(len(self.vertices), -1, dtype=np.int64)
        index[keep] = np.arange(int(keep.sum()))
        faces = index[self.faces]
        faces = faces[(faces >= 0).all(axis=1)]
        return Mesh(self.vertices[keep], self.normals[keep], faces, self.surface[keep])


def _ranges(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For items with ``counts`` elements: the item of each element and its index within the item."""
    start = np.cumsum(counts) - counts
    item = np.repeat(np.arange(len(counts)), counts)
    return item, np.arange(int(counts.sum())) - start[item]


def build_mesh(s: SurfaceArrays, spacing: float) -> Mesh:
    """Mesh every surface as a grid with the given spacing."""
    nu, nv = s.grid_shape(spacing)
    vstart = np.cumsum(nu * nv) - nu * nv
    sid, k = _ranges(nu * nv)
    i, j = k // nv[sid], k % nv[sid]
    wrap = s.wraps[sid]
    u = np.where(wrap, i / nu[sid], i / np.maximum(nu[sid] - 1, 1))
    v = j / (nv[sid] - 1)
    kind = s.kind[sid]

    local = np.zeros((len(sid), 3))
    lnorm = np.zeros((len(sid), 3))  # normal in the frame's (scaled) coordinates
    plane, cyl, dsk = kind == PLANE, kind == CYL, kind == DISK
    # PLANE (and wavy sheet): frame columns a, b, unit n.
    phase = 2 * np.pi * s.cycles[sid] * u
    wave = s.amp[sid] * np.sin(phase)
    local[plane] = np.stack([u, v, wave], axis=1)[plane]
    # d(wave)/du relative to |a|^2: tilts the normal against the wave's slope.
    slope = s.amp[sid] * 2 * np.pi * s.cycles[sid] * np.cos(phase)
    lnorm[plane] = np.stack([-slope, np.zeros_like(u), np.ones_like(u)], axis=1)[plane]
    # CYL: frame columns r e_x, r e_y, h e_z.
    theta = 2 * np.pi * u
    local[cyl] = np.stack([np.cos(theta), np.sin(theta), v], axis=1)[cyl]
    lnorm[cyl] = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(u)], axis=1)[cyl]
    # DISK: square [-1, 1]^2 -> unit disk by Shirley and Chiu's concentric map (no singularity).
    a, b = 2 * u - 1, 2 * v - 1
    outer = np.abs(a) > np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.where(outer, a, b)
        phi = np.where(outer, np.pi / 4 * b / a, np.pi / 2 - np.pi / 4 * a / b)
    phi = np.where(radius == 0, 0.0, phi)
    local[dsk] = np.stack([radius * np.cos(phi), radius * np.sin(phi), np.zeros_like(u)], axis=1)[dsk]
    lnorm[dsk] = np.array([0.0, 0.0, 1.0])

    frame = s.frame[sid]
    verts = s.origin[sid] + np.einsum("nij,nj->ni", frame, local)
    # Orthogonal columns: frame^{-T} = frame / |columns|^2 maps local normals to world normals.
    inv_t = frame / np.maximum((frame ** 2).sum(axis=1, keepdims=True), 1e-12)
    normals = np.einsum("nij,nj->ni", inv_t, lnorm)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    normals[s.flip[sid]] *= -1

    # Triangles: 2 per grid cell; wrapped surfaces close the seam (i + 1 mod nu).
    nfu = np.where(s.wraps, nu, nu - 1)
    fs, kf = _ranges(nfu * (nv - 1))
    fi, fj = kf // (nv[fs] - 1), kf % (nv[fs] - 1)
    i1 = (fi + 1) % nu[fs]
    v00 = vstart[fs] + fi * nv[fs] + fj
    v10 = vstart[fs] + i1 * nv[fs] + fj
    v01, v11 = v00 + 1, v10 + 1
    flip = s.flip[fs][:, None]
    t1 = np.where(flip, np.stack([v00, v11, v10], 1), np.stack([v00, v10, v11], 1))
    t2 = np.where(flip, np.stack([v00, v01, v11], 1), np.stack([v00, v11, v01], 1))
    faces = np.stack([t1, t2], axis=1).reshape(-1, 3)
    return Mesh(verts, normals, faces, sid)

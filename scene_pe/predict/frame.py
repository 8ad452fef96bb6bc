"""From the input's frame to the frame the model was trained in (metres, z up, floor near z = 0).

The transform is one 4x4 matrix ``model_from_input`` (a rotation times a
uniform scale, plus a translation): ``--scale`` then ``--up`` then, with
``--align floor``, the floor alignment below. A ScanNet scene folder uses its
own ``axisAlignment`` instead. Outputs are per vertex, so they are given in
the input's frame and order whatever this matrix is; it is reported in the
JSON so a user can map our frame back.

Floor alignment (``floor_alignment``), as ScanNet's axisAlignment does:
  1. planes are peeled off a 5 cm subsample with RANSAC (open3d
     ``segment_plane``, seeded): up to ``max_planes`` largest planes;
  2. the floor is the lowest of those whose normal is within ``max_tilt``
     of +z (after ``--up``) and that holds >= ``min_fraction`` of the points;
     it is rotated onto z = 0 with +z up;
  3. the walls: normals within ~17 deg of horizontal vote for their direction
     modulo 90 deg (angles times 4 on the circle, weighted by how horizontal
     they are); the scan is turned about z by the smallest angle that puts
     the dominant direction on the x / y axes;
  4. both are refined, as RANSAC and 5 cm normals leave a few hundredths of
     a degree (millimetres at a room's far corner, enough to move vertices
     between voxels): the floor by least squares on its full-resolution
     points, the turn by the 0.01-degree step within 1 degree that makes the
     1 cm histograms of x and y sharpest (straight walls in one bin).
Which of the four 90-degree turns results is arbitrary (ScanNet's is too);
the models are trained with rotations about z (RandomRotateZ).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scene_pe.geometry.normals import estimate_normals

UP_AXES = ("z", "-z", "y", "-y", "x", "-x")

# Proper rotations taking each named input axis to +z.
_UP_ROTATIONS = {
    "z": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    "-z": [[1, 0, 0], [0, -1, 0], [0, 0, -1]],
    "y": [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
    "-y": [[1, 0, 0], [0, 0, 1], [0, -1, 0]],
    "x": [[0, 0, -1], [0, 1, 0], [1, 0, 0]],
    "-x": [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],
}


@dataclass(frozen=True)
class FloorConfig:
    subsample: float = 0.05      # metres: voxel size of the cloud RANSAC runs on
    distance: float = 0.02       # metres: RANSAC inlier distance
    iterations: int = 1000
    max_planes: int = 6
    max_tilt_deg: float = 30.0   # a floor candidate's normal is within this of +z
    min_fraction: float = 0.02   # ... and holds at least this share of the points
    seed: int = 0


@dataclass
class FrameInfo:
    """How the input was brought into the model's frame (reported in NAME.json)."""

    model_from_input: np.ndarray                   # (4, 4)
    steps: list[str] = field(default_factory=list)
    floor_plane: list[float] | None = None         # (a, b, c, d) after --scale/--up, normal up
    wall_angle_deg: float | None = None            # turn about z applied

    def to_dict(self) -> dict:
        return {"model_from_input": np.round(self.model_from_input, 9).tolist(), "steps": self.steps,
                "floor_plane": self.floor_plane, "wall_angle_deg": self.wall_angle_deg}


class AlignmentError(ValueError):
    """The floor could not be found (message says why)."""


def up_rotation(up: str) -> np.ndarray:
    """3x3 rotation taking the input's ``up`` axis to +z."""
    if up not in _UP_ROTATIONS:
        raise ValueError(f"--up must be one of {', '.join(UP_AXES)}, got {up!r}")
    return np.asarray(_UP_ROTATIONS[up], dtype=np.float64)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` to unit vector ``b`` (Rodrigues)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1.0 + 1e-12:  # opposite: half a turn about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def homogeneous(linear: np.ndarray, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = linear
    m[:3, 3] = translation
    return m


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``matrix`` (4, 4) applied to (N, 3) points."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _floor_plane(pcd, cfg: FloorConfig) -> tuple[np.ndarray, np.ndarray]:
    """(plane (a, b, c, d) with c > 0, its inlier points) of the lowest near-horizontal big plane."""
    import open3d as o3d

    o3d.utility.random.seed(cfg.seed)
    total = len(pcd.points)
    remaining, candidates = pcd, []
    for _ in range(cfg.max_planes):  # a handful of planes, not points
        if len(remaining.points) < max(50, cfg.min_fraction * total):
            break
        plane, inliers = remaining.segment_plane(cfg.distance, 3, cfg.iterations)
        plane = np.asarray(plane, dtype=np.float64)
        plane /= np.linalg.norm(plane[:3])
        if plane[2] < 0:
            plane = -plane
        pts = np.asarray(remaining.points)[inliers]
        if plane[2] >= np.cos(np.radians(cfg.max_tilt_deg)) and len(inliers) >= cfg.min_fraction * total:
            candidates.append((float(pts[:, 2].mean()), plane, pts))
        remaining = remaining.select_by_index(inliers, invert=True)
    if not candidates:
        raise AlignmentError(f"no floor: none of the {cfg.max_planes} largest planes is within "
                             f"{cfg.max_tilt_deg} deg of horizontal with >= {cfg.min_fraction:.0%} of the "
                             "points (is --up right?)")
    _, plane, pts = min(candidates, key=lambda c: c[0])
    return plane, pts


def wall_angle(normals: np.ndarray, max_vertical: float = 0.3) -> float | None:
    """The dominant horizontal normal direction modulo 90 deg, in [-45, 45) deg (radians); None if none."""
    horizontal = np.linalg.norm(normals[:, :2], axis=1)
    use = np.abs(normals[:, 2]) < max_vertical
    if use.sum() < 10:
        return None
    theta4 = 4.0 * np.arctan2(normals[use, 1], normals[use, 0])
    w = horizontal[use]
    # coarse peak on a 1-degree histogram of 4*theta, then the weighted circular mean near it
    hist, edges = np.histogram(np.mod(theta4, 2 * np.pi), bins=360, range=(0, 2 * np.pi), weights=w)
    hist = hist + np.roll(hist, 1) + np.roll(hist, -1)
    peak = edges[np.argmax(hist)] + np.pi / 360
    near = np.abs(np.angle(np.exp(1j * (theta4 - peak)))) < np.radians(20)
    mean4 = np.angle(np.sum(w[near] * np.exp(1j * theta4[near])))
    angle = mean4 / 4.0
    return float((angle + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def refine_plane(points: np.ndarray, plane: np.ndarray, distances=(0.02, 0.01)) -> np.ndarray:
    """Least-squares plane (SVD) through the points near ``plane``, tightened over ``distances``.

    RANSAC's plane passes through 3 sampled points: off by a few hundredths of a
    degree, which moves a room's far corners by millimetres.
    """
    for dist in distances:
        near = points[np.abs(points @ plane[:3] + plane[3]) < dist]
        if len(near) < 3:
            break
        centre = near.mean(axis=0)
        normal = np.linalg.svd(near - centre, full_matrices=False)[2][-1]
        normal = normal if normal @ plane[:3] > 0 else -normal
        plane = np.r_[normal, -normal @ centre]
    return plane


def refine_wall_angle(xy: np.ndarray, angle: float, span_deg: float = 1.0, step_deg: float = 0.01,
                      bin_size: float = 0.01, max_points: int = 200_000) -> float:
    """The turn near ``angle`` at which the walls are sharpest on the axes.

    Sharpness: the sum of squared counts of 1 cm histograms of the turned x and
    y coordinates, highest when every straight wall falls into one bin.
    """
    if len(xy) > max_points:
        xy = xy[np.random.default_rng(0).choice(len(xy), max_points, replace=False)]
    xy = xy - xy.mean(axis=0)
    candidates = angle + np.radians(np.arange(-span_deg, span_deg + step_deg / 2, step_deg))
    reach = np.abs(xy).max() * 1.5
    nbins = int(2 * reach / bin_size) + 1
    best, best_score = angle, -1.0
    for a in candidates:  # ~200 angles, each a vectorised histogram
        c, s = np.cos(-a), np.sin(-a)
        turned = np.stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]], axis=1)
        score = 0.0
        for axis in range(2):
            h = np.bincount(((turned[:, axis] + reach) / bin_size).astype(np.int64), minlength=nbins)
            score += float(h.astype(np.float64) @ h)
        if score > best_score:
            best, best_score = a, score
    return float(best)


def floor_alignment(points: np.ndarray, cfg: FloorConfig = FloorConfig()) -> tuple[np.ndarray, FrameInfo]:
    """4x4 rigid transform putting the floor on z = 0 (up +z) and the walls on the axes."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    pcd = pcd.voxel_down_sample(cfg.subsample)
    plane, _ = _floor_plane(pcd, cfg)
    plane = refine_plane(points, plane)
    tilt = rotation_between(plane[:3], np.array([0.0, 0.0, 1.0]))
    level = homogeneous(tilt, (0.0, 0.0, plane[3]))  # n.p + d = 0  ->  z = 0
    pcd.transform(level)
    # unoriented: wall_angle works modulo 90 deg, so a normal's sign does not matter
    normals = estimate_normals(np.asarray(pcd.points), radius=4 * cfg.subsample, orient=False)
    angle = wall_angle(normals.astype(np.float64))
    if angle is not None:
        above = apply(level, points)
        above = above[above[:, 2] > 0.1]  # the floor's points carry no wall direction
        angle = refine_wall_angle(above[:, :2], angle) if len(above) >= 100 else angle
    turn = homogeneous(rotation_z(-angle)) if angle is not None else np.eye(4)
    info = FrameInfo(turn @ level, ["floor"], plane.tolist(), None if angle is None else -np.degrees(angle))
    return info.model_from_input, info


def model_frame(coords: np.ndarray, scale: float = 1.0, up: str = "z", align: str = "none",
                own_alignment: np.ndarray | None = None, floor: FloorConfig = FloorConfig()
                ) -> FrameInfo:
    """The transform from the input's frame to the model's (see the module docstring)."""
    if own_alignment is not None:
        return FrameInfo(np.asarray(own_alignment, dtype=np.float64), ["scannet axisAlignment"])
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"--scale must be > 0, got {scale}")
    if align not in ("none", "floor"):
        raise ValueError(f"--align must be none or floor, got {align!r}")
    m = homogeneous(up_rotation(up) * scale)
    steps = ([f"scale {scale:g}"] if scale != 1 else []) + ([f"up {up} -> z"] if up != "z" else [])
    if align == "none":
        return FrameInfo(m, steps)
    rigid, info = floor_alignment(apply(m, coords), floor)
    info.model_from_input = rigid @ m
    info.steps = steps + info.steps
    return info

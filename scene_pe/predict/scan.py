"""Any scan in: read a mesh, a point cloud or a ScanNet scene folder into a ``Scan``.

Readers (each keeps the file's own vertex order, so every per-vertex output
lines up with the input):

  ScanNet folder   ``sceneXXXX_YY/`` with ``<scene>_vh_clean_2.ply``; its
                   ``<scene>.txt`` axisAlignment is the scan's own alignment,
                   its segs.json its superpoints
  .ply             plyfile; a mesh when it has faces, else a point cloud;
                   colours ``red green blue`` (or ``r g b``) as uchar or
                   float in [0, 1], normals ``nx ny nz`` when present
  .obj .off .stl .gltf .glb
                   trimesh without processing (open3d's OBJ reader reorders
                   vertices); a glTF scene's meshes are joined in world
                   coordinates; texture colours are sampled to the vertices
  .pcd .xyz .xyzrgb .xyzn .pts
                   open3d
  .txt .csv .npy   rows ``x y z [r g b [nx ny nz]]`` (3, 6 or 9 columns);
                   colours above 1 are read as 0..255, else as 0..1
  .npz             arrays ``coords`` (or ``xyz``, ``points``, ``vertices``),
                   optional ``colors`` (uint8 0..255 or float 0..1),
                   ``normals`` (N, 3), ``faces`` (F, 3)

Every failure is a ``SceneError`` naming the input and the file.
"""

from __future__ import annotations

import glob
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scene_pe.data.scannet import (MESH_SUFFIX, ScenePaths, ply_triangles, read_axis_alignment, read_mesh,
                                   read_ply_file, read_segments)
from scene_pe.util.errors import SceneError

MESH_EXTS = (".obj", ".off", ".stl", ".gltf", ".glb")
OPEN3D_CLOUD_EXTS = (".pcd", ".xyz", ".xyzrgb", ".xyzn", ".pts")
TABLE_EXTS = (".txt", ".csv", ".npy")
SUPPORTED_EXTS = (".ply", ".npz") + MESH_EXTS + OPEN3D_CLOUD_EXTS + TABLE_EXTS
NPZ_COORD_KEYS = ("coords", "xyz", "points", "vertices")


@dataclass
class Scan:
    """One input in its own frame: N vertices, optional colours, normals, triangles."""

    name: str
    path: Path
    coords: np.ndarray                 # (N, 3) float64, the input's units and axes
    colors: np.ndarray | None = None   # (N, 3) uint8
    normals: np.ndarray | None = None  # (N, 3) float32, input frame
    faces: np.ndarray | None = None    # (F, 3) int32 triangles
    alignment: np.ndarray | None = None  # (4, 4) the scan's own axis alignment (ScanNet .txt)
    # Per-vertex superpoint ids: a ScanNet folder's segs.json; else computed by the
    # built-in segmentator when the inference config uses superpoints (pipeline.py).
    segments: np.ndarray | None = None

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None and len(self.faces) > 0

    def check(self) -> "Scan":
        """Shapes, finiteness and face indices; raises SceneError naming the file."""
        n = len(self.coords)
        if self.coords.ndim != 2 or self.coords.shape[1] != 3:
            raise SceneError(self.name, self.path, f"coordinates must be (N, 3), got {self.coords.shape}")
        if n == 0:
            raise SceneError(self.name, self.path, "empty scan (0 points)")
        bad = ~np.isfinite(self.coords).all(axis=1)
        if bad.any():
            raise SceneError(self.name, self.path, f"{int(bad.sum())} of {n} points have NaN/inf coordinates")
        for what, arr in (("colors", self.colors), ("normals", self.normals)):
            if arr is not None and arr.shape != (n, 3):
                raise SceneError(self.name, self.path, f"{what} must be ({n}, 3), got {arr.shape}")
        if self.faces is not None and len(self.faces):
            if self.faces.min() < 0 or self.faces.max() >= n:
                raise SceneError(self.name, self.path, f"face indices outside 0..{n - 1}")
            self.faces = self.faces.astype(np.int32)
        return self


# ------------------------------------------------------------------ helpers
def _colors_u8(values: np.ndarray) -> np.ndarray:
    """Colours as 0..255 uint8 from uint8 / 0..255 numbers / 0..1 floats."""
    v = np.asarray(values)
    if v.dtype == np.uint8:
        return v
    v = v.astype(np.float64)
    if not np.isfinite(v).all():
        raise ValueError("colours contain NaN/inf")
    if v.size and v.max() <= 1.0:
        v = v * 255.0
    return np.clip(np.round(v), 0, 255).astype(np.uint8)


def _from_table(name: str, path: Path, table: np.ndarray) -> Scan:
    t = np.asarray(table, dtype=np.float64)
    if t.ndim == 1 and t.size in (3, 6, 9):
        t = t[None]
    if t.ndim != 2 or t.shape[1] not in (3, 6, 9):
        raise SceneError(name, path, f"expected rows of 3, 6 or 9 columns (x y z [r g b [nx ny nz]]), "
                                     f"got shape {t.shape}")
    colors = _colors_u8(t[:, 3:6]) if t.shape[1] >= 6 else None
    normals = t[:, 6:9].astype(np.float32) if t.shape[1] == 9 else None
    return Scan(name, path, t[:, :3].copy(), colors, normals)


def _field(data: np.ndarray, *names: str) -> np.ndarray | None:
    for n in names:
        if n in data.dtype.names:
            return np.asarray(data[n])
    return None


# ------------------------------------------------------------------ readers
def read_ply(name: str, path: Path) -> Scan:
    ply = read_ply_file(path, name, "scan")
    if "vertex" not in ply:
        raise SceneError(name, path, "no 'vertex' element")
    v = ply["vertex"].data
    xyz = [_field(v, a) for a in "xyz"]
    if any(c is None for c in xyz):
        raise SceneError(name, path, "vertex element lacks x, y, z")
    coords = np.stack(xyz, axis=1).astype(np.float64)
    rgb = [_field(v, c, c[0]) for c in ("red", "green", "blue")]
    colors = _colors_u8(np.stack(rgb, axis=1)) if all(c is not None for c in rgb) else None
    nrm = [_field(v, f"n{a}") for a in "xyz"]
    normals = np.stack(nrm, axis=1).astype(np.float32) if all(c is not None for c in nrm) else None
    try:
        faces = ply_triangles(ply, path, name, len(coords))
    except SceneError as e:
        if "not all triangles" not in e.message:
            raise
        faces = np.asarray(trimesh_load(name, path).faces, dtype=np.int32)  # polygons, triangulated
    return Scan(name, path, coords, colors, normals, faces if len(faces) else None)


def trimesh_load(name: str, path: Path):
    """A trimesh.Trimesh of the file as written (no merging, no reordering)."""
    import trimesh

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mesh = trimesh.load(str(path), process=False, maintain_order=True, force="mesh")
    except Exception as e:  # noqa: BLE001 - trimesh raises many types on corrupt files
        raise SceneError(name, path, f"cannot read mesh: {type(e).__name__}: {e}") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.vertices) == 0:
        raise SceneError(name, path, "no mesh vertices in the file")
    return mesh


def read_trimesh(name: str, path: Path) -> Scan:
    mesh = trimesh_load(name, path)
    colors = None
    visual = mesh.visual
    if visual.kind == "texture":
        try:
            visual = visual.to_color()
        except Exception:  # noqa: BLE001 - a texture without an image: no colours
            visual = None
    if visual is not None and visual.kind == "vertex":
        colors = np.asarray(visual.vertex_colors)[:, :3].astype(np.uint8)
    faces = np.asarray(mesh.faces, dtype=np.int32).reshape(-1, 3)
    return Scan(name, path, np.asarray(mesh.vertices, dtype=np.float64), colors, None, faces)


def read_open3d_cloud(name: str, path: Path) -> Scan:
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(path))
    if not pcd.has_points():
        raise SceneError(name, path, "no points read (empty, corrupt or not a point cloud file)")
    colors = _colors_u8(np.asarray(pcd.colors)) if pcd.has_colors() else None
    normals = np.asarray(pcd.normals, dtype=np.float32) if pcd.has_normals() else None
    return Scan(name, path, np.asarray(pcd.points, dtype=np.float64), colors, normals)


def read_table(name: str, path: Path) -> Scan:
    try:
        if path.suffix.lower() == ".npy":
            table = np.load(path, allow_pickle=False)
        else:
            with open(path, encoding="utf-8", errors="strict") as f:
                first = next((ln for ln in f if ln.strip() and not ln.lstrip().startswith(("#", "//"))), "")
            delimiter = "," if "," in first else None
            table = np.loadtxt(path, delimiter=delimiter, comments=("#", "//"), ndmin=2)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise SceneError(name, path, f"cannot read point table: {type(e).__name__}: {e}") from None
    return _from_table(name, path, table)


def read_npz(name: str, path: Path) -> Scan:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise SceneError(name, path, f"cannot read npz: {type(e).__name__}: {e}") from None
    key = next((k for k in NPZ_COORD_KEYS if k in arrays), None)
    if key is None:
        raise SceneError(name, path, f"no coordinates: expected one of {list(NPZ_COORD_KEYS)}, "
                                     f"found {sorted(arrays)}")
    try:
        colors = _colors_u8(arrays["colors"]) if "colors" in arrays else None
    except ValueError as e:
        raise SceneError(name, path, str(e)) from None
    normals = arrays["normals"].astype(np.float32) if "normals" in arrays else None
    faces = arrays["faces"] if "faces" in arrays else None
    if faces is not None and (faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu"):
        raise SceneError(name, path, f"faces must be (F, 3) integers, got {faces.shape} {faces.dtype}")
    return Scan(name, path, arrays[key].astype(np.float64), colors, normals,
                None if faces is None else faces.astype(np.int64))


def read_scannet_folder(folder: Path) -> Scan:
    p = ScenePaths.of(folder)
    coords, colors, faces = read_mesh(p.mesh, p.scene)
    segments = read_segments(p.segs, p.scene, len(coords)) if p.segs.is_file() else None
    return Scan(p.scene, p.mesh, coords.astype(np.float64), colors, None, faces,
                alignment=read_axis_alignment(p.meta, p.scene), segments=segments)


def is_scannet_folder(path: Path) -> bool:
    return path.is_dir() and (path / f"{path.name}{MESH_SUFFIX}").is_file()


def read_scan(path: str | Path, name: str | None = None) -> Scan:
    """Read one input (a file or a ScanNet scene folder); ``name`` defaults to its stem."""
    path = Path(path)
    if is_scannet_folder(path):
        return read_scannet_folder(path).check()
    name = name or path.stem
    if not path.exists():
        raise SceneError(name, path, "no such file or folder")
    ext = path.suffix.lower()
    if ext == ".ply":
        scan = read_ply(name, path)
    elif ext in MESH_EXTS:
        scan = read_trimesh(name, path)
    elif ext in OPEN3D_CLOUD_EXTS:
        scan = read_open3d_cloud(name, path)
    elif ext in TABLE_EXTS:
        scan = read_table(name, path)
    elif ext == ".npz":
        scan = read_npz(name, path)
    else:
        raise SceneError(name, path, f"unsupported file type {ext!r}; supported: {', '.join(SUPPORTED_EXTS)} "
                                     "or a ScanNet scene folder")
    return scan.check()


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, ScanNet scene folders, folders of scans (one level) and globs -> input paths.

    A path that does not exist is kept (its reader reports it); a folder is a
    ScanNet scene when it holds ``<name>_vh_clean_2.ply``, else its supported
    files and ScanNet scene sub-folders are taken in name order.
    """
    out: list[Path] = []
    for item in inputs:
        matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not matches:
            out.append(Path(item))
        for m in map(Path, matches):
            if m.is_dir() and not is_scannet_folder(m):
                out += [c for c in sorted(m.iterdir())
                        if (c.is_file() and c.suffix.lower() in SUPPORTED_EXTS) or is_scannet_folder(c)]
            else:
                out.append(m)
    return list(dict.fromkeys(out))


def output_names(paths: list[Path]) -> list[str]:
    """One output name per input: its stem (folder name for ScanNet folders), made unique."""
    stems = [p.name if is_scannet_folder(p) else p.stem for p in paths]
    counts = {s: stems.count(s) for s in stems}
    names = [s if counts[s] == 1 else f"{s}_{p.suffix.lstrip('.').lower() or 'dir'}" for s, p in zip(stems, paths)]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):  # same stem and type in two folders
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            names[i] = f"{n}_{seen[n]}"
    return names

"""Synthetic ScanNet v2 scenes: seeded rooms written in ScanNet's exact file formats.

The project's embedded default data (tests, the CPU demo). A scene is a room
(floor, walls) with furniture of the benchmark classes, meshed as real
triangles at a chosen density, coloured per class and instance, over-segmented
into patches that never cross objects, annotated like ScanNet (aggregation of
segments, some segments left unannotated, some objects of non-benchmark
classes) and moved off the axis-aligned frame by a rotation about z and a
translation that the scene's ``axisAlignment`` undoes.

``generate_dataset`` writes a folder laid out like the ScanNet v2 download:
``scans/<scene>/`` (train, val), ``scans_test/<scene>/`` (test: mesh and .txt
only, no axisAlignment), ``scannetv2-labels.combined.tsv`` and the split lists.
Everything is deterministic for a given seed (byte-identical files).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from scene_pe.data import scannet_files as sf
from scene_pe.data.provenance import generated_record, write_provenance
from scene_pe.labels.label_set import IGNORE_LABEL, SCANNET20
from scene_pe.synthetic.catalog import RAW_TO_NYU40, SCENE_TYPES, instance_color, used_label_rows
from scene_pe.synthetic.layout import Layout, make_layout
from scene_pe.synthetic.mesh import SurfaceArrays, build_mesh
from scene_pe.synthetic.profiles import GENERATOR_VERSION, get_profile
from scene_pe.synthetic.scannetpp_release import write_metadata, write_plus_scene, write_splits
from scene_pe.synthetic.scanning import scan_visible

SEGMENT_TARGET = 250  # vertices per over-segment on a flat surface
SEGMENT_MIN = 60  # smaller fragments are merged into neighbours of the same object
UNANNOTATED_FRACTION = 0.05  # of the wall and floor segments, left out of the aggregation
LIGHT = np.array([0.35, 0.25, 0.9]) / np.linalg.norm([0.35, 0.25, 0.9])


@dataclass
class SyntheticScene:
    """One scene's raw arrays (raw = un-aligned frame, like the files)."""

    scene_id: str
    vertices: np.ndarray  # (N, 3) float32, raw frame
    colors: np.ndarray  # (N, 4) uint8 RGBA
    faces: np.ndarray  # (F, 3) int32
    nyu40: np.ndarray  # (N,) int32, NYU40 id, 0 = unannotated
    object_id: np.ndarray  # (N,) int32, aggregation objectId, -1 = unannotated
    segments: np.ndarray  # (N,) int64, segIndices (ids are vertex indices, not contiguous)
    seg_groups: list[dict]  # aggregation segGroups, in objectId order
    raw_categories: list[str]  # raw category per objectId
    axis_alignment: np.ndarray  # (4, 4) float64, raw -> aligned (as written, %f precision)
    scene_type: str  # ScanNet scene type name ("Bedroom / Hotel", ...)
    has_labels: bool

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    def aligned_vertices(self) -> np.ndarray:
        """(N, 3) float64 vertices in the axis-aligned frame."""
        a = self.axis_alignment
        return _affine(self.vertices.astype(np.float64), a[:3, :3], a[:3, 3])

    def training_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(semantic, instance) int64 per vertex as ScanNet v2 training labels, straight from the
        generator (the rooms carry NYU40 ids): for benches and checks that skip the files.
        Instances are the objects of the instance classes (objectId), -1 elsewhere."""
        semantic = SCANNET20.to_train(self.nyu40)
        labelled = semantic != IGNORE_LABEL
        is_inst = labelled & SCANNET20.train_is_instance[np.where(labelled, semantic, 0)] & (self.object_id >= 0)
        return semantic, np.where(is_inst, self.object_id, -1).astype(np.int64)


def _affine(points: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``points @ m.T + t`` term by term (no BLAS: the same bits on every machine)."""
    return points[:, 0:1] * m[:, 0] + points[:, 1:2] * m[:, 1] + points[:, 2:3] * m[:, 2] + t


def _group(keys: np.ndarray) -> np.ndarray:
    """Compact labels 0..K-1 for equal keys."""
    return np.unique(keys, return_inverse=True)[1].reshape(-1)


def _cell_keys(owner: np.ndarray, points: np.ndarray, cell: float, offset: np.ndarray) -> np.ndarray:
    g = np.floor((points + offset) / cell).astype(np.int64) + 1024  # rooms span < 2048 cells
    return ((owner * 2048 + g[:, 0]) * 2048 + g[:, 1]) * 2048 + g[:, 2]


def _small(lab: np.ndarray) -> np.ndarray:
    return np.bincount(lab)[lab] < SEGMENT_MIN


def oversegment(points: np.ndarray, normals: np.ndarray, unit: np.ndarray, spacing: float,
                rng: np.random.Generator) -> np.ndarray:
    """Segment label (0..S-1) per vertex: grid-hash patches that never cross ``unit`` boundaries.

    A patch is the vertices of one unit (object) in one cell of a grid (sized
    for ~SEGMENT_TARGET vertices on a flat surface) whose normals point the same
    way (one of 6 axis directions), much as ScanNet's segmentator splits at
    creases. Fragments smaller than SEGMENT_MIN are regrouped in cells twice as
    large, then joined to the nearest large segment of their unit; a unit too
    small for any large segment becomes one segment.
    """
    cell = spacing * np.sqrt(SEGMENT_TARGET)
    offset = rng.uniform(0.0, cell, size=3)
    axis = np.abs(normals).argmax(axis=1)
    facing = 2 * axis + (normals[np.arange(len(axis)), axis] < 0)
    lab = _group(_cell_keys(unit * 6 + facing, points, cell, offset))

    small = _small(lab)
    if small.any():
        lab[small] = lab.max() + 1 + _group(_cell_keys(unit[small], points[small], 2 * cell, offset))
        lab = _group(lab)
        small = _small(lab)
    if small.any() and not small.all():
        # Nearest vertex of a large segment, within the same unit: units are moved apart along x.
        far = points + (unit * 1e4)[:, None] * np.array([1.0, 0.0, 0.0])
        big = np.flatnonzero(~small)
        donor = big[cKDTree(far[big]).query(far[small])[1]]
        take = np.flatnonzero(small)[unit[donor] == unit[small]]
        lab[take] = lab[donor[unit[donor] == unit[small]]]
        lab = _group(lab)
        small = _small(lab)
    if small.any():  # units without any large segment: one segment each
        lab[small] = lab.max() + 1 + _group(unit[small])
        lab = _group(lab)
    return lab


def _colors(layout: Layout, sa: SurfaceArrays, normals: np.ndarray, surface: np.ndarray,
            rng: np.random.Generator, noise: float, light: np.ndarray | None = None) -> np.ndarray:
    palette = np.stack([instance_color(it.category, rng) for it in layout.items])  # (items, 3 roles, 3)
    base = palette[sa.owner[surface], np.minimum(sa.role[surface], 2)]
    # Simple diffuse light, so that shape shows in colour too.
    shade = 0.78 + 0.22 * (normals[:, 0] * LIGHT[0] + normals[:, 1] * LIGHT[1] + normals[:, 2] * LIGHT[2])
    if light is not None:  # uneven lighting (scanned profile): a brightness gain per vertex
        shade = shade * light
    rgb = base * shade[:, None] + rng.normal(0.0, noise, size=base.shape)
    rgba = np.full((len(rgb), 4), 255, dtype=np.uint8)
    rgba[:, :3] = np.clip(np.rint(rgb), 0, 255)
    return rgba


def _raw_frame(aligned: np.ndarray, layout: Layout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Move the scene off the aligned frame; return raw vertices and axisAlignment (raw -> aligned).

    Like a raw scan, the room ends up near the positive octant's corner; the
    transform depends on the layout only (not on the mesh density).
    """
    # Any heading but (nearly) a multiple of 90 degrees, so that alignment really matters.
    yaw = np.pi / 2 * rng.integers(4) + np.deg2rad(rng.uniform(10.0, 80.0))
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    corners = np.array([[sx * layout.width / 2, sy * layout.depth / 2, 0.0] for sx in (-1, 1) for sy in (-1, 1)])
    margin = np.array([rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.6), rng.uniform(-0.05, 0.1)])
    shift = margin - _affine(corners, rot, np.zeros(3)).min(axis=0)
    align = np.eye(4)
    align[:3, :3] = rot.T
    align[:3, 3] = -rot.T @ shift
    align = np.round(align, 6)  # the .txt holds %f values: make the written matrix the exact one
    inv = np.linalg.inv(align)
    raw = _affine(aligned, inv[:3, :3], inv[:3, 3])
    return raw.astype(np.float32), align


def _lighting(points: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth brightness gain 1 +- amplitude over the room (lamps, windows, auto-exposure)."""
    k = rng.normal(0.0, 1.2, size=(3, 2))  # three waves of ~1.5-5 m wavelength
    phase = rng.uniform(0.0, 2 * np.pi, size=3)
    wave = np.cos(points[:, :2] @ k.T + phase).mean(axis=1)
    return 1.0 + amplitude * wave


def generate_scene(scene_id: str, rng_seed: int, num_vertices_target: int = 60000,
                   with_labels: bool = True, profile: str = "basic") -> SyntheticScene:
    """One seeded scene with about ``num_vertices_target`` vertices (``profiles``: basic, scannet).

    The basic profile's mesh has at least the target; a scanned profile's loses
    vertices to the simulated scan (``generate_dataset`` retries to hit a range).
    The layout, and the scan's decisions, depend only on the seed, not on the target.
    """
    prof = get_profile(profile)
    streams = np.random.SeedSequence(int(rng_seed)).spawn(8)
    layout_rng, color_rng, noise_rng, seg_rng, shuffle_rng, ann_rng, frame_rng, scan_rng = (
        np.random.default_rng(s) for s in streams)
    layout = prof.make_layout(layout_rng)
    surfaces, owners = [], []
    for k, item in enumerate(layout.items):
        surfaces += item.surfaces
        owners += [k] * len(item.surfaces)
    sa = SurfaceArrays.stack(surfaces, owners)
    spacing = sa.spacing_for(int(num_vertices_target))
    mesh = build_mesh(sa, spacing)
    light = None
    if prof.scanned:
        mesh = mesh.subset(scan_visible(mesh, sa, layout, scan_rng))
        light = _lighting(mesh.vertices, prof.lighting, scan_rng)
    unit = sa.owner[mesh.surface]
    colors = _colors(layout, sa, mesh.normals, mesh.surface, color_rng, prof.color_noise, light)
    seg = oversegment(mesh.vertices, mesh.normals, unit, spacing, seg_rng)
    aligned = mesh.vertices + noise_rng.normal(0.0, prof.position_noise, size=mesh.vertices.shape)
    raw, align = _raw_frame(aligned, layout, frame_rng)

    # Shuffle vertex and face order (a scan's vertex order says nothing about objects).
    n = len(raw)
    perm = shuffle_rng.permutation(n)
    inverse = np.empty(n, dtype=np.int64)
    inverse[perm] = np.arange(n)
    faces = inverse[mesh.faces][shuffle_rng.permutation(len(mesh.faces))].astype(np.int32)
    raw, colors, unit, seg = raw[perm], colors[perm], unit[perm], seg[perm]
    # A segment's id is one of its vertices' index, as the segmentator's union-find roots are.
    order = shuffle_rng.permutation(n)
    _, first = np.unique(seg[order], return_index=True)
    seg_ids = order[first][seg].astype(np.int64)

    nyu40 = np.zeros(n, dtype=np.int32)
    object_id = np.full(n, -1, dtype=np.int32)
    groups: list[dict] = []
    categories: list[str] = []
    if with_labels:
        groups, categories = _annotate(layout, unit, seg_ids, nyu40, object_id, ann_rng)
    return SyntheticScene(scene_id, raw, colors, faces, nyu40, object_id, seg_ids, groups, categories,
                          align, SCENE_TYPES[layout.room_type], with_labels)


def _annotate(layout: Layout, unit: np.ndarray, seg_ids: np.ndarray, nyu40: np.ndarray,
              object_id: np.ndarray, rng: np.random.Generator) -> tuple[list[dict], list[str]]:
    """Fill ``nyu40``/``object_id`` in place; return segGroups and raw categories by objectId."""
    present = np.bincount(unit, minlength=len(layout.items)) > 0  # a scan may lose whole objects
    annotated = [k for k, it in enumerate(layout.items) if it.annotated and present[k]]
    order = [annotated[i] for i in rng.permutation(len(annotated))]  # annotators' order is arbitrary
    groups, categories = [], []
    for obj_id, k in enumerate(order):
        category = layout.items[k].category
        mask = unit == k
        segs = np.unique(seg_ids[mask])
        if category in ("wall", "floor") and len(segs) >= 5:  # annotators miss bits of walls/floors
            count = max(1, int(rng.binomial(len(segs), UNANNOTATED_FRACTION)))
            segs = np.delete(segs, rng.choice(len(segs), size=count, replace=False))
            mask &= np.isin(seg_ids, segs)
        object_id[mask] = obj_id
        nyu40[mask] = RAW_TO_NYU40[category]
        groups.append({"id": obj_id, "objectId": obj_id, "segments": segs.tolist(), "label": category})
        categories.append(category)
    return groups, categories


def write_scene(scene: SyntheticScene, scans_dir: str | Path) -> Path:
    """Write ``scans_dir/<scene>/`` as in the release; a scene without labels gets only mesh and .txt."""
    scene_dir = Path(scans_dir) / scene.scene_id
    scene_dir.mkdir(parents=True, exist_ok=True)
    paths = sf.scene_file_paths(scene_dir, scene.scene_id)
    sf.write_mesh_ply(paths["mesh"], scene.vertices, scene.colors, scene.faces)
    rng = np.random.default_rng(scene.num_vertices)  # plausible frame counts, deterministic
    frames = int(rng.integers(800, 6000))
    meta = {"sceneType": scene.scene_type, "numColorFrames": frames, "numDepthFrames": frames,
            "numIMUmeasurements": 2 * frames + int(rng.integers(0, 100))}
    sf.write_meta_txt(paths["meta"], scene.axis_alignment if scene.has_labels else None, **meta)
    if scene.has_labels:
        label_colors = np.full((scene.num_vertices, 4), 255, dtype=np.uint8)
        label_colors[:, :3] = sf.NYU40_PALETTE[scene.nyu40]
        sf.write_labels_ply(paths["labels"], scene.vertices, label_colors, scene.faces, scene.nyu40)
        sf.write_segs_json(paths["segs"], scene.scene_id, scene.segments)
        sf.write_aggregation_json(paths["aggregation"], scene.scene_id, scene.seg_groups)
    return scene_dir


def scene_seed(seed: int, index: int) -> int:
    """The rng seed of the ``index``-th scene of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _mesh_in_range(name: str, seed: int, aim: int, lo: int, hi: int, with_labels: bool,
                   profile: str) -> SyntheticScene:
    """Generate a scene whose vertex count is in [lo, hi], adjusting the mesh density."""
    scanned = get_profile(profile).scanned
    # A scan keeps ~60-80% of the complete mesh: start denser and correct by the ratio.
    target = int(aim / 0.7) if scanned else aim
    for _ in range(5):
        scene = generate_scene(name, seed, target, with_labels=with_labels, profile=profile)
        n = scene.num_vertices
        if lo <= n <= hi:
            return scene
        if scanned:
            target = max(1, int(target * aim / n))
        elif n > hi:  # the complete mesh has at least the target, often a few more
            target -= n - hi
        else:
            break
    raise ValueError(f"{name}: cannot mesh the scene with {lo}..{hi} vertices "
                     f"(got {scene.num_vertices}); widen num_vertices")


def _write_one(job: tuple) -> str:
    """Generate and write one scene (a worker's job); the folder appears complete or not at all."""
    name, seed, aim, lo, hi, with_labels, profile, scans_dir = job
    writer = write_plus_scene if get_profile(profile).release == "scannetpp" else write_scene
    final = Path(scans_dir) / name
    if final.is_dir():  # written by an earlier, interrupted run: scenes are deterministic
        return name
    scene = _mesh_in_range(name, seed, aim, lo, hi, with_labels, profile)
    tmp = Path(scans_dir) / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    scene_dir = writer(scene, tmp)
    os.replace(scene_dir, final)
    tmp.rmdir()
    return name


def generate_dataset(root: str | Path, num_train: int, num_val: int, num_test: int, seed: int = 0,
                     num_vertices: tuple[int, int] | None = None, profile: str = "basic", workers: int = 1,
                     on_scene: Callable[[str], None] | None = None) -> dict[str, list[str]]:
    """Write a ScanNet-v2-like folder of synthetic scenes (ScanNet++'s layout for a profile whose
    ``release`` is scannetpp); return split -> scene names.

    Vertex counts are drawn per scene from ``num_vertices`` (inclusive range;
    the profile's default when None). Scenes are numbered train, then val, then
    test, each from its own seed, so the splits are fixed by ``seed`` and the
    counts before them. Scenes already written are kept (an interrupted run
    resumes); ``workers`` > 1 generates in a process pool. ``on_scene`` is
    called with each scene name once it is written (progress bars).
    """
    prof = get_profile(profile)
    lo, hi = (int(v) for v in (num_vertices or prof.num_vertices))
    if not 0 < lo <= hi:
        raise ValueError(f"num_vertices must be a range 0 < lo <= hi, got {num_vertices}")
    root = Path(root)
    plus = prof.release == "scannetpp"
    counts = {"train": num_train, "val": num_val, "test": num_test}
    rng = np.random.default_rng(int(seed))
    splits: dict[str, list[str]] = {}
    jobs = []
    for split, count in counts.items():
        names = [f"scene{len(jobs) + k:04d}_00" for k in range(count)]
        for name in names:
            # Aim a little under hi: the mesh has at least the target, often a few more.
            aim = int(rng.integers(lo, max(lo, int(hi * 0.98)) + 1))
            scans = root / ("data" if plus else "scans_test" if split == "test" else "scans")
            scans.mkdir(parents=True, exist_ok=True)
            jobs.append((name, scene_seed(seed, len(jobs)), aim, lo, hi, split != "test", profile, str(scans)))
        splits[split] = names
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for name in pool.map(_write_one, jobs):
                if on_scene is not None:
                    on_scene(name)
    else:
        for job in jobs:
            name = _write_one(job)
            if on_scene is not None:
                on_scene(name)
    write_provenance(root, generated_record(profile, GENERATOR_VERSION, seed))
    if plus:  # ScanNet++'s metadata folder and split lists
        write_metadata(root, [str(r["raw_category"]) for r in used_label_rows(extra=prof.extra_categories)])
        write_splits(root, splits)
        return splits
    sf.write_labels_tsv(root / "scannetv2-labels.combined.tsv", used_label_rows(extra=prof.extra_categories))
    for split, names in splits.items():
        sf.write_split_list(root / f"scannetv2_{split}.txt", names)
    return splits

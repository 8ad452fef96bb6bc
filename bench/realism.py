"""Realism report: generated rooms (each generator profile) beside real ScanNet scans, on what a network can exploit.

    python bench/realism.py [REAL_FOLDER] [--rooms 4] [--profiles basic basic200 scannet] [--json out.json]

REAL_FOLDER: real scans in ScanNet's layout (default ../shared/real_scans; none there: the
generated rooms alone, with a note). Generated rooms are made in memory with the profile's
generator (scene_pe/synthetic; the scannetpp profile's rooms are basic200's in another file
layout, so it is left out), ``--rooms`` per profile, seeds as tools/make_synthetic.py's
(``--seed``), vertex counts drawn from the profile's range (``--vertices LO HI`` to override;
the demo uses 20000 60000). Real scans are read as they are (raw frame, z up), semantics from
labels.ply, objects from the aggregation where there is one.

The statistics are scene_pe/evaluation/realism.py's (its docstring says how each is measured).
Object classes: the 18 instance classes of ScanNet v2's benchmark (NYU40 ids); "objects" are
all the aggregation's objects (any category), "instances" those of the 18 classes. Colour alone
-> class: 15-NN on the colours of the 18 classes' vertices, a random half to fit and the other
half to test, pooled over the source's rooms (at most --max-vertices, a random subset) and per
room; the majority-class rate beside it; "split by object": a random half of the objects
(aggregation objects of the 18 classes) to fit, the others to test, i.e. whether colour tells the
class of an object not seen (a vertex split mostly asks whether an object is one colour). Per-room figures are means over the source's rooms.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scene_pe.evaluation import realism as R  # noqa: E402
from scene_pe.labels.label_set import SCANNET20  # noqa: E402

WALL, FLOOR, CEILING = 1, 2, 22  # NYU40
PROFILES = ("basic", "basic200", "scannet")


@dataclass
class Room:
    name: str
    coords: np.ndarray  # (N, 3) metres, z up
    colors: np.ndarray  # (N, 3) uint8
    faces: np.ndarray
    normals: np.ndarray
    nyu40: np.ndarray  # 0: unannotated
    objects: np.ndarray | None  # aggregation object per vertex, -1 none; None: no aggregation


def generated_rooms(profile: str, count: int, seed: int, vertices: tuple[int, int] | None) -> list[Room]:
    from scene_pe.geometry.normals import vertex_normals
    from scene_pe.synthetic.profiles import get_profile
    from scene_pe.synthetic.scenes import generate_scene, scene_seed

    prof = get_profile(profile)
    lo, hi = vertices or prof.num_vertices
    rng = np.random.default_rng(seed)
    rooms = []
    for i in range(count):
        aim = int(rng.integers(lo, max(lo, int(hi * 0.98)) + 1))
        s = generate_scene(f"{profile}_{i:02d}", scene_seed(seed, i), int(aim / 0.7) if prof.scanned else aim,
                           profile=profile)
        coords = s.vertices.astype(np.float64)
        rooms.append(Room(s.scene_id, coords, s.colors[:, :3], s.faces, vertex_normals(coords, s.faces),
                          s.nyu40.astype(np.int64), s.object_id.astype(np.int64)))
    return rooms


def real_room(scene_dir: Path, label_map) -> Room:
    from scene_pe.data.scannet import ScenePaths, read_labels_ply, read_mesh, read_scene

    p = ScenePaths.of(scene_dir)
    coords, colors, faces = read_mesh(p.mesh, p.scene)
    n = len(coords)
    nyu40 = read_labels_ply(p.labels, p.scene, n) if p.labels.is_file() else np.zeros(n, np.int64)
    objects = None
    if p.annotated:
        raw = read_scene(scene_dir, label_map, align=False)
        objects = raw.vertex_object.astype(np.int64)
        if not p.labels.is_file():
            nyu40 = raw.nyu40.astype(np.int64)
    from scene_pe.geometry.normals import vertex_normals
    return Room(p.scene, coords.astype(np.float64), colors, faces, vertex_normals(coords, faces), nyu40, objects)


def object_classes(room: Room) -> np.ndarray:
    """Mask of the vertices of the 18 instance classes."""
    return np.isin(room.nyu40, SCANNET20.instance_ids)


def room_stats(room: Room, seed: int) -> dict:
    out: dict = {"vertices": len(room.coords)}
    obj = object_classes(room)
    for space in ("rgb", "hsv"):
        out[f"colour_{space}"] = (asdict(R.color_class_accuracy(room.colors[obj], room.nyu40[obj], space, seed=seed))
                                  if obj.sum() >= 2 else None)
    pairs = R.neighbour_pairs(room.coords)
    labelled = np.where(room.nyu40 > 0, room.nyu40, -1)
    out["class_contrast"] = asdict(R.edge_contrast(room.colors, pairs, labelled))
    d = R.spread(R.vertex_density(room.coords, room.faces))
    out["density"] = {**asdict(d), "ratio": d.ratio}
    floor = room.nyu40 == FLOOR
    out["floor_normal_noise_deg"] = R.plane_normal_noise(room.normals[floor]) if floor.any() else None
    out["boundary_m_per_m2"] = R.boundary_per_area(room.coords, room.faces)
    out["empty_floor_cells"] = R.empty_cell_share(room.coords)
    benchmark = np.isin(room.nyu40, SCANNET20.ids)
    out["shares"] = {**R.label_shares(room.nyu40, {"wall": [WALL], "floor": [FLOOR], "unannotated": [0]}),
                     "other classes": float(((room.nyu40 > 0) & ~benchmark).mean())}
    out["classes_present"] = int(len(np.unique(room.nyu40[obj])))
    if room.objects is None:
        return out
    seen = obj & (room.objects >= 0)
    if len(np.unique(room.objects[seen])) >= 2:
        out["colour_rgb_by_object"] = asdict(R.color_class_accuracy(room.colors[seen], room.nyu40[seen], "rgb",
                                                                    seed=seed, objects=room.objects[seen]))
    c = R.edge_contrast(room.colors, pairs, room.objects)
    out["object_contrast"] = {**asdict(c), "ratio": c.ratio}
    out["joined_objects"] = R.joined_objects(room.faces, room.objects)
    inst = np.where(obj & (room.objects >= 0), room.objects, -1)
    s = R.object_stats(room.coords, inst, room.nyu40)
    out["instances"] = {"count": s.count, "vertices_median": s.vertices.median, "extent_median_m": s.extent.median,
                        "classes": {SCANNET20.class_name[k]: v for k, v in s.classes.items()}}
    out["objects"] = int(len(np.unique(room.objects[room.objects >= 0])))
    things = np.where(~np.isin(room.nyu40, [WALL, FLOOR, CEILING]), room.objects, -1)
    floor_z = float(np.percentile(room.coords[floor, 2], 5)) if floor.any() else float(room.coords[:, 2].min())
    out["small_objects"] = asdict(R.small_objects(room.coords, things, floor_z))
    return out


def pooled_colour(rooms: list[Room], space: str, cap: int, seed: int, by_object: bool = False) -> dict | None:
    """Colour -> class over the rooms' vertices of the 18 classes; ``by_object``: split by object
    (objects of different rooms apart; None where a room has no aggregation)."""
    if by_object and any(r.objects is None for r in rooms):
        return None
    masks = [object_classes(r) & (r.objects >= 0 if by_object else True) for r in rooms]
    colors = np.concatenate([r.colors[m] for r, m in zip(rooms, masks)])
    classes = np.concatenate([r.nyu40[m] for r, m in zip(rooms, masks)])
    objects = np.concatenate([r.objects[m] + i * 100_000 for i, (r, m) in enumerate(zip(rooms, masks))]) \
        if by_object else None
    if len(classes) < 2 or (by_object and len(np.unique(objects)) < 2):
        return None
    if len(classes) > cap:
        keep = np.random.default_rng(seed).choice(len(classes), cap, replace=False)
        colors, classes = colors[keep], classes[keep]
        objects = objects[keep] if by_object else None
    return asdict(R.color_class_accuracy(colors, classes, space, seed=seed, objects=objects))


def mean_of(per_room: list[dict], *path: str) -> float | None:
    values = []
    for r in per_room:
        v = r
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if v is not None and np.isfinite(v):
            values.append(float(v))
    return float(np.mean(values)) if values else None


def summarise(rooms: list[Room], args) -> dict:
    per_room = [room_stats(r, args.seed) for r in rooms]
    out = {"rooms": [r.name for r in rooms], "per_room": per_room,
           "pooled_colour": {s: pooled_colour(rooms, s, args.max_vertices, args.seed) for s in ("rgb", "hsv")}}
    out["pooled_colour"]["rgb_by_object"] = pooled_colour(rooms, "rgb", args.max_vertices, args.seed, by_object=True)
    classes: dict[str, int] = {}
    for r in per_room:
        for k, v in r.get("instances", {}).get("classes", {}).items():
            classes[k] = classes.get(k, 0) + v
    out["instance_classes"] = dict(sorted(classes.items(), key=lambda kv: -kv[1]))
    return out


ROWS = [  # (label, how to get it from a source summary, format)
    ("colour -> class, 15-NN RGB, pooled", lambda s: (s["pooled_colour"]["rgb"] or {}).get("accuracy"), ".3f"),
    ("  majority class rate", lambda s: (s["pooled_colour"]["rgb"] or {}).get("majority"), ".3f"),
    ("colour -> class, 15-NN HSV, pooled", lambda s: (s["pooled_colour"]["hsv"] or {}).get("accuracy"), ".3f"),
    ("colour -> class, 15-NN RGB, pooled, split by object",
     lambda s: (s["pooled_colour"]["rgb_by_object"] or {}).get("accuracy"), ".3f"),
    ("  majority class rate (by object)", lambda s: (s["pooled_colour"]["rgb_by_object"] or {}).get("majority"), ".3f"),
    ("colour -> class, 15-NN RGB, per room", lambda s: mean_of(s["per_room"], "colour_rgb", "accuracy"), ".3f"),
    ("  majority class rate, per room", lambda s: mean_of(s["per_room"], "colour_rgb", "majority"), ".3f"),
    ("colour -> class, per room, split by object", lambda s: mean_of(s["per_room"], "colour_rgb_by_object", "accuracy"),
     ".3f"),
    ("RGB contrast within objects", lambda s: mean_of(s["per_room"], "object_contrast", "within"), ".3f"),
    ("RGB contrast across object borders", lambda s: mean_of(s["per_room"], "object_contrast", "across"), ".3f"),
    ("  across / within", lambda s: mean_of(s["per_room"], "object_contrast", "ratio"), ".2f"),
    ("mesh edges between objects that join two", lambda s: mean_of(s["per_room"], "joined_objects"), ".3f"),
    ("RGB contrast within classes", lambda s: mean_of(s["per_room"], "class_contrast", "within"), ".3f"),
    ("RGB contrast across class borders", lambda s: mean_of(s["per_room"], "class_contrast", "across"), ".3f"),
    ("vertices per m^2, median", lambda s: mean_of(s["per_room"], "density", "median"), ".0f"),
    ("  density p90 / p10", lambda s: mean_of(s["per_room"], "density", "ratio"), ".2f"),
    ("floor normal noise, median deg", lambda s: mean_of(s["per_room"], "floor_normal_noise_deg"), ".2f"),
    ("open border, m per m^2", lambda s: mean_of(s["per_room"], "boundary_m_per_m2"), ".2f"),
    ("empty 10 cm floor cells", lambda s: mean_of(s["per_room"], "empty_floor_cells"), ".3f"),
    ("vertices per room", lambda s: mean_of(s["per_room"], "vertices"), ".0f"),
    ("instances (18 classes) per room", lambda s: mean_of(s["per_room"], "instances", "count"), ".1f"),
    ("  vertices per instance, median", lambda s: mean_of(s["per_room"], "instances", "vertices_median"), ".0f"),
    ("  extent per instance, median m", lambda s: mean_of(s["per_room"], "instances", "extent_median_m"), ".2f"),
    ("classes present (of 18) per room", lambda s: mean_of(s["per_room"], "classes_present"), ".1f"),
    ("objects (any category) per room", lambda s: mean_of(s["per_room"], "objects"), ".1f"),
    ("small objects (< 0.5 m) on the floor", lambda s: mean_of(s["per_room"], "small_objects", "on_floor"), ".1f"),
    ("small objects raised (tables, shelves)", lambda s: mean_of(s["per_room"], "small_objects", "raised"), ".1f"),
    ("share of vertices: wall", lambda s: mean_of(s["per_room"], "shares", "wall"), ".3f"),
    ("share of vertices: floor", lambda s: mean_of(s["per_room"], "shares", "floor"), ".3f"),
    ("share: other (non-benchmark) classes", lambda s: mean_of(s["per_room"], "shares", "other classes"), ".3f"),
    ("share: unannotated", lambda s: mean_of(s["per_room"], "shares", "unannotated"), ".3f"),
]


def table(sources: dict[str, dict]) -> str:
    names = list(sources)
    lines = ["| statistic | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, get, fmt in ROWS:
        cells = []
        for s in sources.values():
            v = get(s)
            cells.append("n/a" if v is None else format(v, fmt))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| most common instance classes | " + " | ".join(
        ", ".join(f"{k} {v}" for k, v in list(s["instance_classes"].items())[:4]) or "n/a"
        for s in sources.values()) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("real", nargs="?", type=Path, help="real scans (default ../shared/real_scans)")
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES))
    ap.add_argument("--rooms", type=int, default=4, help="generated rooms per profile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vertices", type=int, nargs=2, metavar=("LO", "HI"), help="default: each profile's range")
    ap.add_argument("--max-vertices", type=int, default=300_000, help="pooled colour classifier: at most this many")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from bench.real_scan_folder import scannet_root, scene_dirs

    t0 = time.time()
    sources: dict[str, dict] = {}
    for profile in args.profiles:
        print(f"generating {args.rooms} {profile} rooms ...", flush=True)
        sources[f"{profile} ({args.rooms} rooms)"] = summarise(
            generated_rooms(profile, args.rooms, args.seed, args.vertices), args)
    real_note = ""
    try:
        root = scannet_root(args.real)
        dirs = scene_dirs(root)
    except FileNotFoundError as e:
        real_note, dirs = f"real scans: none ({e})", []
    if dirs:
        import warnings

        from scene_pe.data.scannet import LABEL_MAP_NAME, load_label_map
        label_map = load_label_map(root / LABEL_MAP_NAME)
        rooms = []
        for d in dirs:
            print(f"reading {d.name} ...", flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # read_scene's axis-alignment notes: the raw frame is wanted here
                rooms.append(real_room(d, label_map))
        for room in rooms:
            sources[room.name] = summarise([room], args)
        if len(rooms) > 1:
            sources[f"real ({len(rooms)} scans)"] = summarise(rooms, args)
        real_note = f"real scans: {root} ({', '.join(d.name for d in dirs)}); two scans are a check, not a benchmark"
    print(f"\n{table(sources)}\n")
    print(real_note)
    print(f"{time.time() - t0:.0f} s; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        record = {"command": " ".join(sys.argv), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                  "real": real_note, "sources": sources}
        args.json.write_text(json.dumps(record, indent=1, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Synthetic ScanNet scenes: file formats, consistency across files, determinism, content."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData, PlyElement
from scipy.spatial import cKDTree

from scene_pe.data import scannet_files as sf
from scene_pe.synthetic import mesh as sm
from scene_pe.labels.label_set import SCANNET20
from scene_pe.synthetic.scenes import generate_dataset, generate_scene, scene_seed, write_scene
from scene_pe.synthetic.catalog import RAW_TO_NYU40

VERTS = (6000, 9000)  # small scenes keep the tests fast


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("synthetic")
    return root, generate_dataset(root, 3, 1, 2, seed=7, num_vertices=VERTS)


def _scene_dir(root: Path, name: str) -> Path:
    return root / "scans" / name if (root / "scans" / name).is_dir() else root / "scans_test" / name


def _header(path: Path) -> list[str]:
    data = path.read_bytes()
    return data[: data.index(b"end_header\n")].decode("ascii").splitlines()


def _read_labels_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _vertex_objects(scene_dir: Path, name: str) -> tuple[np.ndarray, dict, dict]:
    """objectId per vertex (-1 none) from segs.json + aggregation.json, as the benchmark reads them."""
    segs = json.loads((scene_dir / sf.segs_file_name(name)).read_text())
    agg = json.loads((scene_dir / f"{name}.aggregation.json").read_text())
    seg = np.asarray(segs["segIndices"])
    obj = np.full(len(seg), -1)
    for g in agg["segGroups"]:
        obj[np.isin(seg, g["segments"])] = g["objectId"]
    return obj, segs, agg


# ---------------------------------------------------------------- file formats
def test_mesh_ply_header_and_types(dataset):
    root, splits = dataset
    for name in splits["train"] + splits["test"]:
        path = _scene_dir(root, name) / f"{name}_vh_clean_2.ply"
        head = _header(path)
        assert head[:3] == ["ply", "format binary_little_endian 1.0", "comment VCGLIB generated"]
        assert head[4:11] == [f"property {t} {n}" for t, n in [("float", "x"), ("float", "y"), ("float", "z"),
                              ("uchar", "red"), ("uchar", "green"), ("uchar", "blue"), ("uchar", "alpha")]]
        assert head[-1] == "property list uchar int vertex_indices"
        ply = PlyData.read(str(path))
        assert ply.byte_order == "<" and not ply.text
        assert [e.name for e in ply.elements] == ["vertex", "face"]
        assert ply["vertex"].data.dtype == np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"),
                                                     ("green", "u1"), ("blue", "u1"), ("alpha", "u1")])
        prop = ply["face"].properties[0]
        assert (prop.name, prop.len_dtype, prop.val_dtype) == ("vertex_indices", "u1", "i4")
        faces = np.stack(ply["face"].data["vertex_indices"])
        assert faces.shape[1] == 3 and faces.min() >= 0 and faces.max() < ply["vertex"].count
        assert (ply["vertex"].data["alpha"] == 255).all()


def test_labels_ply_matches_mesh_and_aggregation(dataset):
    root, splits = dataset
    label_map = {r["raw_category"]: int(r["nyu40id"]) for r in _read_labels_tsv(root / "scannetv2-labels.combined.tsv")}
    for name in splits["train"] + splits["val"]:
        d = root / "scans" / name
        head = _header(d / f"{name}_vh_clean_2.labels.ply")
        assert head[2] == "comment MLIB generated"
        assert head[11] == "property ushort label"  # after x y z red green blue alpha
        assert head[-1] == "property list uchar int vertex_indices"
        mesh = PlyData.read(str(d / f"{name}_vh_clean_2.ply"))
        labels = PlyData.read(str(d / f"{name}_vh_clean_2.labels.ply"))
        lv = labels["vertex"].data
        assert lv.dtype["label"] == np.dtype("<u2")
        for k in "xyz":  # same vertices and faces in both files
            np.testing.assert_array_equal(lv[k], mesh["vertex"].data[k])
        np.testing.assert_array_equal(np.stack(labels["face"].data["vertex_indices"]),
                                      np.stack(mesh["face"].data["vertex_indices"]))
        obj, segs, agg = _vertex_objects(d, name)
        nyu = np.zeros(len(obj), np.int64)
        for g in agg["segGroups"]:
            nyu[obj == g["objectId"]] = label_map[g["label"]]
        np.testing.assert_array_equal(lv["label"], nyu)  # labels.ply = aggregation + tsv
        rgb = np.stack([lv["red"], lv["green"], lv["blue"]], 1)
        np.testing.assert_array_equal(rgb, sf.NYU40_PALETTE[nyu])  # coloured by the NYU40 palette


def test_segs_and_aggregation_json(dataset):
    root, splits = dataset
    for name in splits["train"] + splits["val"]:
        d = root / "scans" / name
        n = PlyData.read(str(d / f"{name}_vh_clean_2.ply"))["vertex"].count
        obj, segs, agg = _vertex_objects(d, name)
        assert list(segs) == ["params", "sceneId", "segIndices"]
        assert segs["params"] == sf.SEGS_PARAMS and segs["sceneId"] == f"{name}_vh_clean_2"
        assert len(segs["segIndices"]) == n and all(isinstance(s, int) for s in segs["segIndices"][:100])
        assert list(agg) == ["sceneId", "appId", "segGroups", "segmentsFile"]
        assert agg["sceneId"] == f"scannet.{name}" and agg["appId"] == "Aggregator.v2"
        assert agg["segmentsFile"] == f"scannet.{name}_vh_clean_2.0.010000.segs.json"
        groups = agg["segGroups"]
        assert [g["objectId"] for g in groups] == list(range(len(groups)))
        assert all(list(g) == ["id", "objectId", "segments", "label"] and g["id"] == g["objectId"] for g in groups)
        seg = np.asarray(segs["segIndices"])
        existing = set(seg.tolist())
        used = [s for g in groups for s in g["segments"]]
        assert set(used) <= existing  # every segGroup's segments exist
        assert len(used) == len(set(used))  # and belong to one object only
        # Segment ids are vertex indices (the segmentator's roots), and each id is a vertex of its segment.
        ids = np.unique(seg)
        assert ids.max() < n and (seg[ids] == ids).all()


def test_meta_txt(dataset):
    root, splits = dataset
    for name in splits["train"] + splits["test"]:
        lines = (_scene_dir(root, name) / f"{name}.txt").read_text().splitlines()
        meta = dict(line.split(" = ", 1) for line in lines)
        assert list(meta) == sorted(meta) and meta["colorHeight"] == "968"
        assert ("axisAlignment" in meta) == (name not in splits["test"])  # test scenes have none
        if "axisAlignment" in meta:
            m = np.array(meta["axisAlignment"].split(), dtype=float).reshape(4, 4)
            np.testing.assert_array_equal(m[3], [0, 0, 0, 1])
            np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=2e-6)
            assert abs(m[2, 2] - 1.0) < 1e-6  # a rotation about z


def test_labels_tsv_and_split_lists(dataset):
    root, splits = dataset
    raw = (root / "scannetv2-labels.combined.tsv").read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n")  # CRLF, as released
    rows = _read_labels_tsv(root / "scannetv2-labels.combined.tsv")
    assert tuple(rows[0]) == sf.TSV_COLUMNS
    nyu = {r["raw_category"]: int(r["nyu40id"]) for r in rows}
    assert {"chair": 5, "office chair": 5, "kitchen cabinet": 3, "trash can": 39, "pillow": 18,
            "lamp": 35, "wall": 1, "floor": 2, "refrigerator": 24, "couch": 6}.items() <= nyu.items()
    for name in splits["train"] + splits["val"]:
        agg = json.loads((root / "scans" / name / f"{name}.aggregation.json").read_text())
        assert {g["label"] for g in agg["segGroups"]} <= set(nyu)  # every raw category used is mapped
    for split, names in splits.items():
        assert (root / f"scannetv2_{split}.txt").read_text() == "".join(f"{s}\n" for s in names)
    everything = sum(splits.values(), [])
    assert len(set(everything)) == len(everything) == 6
    assert everything == [f"scene{i:04d}_00" for i in range(6)]


def test_test_scenes_have_only_mesh_and_txt(dataset):
    root, splits = dataset
    for name in splits["test"]:
        assert sorted(p.name for p in (root / "scans_test" / name).iterdir()) == \
            [f"{name}.txt", f"{name}_vh_clean_2.ply"]
        assert not (root / "scans" / name).exists()
    for name in splits["train"] + splits["val"]:
        assert len(list((root / "scans" / name).iterdir())) == 5
    assert not list(root.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_vertex_counts_in_requested_range(dataset):
    root, splits = dataset
    for name in sum(splits.values(), []):
        n = PlyData.read(str(_scene_dir(root, name) / f"{name}_vh_clean_2.ply"))["vertex"].count
        assert VERTS[0] <= n <= VERTS[1]
    for target in (7000, 30000):
        n = generate_scene("scene0000_00", 3, target).num_vertices
        assert target <= n <= target * 1.02


# ---------------------------------------------------------------- determinism
def test_same_seed_same_bytes_different_seed_different_scene(dataset, tmp_path):
    root, splits = dataset
    again = generate_dataset(tmp_path / "again", 3, 1, 2, seed=7, num_vertices=VERTS)
    assert again == splits
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    for rel in files:
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel
    a, b = generate_scene("scene0000_00", 1, 6000), generate_scene("scene0000_00", 2, 6000)
    assert a.num_vertices != b.num_vertices or not np.array_equal(a.vertices, b.vertices)
    # The layout depends on the seed only, not on the density.
    dense = generate_scene("scene0000_00", 1, 12000)
    assert dense.raw_categories == a.raw_categories
    np.testing.assert_allclose(dense.axis_alignment, a.axis_alignment)


# ---------------------------------------------------------------- content
@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(f"scene{i:04d}_00", scene_seed(11, i), 6000) for i in range(10)]


def test_segments_never_cross_objects(scenes, dataset):
    for sc in scenes:
        seg, inv = np.unique(sc.segments, return_inverse=True)
        objs_per_seg = np.unique(np.stack([inv, sc.object_id], 1), axis=0)[:, 0]
        assert len(objs_per_seg) == len(seg)  # one object (or none) per segment
        sizes = np.bincount(inv)
        assert np.median(sizes) >= 20
    root, splits = dataset  # the same property read back from the files
    for name in splits["train"]:
        obj, segs, _ = _vertex_objects(root / "scans" / name, name)
        pairs = np.unique(np.stack([np.asarray(segs["segIndices"]), obj], 1), axis=0)
        assert len(np.unique(pairs[:, 0])) == len(pairs)


def test_class_variety_and_touching_instances(scenes):
    room_types = set()
    for sc in scenes:
        room_types.add(sc.scene_type)
        nyu_by_obj = np.array([RAW_TO_NYU40[c] for c in sc.raw_categories])
        inst = [k for k, v in enumerate(nyu_by_obj) if v in SCANNET20.instance_ids]
        assert len({nyu_by_obj[k] for k in inst}) >= 4, sc.scene_id
        best = np.inf  # closest pair of same-class instances
        for cls in {nyu_by_obj[k] for k in inst}:
            members = [k for k in inst if nyu_by_obj[k] == cls]
            for i, a in enumerate(members):
                tree = cKDTree(sc.vertices[sc.object_id == a])
                for b in members[i + 1:]:
                    best = min(best, tree.query(sc.vertices[sc.object_id == b])[0].min())
        assert best < 0.02, sc.scene_id
        # Ignore handling is exercised: unannotated vertices and a non-benchmark class.
        assert (sc.object_id == -1).any() and (sc.nyu40[sc.object_id == -1] == 0).all()
        assert any(v not in SCANNET20.ids for v in nyu_by_obj)
        assert len(sc.seg_groups) == len(sc.raw_categories)
    assert len(room_types) >= 4


def test_raw_frame_is_rotated_and_axis_alignment_undoes_it(scenes):
    for sc in scenes:
        walls = [k for k, c in enumerate(sc.raw_categories) if c == "wall"]
        aligned, raw = sc.aligned_vertices(), sc.vertices.astype(np.float64)
        floor = sc.object_id == sc.raw_categories.index("floor")
        assert np.abs(aligned[floor, 2]).max() < 0.02  # floor at z = 0 after alignment
        for k in walls:
            m = sc.object_id == k
            assert np.ptp(aligned[m, :2], axis=0).min() < 0.03  # a wall is a plane x = c or y = c
            assert np.ptp(raw[m, :2], axis=0).min() > 0.05  # ... but not in the raw frame
        room = np.ptp(aligned[:, :2], axis=0)
        assert np.abs(aligned[:, :2].max(0) - room / 2).max() < 0.05  # aligned room is centred


def test_test_scene_has_no_labels(tmp_path):
    sc = generate_scene("scene0100_00", 5, 6000, with_labels=False)
    assert not sc.has_labels and sc.seg_groups == [] and (sc.object_id == -1).all() and (sc.nyu40 == 0).all()
    write_scene(sc, tmp_path)
    assert sorted(p.name for p in (tmp_path / "scene0100_00").iterdir()) == ["scene0100_00.txt",
                                                                           "scene0100_00_vh_clean_2.ply"]
    # Same geometry as the labelled version of the same seed.
    np.testing.assert_array_equal(sc.vertices, generate_scene("scene0100_00", 5, 6000).vertices)


# ---------------------------------------------------------------- writers and meshing
def test_ply_body_is_what_plyfile_writes(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3)).astype(np.float32)
    c = rng.integers(0, 256, size=(50, 4)).astype(np.uint8)
    f = rng.integers(0, 50, size=(80, 3)).astype(np.int32)
    labels = rng.integers(0, 41, size=50)
    sf.write_labels_ply(tmp_path / "fast.ply", v, c, f, labels)
    rec = np.empty(50, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"),
                              ("blue", "u1"), ("alpha", "u1"), ("label", "<u2")])
    for k, name in enumerate("xyz"):
        rec[name] = v[:, k]
    for k, name in enumerate(("red", "green", "blue", "alpha")):
        rec[name] = c[:, k]
    rec["label"] = labels
    faces = np.empty(80, dtype=[("vertex_indices", "i4", (3,))])
    faces["vertex_indices"] = f
    buf = io.BytesIO()
    PlyData([PlyElement.describe(rec, "vertex"), PlyElement.describe(faces, "face")], text=False,
            byte_order="<", comments=["MLIB generated"]).write(buf)
    assert (tmp_path / "fast.ply").read_bytes() == buf.getvalue()


def test_meta_and_tsv_writers(tmp_path):
    m = np.arange(16, dtype=float).reshape(4, 4) / 7
    sf.write_meta_txt(tmp_path / "a.txt", m, sceneType="Office")
    meta = dict(line.split(" = ", 1) for line in (tmp_path / "a.txt").read_text().splitlines())
    np.testing.assert_allclose(np.array(meta["axisAlignment"].split(), float).reshape(4, 4), m, atol=5e-7)
    assert meta["sceneType"] == "Office"
    sf.write_meta_txt(tmp_path / "b.txt", None)
    assert "axisAlignment" not in (tmp_path / "b.txt").read_text()
    sf.write_labels_tsv(tmp_path / "l.tsv", [{"raw_category": "mug", "nyu40id": 40}])
    row = _read_labels_tsv(tmp_path / "l.tsv")[0]
    assert row["raw_category"] == "mug" and row["nyu40id"] == "40" and row["id"] == ""
    with pytest.raises(ValueError):
        sf.write_labels_tsv(tmp_path / "bad.tsv", [("too", "short")])
    with pytest.raises(ValueError):
        sf.write_mesh_ply(tmp_path / "bad.ply", np.zeros((3, 3)), np.zeros((3, 4)), np.zeros((1, 4)))
    assert not (tmp_path / "bad.ply").exists() and not list(tmp_path.glob(".*tmp"))


def test_surfaces_face_outward_and_triangles_are_real():
    solids = [sm.box((0, 0, 0), (1.0, 0.6, 0.4)), sm.cylinder((3, 0), 0.0, 0.3, 0.5, bottom=True),
              sm.box((6, 0, 0), (0.5, 0.5, 0.5), inward=True)]
    parts = sum(solids, []) + [sm.rect((9, 0, 0), (1, 0, 0), (0, 0, 1), amp=0.05, cycles=3)]
    sa = sm.SurfaceArrays.stack(parts, [0] * len(parts))
    mesh = sm.build_mesh(sa, 0.05)
    tri = mesh.vertices[mesh.faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    assert area.min() > 1e-6  # no degenerate triangles
    # The winding agrees with the analytic vertex normals.
    assert (np.einsum("fi,fi->f", cross, mesh.normals[mesh.faces].mean(1)) > 0).all()
    centre = np.array([[0.5, 0.3, 0.2], [3, 0, 0.25], [6.25, 0.25, 0.25]])
    first = np.cumsum([0] + [len(s) for s in solids])
    for k, sign in ((0, 1), (1, 1), (2, -1)):  # closed solids: outward; the inward box: inward
        m = (mesh.surface >= first[k]) & (mesh.surface < first[k + 1])
        radial = mesh.vertices[m] - centre[k]
        assert (sign * np.einsum("ni,ni->n", radial, mesh.normals[m]) > 0).all()
    # The mesh honours the spacing: grid edges at most 5 cm, cell diagonals at most sqrt(2) x that.
    edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
    assert edges.max() < 0.05 * np.sqrt(2) * 1.01
    assert np.median(edges) < 0.05

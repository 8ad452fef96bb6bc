"""Tests for scene_pe.data.scannet on tiny hand-made ScanNet-format scenes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from scene_pe.labels.label_set import IGNORE_LABEL, SCANNET20
from scene_pe.data.scannet import (LABEL_MAP_NAME, SceneWarning, gt_ids, load_label_map,
                                   read_scene, write_gt_txt)
from scene_pe.evaluation.io import read_gt_file
from scene_pe.util.errors import SceneError

# ---------------------------------------------------------------- hand-made scenes
TSV_ROWS = [  # raw_category, nyu40id ("" = row without an id)
    ("wall", "1"), ("chair", "5"), ("office chair", "5"), ("table", "7"), ("box", "29"),
    ("nolabel thing", ""),
]
NX, NY = 10, 8  # planar grid of NX*NY vertices in z = 0
# objectId -> (label, [segment ids]); written to the json in shuffled order
OBJECTS = {
    0: ("wall", [0]),
    3: ("chair", [101, 102]),
    1: ("office chair", [203]),
    2: ("unknown thing", [304]),  # not in the tsv -> ignore + warning
    4: ("box", [405]),  # NYU40 29: not a benchmark class
    5: ("table", [102, 506]),  # shares segment 102 with objectId 3: the later object wins
}
NAME_TO_NYU = {"wall": 1, "chair": 5, "office chair": 5, "table": 7, "box": 29}
# Rotation by 90 degrees about x, plus a translation.
ALIGN = np.array([[1, 0, 0, 1.5], [0, 0, -1, -2.0], [0, 1, 0, 0.25], [0, 0, 0, 1]], dtype=np.float64)


def grid_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyz (N,3), rgba (N,4), faces (F,3)) of a planar NX x NY grid, normals +z."""
    ix, iy = np.meshgrid(np.arange(NX), np.arange(NY), indexing="ij")
    xyz = np.stack([ix.ravel() * 0.1, iy.ravel() * 0.1, np.zeros(ix.size)], 1).astype(np.float32)
    rgba = np.stack([ix.ravel() * 20, iy.ravel() * 30, np.full(ix.size, 7), np.full(ix.size, 255)],
                    1).astype(np.uint8)
    v = np.arange(NX * NY).reshape(NX, NY)
    a, b, c, d = v[:-1, :-1].ravel(), v[1:, :-1].ravel(), v[1:, 1:].ravel(), v[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int32)
    return xyz, rgba, faces


def grid_segments() -> np.ndarray:
    """Segment id per vertex: 7 segments (0, 101, 102, 203, 304, 405, 506) + unannotated 999."""
    ix = np.repeat(np.arange(NX), NY)
    table = np.array([0, 101, 102, 203, 304, 405, 506, 999, 999, 999])
    return table[ix]


def write_ply(path: Path, xyz, rgba, faces, label=None) -> None:
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
              ("blue", "u1"), ("alpha", "u1")] + ([("label", "u2")] if label is not None else [])
    vert = np.zeros(len(xyz), dtype=fields)
    for i, k in enumerate("xyz"):
        vert[k] = xyz[:, i]
    for i, k in enumerate(("red", "green", "blue", "alpha")):
        vert[k] = rgba[:, i]
    if label is not None:
        vert["label"] = label
    face = np.zeros(len(faces), dtype=[("vertex_indices", "i4", (3,))])
    face["vertex_indices"] = faces
    elements = [PlyElement.describe(vert, "vertex"),
                PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"})]
    PlyData(elements).write(str(path))


def write_tsv(path: Path) -> Path:
    lines = ["id\traw_category\tcategory\tcount\tnyu40id\tnyu40class"]
    lines += [f"{i}\t{raw}\t{raw}\t1\t{nyu}\tx" for i, (raw, nyu) in enumerate(TSV_ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_labels() -> dict[str, np.ndarray]:
    """Reference labels computed vertex by vertex (fine in a test: 80 vertices)."""
    seg = grid_segments()
    n = seg.size
    owner = np.full(n, -1)
    for oid in sorted(OBJECTS):
        for s in OBJECTS[oid][1]:
            owner[seg == s] = oid
    nyu = np.array([NAME_TO_NYU.get(OBJECTS[o][0], 0) if o >= 0 else 0 for o in owner])
    inst_objects = [o for o in sorted(OBJECTS) if NAME_TO_NYU.get(OBJECTS[o][0], 0) not in (0, 1, 2, 29)
                    and (owner == o).any()]
    instance = np.array([inst_objects.index(o) if o in inst_objects else -1 for o in owner])
    gt = np.where(nyu > 0, nyu * 1000 + owner + 1, 0)
    return {"nyu40": nyu, "semantic": SCANNET20.to_train(nyu), "instance": instance, "gt": gt}


def make_scene(root: Path, name: str = "scene0000_00", annotated: bool = True,
               axis: np.ndarray | None = ALIGN, sub: str = "scans") -> Path:
    """Write a hand-made scene folder; returns it."""
    d = root / sub / name
    d.mkdir(parents=True, exist_ok=True)
    xyz, rgba, faces = grid_mesh()
    write_ply(d / f"{name}_vh_clean_2.ply", xyz, rgba, faces)
    meta = "colorHeight = 968\n"
    if axis is not None:
        meta += "axisAlignment = " + " ".join(f"{v:g}" for v in axis.ravel()) + "\n"
    (d / f"{name}.txt").write_text(meta + "numColorFrames = 10\n")
    if annotated:
        seg = grid_segments()
        (d / f"{name}_vh_clean_2.0.010000.segs.json").write_text(
            json.dumps({"params": {}, "sceneId": name, "segIndices": seg.tolist()}))
        groups = [{"id": oid, "objectId": oid, "label": lab, "segments": segs}
                  for oid, (lab, segs) in OBJECTS.items()]
        (d / f"{name}.aggregation.json").write_text(json.dumps({"sceneId": name, "segGroups": groups}))
        write_ply(d / f"{name}_vh_clean_2.labels.ply", xyz, rgba, faces, label=expected_labels()["nyu40"])
    if not (root / LABEL_MAP_NAME).exists():
        write_tsv(root / LABEL_MAP_NAME)
    return d


def read(d: Path, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        raw = read_scene(d, load_label_map(d.parents[1] / LABEL_MAP_NAME), **kw)
    return raw, [str(x.message) for x in w]


# ---------------------------------------------------------------- tests
def test_load_label_map(tmp_path):
    m = load_label_map(write_tsv(tmp_path / "l.tsv"))
    assert m.ids("nyu40id") == {"wall": 1, "chair": 5, "office chair": 5, "table": 7, "box": 29}
    # the ScanNet200 column: every row has an id (the row without a NYU40 id too)
    assert m.ids("id") == {"wall": 0, "chair": 1, "office chair": 2, "table": 3, "box": 4, "nolabel thing": 5}
    (tmp_path / "bad.tsv").write_text("id\tname\n1\tx\n")
    with pytest.raises(ValueError, match="raw_category"):
        load_label_map(tmp_path / "bad.tsv")
    (tmp_path / "noid.tsv").write_text("raw_category\tnyu40id\nchair\t5\n")
    with pytest.raises(ValueError, match="needs columns id, nyu40id, raw_category"):
        load_label_map(tmp_path / "noid.tsv")
    (tmp_path / "text.tsv").write_text("id\traw_category\tnyu40id\n1\tchair\tfive\n")
    with pytest.raises(ValueError, match="line 2: column nyu40id is not an integer"):
        load_label_map(tmp_path / "text.tsv")


def test_read_annotated_scene(tmp_path):
    d = make_scene(tmp_path)
    raw, warns = read(d)
    exp = expected_labels()
    xyz, rgba, faces = grid_mesh()
    assert raw.has_labels and raw.aligned and raw.num_vertices == NX * NY
    np.testing.assert_allclose(raw.coords, xyz @ ALIGN[:3, :3].T + ALIGN[:3, 3], atol=1e-6)
    np.testing.assert_array_equal(raw.colors, rgba[:, :3])
    np.testing.assert_array_equal(raw.faces, faces)
    np.testing.assert_array_equal(raw.segment, grid_segments())
    np.testing.assert_array_equal(raw.nyu40, exp["nyu40"])
    np.testing.assert_array_equal(raw.semantic, exp["semantic"])
    np.testing.assert_array_equal(raw.instance, exp["instance"])
    # 3 instances: office chair (id 1), chair (id 3, keeps segment 101), table (id 5)
    assert raw.instance.max() == 2 and set(np.unique(raw.instance)) == {-1, 0, 1, 2}
    np.testing.assert_array_equal(gt_ids(raw), exp["gt"])
    assert raw.label_disagreement == 0.0
    assert raw.semantic.dtype == np.int16 and raw.instance.dtype == np.int32
    # unknown raw category: a warning naming the scene, the file and the category
    assert any("scene0000_00" in w and "aggregation.json" in w and "unknown thing" in w for w in warns)
    assert (raw.semantic[raw.instance >= 0] != IGNORE_LABEL).all()


def test_normals_follow_alignment(tmp_path):
    raw, _ = read(make_scene(tmp_path))
    # grid faces are counter-clockwise seen from +z; the alignment rotates +z to -y
    np.testing.assert_allclose(raw.normals, np.tile(ALIGN[:3, :3] @ [0, 0, 1], (NX * NY, 1)), atol=1e-6)
    raw, _ = read(make_scene(tmp_path / "b"), align=False)
    np.testing.assert_allclose(raw.normals, np.tile([0, 0, 1.0], (NX * NY, 1)), atol=1e-6)
    np.testing.assert_allclose(raw.coords, grid_mesh()[0])
    assert not raw.aligned


def test_isolated_vertex_normal(tmp_path):
    d = make_scene(tmp_path, annotated=False)
    xyz, rgba, faces = grid_mesh()
    keep = faces[(faces != 0).all(axis=1)]  # vertex 0 is in no face
    write_ply(d / "scene0000_00_vh_clean_2.ply", xyz, rgba, keep)
    raw, _ = read(d, align=False)
    np.testing.assert_allclose(raw.normals[0], [0, 0, 1])
    np.testing.assert_allclose(np.linalg.norm(raw.normals, axis=1), 1, atol=1e-6)


def test_missing_axis_alignment_is_identity_with_warning(tmp_path):
    raw, warns = read(make_scene(tmp_path, axis=None))
    np.testing.assert_array_equal(raw.axis_alignment, np.eye(4))
    np.testing.assert_allclose(raw.coords, grid_mesh()[0])
    assert any("scene0000_00" in w and "axisAlignment" in w for w in warns)


def test_test_scene_has_no_labels(tmp_path):
    raw, _ = read(make_scene(tmp_path, annotated=False, sub="scans_test"))
    assert not raw.has_labels
    assert (raw.semantic == IGNORE_LABEL).all() and (raw.instance == -1).all()
    assert (gt_ids(raw) == 0).all()
    assert (raw.segment >= 0).all()  # no segs.json: superpoints from the built-in segmentator


def test_labels_ply_cross_check_and_source(tmp_path):
    d = make_scene(tmp_path)
    xyz, rgba, faces = grid_mesh()
    ply_labels = expected_labels()["nyu40"].copy()
    ply_labels[:4] = 50  # an invalid id, as in scene0270_00 (ScanNet issue #20)
    write_ply(d / "scene0000_00_vh_clean_2.labels.ply", xyz, rgba, faces, label=ply_labels)
    raw, warns = read(d)
    assert raw.label_disagreement == pytest.approx(4 / (NX * NY))
    assert any("labels.ply" in w and "differ" in w for w in warns)
    np.testing.assert_array_equal(raw.nyu40, expected_labels()["nyu40"])  # default: aggregation
    raw, _ = read(d, semantic_source="labels_ply")
    assert (raw.semantic[:4] == IGNORE_LABEL).all()
    np.testing.assert_array_equal(raw.semantic[4:], expected_labels()["semantic"][4:])


def test_gt_txt_round_trip(tmp_path):
    raw, _ = read(make_scene(tmp_path))
    path = tmp_path / "gt" / "scene0000_00.txt"
    write_gt_txt(path, gt_ids(raw))
    lines = path.read_text().splitlines()
    assert len(lines) == NX * NY and all(s.lstrip("-").isdigit() for s in lines)
    np.testing.assert_array_equal(read_gt_file(path), expected_labels()["gt"])
    # wall 1001, office chair 5002, chair 5004 (segment 101 only), box 29005, table 7006
    assert set(lines) == {"0", "1001", "5002", "5004", "29005", "7006"}
    assert [p.name for p in path.parent.iterdir()] == ["scene0000_00.txt"]  # no temp file left


# ---------------------------------------------------------------- bad inputs
def _bad(kind: str, d: Path) -> tuple[str, str]:
    """Break scene folder ``d`` in one way; returns (file named in the error, message regex)."""
    n = d.name
    mesh, labels = d / f"{n}_vh_clean_2.ply", d / f"{n}_vh_clean_2.labels.ply"
    segs, agg = d / f"{n}_vh_clean_2.0.010000.segs.json", d / f"{n}.aggregation.json"
    xyz, rgba, faces = grid_mesh()
    if kind == "labels_count":
        keep = faces[(faces < 70).all(1)]
        write_ply(labels, xyz[:70], rgba[:70], keep, label=np.zeros(70, int))
        return labels.name, "vertices but the mesh has 80"
    if kind == "segs_count":
        segs.write_text(json.dumps({"segIndices": grid_segments()[:-3].tolist()}))
        return segs.name, "77 segIndices"
    if kind == "unknown_segment":
        groups = json.loads(agg.read_text())
        groups["segGroups"][0]["segments"].append(123456)
        agg.write_text(json.dumps(groups))
        return agg.name, "segments not in the segs file"
    if kind in ("nan", "inf"):
        xyz[5, 1] = np.nan if kind == "nan" else np.inf
        write_ply(mesh, xyz, rgba, faces)
        return mesh.name, "NaN/inf"
    if kind == "empty":
        write_ply(mesh, xyz[:0], rgba[:0], faces[:0])
        return mesh.name, "0 vertices"
    if kind == "truncated":
        data = mesh.read_bytes()
        mesh.write_bytes(data[: len(data) // 2])
        return mesh.name, "cannot read mesh ply"
    if kind == "truncated_vertices":
        data = mesh.read_bytes()
        mesh.write_bytes(data[: data.index(b"end_header") + 300])
        return mesh.name, "cannot read mesh ply"
    if kind == "garbage":
        mesh.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex x\n\x00\x01")
        return mesh.name, "cannot read mesh ply"
    if kind == "not_ply":
        mesh.write_bytes(bytes(range(256)) * 4)
        return mesh.name, "cannot read mesh ply"
    if kind == "missing_mesh":
        mesh.unlink()
        return mesh.name, "missing"
    if kind == "bad_face":
        faces[3, 1] = 999
        write_ply(mesh, xyz, rgba, faces)
        return mesh.name, "face indices"
    if kind == "corrupt_json":
        agg.write_text('{"segGroups": [{"objectId": 0, "label": ')
        return agg.name, "JSONDecodeError"
    if kind == "missing_segs":
        segs.unlink()
        return segs.name, "missing"
    if kind == "bad_axis":
        (d / f"{n}.txt").write_text("axisAlignment = 1 0 0\n")
        return f"{n}.txt", "16 finite numbers"
    raise AssertionError(kind)


BAD_KINDS = ["labels_count", "segs_count", "unknown_segment", "nan", "inf", "empty", "truncated",
             "truncated_vertices", "garbage", "not_ply", "missing_mesh", "bad_face", "corrupt_json",
             "missing_segs", "bad_axis"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_names_scene_and_file(tmp_path, kind):
    d = make_scene(tmp_path, name="scene0042_01")
    fname, pattern = _bad(kind, d)
    with pytest.raises(SceneError, match=pattern) as e:
        read(d)
    assert e.value.scene == "scene0042_01"
    assert Path(e.value.path).name == fname
    assert "scene0042_01" in str(e.value) and fname in str(e.value)


def test_annotated_scene_needs_label_map(tmp_path):
    d = make_scene(tmp_path)
    with pytest.raises(SceneError, match="label map"):
        read_scene(d, None)
    assert not read_scene(make_scene(tmp_path / "t", annotated=False), None).has_labels


def test_warning_class(tmp_path):
    d = make_scene(tmp_path, axis=None)
    with pytest.warns(SceneWarning, match="scene0000_00"):
        read_scene(d, load_label_map(tmp_path / LABEL_MAP_NAME))

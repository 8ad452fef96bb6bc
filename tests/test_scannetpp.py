"""ScanNet++ end to end: metadata, reader, preprocessing, GT round trip, export, validation, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scene_pe.config import DataConfig, load_config, with_recorded_classes
from scene_pe.data.dataset import load_scene
from scene_pe.data.preprocess import run_preprocess
from scene_pe.data.scannetpp import SPLIT_FILES, read_plus_scene, vertex_labels
from scene_pe.evaluation.io import parse_int_lines, read_gt_file
from scene_pe.evaluation.rle import rle_encode, rle_indices
from scene_pe.evaluation.scannetpp import PlusGt, evaluate_plus_instance, evaluate_plus_semantic
from scene_pe.export.submission import write_instance_submission, write_semantic_submission, zip_submission
from scene_pe.export.validate import validate_submission, vertex_counts_from_gt, vertex_counts_from_scannet
from scene_pe.labels.folder import claim_label_set, label_set_of_gt, stored_label_set
from scene_pe.labels.label_set import IGNORE_LABEL, SCANNET20, SCANNET200, get_label_set
from scene_pe.labels.scannetpp import read_benchmark_metadata, read_mapping
from scene_pe.synthetic import scannetpp_release as release
from scene_pe.synthetic.scenes import generate_dataset
from scene_pe.util.errors import SceneError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def raw_pp(tmp_path_factory) -> tuple[Path, dict]:
    """3 annotated rooms and a test room in ScanNet++'s release layout, and the split lists."""
    raw = tmp_path_factory.mktemp("rawpp") / "scannetpp"
    return raw, generate_dataset(raw, 2, 1, 1, seed=5, num_vertices=(30000, 36000), profile="scannetpp")


@pytest.fixture(scope="module")
def pre_pp(raw_pp, tmp_path_factory) -> Path:
    """The rooms preprocessed with the classes of their metadata folder."""
    classes = read_benchmark_metadata(raw_pp[0])
    out = tmp_path_factory.mktemp("prepp")
    summary = run_preprocess(raw_pp[0], out, raw_pp[1], None, progress=False, label_set=classes.label_set(), classes=classes)
    assert summary.ok and len(summary.of("written")) == 4, summary.format()
    return out


def test_metadata_and_label_set_recorded(raw_pp, pre_pp):
    raw, _ = raw_pp
    for name in SPLIT_FILES.values():
        assert (raw / "splits" / name).is_file()
    ls = stored_label_set(pre_pp)
    assert ls.name == "scannetpp" and ls.names == release.CLASSES and ls.ids == tuple(range(len(release.CLASSES)))
    assert set(ls.instance_names) == set(release.CLASSES) - set(release.STUFF)
    assert ls.rle_masks and not SCANNET20.rle_masks and not SCANNET200.rle_masks
    with pytest.raises(ValueError, match="read from the ScanNet\\+\\+ release"):
        get_label_set("scannetpp")
    # configs take the recorded classes; a run copies them into its config (checkpoints carry them)
    cfg = load_config(ROOT / "configs/synthetic_scannetpp_probabilistic.yaml", [f"data.root={pre_pp}"])
    assert cfg.data.labels == ls and not cfg.data.classes
    copied = with_recorded_classes(cfg)
    assert copied.data.classes == list(ls.names) and copied.data.labels == ls
    with pytest.raises(ValueError, match="no classes in the config and none recorded"):
        DataConfig(root=str(raw), label_set="scannetpp").labels
    # one label set (and one class list) per folder
    with pytest.raises(ValueError, match="preprocessed with label set scannetpp"):
        claim_label_set(pre_pp, SCANNET20)
    other = read_benchmark_metadata(raw)
    other = type(other)(other.classes[:-1], other.instance_classes[:3], other.mapping)
    with pytest.raises(ValueError, match="other classes or mapping"):
        claim_label_set(pre_pp, other.label_set(), other)


def test_mapping_rules(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("class,count,semantic_map_to,instance_map_to\nbooks,5,book,book\nchair,9,,\n"
                    "stain,3,None,None\nnocount,,,\nchair,2,seat,\n")
    mapping = read_mapping(path)
    # empty: kept; None: dropped; renamed; no count: left out; a later renaming row overrides
    assert mapping == {"books": "book", "chair": "seat"}
    path.write_text("class,semantic_map_to\nx,y\n")
    with pytest.raises(ValueError, match="needs columns"):
        read_mapping(path)


def test_multilabel_vertices_follow_the_toolkit():
    # 5 segments; groups overlap: a vertex keeps the label of the smallest group it took (<= 3 groups)
    segment = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 4])
    groups = [np.array([0, 1, 2, 3]), np.array([1]), np.array([1, 4]), np.array([1, 3]), np.array([3])]
    cls = np.array([0, 1, 2, 3, 4])
    inst = np.array([False, True, True, True, False])
    labels, group = vertex_labels(segment, groups, cls, inst)
    # segment 1: groups 0 (8 vertices), 1 (3), 2 (5); group 3 is its 4th: dropped there -> group 1
    # segment 3: groups 0, 3 (segments 1 dropped, 3: 2 vertices), 4 (2): tie -> the first (3)
    assert labels.tolist() == [0, 0, 1, 1, 1, 0, 3, 3, 2, 2]
    assert group.tolist() == [-1, -1, 1, 1, 1, -1, 3, 3, 2, 2]


def test_reader_gt_encoding(raw_pp):
    raw, splits = raw_pp
    classes = read_benchmark_metadata(raw)
    scene = read_plus_scene(raw / "data" / splits["train"][0], classes)
    anno = json.loads((raw / "data" / splits["train"][0] / "scans" / "segments_anno.json").read_text())
    assert anno["segGroups"][0]["label"] == "wall"  # the generator puts a stuff group first
    gt, sem = scene.gt_instance, scene.gt_semantic
    inst = gt > 0
    np.testing.assert_array_equal(gt[inst] // 1000, sem[inst])
    assert set(np.unique(gt[inst] % 1000)) <= set(range(1, len(anno["segGroups"])))
    labels = [g["label"] for g in anno["segGroups"]]
    for value in np.unique(gt[inst]):  # every GT instance is its segGroup's mapped class
        raw_label = labels[value % 1000]
        assert classes.classes[value // 1000] == classes.mapping[raw_label]
    assert (sem[scene.raw.semantic == IGNORE_LABEL] == IGNORE_LABEL).all()
    assert scene.eval_mask.size > 0 and scene.raw.has_labels


def _gt_submission(pre: Path, scenes: list[str], out: Path, ls) -> dict[str, int]:
    """Each scene's preprocessed training labels exported as instance and semantic submissions."""
    counts = {}
    for s in scenes:
        z = load_scene(pre, s, "scannetpp")
        inst, sem = z["instance"], z["semantic"]
        labels = np.array([sem[inst == k][0] for k in range(inst.max() + 1)], dtype=np.int64)
        write_instance_submission(out / "instance", s, inst, labels, np.ones(len(labels)), label_set=ls)
        write_semantic_submission(out / "semantic", s, np.where(sem >= 0, sem, 0), ls)
        counts[s] = len(inst)
    return counts


def test_round_trip_ap_and_miou_one(raw_pp, pre_pp, tmp_path):
    _, splits = raw_pp
    ls = stored_label_set(pre_pp)
    scenes = splits["train"] + splits["val"]
    counts = _gt_submission(pre_pp, scenes, tmp_path, ls)
    assert (tmp_path / "instance" / "predicted_masks" / f"{scenes[0]}_000.json").is_file()
    gt = PlusGt.of_preprocessed(pre_pp / "gt")
    inst, missing = evaluate_plus_instance(tmp_path / "instance", gt, ls, workers=1)
    assert not missing and inst.num_scenes == 3
    assert inst.mean_ap == 1.0 and inst.mean_ap50 == 1.0 and inst.mean_ap25 == 1.0
    assert (inst.num_gt > 0).sum() >= 5  # several classes scored
    sem, _ = evaluate_plus_semantic(tmp_path / "semantic", gt, ls, workers=1)
    assert sem[1].miou == 1.0 and sem[3].miou == 1.0
    # a wrong class on one instance lowers AP: the check can fail
    first = (tmp_path / "instance" / f"{scenes[0]}.txt").read_text().splitlines()
    path, label, conf = first[0].split()
    wrong = next(i for i in ls.instance_ids if i != int(label))
    (tmp_path / "instance" / f"{scenes[0]}.txt").write_text("\n".join([f"{path} {wrong} {conf}", *first[1:]]) + "\n")
    assert evaluate_plus_instance(tmp_path / "instance", gt, ls, workers=1)[0].mean_ap < 1.0
    assert set(counts.values()) == {c for s, c in vertex_counts_from_gt(pre_pp / "gt", scenes).items()}


def test_submission_validates_for_scannetpp_only(raw_pp, pre_pp, tmp_path):
    raw, splits = raw_pp
    ls = stored_label_set(pre_pp)
    scenes = splits["train"] + splits["val"]
    counts = _gt_submission(pre_pp, scenes, tmp_path, ls)
    assert vertex_counts_from_scannet(raw, scenes) == counts
    for task in ("instance", "semantic"):
        zip_submission(tmp_path / task, tmp_path / f"{task}.zip")
        assert validate_submission(tmp_path / f"{task}.zip", counts, task=task, label_set=ls) == []
    for other in (SCANNET20, SCANNET200):  # RLE JSON masks are not 0/1 lines
        problems = validate_submission(tmp_path / "instance.zip", counts, task="instance", label_set=other)
        assert any("is not 0 or 1" in p for p in problems)
    # and a ScanNet v2 submission is refused for scannetpp
    gt = read_gt_file(pre_pp / "gt" / f"{scenes[0]}.txt")
    write_instance_submission(tmp_path / "v2", scenes[0], np.ones((1, len(gt)), bool), [5], [0.5])
    problems = validate_submission(tmp_path / "v2", {scenes[0]: len(gt)}, task="instance", label_set=ls)
    assert any("run-length encoded" in p for p in problems)
    # ScanNet++'s label and confidence checks
    (tmp_path / "v2" / f"{scenes[0]}.txt").write_text(f"predicted_masks/{scenes[0]}_0.txt 999 1.5\n")
    problems = " ".join(validate_submission(tmp_path / "v2", {scenes[0]: len(gt)}, label_set=ls))
    assert "not a class index 0..25" in problems and "in [0, 1]" in problems


def test_tools_preprocess_and_evaluate(raw_pp, tmp_path, capsys):
    import subprocess
    import sys

    raw, splits = raw_pp
    out = tmp_path / "pre"
    r = subprocess.run([sys.executable, str(ROOT / "tools/preprocess.py"), "--dataset", "scannetpp",
                        "--scannet-root", str(raw), "--out", str(out), "--split", "val", "--workers", "1",
                        "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "gt_semantic" / f"{splits['val'][0]}.txt").is_file()
    assert label_set_of_gt(out / "gt", None).name == "scannetpp"
    _gt_submission(out, splits["val"], tmp_path / "sub", stored_label_set(out))
    r = subprocess.run([sys.executable, str(ROOT / "tools/evaluate.py"), "--pred", str(tmp_path / "sub/instance"),
                        "--gt", str(out / "gt"), "--workers", "1"], capture_output=True, text=True)
    assert r.returncode == 0 and "label set: scannetpp" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "tools/preprocess.py"), "--dataset", "scannetpp",
                        "--scannet-root", str(tmp_path), "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2 and "top100.txt: missing" in r.stderr


@pytest.mark.parametrize("damage, message", [
    ("segments_anno.json", "cannot read segGroups"),
    ("segments.json", "cannot read segIndices"),
    ("mesh_aligned_0.05.ply", "cannot read mesh ply"),
    ("mesh_aligned_0.05_mask.txt", "cannot read the vertex mask"),
])
def test_bad_scene_files_fail_alone(raw_pp, tmp_path, damage, message):
    raw, splits = raw_pp
    root = tmp_path / "release"
    scenes = splits["train"] + splits["val"]
    for s in scenes:  # a copy of the release with one scene damaged
        (root / "data" / s).mkdir(parents=True)
        for f in (raw / "data" / s / "scans").iterdir():
            (root / "data" / s / "scans").mkdir(exist_ok=True)
            (root / "data" / s / "scans" / f.name).write_bytes(f.read_bytes())
    bad = root / "data" / scenes[1] / "scans" / damage
    bad.write_bytes(bad.read_bytes()[:40] + b"\x00garbage")
    classes = read_benchmark_metadata(raw)
    with pytest.raises(SceneError, match=f"{scenes[1]}: .*{damage}: {message}"):
        read_plus_scene(root / "data" / scenes[1], classes)
    s = run_preprocess(root, tmp_path / "out", {"train": scenes}, None, progress=False,
                       label_set=classes.label_set(), classes=classes)
    assert [r.scene for r in s.of("failed")] == [scenes[1]] and len(s.of("written")) == 2
    assert scenes[1] in s.format() and damage in s.format()
    assert (tmp_path / "out" / "splits" / "train.txt").read_text().split() == [scenes[0], scenes[2]]


def test_missing_scene_and_segments(raw_pp, tmp_path):
    raw, splits = raw_pp
    classes = read_benchmark_metadata(raw)
    s = run_preprocess(raw, tmp_path / "out", {"val": ["nosuchscene"]}, None, progress=False,
                       label_set=classes.label_set(), classes=classes)
    assert "nosuchscene" in s.format() and "not found under data/" in s.format()
    d = tmp_path / "scene_a"
    (d / "scans").mkdir(parents=True)
    for name in ("mesh_aligned_0.05.ply", "segments_anno.json"):
        (d / "scans" / name).write_bytes((raw / "data" / splits["train"][0] / "scans" / name).read_bytes())
    with pytest.raises(SceneError, match="scene_a: .*segments.json: segments file is missing"):
        read_plus_scene(d, classes)


def test_rle_round_trip_and_errors():
    rng = np.random.default_rng(0)
    for n in (1, 7, 1000):
        m = rng.random(n) < 0.3
        rle = rle_encode(m)
        idx, length = rle_indices(json.dumps(rle).encode(), "s", "p")
        assert length == n and idx.tolist() == np.flatnonzero(m).tolist()
    assert rle_encode(np.array([0, 1, 1, 0, 1]))["counts"] == "2 2 5 1"  # 1-based starts, lengths
    for bad, msg in ((b'{"length": 5, "counts": "2 2 3 1"}', "non-overlapping"),
                     (b'{"length": 5, "counts": "5 2"}', "inside 1..5"), (b"0\n1\n", "not a run-length"),
                     (b'{"length": 5, "counts": "2"}', "pairs")):
        with pytest.raises(SceneError, match=msg):
            rle_indices(bad, "s", "p")


def test_semantic_gt_written_with_ignore(pre_pp, raw_pp):
    _, splits = raw_pp
    s = splits["val"][0]
    sem = parse_int_lines((pre_pp / "gt_semantic" / f"{s}.txt").read_bytes(), s, "p")
    z = load_scene(pre_pp, s, "scannetpp")
    np.testing.assert_array_equal(sem, z["semantic"])
    assert (sem == IGNORE_LABEL).any() and sem.max() < len(release.CLASSES)

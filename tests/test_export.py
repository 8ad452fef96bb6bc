"""Submission export, zip, validator, and the evaluate/validate command lines."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from scene_pe.labels.label_set import SCANNET20
from scene_pe.evaluation.instance import evaluate_instances
from scene_pe.evaluation.io import evaluate_instance_submission, evaluate_semantic_submission
from scene_pe.export.submission import (mask_bytes, write_instance_submission,
                                        write_semantic_submission, zip_submission)
from scene_pe.export.validate import (validate_submission, vertex_counts_from_gt,
                                      vertex_counts_from_scannet)
from scene_pe.util.io import int_lines_bytes

ROOT = Path(__file__).resolve().parents[1]
SCENES = ("scene0000_00", "scene0001_00")
N = 900


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_gt(seed: int) -> np.ndarray:
    """Objects (chairs, a table, a cabinet, one small) on wall / unannotated, shuffled by seed."""
    blocks = [(0, 100), (5, 200), (7, 150), (3, 120), (5, 60), (1, 170), (40, 100)]
    order = np.random.default_rng(seed).permutation(len(blocks))
    gt = np.concatenate([np.full(blocks[j][1], blocks[j][0] * 1000 + j + 1 if blocks[j][0] else 0)
                         for j in order])
    assert len(gt) == N
    return gt.astype(np.int64)


def gt_instances(gt):
    """Per-vertex instance index, NYU40 label per instance (the 18 classes only)."""
    vals = np.unique(gt[np.isin(gt // 1000, [3, 5, 7])])
    ids = np.full(len(gt), -1)
    for k, v in enumerate(vals):
        ids[gt == v] = k
    return ids, vals // 1000


@pytest.fixture
def gt_dir(tmp_path):
    d = tmp_path / "gt"
    d.mkdir()
    for i, s in enumerate(SCENES):
        (d / f"{s}.txt").write_bytes(int_lines_bytes(make_gt(i)))
    return d


@pytest.fixture
def submission(tmp_path, gt_dir):
    """A valid instance submission of the GT objects (confidence 1 - 0.1 k)."""
    out = tmp_path / "sub"
    for i, s in enumerate(SCENES):
        ids, labels = gt_instances(make_gt(i))
        write_instance_submission(out, s, ids, labels, 1 - 0.1 * np.arange(len(labels)))
    return out


def test_text_encoders_match_python_formatting():
    v = np.r_[0, 9, 10, 99, 100, 40000, np.random.default_rng(0).integers(0, 10**6, 500)]
    assert int_lines_bytes(v) == "".join(f"{x}\n" for x in v).encode()
    m = np.random.default_rng(1).random(1000) < 0.3
    assert mask_bytes(m) == "".join(f"{int(x)}\n" for x in m).encode()


def test_round_trip_gives_ap_one_and_passes_validation(submission, gt_dir, tmp_path):
    counts = vertex_counts_from_gt(gt_dir)
    assert counts == {s: N for s in SCENES}
    assert validate_submission(submission, counts) == []
    zip_path = tmp_path / "sub.zip"
    assert zip_submission(submission, zip_path) == len(list(submission.rglob("*.txt")))
    names = zipfile.ZipFile(zip_path).namelist()
    assert {f"{s}.txt" for s in SCENES} <= set(names)  # no root folder
    assert all("/" not in n or n.startswith("predicted_masks/") for n in names)
    assert validate_submission(zip_path, counts) == []
    for src in (submission, zip_path):
        r, missing = evaluate_instance_submission(src, gt_dir)
        has_gt = r.num_gt > 0
        assert missing == [] and has_gt.sum() == 3
        np.testing.assert_array_equal(r.ap[has_gt], 1.0)
        assert r.mean_ap == r.mean_ap50 == r.mean_ap25 == 1.0
    # The files give the same numbers as the in-memory evaluation.
    preds = {s: gt_instances(make_gt(i)) for i, s in enumerate(SCENES)}
    mem = evaluate_instances({s: (ids, lab, 1 - 0.1 * np.arange(len(lab)))
                              for s, (ids, lab) in preds.items()},
                             {s: make_gt(i) for i, s in enumerate(SCENES)})
    np.testing.assert_array_equal(mem.ap_per_threshold, r.ap_per_threshold)


def test_selection_order_and_stale_masks(tmp_path):
    masks = np.zeros((4, 10), bool)
    masks[0, :2], masks[1, 2:5], masks[2, 5:8], masks[3, 8:] = True, True, True, True
    out = tmp_path / "o"
    n = write_instance_submission(out, "scene0005_00", masks, [5, 7, 3, 5], [0.1, 0.9, 0.5, 0.7],
                                  score_threshold=0.3, max_instances=2)
    assert n == 2
    assert (out / "scene0005_00.txt").read_text() == (
        "predicted_masks/scene0005_00_0.txt 7 0.9\npredicted_masks/scene0005_00_1.txt 5 0.7\n")
    assert (out / "predicted_masks/scene0005_00_1.txt").read_text() == "0\n" * 8 + "1\n" * 2
    write_instance_submission(out, "scene0005_00", masks[:1], [5], [0.25])
    assert sorted(p.name for p in (out / "predicted_masks").iterdir()) == ["scene0005_00_0.txt"]
    assert not list(out.rglob(".*"))  # no temporary left behind
    with pytest.raises(ValueError, match=r"labels \[1\] are not instance-class"):
        write_instance_submission(out, "scene0005_00", masks[:1], [1], [0.5])


def test_semantic_round_trip(tmp_path, gt_dir):
    out = tmp_path / "sem"
    for i, s in enumerate(SCENES):
        gt = make_gt(i) // 1000
        write_semantic_submission(out, s, np.where(np.isin(gt, [1, 3, 5, 7]), gt, 39))
    r, _ = evaluate_semantic_submission(out, gt_dir)
    assert r.miou == 1.0
    assert validate_submission(out, vertex_counts_from_gt(gt_dir), task="semantic") == []
    (out / f"{SCENES[0]}.txt").write_text("1\n" * (N - 1) + "13\n")
    probs = validate_submission(out, vertex_counts_from_gt(gt_dir), task="semantic")
    assert len(probs) == 1 and f"line {N}: b'13' is not one of the 20" in probs[0]
    with pytest.raises(ValueError, match=r"labels \[13\] are not class ids of scannet20"):
        write_semantic_submission(out, SCENES[0], [13])


def _scene_file(sub):
    return sub / f"{SCENES[0]}.txt"


def _edit_line(sub, fn):
    p = _scene_file(sub)
    lines = p.read_text().split("\n")
    lines[0] = fn(lines[0])
    p.write_text("\n".join(lines))


def _mask(sub):
    return sub / "predicted_masks" / f"{SCENES[0]}_0.txt"


CORRUPTIONS = {
    "missing scene": (lambda s: (s / f"{SCENES[1]}.txt").unlink(), "missing (expected scene"),
    "unexpected scene": (lambda s: (s / "scene0999_00.txt").write_text(""), "unexpected scene"),
    "double space": (lambda s: _edit_line(s, lambda l: l.replace(" ", "  ", 1)), "single spaces"),
    "trailing space": (lambda s: _edit_line(s, lambda l: l + " "), "line 1: trailing whitespace"),
    "empty line": (lambda s: _edit_line(s, lambda l: "\n" + l), "line 1: empty line"),
    "CR": (lambda s: _edit_line(s, lambda l: l + "\r"), "CR characters"),
    "fields": (lambda s: _edit_line(s, lambda l: l + " 3"), "expected 3 fields"),
    "label wall": (lambda s: _edit_line(s, lambda l: l.replace(" 5 ", " 1 ").replace(" 3 ", " 1 ")
                                        .replace(" 7 ", " 1 ")), "label '1' is not one of"),
    "label float": (lambda s: _edit_line(s, lambda l: l.replace(" 5 ", " 5.0 ")
                                         .replace(" 3 ", " 3.0 ").replace(" 7 ", " 7.0 ")),
                    "is not one of the 18"),
    "label huge": (lambda s: _edit_line(s, lambda l: l.replace(" 5 ", " 99999999999999999999999 ")
                                        .replace(" 3 ", " 99999999999999999999999 ")
                                        .replace(" 7 ", " 99999999999999999999999 ")),
                   "label '99999999999999999999999' is not one of the 18"),
    "confidence": (lambda s: _edit_line(s, lambda l: l.rsplit(" ", 1)[0] + " high"),
                   "confidence 'high' is not a finite float"),
    "nan": (lambda s: _edit_line(s, lambda l: l.rsplit(" ", 1)[0] + " nan"), "not a finite float"),
    "absolute": (lambda s: _edit_line(s, lambda l: "/tmp/x.txt " + l.split(" ", 1)[1]),
                 "must be relative"),
    "outside": (lambda s: _edit_line(s, lambda l: "../x.txt " + l.split(" ", 1)[1]),
                "must be relative and inside"),
    "mask missing": (lambda s: _mask(s).unlink(), "not found"),
    "mask short": (lambda s: _mask(s).write_text("0\n" * (N - 1)), f"{N - 1} lines, expected {N}"),
    "mask value": (lambda s: _mask(s).write_text("0\n" * 7 + "2\n" + "1\n" * (N - 8)),
                   "line 8: b'2' is not 0 or 1 (1 such lines)"),
    "mask empty": (lambda s: _mask(s).write_text(""), "empty file"),
    "duplicate": (lambda s: _scene_file(s).write_text(_scene_file(s).read_text().split("\n")[0]
                                                      + "\n" + _scene_file(s).read_text()),
                  "already named by"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_validator_names_each_problem(submission, gt_dir, kind):
    corrupt, message = CORRUPTIONS[kind]
    corrupt(submission)
    problems = validate_submission(submission, vertex_counts_from_gt(gt_dir), SCENES)
    assert len(problems) == 1, problems
    assert message in problems[0]
    assert "scene0" in problems[0]  # names the file


def test_validator_collects_all_and_zip_root_folder(submission, gt_dir, tmp_path):
    for kind in ("missing scene", "trailing space", "mask value"):
        CORRUPTIONS[kind][0](submission)
    counts = vertex_counts_from_gt(gt_dir)
    assert len(validate_submission(submission, counts)) == 3
    zip_path = tmp_path / "rooted.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in submission.rglob("*.txt"):
            zf.write(p, "sub/" + p.relative_to(submission).as_posix())
    problems = validate_submission(zip_path, counts)
    assert any("inside sub/" in p for p in problems)
    assert validate_submission(tmp_path / "nothing.zip", counts)[0].endswith("no such submission")
    problems = validate_submission(submission, {SCENES[1]: N}, SCENES)
    assert sum(f"vertex count of {SCENES[0]} unknown" in p for p in problems) == 1


def test_vertex_counts_from_ply(tmp_path):
    for sub, scene, n in (("scans_test", "scene0707_00", 7), ("scans", "scene0000_00", 5)):
        d = tmp_path / sub / scene
        d.mkdir(parents=True)
        v = np.zeros(n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
        f = np.zeros(2, dtype=[("vertex_indices", "i4", (3,))])
        PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")]).write(
            str(d / f"{scene}_vh_clean_2.ply"))
    assert vertex_counts_from_scannet(tmp_path, ["scene0707_00", "scene0000_00", "scene0001_00"]) \
        == {"scene0707_00": 7, "scene0000_00": 5}


def test_command_lines(submission, gt_dir, tmp_path, capsys):
    validate = load_tool("validate_submission")
    assert validate.main([str(submission), "--vertex-counts", str(gt_dir)]) == 0
    split = tmp_path / "split.txt"
    split.write_text(f"{SCENES[0]}\n{SCENES[1]}\nscene0002_00\n")
    assert validate.main([str(submission), "--vertex-counts", str(gt_dir),
                          "--split-file", str(split)]) == 1
    assert "scene0002_00.txt: missing" in capsys.readouterr().out
    evaluate = load_tool("evaluate")
    out_json = tmp_path / "ap.json"
    assert evaluate.main(["--pred", str(submission), "--gt", str(gt_dir),
                          "--json", str(out_json)]) == 0
    res = json.loads(out_json.read_text())
    assert res["mean"] == {"ap": 1.0, "ap50": 1.0, "ap25": 1.0} and res["num_scenes"] == 2
    assert "average" in capsys.readouterr().out
    _mask(submission).write_text("1\n")
    assert evaluate.main(["--pred", str(submission), "--gt", str(gt_dir)]) == 1
    assert f"{SCENES[0]}_0.txt: 1 lines, but the scene has {N}" in capsys.readouterr().err
    assert SCANNET20.instance_index(5) == 2  # chair: the class index order of labels.py

"""The HTML viewer without a browser: error kinds, GT matches, the page's data, budgets, self-containment.

The pages are read back in Python (JSON, base64 arrays); tests/test_viewer_browser.py opens them in
Chromium.
"""

import base64
import json
import re

import numpy as np
import pytest

from scene_pe.labels.label_set import SCANNET20, SCANNET200
from scene_pe.inference.vertices import VertexPrediction
from scene_pe.evaluation.errors import (FALSE_POSITIVE, MERGED, MISSED, RIGHT, SPLIT, VOID, error_kinds,
                                        match_instances)
from scene_pe.evaluation.matching import gt_from_training_labels
from scene_pe.evaluation.uncertainty import wrong_assignments
from scene_pe.predict.outputs import instance_records
from scene_pe.synthetic.predictions import prediction_with_errors
from scene_pe.synthetic.scenes import generate_scene
from scene_pe.viewer import SceneView, ViewerBundleMissing, render_page, write_viewer
from scene_pe.viewer import build as viewer_build
from scene_pe.viz import instance_colors


@pytest.fixture(scope="module")
def made():
    """A generated room, its GT and a prediction with one error of each kind."""
    scene = generate_scene("scene0990_00", 3, num_vertices_target=20000)
    xyz = scene.aligned_vertices()
    semantic, instance = scene.training_labels()
    errors = prediction_with_errors(scene.scene_id, xyz, semantic, instance)
    return {"xyz": xyz, "rgb": scene.colors[:, :3], "semantic": semantic, "instance": instance,
            "gt": gt_from_training_labels(semantic, instance), "made": errors}


def view_of(made, **kw) -> SceneView:
    pred = made["made"].pred
    return SceneView("scene0990_00", made["xyz"], pred, SCANNET20, instance_records(pred, made["xyz"], SCANNET20),
                     colors=made["rgb"], gt=made["gt"], uncertainty_definition="membership", **kw)


def page_json(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="scene-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def decode(enc: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(enc["data"]), dtype="<" + enc["dtype"])


def test_error_kinds_are_the_made_errors(made):
    m, kind, inst = made["made"], error_kinds(made["gt"], made["made"].pred.instance), made["instance"]
    assert (kind[inst == m.missed] == MISSED).all()
    assert (kind[inst == m.merged] == MERGED).all()
    split = kind[inst == m.split]
    assert set(np.unique(split)) == {RIGHT, SPLIT}
    xs = made["xyz"][inst == m.split, 0]
    halves = [(xs > np.median(xs)).sum(), (xs <= np.median(xs)).sum()]
    assert (split == SPLIT).sum() == min(halves)  # the smaller half of the cut object is the split one
    assert (kind[m.false_positive] == FALSE_POSITIVE).all()
    changed = np.isin(inst, [m.missed, m.merged, m.split]) | m.false_positive
    assert set(np.unique(kind[~changed])) <= {RIGHT, VOID}
    population, wrong = wrong_assignments(made["gt"], made["made"].pred.instance)
    np.testing.assert_array_equal(np.isin(kind, [MISSED, FALSE_POSITIVE, MERGED]), wrong)  # the AUROC's errors
    np.testing.assert_array_equal(kind == VOID, ~population)


def test_error_kinds_by_hand():
    chair, table, wall = 5 * 1000, 7 * 1000, 1  # NYU40 chair 5, table 7, wall 1
    gt = np.array([chair + 1] * 4 + [chair + 2] * 3 + [table + 3] * 3 + [wall] * 2 + [0])
    pred = np.array([0, 0, 1, 1,    2, 2, -1,     2, 2, 2,     3, -1, 3])
    # chair 1 in two equal halves: the smaller prediction id is its main one; chair 2 mostly in
    # the table's prediction (merged), one vertex missed; wall in prediction 3 (false positive),
    # wall left out (right), the unannotated vertex not scored
    want = [RIGHT] * 2 + [SPLIT] * 2 + [MERGED] * 2 + [MISSED] + [RIGHT] * 3 + [FALSE_POSITIVE, RIGHT, VOID]
    np.testing.assert_array_equal(error_kinds(gt, pred), want)


def test_matches_are_best_same_class_iou():
    chair, table = 5 * 1000, 7 * 1000
    gt = np.array([chair + 1] * 4 + [chair + 2] * 4 + [table + 1] * 2)
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    m = match_instances(gt, pred, labels=[5, 5, 5], scores=[0.9, 0.8, 0.7])  # prediction 2: a chair on the table
    np.testing.assert_array_equal(m.gt_values, [chair + 1, chair + 2, table + 1])
    np.testing.assert_array_equal(m.pred_gt, [0, 1, -1])
    np.testing.assert_allclose(m.pred_iou, [3 / 4, 4 / 5, 0.0])
    np.testing.assert_array_equal(m.gt_pred, [0, 1, -1])
    np.testing.assert_allclose(m.gt_iou, [3 / 4, 4 / 5, 0.0])


def test_page_holds_every_layer_and_the_instances_of_the_json(made):
    view = view_of(made)
    text, data = render_page(view)
    assert page_json(text) == data
    n = len(made["xyz"])
    assert data["num_drawn"] == n and "all of them" in data["budget"]
    layers = {L["key"]: L for L in data["layers"]}
    assert list(layers) == ["input", "instances", "classes", "uncertainty", "gt", "errors"]
    q = decode(data["points"]["q"]).reshape(-1, 3).astype(np.float64)
    xyz = np.asarray(data["points"]["lo"]) + q * np.asarray(data["points"]["step"])
    assert np.all(np.diff(xyz[:, 2]) >= -1e-9)  # sorted by height (the height cut is a prefix)
    for a in range(3):  # the same points, to the quantisation step
        assert np.abs(np.sort(xyz[:, a]) - np.sort(made["xyz"][:, a])).max() <= data["points"]["step"][a]
    # the instance values are the prediction's ids + 1 of the same points: compare the counts per id
    pred = made["made"].pred
    np.testing.assert_array_equal(np.bincount(decode(layers["instances"]["values"])),
                                  np.bincount(pred.instance + 1))
    palette = np.asarray(layers["instances"]["palette"])
    np.testing.assert_array_equal(palette[1:], instance_colors(np.arange(len(pred.labels))))
    records = instance_records(pred, made["xyz"], SCANNET20)
    assert [(r["id"], r["class"], r["num_vertices"]) for r in data["instances"]] == \
        [(r["id"], r["class"], r["num_vertices"]) for r in records]
    errors = {e["label"]: e["count"] for e in layers["errors"]["legend"]}
    assert errors["missed"] == (made["instance"] == made["made"].missed).sum()
    # a GT instance matched one to one has its prediction's colour
    gt_palette = np.asarray(layers["gt"]["palette"])
    for r in data["instances"]:
        g = r["gt"]
        if g is not None and data["gt_instances"][g]["pred"] == r["id"]:
            np.testing.assert_array_equal(gt_palette[g + 1], palette[r["id"] + 1])


def test_page_is_self_contained(made, tmp_path):
    page = write_viewer(tmp_path / "room.html", view_of(made, title="a <b>title</b> & </script>"))
    text = (tmp_path / "room.html").read_text(encoding="utf-8")
    assert page.bytes == len(text.encode("utf-8"))
    assert not re.search(r"<(script|img|link|iframe)[^>]*\b(src|href)=", text, re.I)  # nothing loaded
    assert len(re.findall(r"<script", text)) == 3 and len(re.findall(r"</script", text, re.I)) == 3
    assert "<b>title" not in text and page_json(text)["title"] == "a <b>title</b> & </script>"
    assert "SCENE_PE_THREE" in text and "three.js authors" in text.lower()  # the bundle, its licence kept


def test_point_and_file_size_budgets(made, tmp_path):
    small = write_viewer(tmp_path / "a.html", view_of(made), max_points=5000)
    data = page_json((tmp_path / "a.html").read_text())
    assert small.num_drawn == data["num_drawn"] == 5000 and "point budget 5,000" in data["budget"]
    assert sum(r["num_vertices"] for r in data["instances"]) == (made["made"].pred.instance >= 0).sum()  # all
    fixed = write_viewer(tmp_path / "b.html", view_of(made), max_points=1).bytes
    limit = (fixed + 100_000) / 1e6  # 100 kB for the points: 14-22 bytes each (base64 of 10-16)
    sized = write_viewer(tmp_path / "c.html", view_of(made), max_mb=limit)
    assert 100_000 / 22 < sized.num_drawn < 100_000 / 14 and sized.bytes <= limit * 1e6
    assert "file-size budget" in page_json((tmp_path / "c.html").read_text())["budget"]


def test_colourless_scan_without_gt_has_the_prediction_layers_only(made):
    data = render_page(SceneView("x", made["xyz"], made["made"].pred, SCANNET20, []))[1]
    assert [L["key"] for L in data["layers"]] == ["instances", "classes", "uncertainty"]
    assert not data["has_gt"] and data["gt_instances"] == []


def test_classes_come_from_the_label_set():
    n = 400
    rng = np.random.default_rng(0)
    ids = np.asarray(SCANNET200.ids)[rng.integers(0, SCANNET200.num_classes, n)]
    pred = VertexPrediction("s", np.full(n, -1), np.zeros(0, np.int64), np.zeros(0), ids, rng.random(n))
    data = render_page(SceneView("s", rng.random((n, 3)), pred, SCANNET200, []))[1]
    classes = next(L for L in data["layers"] if L["key"] == "classes")
    assert classes["labels"] == ["other", *SCANNET200.names]
    assert {e["label"] for e in classes["legend"]} == {SCANNET200.class_name[i] for i in np.unique(ids)}


def test_a_missing_bundle_is_one_clear_error(made, tmp_path, monkeypatch):
    monkeypatch.setattr(viewer_build, "BUNDLE", tmp_path / "none.js")
    with pytest.raises(ViewerBundleMissing, match="python -m scene_pe.viewer.build"):
        render_page(view_of(made))

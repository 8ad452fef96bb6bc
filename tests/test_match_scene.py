"""evaluation.instance.match_scene: each malformed input is refused with its own error naming the
scene and what is wrong, and well-formed ones of every mask layout give the same matches."""

import re

import numpy as np
import pytest

from scene_pe.evaluation.matching import match_scene
from scene_pe.evaluation.masks import SparseMasks
from scene_pe.util.errors import SceneError

CHAIR, TABLE = 5, 7  # NYU40 instance classes
N = 300
SCENE = "scene0042_00"


def gt() -> np.ndarray:
    ids = np.zeros(N, np.int64)
    ids[:150] = CHAIR * 1000 + 1  # 150 vertices
    ids[150:260] = TABLE * 1000 + 2  # 110 vertices; 40 unannotated
    return ids


def dense_masks() -> np.ndarray:
    m = np.zeros((2, N), bool)
    m[0, :150] = True  # the chair exactly
    m[1, 140:260] = True  # the table and 10 chair vertices
    return m


LABELS, SCORES = np.array([CHAIR, TABLE]), np.array([0.9, 0.6])


def refuse(where: str, message: str, gt_ids, masks, labels=LABELS, scores=SCORES):
    with pytest.raises(SceneError, match="^" + re.escape(f"{SCENE}: {where}: {message}") + "$") as e:
        match_scene(gt_ids, masks, labels, scores, scene=SCENE)
    assert e.value.scene == SCENE and e.value.path == where
    return e.value


def test_scores_and_labels_must_pair_up():
    refuse("predictions", "2 labels but 3 scores", gt(), dense_masks(), scores=[0.9, 0.6, 0.1])
    refuse("predictions", "2 labels but 1 scores", gt(), dense_masks(), scores=[0.9])


def test_mask_shapes_must_fit_the_gt_and_the_labels():
    refuse("predictions", f"masks of shape (2, {N - 1}), expected (2, {N}) ({N} GT vertices, 2 instances)",
           gt(), dense_masks()[:, 1:])
    refuse("predictions", f"masks of shape (3, {N}), expected (2, {N}) ({N} GT vertices, 2 instances)",
           gt(), np.zeros((3, N), bool))
    refuse("predictions", f"masks of shape ({N + 1},), expected ({N},) ({N} GT vertices, 2 instances)",
           gt(), np.full(N + 1, -1))
    sparse = SparseMasks.of([np.arange(150)], N)  # one mask for two labels
    refuse("predictions", f"masks of shape (1, {N}), expected (2, {N}) ({N} GT vertices, 2 instances)",
           gt(), sparse)


def test_nan_confidence_and_negative_gt_are_refused():
    refuse("predictions", "NaN confidence", gt(), dense_masks(), scores=[0.9, float("nan")])
    bad = gt()
    bad[7] = -1
    refuse("ground truth", "negative GT value", bad, dense_masks())


def test_vertex_indices_outside_the_scene_are_refused():
    refuse("predictions", f"mask vertex index outside 0..{N - 1}", gt(),
           SparseMasks.of([np.arange(150), np.array([5, N])], N))
    refuse("predictions", f"mask vertex index outside 0..{N - 1}", gt(),
           SparseMasks.of([np.arange(150), np.array([-1, 5])], N))
    per_vertex = np.full(N, -1)
    per_vertex[:3] = 2  # instance index 2 with 2 labels
    refuse("predictions", "instance index 2 >= 2 labels", gt(), per_vertex)


def test_every_mask_layout_gives_the_same_matches():
    dense = dense_masks()
    per_vertex = np.full(N, -1)  # a vertex in one mask only: masks that do not overlap
    dense[1, 140:150] = False
    per_vertex[dense[0]], per_vertex[dense[1]] = 0, 1
    layouts = [dense, dense.astype(np.int64) * 7, SparseMasks.of([np.flatnonzero(d) for d in dense], N),
               per_vertex]
    results = [match_scene(gt(), m, LABELS, SCORES, scene=SCENE) for m in layouts]
    r = results[0]
    # closed form: the chair mask covers the chair (150), the table mask the table (110)
    assert r.gt_size.tolist() == [150, 110] and r.pred_size.tolist() == [150, 110]
    assert list(zip(r.pair_pred, r.pair_gt, r.pair_inter)) == [(0, 0, 150), (1, 1, 110)]
    assert r.pred_ignore.tolist() == [0, 0] and r.pred_score.tolist() == [0.9, 0.6]
    for other in results[1:]:
        for f in ("pred_class", "pred_score", "pred_size", "pred_ignore", "gt_class", "gt_size", "pair_pred",
                  "pair_gt", "pair_inter"):
            np.testing.assert_array_equal(getattr(other, f), getattr(r, f), err_msg=f)


def test_no_predictions_is_fine_in_any_empty_form():
    for empty in (np.zeros((0, N), bool), np.zeros(0), [], SparseMasks.of([], N)):
        r = match_scene(gt(), empty, [], [], scene=SCENE)
        assert len(r.pred_class) == 0 and r.gt_size.tolist() == [150, 110] and len(r.pair_pred) == 0

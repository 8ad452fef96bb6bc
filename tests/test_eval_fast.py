"""The evaluator's fast paths give exactly what the general ones give: sparse masks vs dense,
the 16-bit mask reader vs the integer parser, the counting unique vs np.unique, a process
pool vs one process (folder and zip), and the first bad scene still named."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scene_pe.evaluation.instance import evaluate_instances
from scene_pe.evaluation.masks import SparseMasks
from scene_pe.evaluation.matching import ScenePrediction, _unique
from scene_pe.evaluation.io import (SubmissionSource, evaluate_instance_submission,
                                    evaluate_semantic_submission, mask_indices,
                                    parse_int_lines)
from scene_pe.export.submission import write_instance_submission, write_semantic_submission
from scene_pe.util.errors import SceneError
from scene_pe.util.io import int_lines_bytes
from test_eval_instance import random_scene


def _result_arrays(r):
    return np.concatenate([r.ap_per_threshold.ravel(), r.ap25, r.num_gt, r.num_pred])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_sparse_masks_give_the_dense_result(seed):
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng) for _ in range(3)]
    gts = {f"s{i}": s[0] for i, s in enumerate(scenes)}
    dense = {f"s{i}": ScenePrediction(np.array(m, bool).reshape(len(m), len(g)), lab, sc)
             for i, (g, m, lab, sc) in enumerate(scenes)}
    sparse = {f"s{i}": ScenePrediction(SparseMasks.of([np.flatnonzero(x) for x in m], len(g)),
                                       lab, sc) for i, (g, m, lab, sc) in enumerate(scenes)}
    for s, p in sparse.items():
        np.testing.assert_array_equal(p.masks.dense(), dense[s].masks)
    a, b = evaluate_instances(dense, gts), evaluate_instances(sparse, gts)
    np.testing.assert_array_equal(_result_arrays(a), _result_arrays(b))  # NaN == NaN here


def test_sparse_mask_index_outside_the_scene_is_an_error():
    gt = np.full(300, 5001)
    bad = ScenePrediction(SparseMasks.of([np.array([0, 300])], 300), np.array([5]), np.array([1.0]))
    with pytest.raises(SceneError, match="outside 0..299"):
        evaluate_instances({"s": bad}, {"s": gt})


@pytest.mark.parametrize("values", [[0, 5, 40000, 12, 0], [3], [2**40, 7, 0], [0, 0, 0]])
def test_counting_unique_equals_np_unique(values):
    gt = np.array(values * 50, np.int64)
    for got, want in zip(_unique(gt), np.unique(gt, return_inverse=True, return_counts=True)):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


@pytest.mark.parametrize("text", [
    "0\n1\n0\n9\n", "0\n1\n1", "1\n", "2\n0\n3\n0\n", "10\n0\n1\n", "0\n-1\n1\n",
    "0\r\n1\r\n", " 1\n0\n", "0\n1\n0\n1\n" * 100,
])
def test_mask_reader_fast_path_equals_the_integer_parser(text):
    data = text.encode()
    inside, n = mask_indices(data, "s", "m.txt")
    values = parse_int_lines(data, "s", "m.txt")
    assert n == len(values)
    np.testing.assert_array_equal(inside, np.flatnonzero(values != 0))


@pytest.mark.parametrize("text, match", [
    ("0\n\n1\n", r"line 2: b'' is not an integer"),
    ("\n0\n1\n", r"line 1: b'' is not an integer"),
    ("0\nx\n", r"line 2: b'x' is not an integer"),
    ("\n\n", "empty file"),
])
def test_int_parser_rejects_empty_lines_and_text(text, match):
    with pytest.raises(SceneError, match=match):
        parse_int_lines(text.encode(), "s", "f.txt")


@pytest.mark.parametrize("text", ["5001\n0\n12034\n", "5001\n0\n12034", "7\n"])
def test_int_parser_fast_path(text):
    np.testing.assert_array_equal(parse_int_lines(text.encode(), "s", "f.txt"),
                                  [int(v) for v in text.split()])


def _submission(tmp_path, n_scenes=5):
    rng = np.random.default_rng(3)
    (tmp_path / "gt").mkdir()
    for i in range(n_scenes):
        gt, masks, labels, scores = random_scene(rng)
        scene = f"scene{i:04d}_00"
        (tmp_path / "gt" / f"{scene}.txt").write_bytes(int_lines_bytes(gt))
        k = len(labels)
        ok = np.isin(labels, [3, 5, 7])
        write_instance_submission(tmp_path / "inst", scene,
                                  np.array(masks, bool).reshape(k, len(gt))[ok], labels[ok],
                                  scores[ok])
        write_semantic_submission(tmp_path / "sem", scene, np.where(gt >= 1000, gt // 1000, 1))
    for kind in ("inst", "sem"):
        with zipfile.ZipFile(tmp_path / f"{kind}.zip", "w") as zf:
            for p in sorted((tmp_path / kind).rglob("*.txt")):
                zf.write(p, p.relative_to(tmp_path / kind).as_posix())
    return tmp_path


def test_process_pool_gives_the_one_process_result(tmp_path):
    root = _submission(tmp_path)
    one, _ = evaluate_instance_submission(root / "inst", root / "gt", workers=1)
    assert one.num_scenes == 5 and one.num_pred.sum() > 0
    for pred in ("inst", "inst.zip"):
        two, missing = evaluate_instance_submission(root / pred, root / "gt", workers=2)
        assert missing == [] and two.num_scenes == 5
        np.testing.assert_array_equal(_result_arrays(one), _result_arrays(two))
    sem_one, _ = evaluate_semantic_submission(root / "sem", root / "gt", workers=1)
    sem_two, _ = evaluate_semantic_submission(root / "sem.zip", root / "gt", workers=2)
    np.testing.assert_array_equal(sem_one.confusion, sem_two.confusion)
    assert sem_one.confusion.sum() > 0


def test_process_pool_names_the_first_bad_scene(tmp_path):
    root = _submission(tmp_path)
    for i in (3, 1):  # two bad scenes: the first one in scene order is reported
        (root / "inst" / f"scene{i:04d}_00.txt").write_text("predicted_masks/nope.txt 5 0.5\n")
    with pytest.raises(SceneError, match=r"scene0001_00: .*scene0001_00\.txt: line 1: mask file "
                                         r".*nope\.txt not found"):
        evaluate_instance_submission(root / "inst", root / "gt", workers=2)


def test_folder_listing_matches_rglob(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("x.txt", "a/y.txt", "a/b/z.txt", "a/b/.hidden"):
        (tmp_path / name).write_text("1\n")
    listed = SubmissionSource(tmp_path).names()
    assert listed == {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert listed == {"x.txt", "a/y.txt", "a/b/z.txt", "a/b/.hidden"}

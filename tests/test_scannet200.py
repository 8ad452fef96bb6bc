"""ScanNet200 end to end: the label set's table, preprocessing, GT round trip, training, tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.config import load_config
from scene_pe.data.dataset import SceneDataset, load_scene
from scene_pe.labels.label_set import IGNORE_LABEL, SCANNET20, SCANNET200, get_label_set
from scene_pe.data.preprocess import run_preprocess
from scene_pe.data.scannet import load_label_map
from scene_pe.data.transforms import build_transforms
from scene_pe.evaluation.io import (evaluate_instance_submission, evaluate_semantic_submission,
                                   read_gt_file)
from scene_pe.export.submission import write_instance_submission, write_semantic_submission
from scene_pe.export.validate import validate_submission, vertex_counts_from_gt
from scene_pe.synthetic.catalog import SCANNET200_EXTRA
from scene_pe.synthetic.scenes import generate_dataset
from scene_pe.util.errors import SceneError

ROOT = Path(__file__).resolve().parent.parent


def test_scannet200_table():
    ls = SCANNET200
    assert ls.num_classes == 200 and len(set(ls.ids)) == 200 and len(set(ls.names)) == 200
    assert ls.class_name[1] == "wall" and ls.class_name[3] == "floor" and ls.class_name[1191] == "mattress"
    assert len(ls.instance_ids) == 198 and 1 not in ls.instance_ids and 3 not in ls.instance_ids
    sizes = {s: len(m) for s, m in ls.splits.items()}
    assert sizes == {"head": 66, "common": 68, "tail": 66}
    assert sorted(i for m in ls.splits.values() for i in m) == sorted(ls.ids)  # a partition
    # instance classes per split: wall and floor are head classes without instances
    per_split = ls.split_of_instance_classes()
    assert [len(per_split[s]) for s in ("head", "common", "tail")] == [64, 68, 66]
    # id maps: every id and back, others ignored (12 is a raw id ScanNet200 does not score)
    np.testing.assert_array_equal(ls.to_train(ls.ids), np.arange(200))
    np.testing.assert_array_equal(ls.to_train([0, 12, 5000, -3]), [IGNORE_LABEL] * 4)
    assert ls.instance_index([1, 2, 1191]).tolist() == [-1, 0, 197]
    assert ls.instance_index([10**30, 2, -10**40]).tolist() == [-1, 0, -1]  # beyond int64: no class
    assert ls.to_train(10**30) == IGNORE_LABEL
    assert ls.train_is_instance.sum() == 198 and not ls.train_is_instance[[0, 2]].any()
    # the generator's extra categories are in the splits they stand for
    assert SCANNET200_EXTRA["ottoman"] in ls.splits["common"] and SCANNET200_EXTRA["crate"] in ls.splits["tail"]
    with pytest.raises(ValueError, match="unknown label set 'scannet40'"):
        get_label_set("scannet40")


@pytest.fixture(scope="module")
def raw200(tmp_path_factory) -> tuple[Path, dict]:
    """4 generated rooms of the basic200 profile (ScanNet200 extras in every room)."""
    raw = tmp_path_factory.mktemp("raw200") / "scannet"
    splits = generate_dataset(raw, 2, 2, 0, seed=3, num_vertices=(40000, 48000), profile="basic200")
    return raw, splits


@pytest.fixture(scope="module")
def pre200(raw200, tmp_path_factory) -> Path:
    raw, splits = raw200
    out = tmp_path_factory.mktemp("pre200")
    s = run_preprocess(raw, out, splits, load_label_map(raw / "scannetv2-labels.combined.tsv"),
                       progress=False, label_set=SCANNET200)
    assert s.ok, s.format()
    return out


def _gt_as_prediction(gt: np.ndarray, label_set):
    """Each scored GT instance as a predicted mask with its class, confidence 1."""
    ids = np.unique(gt[gt >= 1000])
    ids = ids[label_set.instance_index(ids // 1000) >= 0]
    masks = gt[None, :] == ids[:, None]
    return masks, ids // 1000, np.ones(len(ids))


def test_gt_round_trip_gives_ap_1_overall_and_per_split(pre200, tmp_path):
    """raw -> preprocess (scannet200) -> GT -> the GT exported as a submission -> AP 1.0."""
    gt_dir = pre200 / "gt"
    inst_dir, sem_dir = tmp_path / "instance", tmp_path / "semantic"
    seen_extra = set()
    for path in sorted(gt_dir.glob("*.txt")):
        gt = read_gt_file(path, path.stem)
        masks, labels, conf = _gt_as_prediction(gt, SCANNET200)
        seen_extra |= set(labels.tolist()) & set(SCANNET200_EXTRA.values())
        write_instance_submission(inst_dir, path.stem, masks, labels, conf, label_set=SCANNET200)
        cls = np.where(gt >= 1000, gt // 1000, gt)
        write_semantic_submission(sem_dir, path.stem, np.where(SCANNET200.semantic_index(cls) >= 0, cls, 1),
                                  SCANNET200)
    assert seen_extra  # the extra categories made it through preprocessing as instances
    res, missing = evaluate_instance_submission(inst_dir, gt_dir, label_set=SCANNET200)
    assert not missing and res.num_scenes == 4
    assert res.mean_ap == 1.0 and res.mean_ap50 == 1.0 and res.mean_ap25 == 1.0
    splits = res.split_means()
    assert set(splits) == {"head", "common", "tail"}
    assert all(v == {"ap": 1.0, "ap50": 1.0, "ap25": 1.0} for v in splits.values()), splits
    has_gt = res.num_gt > 0
    assert (res.ap[has_gt] == 1.0).all() and np.isnan(res.ap[~has_gt]).all()
    assert json.loads(json.dumps(res.to_dict()))["splits"]["tail"]["ap"] == 1.0
    sem, _ = evaluate_semantic_submission(sem_dir, gt_dir, label_set=SCANNET200)
    assert sem.miou == 1.0 and sem.confusion.shape == (200, 201)
    counts = vertex_counts_from_gt(gt_dir)
    assert validate_submission(inst_dir, counts, label_set=SCANNET200) == []
    assert validate_submission(sem_dir, counts, task="semantic", label_set=SCANNET200) == []
    # the same files are not a ScanNet v2 submission: ScanNet200 ids are not NYU40 ids
    problems = validate_submission(inst_dir, counts, label_set=SCANNET20)
    assert problems and "instance-class ids of scannet20" in problems[0]


def test_labels_follow_the_label_set(raw200, pre200, tmp_path):
    """The same raw scene: the extras are instances for scannet200 and ignored for scannet20."""
    raw, splits = raw200
    pre20 = tmp_path / "pre20"
    run_preprocess(raw, pre20, splits, load_label_map(raw / "scannetv2-labels.combined.tsv"), progress=False)
    scene = splits["train"][0]
    s20, s200 = load_scene(pre20, scene, "scannet20"), load_scene(pre200, scene, "scannet200")
    gt20, gt200 = read_gt_file(pre20 / "gt" / f"{scene}.txt"), read_gt_file(pre200 / "gt" / f"{scene}.txt")
    extra = np.isin(gt200 // 1000, list(SCANNET200_EXTRA.values()))
    assert extra.any()
    assert (s20["semantic"][extra] == IGNORE_LABEL).all() and (s20["instance"][extra] == -1).all()
    assert (s200["semantic"][extra] >= 0).all() and (s200["instance"][extra] >= 0).all()
    # GT in each set's encoding: NYU40 otherprop (40) vs the extras' own ids; same object ids
    assert (gt20[extra] // 1000 == 40).all()
    np.testing.assert_array_equal(gt20 % 1000, gt200 % 1000)
    # one label set per folder, and a loader of the other set refuses the scenes
    with pytest.raises(ValueError, match="preprocessed with label set scannet200, not scannet20"):
        run_preprocess(raw, pre200, splits, load_label_map(raw / "scannetv2-labels.combined.tsv"),
                       progress=False)
    ds = SceneDataset(pre200, [scene], build_transforms([]), label_set="scannet20")
    with pytest.raises(SceneError, match=f"{scene}: .*{scene}.npz: preprocessed with label set scannet200"):
        ds[0]


def test_a_200_class_model_trains_and_predicts_scannet200_ids(pre200):
    from scene_pe.inference.vertices import predict_batch
    from scene_pe.model.build import build_model
    from scene_pe.train.loss import compute_loss
    from scene_pe.sparse.voxelize import voxelize

    for config in ("synthetic200_probabilistic.yaml", "scannet200_margin.yaml"):
        cfg = load_config(ROOT / "configs" / config, [f"data.root={pre200}", "model.backbone.name=Res16UNet14S",
                                                      "data.voxel.voxel_size=0.1"])
        torch.manual_seed(0)
        model = build_model(cfg)
        assert model.head.logits[-1].out_features == 200
        sample = load_scene(pre200, "scene0000_00", cfg.data.label_set)
        voxels = voxelize([sample], cfg.data.voxel)
        out = model(voxels)
        assert out.logits.shape[1] == 200 and out.instance_classes.sum() == 198
        loss = compute_loss(out, voxels, cfg)
        loss.total.backward()
        assert torch.isfinite(loss.total) and model.head.logits[-1].weight.grad.abs().sum() > 0
        model.eval()
        with torch.no_grad():
            (pred,) = predict_batch(model, voxels, cfg.inference, label_set=cfg.data.labels)
        assert np.isin(pred.labels, SCANNET200.instance_ids).all()
        assert np.isin(pred.semantic, SCANNET200.ids).all()


def test_tools_use_the_folder_label_set(pre200, tmp_path):
    """tools/evaluate.py reads the label set of the GT's preprocessed folder; a wrong one is a clear error."""
    gt_dir = pre200 / "gt"
    scene = sorted(gt_dir.glob("*.txt"))[0].stem
    gt = read_gt_file(gt_dir / f"{scene}.txt", scene)
    write_instance_submission(tmp_path / "sub", scene, *_gt_as_prediction(gt, SCANNET200), label_set=SCANNET200)

    def run(*args):
        return subprocess.run([sys.executable, str(ROOT / "tools/evaluate.py"), "--pred", str(tmp_path / "sub"),
                               "--gt", str(gt_dir), *args], capture_output=True, text=True)

    r = run()
    assert r.returncode == 0, r.stderr
    assert "label set: scannet200" in r.stdout and "tail" in r.stdout and "mattress" in r.stdout
    r = run("--label-set", "scannet20")
    assert r.returncode == 1 and "not one of the 18 instance class ids of scannet20" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "tools/preprocess.py"), "--scannet-root", str(tmp_path),
                        "--out", str(pre200), "--scenes", scene, "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 2 and "preprocessed with label set scannet200, not scannet20" in r.stderr


def test_semantic_gt_formats():
    """ScanNet200's ids reach 1191: plain semantic GT files need gt_format="semantic"."""
    from scene_pe.evaluation.semantic import evaluate_semantic

    gt_plain = np.array([1174, 1174, 2, 2, 0, 12])  # 0 and 12 (not a ScanNet200 id) are ignored
    gt_inst = np.array([1174 * 1000 + 5, 1174 * 1000 + 5, 2 * 1000 + 7, 2 * 1000 + 7, 0, 12])
    pred = np.array([1174, 2, 2, 2, 1174, 1174])
    idx = {c: SCANNET200.semantic_index(c) for c in (1174, 2)}
    for gt, fmt in ((gt_plain, "semantic"), (gt_inst, "instance")):
        r = evaluate_semantic({"s": pred}, {"s": gt}, SCANNET200, gt_format=fmt)
        assert r.iou[idx[1174]] == 0.5 and r.iou[idx[2]] == 2 / 3  # TP 1 of 2; 2: TP 2, FP 1
        assert np.isnan(np.delete(r.iou, [idx[1174], idx[2]])).all()
    # read as the instance format, plain 1174 would be class 1 (wall): the formats differ
    r = evaluate_semantic({"s": pred}, {"s": gt_plain}, SCANNET200, gt_format="instance")
    assert r.iou[idx[1174]] != 0.5
    with pytest.raises(ValueError, match="gt_format must be one of"):
        evaluate_semantic({"s": pred}, {"s": gt_plain}, SCANNET200, gt_format="plain")

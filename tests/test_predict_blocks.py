"""tools/predict.py on a scan cut into blocks: a flat of four copies of a room, cut 3 x 3, comes
out with every room's instances, none duplicated and none split at a border.

The network is replaced by an oracle that is exact by construction: each voxel is a narrow
Gaussian centred on the centroid (within its block) of its GT instance, scored for its GT class.
So the test checks what blocks add (the plan, the overlap, the merge rule of
scene_pe/predict/blocks.py) and nothing of a small trained model's quality, which moves with the
float sums of the CPU it was trained on. Everything else is the real tool: reading, voxelization,
clustering, devoxelization, the merge, the files.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from scene_pe.config import dump_config, load_config
from scene_pe.data.scannet import read_axis_alignment, read_mesh
from scene_pe.train.checkpoint import save_checkpoint
from scene_pe.model.build import build_model
from scene_pe.model.outputs import ProbabilisticOutput
from scene_pe.predict import pipeline
from scene_pe.predict.frame import apply
from scene_pe.model.build import instance_classes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import predict as predict_tool  # noqa: E402

SCENE = "scene0000_00"
VOXEL = 0.06
SIGMA = 0.01  # metres: two instances' centroids a few cm apart still have a kernel of ~0


def oracle_outputs(label_set):
    """network_outputs' stand-in: the voxels' GT (voxelize's majority labels) made into outputs."""
    chair = label_set.names.index("chair")  # the class of instance voxels whose majority class is stuff

    def outputs(model, voxels, amp=False) -> ProbabilisticOutput:
        inst, sem, x = voxels.instance, voxels.semantic, voxels.centres.double()
        ids, local = torch.unique(inst, return_inverse=True)
        centroid = torch.zeros(len(ids), 3, dtype=torch.float64).index_add_(0, local, x)
        centroid /= torch.bincount(local, minlength=len(ids)).unsqueeze(1)
        own = inst >= 0
        mu = torch.where(own.unsqueeze(1), centroid[local], x)
        is_instance = instance_classes(label_set)
        cls = torch.where(sem >= 0, sem, torch.zeros_like(sem))  # ignored vertices: wall (stuff)
        cls = torch.where(own & ~is_instance[cls], torch.full_like(cls, chair), cls)
        cls = torch.where(~own & is_instance[cls], torch.zeros_like(cls), cls)
        logits = torch.full((len(x), label_set.num_classes), -10.0)
        logits[torch.arange(len(x)), cls] = 10.0
        return ProbabilisticOutput(mu.float(), torch.full((len(x), 3), SIGMA), logits, voxels.centres,
                                   voxels.batch, is_instance)
    return outputs


@pytest.fixture(scope="module")
def room(small_dataset):
    """The room in the model frame, its faces, and each vertex's GT (training class, instance)."""
    folder = small_dataset.parent / "raw" / "scans" / SCENE
    xyz, rgb, faces = read_mesh(folder / f"{SCENE}_vh_clean_2.ply", SCENE)
    xyz = apply(read_axis_alignment(folder / f"{SCENE}.txt", SCENE), xyz.astype(np.float64))
    with np.load(small_dataset / "scenes" / f"{SCENE}.npz") as z:
        np.testing.assert_allclose(z["coords"], xyz, atol=1e-4)  # the same vertices, in the same order
        semantic, instance = z["semantic"].astype(np.int64), z["instance"].astype(np.int64)
    return xyz, rgb, faces, semantic, instance


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The demo's model at 6 cm with random weights: the oracle replaces what it computes."""
    cfg = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml",
                      [f"data.voxel.voxel_size={VOXEL}", "inference.superpoints=none", "inference.superpoints_cloud=none"])
    path = tmp_path_factory.mktemp("oracle") / "oracle.pth"
    save_checkpoint(path, {"model": build_model(cfg).state_dict(), "step": 0, "epoch": 0,
                           "config": dump_config(cfg)})
    return path, cfg.data.labels


def predict_with_oracle(monkeypatch, ply: Path, ckpt, out: Path, semantic, instance, *extra) -> np.ndarray:
    path, label_set = ckpt
    real_sample = pipeline.Predictor.sample

    def sample_with_gt(self, scan, xyz, frame, notes):
        s = real_sample(self, scan, xyz, frame, notes)
        return {**s, "semantic": semantic, "instance": instance}  # cut with the sample into blocks

    monkeypatch.setattr(pipeline.Predictor, "sample", sample_with_gt)
    monkeypatch.setattr(pipeline, "network_outputs", oracle_outputs(label_set))
    assert predict_tool.main([str(ply), "--checkpoint", str(path), "--out", str(out), "--no-render",
                              "--no-progress", *extra]) == 0
    with np.load(out / f"{ply.stem}.npz") as z:
        return z["instance"]


def partition(instance: np.ndarray) -> np.ndarray:
    """Instance ids renumbered by first vertex (-1 kept): equal arrays are the same partition."""
    ids, first, inverse = np.unique(instance, return_index=True, return_inverse=True)
    rank = np.empty(len(ids), np.int64)
    rank[np.argsort(first)] = np.arange(len(ids))
    rank -= (rank > rank[0]) if ids[0] < 0 else 0  # -1 takes no number
    out = rank[inverse]
    out[instance < 0] = -1
    return out


def test_blocks_cut_through_rooms_give_each_room_its_instances(room, checkpoint, tmp_path, monkeypatch):
    xyz, rgb, faces, semantic, instance = room
    n, k = len(xyz), int(instance.max()) + 1
    step = np.ceil(np.ptp(xyz[:, 0]) + 2.0)  # rooms 2 m apart or more
    flat = np.concatenate([xyz + [i * step, 0, 0] for i in range(4)])
    trimesh.Trimesh(flat, np.concatenate([faces + i * n for i in range(4)]), vertex_colors=np.tile(rgb, (4, 1)),
                    process=False).export(tmp_path / "flat.ply")
    borders = flat[:, 0].min() + np.ptp(flat[:, 0]) * np.array([1, 2]) / 3
    room_x = [(xyz[:, 0].min() + i * step, xyz[:, 0].max() + i * step) for i in range(4)]
    assert [sum(lo < b < hi for b in borders) for lo, hi in room_x] == [0, 1, 1, 0]  # x borders cut rooms 2, 3
    gt = (np.tile(semantic, 4), np.concatenate([np.where(instance >= 0, instance + i * k, -1) for i in range(4)]))

    whole = predict_with_oracle(monkeypatch, tmp_path / "flat.ply", checkpoint, tmp_path / "whole", *gt,
                                "--block-tiles", "1")
    # the oracle is exact up to the voxels that mix two objects (6 cm here): every GT instance is the
    # most of one predicted instance of its own
    assert whole.max() + 1 == 4 * k and k >= 5
    owner = [np.bincount(whole[gt[1] == g] + 1, minlength=4 * k + 1)[1:].argmax() for g in range(4 * k)]
    assert sorted(owner) == list(range(4 * k))

    blocked = predict_with_oracle(monkeypatch, tmp_path / "flat.ply", checkpoint, tmp_path / "blocked", *gt,
                                  "--block-tiles", "3")
    record = json.loads((tmp_path / "blocked" / "flat.json").read_text())
    assert record["num_blocks"] == 9
    # blocks share the whole scan's voxel grid, so a room cut into blocks must come out as in one block
    assert blocked.max() + 1 == 4 * k  # none duplicated, none split, none lost
    for i in range(4):
        np.testing.assert_array_equal(partition(blocked[i * n:(i + 1) * n]), partition(whole[i * n:(i + 1) * n]),
                                      err_msg=f"room {i + 1}")

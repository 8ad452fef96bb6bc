"""``loss.superpoint_weight > 0`` in training (train/loss.compute_loss): the loss gains
``weight x`` the superpoints' mean within-superpoint variance of the embedding (the probabilistic
head's mu, the margin head's embedding), computed here by hand; scenes without superpoints add
nothing."""

from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.config import load_config
from scene_pe.model.build import build_model
from scene_pe.train.loss import compute_loss
from scene_pe.sparse.voxelize import voxelize

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["model.backbone.stem_channels=8", "model.head.hidden=16", "data.voxel.voxel_size=0.1"]
WEIGHT = 0.75


def room(seed: int, with_segments: bool, n: int = 600) -> dict:
    rng = np.random.default_rng(seed)
    xyz = rng.random((n, 3)).astype(np.float32) * np.float32(1.5)
    box = (xyz[:, 0] > 0.7) & (xyz[:, 2] < 0.6)  # a "chair" (training id 4) in the corner
    semantic = np.where(box, 4, 1).astype(np.int64)  # the rest floor (1)
    instance = np.where(box, 0, -1).astype(np.int64)
    # superpoints: cells of 0.5 m (of many voxels each, and voxels of several cells at the borders)
    cells = np.floor(xyz / 0.5).astype(np.int64)
    segment = cells[:, 0] * 100 + cells[:, 1] * 10 + cells[:, 2] + 7
    return {"scene": f"scene{seed:04d}_00", "coords": xyz, "colors": rng.random((n, 3)).astype(np.float32),
            "semantic": semantic, "instance": instance,
            "segment": segment if with_segments else np.full(n, -1, np.int64)}


def hand_consistency(embedding: np.ndarray, point_to_voxel, segments) -> float:
    """Mean over superpoints (of every scene that has them) of the variance of their vertices'
    voxel embeddings (first 3 columns), summed over the axes; then the mean over those scenes."""
    per_scene = []
    for p2v, seg in zip(point_to_voxel, segments):
        if seg is None:
            continue
        e = embedding[p2v.numpy(), :3].astype(np.float64)
        variances = [((e[seg == s] - e[seg == s].mean(0)) ** 2).sum(1).mean() for s in np.unique(seg)]
        per_scene.append(np.mean(variances))
    return float(np.mean(per_scene))


@pytest.mark.parametrize("config,field", [("synthetic_probabilistic.yaml", "mu"), ("synthetic_margin.yaml",
                                                                                  "embedding")])
def test_superpoint_term_is_the_weighted_within_superpoint_variance(config, field):
    on = load_config(ROOT / "configs" / config, [*SMALL, f"loss.superpoint_weight={WEIGHT}"])
    off = load_config(ROOT / "configs" / config, SMALL)
    torch.manual_seed(0)
    model = build_model(on).train()
    voxels = voxelize([room(1, True), room(2, False), room(3, True)], on.data.voxel)
    assert voxels.segments[1] is None and voxels.segments[0] is not None
    out = model(voxels)
    with_term, without = compute_loss(out, voxels, on), compute_loss(out, voxels, off)
    embedding = getattr(out, field).detach().numpy()
    want = hand_consistency(embedding, voxels.point_to_voxel, voxels.segments)
    # float32 embeddings of ~1 m, their variances in float32 sums of a few hundred terms: 1e-5 relative
    assert float(with_term.terms["superpoint"]) == pytest.approx(want, rel=1e-5)
    assert want > 1e-4  # an untrained network's embedding varies within a 0.5 m superpoint
    assert "superpoint" not in without.terms
    assert float(with_term.total.detach()) == pytest.approx(float(without.total.detach()) + WEIGHT * want, rel=1e-5)
    # the term is not detached: it changes the network's gradient
    params = [p for p in model.parameters() if p.requires_grad]
    g_on = torch.autograd.grad(with_term.total, params, retain_graph=True, allow_unused=True)
    g_off = torch.autograd.grad(without.total, params, retain_graph=True, allow_unused=True)
    differs = [a is not None and b is not None and not torch.allclose(a, b) for a, b in zip(g_on, g_off)]
    assert any(differs)


def test_batches_without_superpoints_add_zero():
    cfg = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", [*SMALL, f"loss.superpoint_weight={WEIGHT}"])
    off = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", SMALL)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    voxels = voxelize([room(4, False), room(5, False)], cfg.data.voxel)
    out = model(voxels)
    loss = compute_loss(out, voxels, cfg)
    assert float(loss.terms["superpoint"]) == 0.0
    assert float(loss.total.detach()) == float(compute_loss(out, voxels, off).total.detach())

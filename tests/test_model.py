"""Backbone + heads: shapes, value ranges, gradients, sparse-conv translation equivariance."""

import dataclasses

import numpy as np
import pytest
import torch

from scene_pe.labels.label_set import SCANNET20
from scene_pe.model.heads import HeadConfig
from scene_pe.model.network import InstanceSegmentationNet
from scene_pe.model.outputs import MarginOutput, ProbabilisticOutput
from scene_pe.model.unet import ARCHITECTURES, STRIDE, BackboneConfig, Res16UNet
from scene_pe.sparse.voxelize import VoxelizeConfig, voxelize
from scene_pe.model.build import instance_classes

VOXEL = 0.05


def surface_scene(seed, n=3000, shift=(0.0, 0.0, 0.0)):
    """Points on a few planes (a floor and two boxes' faces): a surface-like sparse set."""
    rng = np.random.default_rng(seed)
    pts = np.concatenate([
        np.c_[rng.uniform(0, 2, (n, 2)), np.zeros(n)],
        np.c_[rng.uniform(0.2, 0.8, n), np.full(n, 0.5), rng.uniform(0, 0.6, n)],
        np.c_[np.full(n, 1.4), rng.uniform(0.9, 1.6, n), rng.uniform(0, 0.9, n)],
    ])
    colors = rng.uniform(0, 1, (len(pts), 3))
    return {"scene": f"s{seed}", "coords": (pts + np.asarray(shift)).astype(np.float32),
            "colors": colors.astype(np.float32)}


def make_net(head: HeadConfig, backbone="Res16UNet14S"):
    torch.manual_seed(0)
    head = dataclasses.replace(head, num_classes=SCANNET20.num_classes)
    return InstanceSegmentationNet(3, BackboneConfig(name=backbone), head, instance_classes(SCANNET20))


VARIANTS = ["anisotropic_heteroscedastic", "anisotropic_homoscedastic",
            "isotropic_heteroscedastic", "isotropic_homoscedastic", "deterministic"]


@pytest.mark.parametrize("embedding", VARIANTS)
def test_probabilistic_head_shapes_and_ranges(embedding):
    cfg = HeadConfig(type="probabilistic", embedding=embedding, centre_scale=0.7)
    net = make_net(cfg)
    vb = voxelize([surface_scene(0), surface_scene(1, n=2000)], VoxelizeConfig(voxel_size=VOXEL))
    out = net(vb)
    m = vb.coordinates.shape[0]
    assert isinstance(out, ProbabilisticOutput)
    assert out.mu.shape == (m, 3) and out.logits.shape == (m, 20)
    assert torch.allclose(out.scores.sum(-1), torch.ones(m), atol=1e-6)
    assert ((out.mu - vb.centres).abs() <= 0.7 + 1e-6).all()
    if embedding == "deterministic":
        assert out.sigma is None
        return
    dims = 3 if embedding.startswith("anisotropic") else 1
    assert out.sigma.shape == (m, dims) and (out.sigma > 0).all()
    per_scene = [out.sigma[vb.batch == b] for b in range(2)]
    if embedding.endswith("homoscedastic"):
        for s in per_scene:  # one sigma per scene
            assert torch.allclose(s, s[:1].expand_as(s))
        assert not torch.allclose(per_scene[0][0], per_scene[1][0])
    else:
        assert per_scene[0].std(0).max() > 0


def test_margin_head_shapes_and_ranges():
    net = make_net(HeadConfig(type="margin", centre_scale=1.0, margin_anisotropic=False))
    vb = voxelize([surface_scene(2)], VoxelizeConfig(voxel_size=VOXEL))
    out = net(vb)
    m = vb.coordinates.shape[0]
    assert isinstance(out, MarginOutput)
    assert out.embedding.shape == (m, 3) and out.sigma.shape == (m, 1) and out.seed.shape == (m,)
    assert ((out.seed > 0) & (out.seed < 1)).all() and (out.sigma > 0).all()
    assert ((out.embedding - vb.centres).abs() <= 1.0 + 1e-6).all()


@pytest.mark.parametrize("head", ["probabilistic", "margin"])
def test_gradients_reach_every_parameter(head):
    net = make_net(HeadConfig(type=head))
    vb = voxelize([surface_scene(3)], VoxelizeConfig(voxel_size=VOXEL))
    out = net(vb)
    terms = [out.logits.square().mean()]
    if head == "probabilistic":
        terms += [out.mu.square().mean(), out.sigma.log().square().mean()]
    else:
        terms += [out.embedding.square().mean(), out.sigma.log().square().mean(), out.seed.mean()]
    sum(terms).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_backbone_keeps_input_row_order_and_channel_counts():
    for name, (_, planes) in ARCHITECTURES.items():
        net = Res16UNet(3, BackboneConfig(name=name))
        assert net.out_channels == planes[-1]
    net = Res16UNet(3, BackboneConfig(name="Res16UNet14S")).eval()
    vb = voxelize([surface_scene(4)], VoxelizeConfig(voxel_size=VOXEL))
    out = net(vb.sparse_tensor())
    assert torch.equal(out.C, vb.coordinates)


@pytest.mark.parametrize("head", ["probabilistic", "margin"])
def test_translation_by_total_stride_is_equivariant(head):
    net = make_net(HeadConfig(type=head, centre_scale=1.5)).eval()
    shift = np.array([3, -2, 1]) * STRIDE * VOXEL  # whole multiples of the total stride
    a = voxelize([surface_scene(5)], VoxelizeConfig(voxel_size=VOXEL))
    b = voxelize([surface_scene(5, shift=shift)], VoxelizeConfig(voxel_size=VOXEL))
    # same voxels, shifted by 3,-2,1 strides; match rows through the vertex maps
    ra, rb = a.point_to_voxel[0], b.point_to_voxel[0]
    assert torch.equal(b.coordinates[rb, 1:] - a.coordinates[ra, 1:],
                       torch.tensor(np.array([3, -2, 1]) * STRIDE, dtype=torch.int32).expand(len(ra), 3))
    with torch.no_grad():
        oa, ob = net(a), net(b)
    ea = oa.mu if head == "probabilistic" else oa.embedding
    eb = ob.mu if head == "probabilistic" else ob.embedding
    torch.testing.assert_close((eb - b.centres)[rb], (ea - a.centres)[ra], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ob.scores[rb], oa.scores[ra], atol=1e-5, rtol=1e-4)
    equivariant_gap = (ob.logits[rb] - oa.logits[ra]).abs().max()
    # a shift that is not a multiple of the stride changes the outputs (the test can fail)
    c = voxelize([surface_scene(5, shift=np.array([1, 0, 0]) * VOXEL)], VoxelizeConfig(voxel_size=VOXEL))
    with torch.no_grad():
        oc = net(c)
    off_grid_gap = (oc.logits[c.point_to_voxel[0]] - oa.logits[ra]).abs().max()
    assert off_grid_gap > 100 * max(equivariant_gap, 1e-7)

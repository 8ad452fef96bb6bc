"""Voxelization and devoxelization: every vertex maps to exactly one voxel, exactly back."""

import numpy as np
import torch

from scene_pe.sparse.voxelize import VoxelizeConfig, devoxelize, majority_label, voxelize


def random_scene(n, seed, name="s"):
    rng = np.random.default_rng(seed)
    return {
        "scene": name,
        "coords": rng.uniform(0, 2, (n, 3)).astype(np.float32),
        "colors": rng.uniform(0, 1, (n, 3)).astype(np.float32),
        "normals": np.tile(np.array([[0, 0, 1]], np.float32), (n, 1)),
        "semantic": rng.integers(0, 20, n),
        "instance": rng.integers(-1, 4, n),
    }


def test_every_vertex_maps_to_the_voxel_containing_it():
    scenes = [random_scene(5000, 0, "a"), random_scene(3000, 1, "b")]
    cfg = VoxelizeConfig(voxel_size=0.05)
    vb = voxelize(scenes, cfg)
    assert [len(p) for p in vb.point_to_voxel] == [5000, 3000]
    for b, (s, p2v) in enumerate(zip(scenes, vb.point_to_voxel)):
        ijk = np.floor(s["coords"] / cfg.voxel_size).astype(np.int32)
        assert torch.equal(vb.coordinates[p2v, 1:], torch.from_numpy(ijk))
        assert (vb.batch[p2v] == b).all()
    # voxels are unique per scene and the count matches numpy's
    for b, s in enumerate(scenes):
        n_unique = len(np.unique(np.floor(s["coords"] / cfg.voxel_size).astype(np.int32), axis=0))
        assert int((vb.batch == b).sum()) == n_unique
    # centres lie inside their voxel
    assert torch.allclose(vb.centres, (vb.coordinates[:, 1:].float() + 0.5) * cfg.voxel_size)


def test_features_are_voxel_means():
    s = random_scene(4000, 2)
    vb = voxelize([s], VoxelizeConfig(voxel_size=0.1, features=("colors", "normals")))
    p2v = vb.point_to_voxel[0].numpy()
    m = vb.features.shape[0]
    expected = np.stack([np.bincount(p2v, weights=s["colors"][:, c] - 0.5, minlength=m)
                         for c in range(3)], 1) / np.bincount(p2v, minlength=m)[:, None]
    np.testing.assert_allclose(vb.features[:, :3].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vb.features[:, 3:].numpy(), np.tile([0, 0, 1], (m, 1)), atol=1e-6)


def test_devoxelize_gives_every_vertex_its_voxels_value():
    scenes = [random_scene(2000, 3, "a"), random_scene(1000, 4, "b")]
    vb = voxelize(scenes, VoxelizeConfig(voxel_size=0.04))
    values = torch.arange(vb.coordinates.shape[0]) * 7
    per_vertex = devoxelize(values, vb)
    for p2v, vals in zip(vb.point_to_voxel, per_vertex):
        assert torch.equal(vals, p2v * 7)


def test_pure_voxels_roundtrip_instance_map_and_batch_unique_ids():
    # vertices of one instance fill whole voxels: the voxel map devoxelized equals the vertex map
    rng = np.random.default_rng(5)
    cells = rng.permutation(np.stack(np.meshgrid(*[np.arange(10)] * 3), -1).reshape(-1, 3))[:300]
    inst_of_cell = rng.integers(-1, 6, len(cells))
    reps = rng.integers(1, 5, len(cells))
    cell_idx = np.repeat(np.arange(len(cells)), reps)
    coords = (cells[cell_idx] + rng.uniform(0.01, 0.99, (len(cell_idx), 3))) * 0.02
    s = {"scene": "p", "coords": coords.astype(np.float32),
         "colors": np.zeros((len(coords), 3), np.float32),
         "semantic": np.where(inst_of_cell[cell_idx] >= 0, 5, 1), "instance": inst_of_cell[cell_idx]}
    vb = voxelize([s, s], VoxelizeConfig(voxel_size=0.02))
    back = devoxelize(vb.instance, vb)
    assert torch.equal(back[0], torch.from_numpy(s["instance"]))
    # the second copy's instances are offset to stay unique across the batch
    k = s["instance"].max() + 1
    assert torch.equal(back[1], torch.from_numpy(np.where(s["instance"] >= 0, s["instance"] + k, -1)))


def test_majority_label_picks_most_frequent_with_smallest_on_ties():
    labels = np.array([3, 3, 5, 7, 7, 2, 9, 9, 9, 1])
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 2, 1, 2])
    # group 0: 3,3,5 -> 3; group 1: 7,7,2,9 -> 7; group 2: 9,9,1 -> 9
    assert majority_label(labels, groups, 3).tolist() == [3, 7, 9]
    assert majority_label(np.array([4, 2]), np.array([0, 0]), 1).tolist() == [2]


def test_devoxelize_on_a_generated_scene(small_dataset):
    from scene_pe.data.dataset import load_scene

    sample = load_scene(small_dataset, "scene0000_00")
    vb = voxelize([sample], VoxelizeConfig(voxel_size=0.02))
    p2v = vb.point_to_voxel[0]
    assert len(p2v) == len(sample["coords"])  # every mesh vertex has a voxel
    # a voxel-level map devoxelized equals the vertex-level one wherever the voxel is pure
    inst = torch.from_numpy(sample["instance"])
    back = devoxelize(vb.instance, vb)[0]
    pure = torch.zeros(vb.coordinates.shape[0], dtype=torch.bool)
    lo = torch.full_like(pure, 10**9, dtype=torch.long).scatter_reduce(0, p2v, inst, "amin")
    hi = torch.full_like(pure, -10**9, dtype=torch.long).scatter_reduce(0, p2v, inst, "amax")
    pure = (lo == hi)[p2v]
    assert pure.float().mean() > 0.95  # 2 cm voxels on surfaces: mixed voxels only at contacts
    assert torch.equal(back[pure], inst[pure])
    # and every voxel's label is the majority of its vertices' labels (checked on mixed ones too)
    counts = torch.zeros(vb.coordinates.shape[0], int(inst.max()) + 2, dtype=torch.long)
    counts.index_put_((p2v, inst + 1), torch.ones_like(inst), accumulate=True)
    assert torch.equal(counts.argmax(1) - 1, vb.instance)

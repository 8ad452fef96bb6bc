"""Superpoints: the built-in segmentator (exact cases, a plain reference, properties) and pooling."""

import json

import numpy as np
import pytest
import torch

from scene_pe.labels.label_set import SCANNET20
from scene_pe.method import superpoint_pooling as SP
from scene_pe.superpoints.segmentator import (SegmentatorConfig, edge_weights, mesh_edges,
                                              segment_cloud, segment_mesh)
from scene_pe.geometry.normals import running_mean_normals
from scene_pe.model.build import instance_classes

INST_CLASSES = instance_classes(SCANNET20)  # what a head output carries


def segment_tool():
    """tools/segment.py as a module."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    import segment

    return segment


def grid(nx: int, ny: int, origin=(0.0, 0.0, 0.0), step=0.05, axes=((1, 0, 0), (0, 1, 0))):
    """A flat triangulated grid of nx x ny vertices in the plane spanned by ``axes``."""
    i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    xyz = np.asarray(origin) + step * (i.reshape(-1, 1) * np.asarray(axes[0]) + j.reshape(-1, 1) * np.asarray(axes[1]))
    v = lambda a, b: a * ny + b  # noqa: E731
    a, b = np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), indexing="ij")
    a, b = a.ravel(), b.ravel()
    faces = np.concatenate([np.stack([v(a, b), v(a + 1, b), v(a + 1, b + 1)], 1),
                            np.stack([v(a, b), v(a + 1, b + 1), v(a, b + 1)], 1)])
    return xyz.astype(np.float32), faces.astype(np.int64)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two labelings are the same partition (ids may differ)."""
    pairs = np.unique(np.stack([a, b]), axis=1)
    return len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))


def reference_segmentation(xyz, faces, k=0.01, min_vertices=20):
    """A plain, loop-by-loop reading of the algorithm (module docstring of segmentator.py)."""
    n = len(xyz)
    normals = [np.zeros(3, np.float32) for _ in range(n)]
    count = [0] * n
    for f in faces:
        p1, p2, p3 = (xyz[i].astype(np.float32) for i in f)
        c = np.cross(p2 - p1, p3 - p1).astype(np.float32)
        norm = np.float32(np.sqrt(np.float32(c @ c)))
        if not norm > 0:
            continue
        c = (c / norm).astype(np.float32)
        for i in f:
            t = np.float32(1.0) / np.float32(count[i] + 1)
            normals[i] = (t * c + (np.float32(1.0) - t) * normals[i]).astype(np.float32)
            count[i] += 1
    edges = []
    for a, b, c in faces:
        edges += [(a, b), (a, c), (c, b)]
    weights = []
    for a, b in edges:
        d = (xyz[b] - xyz[a]).astype(np.float32)
        d = d / np.float32(np.sqrt(d @ d))
        w = np.float32(1.0) - np.float32(normals[a] @ normals[b])
        weights.append(w * w if normals[b] @ d > 0 else w)
    order = sorted(range(len(edges)), key=lambda e: weights[e])  # Python's sort is stable
    parent, size, thr = list(range(n)), [1] * n, [np.float32(k)] * n

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for e in order:
        a, b = find(edges[e][0]), find(edges[e][1])
        if a != b and weights[e] <= thr[a] and weights[e] <= thr[b]:
            parent[a] = b
            size[b] += size[a]
            thr[b] = weights[e] + np.float32(k) / np.float32(size[b])
    for e in order:
        a, b = find(edges[e][0]), find(edges[e][1])
        if a != b and (size[a] < min_vertices or size[b] < min_vertices):
            parent[a] = b
            size[b] += size[a]
    return np.array([find(i) for i in range(n)])


def bumpy_mesh(seed: int, nx: int = 30, ny: int = 24):
    """A grid with random bumps: many segments of many sizes."""
    xyz, faces = grid(nx, ny)
    rng = np.random.default_rng(seed)
    xyz[:, 2] = (0.05 * np.sin(xyz[:, 0] * rng.uniform(5, 15)) * np.cos(xyz[:, 1] * rng.uniform(5, 15))
                 + 0.01 * rng.normal(size=len(xyz))).astype(np.float32)
    return xyz, faces


def test_two_separate_flat_patches_are_two_segments():
    a, fa = grid(6, 5)
    b, fb = grid(5, 5, origin=(2.0, 0, 0))
    seg = segment_mesh(np.concatenate([a, b]), np.concatenate([fa, fb + len(a)]))
    assert same_partition(seg, np.r_[np.zeros(len(a)), np.ones(len(b))])


def test_a_patch_under_the_minimum_joins_its_neighbour_and_isolated_vertices_stay_alone():
    a, fa = grid(6, 6)                                 # 36 vertices, flat
    b, fb = grid(3, 3, origin=(0.25, 0, 0), axes=((0, 0, 1), (0, 1, 0)))  # 9 vertices, upright
    b[:, 0] = 0.25                                     # shares no vertex; joined by one bridge face
    xyz = np.concatenate([a, b, [[5.0, 5.0, 5.0]]]).astype(np.float32)
    bridge = np.array([[5 * 6 + 0, 36 + 0, 36 + 1]])    # a's corner (5, 0) to b's first two vertices
    seg = segment_mesh(xyz, np.concatenate([fa, fb + 36, bridge]))
    assert len(np.unique(seg[:45])) == 1               # the 9-vertex patch is under 20: merged
    assert seg[45] == 45                               # the vertex in no face is its own segment


def test_large_patches_at_a_right_angle_stay_apart():
    floor, ff = grid(10, 10)
    wall, fw = grid(10, 10, origin=(0, 0, 0.05), axes=((1, 0, 0), (0, 0, 1)))
    bridge_faces = np.array([[i, i + 1, 100 + i] for i in range(0, 90, 10)])  # joins floor row y=0 to wall
    seg = segment_mesh(np.concatenate([floor, wall]), np.concatenate([ff, fw + 100, bridge_faces]))
    assert len(np.unique(seg[:100])) <= 2 and len(np.unique(seg[100:])) <= 2
    assert not set(seg[11:100]) & set(seg[111:])       # floor interior and wall interior never share


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_a_plain_reference_implementation(seed):
    xyz, faces = bumpy_mesh(seed)
    faces = faces[np.random.default_rng(seed).permutation(len(faces))]  # any face order
    seg = segment_mesh(xyz, faces)
    assert len(np.unique(seg)) > 3
    assert same_partition(seg, reference_segmentation(xyz, faces))


def test_deterministic_and_invariant_to_vertex_order():
    xyz, faces = bumpy_mesh(3)
    seg = segment_mesh(xyz, faces)
    np.testing.assert_array_equal(seg, segment_mesh(xyz.copy(), faces.copy()))
    perm = np.random.default_rng(0).permutation(len(xyz))     # new index of old vertex i: inv[i]
    inv = np.argsort(perm)
    seg_perm = segment_mesh(xyz[perm], inv[faces])
    assert same_partition(seg, seg_perm[inv])


def test_degenerate_faces_give_no_nan_and_change_nothing():
    xyz, faces = bumpy_mesh(4)
    degenerate = np.array([[5, 5, 6], [7, 8, 7], [9, 9, 9]])
    normals = running_mean_normals(xyz, np.concatenate([faces, degenerate]))
    assert np.isfinite(normals).all()
    np.testing.assert_array_equal(normals, running_mean_normals(xyz, faces))
    both = segment_mesh(xyz, np.concatenate([faces, degenerate]))
    assert same_partition(both, segment_mesh(xyz, faces))


def test_weights_squared_only_where_convex():
    xyz = np.array([[0, 0, 0], [1, 0, 0]], np.float32)
    n_a = np.array([0.0, 0.0, 1.0], np.float32)
    tilted = np.array([np.sin(0.3), 0.0, np.cos(0.3)], np.float32)  # b leans away from a: convex
    w = edge_weights(xyz, np.stack([n_a, tilted]), np.array([[0, 1]]))
    assert np.isclose(w[0], (1 - np.cos(0.3)) ** 2, rtol=1e-5)
    w = edge_weights(xyz, np.stack([n_a, tilted * [-1, 1, 1]]), np.array([[0, 1]]))  # leans towards a
    assert np.isclose(w[0], 1 - np.cos(0.3), rtol=1e-5)


def test_three_directed_edges_per_triangle_in_face_order():
    np.testing.assert_array_equal(mesh_edges(np.array([[4, 7, 9]])), [[4, 7], [4, 9], [9, 7]])


def test_point_cloud_variant_separates_two_distant_planes():
    a, _ = grid(12, 12)
    b, _ = grid(12, 12, origin=(0, 0, 1.0))
    normals = np.tile([0.0, 0.0, 1.0], (288, 1)).astype(np.float32)
    seg = segment_cloud(np.concatenate([a, b]), normals, SegmentatorConfig(knn=6))
    assert same_partition(seg, np.r_[np.zeros(144), np.ones(144)])


# ------------------------------------------------------------------ pooling and inference
def test_membership_pooling_equals_a_loop_over_vertices():
    rng = np.random.default_rng(0)
    segment = rng.integers(0, 7, 300) * 11            # arbitrary ids
    p2v = rng.integers(0, 40, 300)
    values = torch.from_numpy(rng.normal(size=(40, 3)))
    pooled = SP.pool(SP.membership(*SP.compact_ids(segment), p2v, 40), values).numpy()
    for k, s in enumerate(np.unique(segment)):
        np.testing.assert_allclose(pooled[k], values.numpy()[p2v[segment == s]].mean(axis=0), atol=1e-12)


def test_vote_takes_the_most_common_instance_ties_to_the_smallest():
    segment = np.array([3, 3, 3, 8, 8, 8, 8, 5, 5])
    instance = np.array([0, 0, 1, -1, -1, 2, 2, 4, 1])
    np.testing.assert_array_equal(SP.vote(instance, segment), [0, 0, 0, -1, -1, -1, -1, 1, 1])


def ideal_scene(seed: int = 0):
    """Vertices of 4 objects + floor, superpoints nested in them, voxels of 2..4 vertices, ideal outputs."""
    from scene_pe.labels.label_set import SCANNET20
    from scene_pe.model.outputs import ProbabilisticOutput

    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0.5], [2, 0, 0.5], [0, 2, 0.5], [2, 2, 0.5]])
    inst = np.repeat(np.arange(-1, 4), 400)                       # 400 floor vertices, 4 x 400 object ones
    segment = inst * 100 + rng.integers(0, 8, len(inst))           # 8 superpoints per object / floor
    chair = SCANNET20.ids.index(5)
    floor = SCANNET20.ids.index(2)
    order = np.argsort(segment, kind="stable")                     # voxels never straddle objects
    p2v = np.empty(len(inst), np.int64)
    p2v[order] = np.arange(len(inst)) // 3
    m = p2v.max() + 1
    vox_inst = np.full(m, -2)
    vox_inst[p2v] = inst
    mu = np.where(vox_inst[:, None] >= 0, centres[np.maximum(vox_inst, 0)], 5.0) + rng.normal(0, 0.01, (m, 3))
    logits = np.full((m, SCANNET20.num_classes), -5.0)
    logits[np.arange(m), np.where(vox_inst >= 0, chair, floor)] = 5.0
    out = ProbabilisticOutput(mu=torch.tensor(mu, dtype=torch.float32), sigma=torch.full((m, 3), 0.05),
                              logits=torch.tensor(logits, dtype=torch.float32), coords=torch.zeros(m, 3),
                              batch=torch.zeros(m, dtype=torch.long), instance_classes=INST_CLASSES)
    return out, inst, segment, p2v


@pytest.mark.parametrize("mode", ["vote", "cluster"])
def test_superpoint_inference_recovers_ideal_instances_exactly(mode):
    from scene_pe.config import InferenceConfig
    from scene_pe.inference.vertices import scene_prediction

    out, inst, segment, p2v = ideal_scene()
    cfg = InferenceConfig(superpoints=mode, min_vertices=50)
    pred = scene_prediction(out, "s", p2v, np.zeros(len(inst), np.int64), None, segment, cfg, SCANNET20)
    assert len(pred.labels) == 4 and (pred.labels == 5).all()
    assert same_partition(pred.instance, inst)


def test_segs_json_of_the_segment_tool_reads_back(tmp_path):
    import trimesh

    xyz, faces = bumpy_mesh(5)
    trimesh.Trimesh(xyz, faces, process=False).export(tmp_path / "m.ply")
    assert segment_tool().main([str(tmp_path / "m.ply"), "--out", str(tmp_path / "m.segs.json")]) == 0
    data = json.loads((tmp_path / "m.segs.json").read_text())
    assert data["params"] == {"kThresh": 0.01, "segMinVerts": 20}
    np.testing.assert_array_equal(data["segIndices"], segment_mesh(xyz, faces))


def test_consistency_loss_is_the_mean_within_superpoint_variance_and_has_gradients():
    rng = np.random.default_rng(1)
    segment = rng.integers(0, 5, 200)
    p2v = torch.from_numpy(rng.integers(0, 30, 200))
    emb = torch.tensor(rng.normal(size=(30, 3)), requires_grad=True)
    loss = SP.consistency_loss(emb, [p2v], [segment])
    e = emb.detach().numpy()[p2v.numpy()]
    want = np.mean([e[segment == s].var(axis=0).sum() for s in np.unique(segment)])
    assert np.isclose(float(loss), want, rtol=1e-5)
    loss.backward()
    assert emb.grad.abs().sum() > 0
    constant = torch.zeros(30, 3)
    assert float(SP.consistency_loss(constant, [p2v], [segment])) == 0.0
    assert float(SP.consistency_loss(emb, [p2v], [None])) == 0.0


def test_segment_tool_never_replaces_an_existing_file_silently(tmp_path, capsys):
    import trimesh

    xyz, faces = bumpy_mesh(6)
    trimesh.Trimesh(xyz, faces, process=False).export(tmp_path / "m.ply")
    (tmp_path / "m.0.010000.segs.json").write_text("shipped")
    assert segment_tool().main([str(tmp_path / "m.ply")]) == 1
    assert (tmp_path / "m.0.010000.segs.json").read_text() == "shipped"
    assert "exists" in capsys.readouterr().err
    assert segment_tool().main([str(tmp_path / "m.ply"), "--overwrite"]) == 0
    assert json.loads((tmp_path / "m.0.010000.segs.json").read_text())["params"]["kThresh"] == 0.01

"""Inference: a voxel batch -> network -> clustering -> per-vertex predictions.

For each scene: instances are clustered on voxels (scene_pe.method.clustering),
then devoxelized to every vertex of the mesh; instances covering fewer than
``min_vertices`` vertices are dropped (the benchmark ignores them anyway).
Per-vertex semantics are the argmax class of the voxel's scores. Per-vertex
uncertainty is the geometric mean of the voxel's sigma (metres; probabilistic
head) or 1 - seed (margin head).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scene_pe.config import InferenceConfig
from scene_pe.data.labels import TRAIN_TO_NYU40
from scene_pe.method.clustering import Clusters, cluster_margin, cluster_probabilistic
from scene_pe.model.outputs import HeadOutput, MarginOutput, ProbabilisticOutput, as_float32
from scene_pe.sparse.voxelize import VoxelBatch


@dataclass
class VertexPrediction:
    """Predictions for every vertex of one scene's mesh."""

    scene: str
    instance: np.ndarray     # (N,) int64 instance index 0..K-1, -1 none
    labels: np.ndarray       # (K,) NYU40 ids
    confidence: np.ndarray   # (K,) float
    semantic: np.ndarray     # (N,) NYU40 id per vertex
    uncertainty: np.ndarray  # (N,) float (see module docstring)


def cluster(out: HeadOutput, cfg: InferenceConfig) -> list[Clusters]:
    if isinstance(out, ProbabilisticOutput):
        return cluster_probabilistic(out, cfg.probabilistic)
    return cluster_margin(out, cfg.margin)


def voxel_uncertainty(out: HeadOutput) -> torch.Tensor:
    if isinstance(out, MarginOutput):
        return 1.0 - out.seed
    if out.sigma is None:  # deterministic embedding: no uncertainty
        return torch.zeros(out.mu.shape[0], device=out.mu.device)
    return out.sigma.log().mean(dim=1).exp()


def devoxelize_clusters(clusters: Clusters, p2v_local: np.ndarray, min_vertices: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel instances -> vertex instance ids, dropping small ones and renumbering."""
    inst_vox = clusters.instance.cpu().numpy()
    inst = inst_vox[p2v_local]
    k = clusters.num_instances
    sizes = np.bincount(inst[inst >= 0], minlength=k)
    keep = sizes >= min_vertices
    remap = np.full(k + 1, -1, dtype=np.int64)  # last slot maps -1 -> -1
    remap[:k][keep] = np.arange(int(keep.sum()))
    inst = remap[inst]
    classes = clusters.classes.cpu().numpy()[keep]
    return inst, TRAIN_TO_NYU40[classes], clusters.confidence.cpu().numpy()[keep].astype(np.float64)


@torch.no_grad()
def predict_batch(model: torch.nn.Module, voxels: VoxelBatch, cfg: InferenceConfig, amp: bool = False
                  ) -> list[VertexPrediction]:
    """Run the model on one batch and return per-vertex predictions for each scene."""
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        out = model(voxels)
    # Kernels and clustering in float32 whatever precision the network ran in.
    out = as_float32(out)
    per_scene = cluster(out, cfg)
    semantic_vox = TRAIN_TO_NYU40[out.logits.argmax(dim=1).cpu().numpy()]
    uncert_vox = voxel_uncertainty(out).cpu().numpy()
    batch = voxels.batch.cpu().numpy()
    starts = np.searchsorted(batch, np.arange(len(voxels.scenes)))  # scenes are contiguous
    preds = []
    for b, (scene, p2v) in enumerate(zip(voxels.scenes, voxels.point_to_voxel)):
        p2v = p2v.cpu().numpy()
        inst, labels, conf = devoxelize_clusters(per_scene[b], p2v - starts[b], cfg.min_vertices)
        preds.append(VertexPrediction(scene, inst, labels, conf, semantic_vox[p2v], uncert_vox[p2v]))
    return preds

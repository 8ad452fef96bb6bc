"""Inference: a voxel batch -> network -> clustering -> per-vertex predictions.

For each scene: instances are clustered on voxels (scene_pe.method.clustering),
then devoxelized to every vertex of the mesh; instances covering fewer than
``min_vertices`` vertices are dropped (the benchmark ignores them anyway).
Per-vertex semantics are the argmax class of the voxel's scores. Per-vertex
uncertainty is the voxel's: for the probabilistic head the definition chosen
by ``inference.probabilistic.uncertainty`` (scene_pe/method/uncertainty.py),
computed on the final instances (after the ``min_vertices`` drop), for the
margin head 1 - seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from scene_pe.config import InferenceConfig
from scene_pe.data.labels import TRAIN_TO_NYU40
from scene_pe.method.clustering import Clusters, cluster_margin, cluster_probabilistic
from scene_pe.method.uncertainty import probabilistic_uncertainty
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


def scene_rows(out: HeadOutput, rows: slice) -> HeadOutput:
    """The rows (voxels) of one scene of a batch's output."""
    return type(out)(**{f.name: None if getattr(out, f.name) is None else getattr(out, f.name)[rows]
                        for f in dataclasses.fields(out)})


def voxel_uncertainty(out: HeadOutput, instance: np.ndarray, cfg: InferenceConfig) -> np.ndarray:
    """(N,) uncertainty of one scene's voxels; ``instance``: their final instance ids (-1 none)."""
    if isinstance(out, MarginOutput):
        return (1.0 - out.seed).cpu().numpy()
    p = cfg.probabilistic
    return probabilistic_uncertainty(out.mu, out.sigma, out.scores, instance, p.uncertainty, p.rbf_sigma)


def final_voxel_instances(clusters: Clusters, p2v_local: np.ndarray, min_vertices: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Voxel instance ids without the clusters under ``min_vertices`` vertices (renumbered), and the keep mask."""
    inst_vox = clusters.instance.cpu().numpy()
    k = clusters.num_instances
    inst = inst_vox[p2v_local]
    keep = np.bincount(inst[inst >= 0], minlength=k) >= min_vertices
    remap = np.full(k + 1, -1, dtype=np.int64)  # last slot maps -1 -> -1
    remap[:k][keep] = np.arange(int(keep.sum()))
    return remap[inst_vox], keep


@torch.no_grad()
def network_outputs(model: torch.nn.Module, voxels: VoxelBatch, amp: bool = False) -> HeadOutput:
    """The head's outputs for one batch, in float32 whatever precision the network ran in."""
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        out = model(voxels)
    return as_float32(out)  # kernels and clustering run in float32


def predict_batch(model: torch.nn.Module, voxels: VoxelBatch, cfg: InferenceConfig, amp: bool = False
                  ) -> list[VertexPrediction]:
    """Run the model on one batch and return per-vertex predictions for each scene."""
    return predictions_from_outputs(network_outputs(model, voxels, amp), voxels, cfg)


def predictions_from_outputs(out: HeadOutput, voxels: VoxelBatch, cfg: InferenceConfig,
                             per_scene: list[Clusters] | None = None) -> list[VertexPrediction]:
    """Clustering (unless ``per_scene`` gives it) and devoxelization of a batch's outputs
    (tools/tune_inference.py re-runs only this; tools/predict.py times the two apart)."""
    per_scene = cluster(out, cfg) if per_scene is None else per_scene
    semantic_vox = TRAIN_TO_NYU40[out.logits.argmax(dim=1).cpu().numpy()]
    batch = voxels.batch.cpu().numpy()
    bounds = np.searchsorted(batch, np.arange(len(voxels.scenes) + 1))  # scenes are contiguous
    preds = []
    for b, (scene, p2v) in enumerate(zip(voxels.scenes, voxels.point_to_voxel)):
        p2v = p2v.cpu().numpy()
        local = p2v - bounds[b]
        inst_vox, keep = final_voxel_instances(per_scene[b], local, cfg.min_vertices)
        classes = per_scene[b].classes.cpu().numpy()[keep]
        conf = per_scene[b].confidence.cpu().numpy()[keep].astype(np.float64)
        uncert = voxel_uncertainty(scene_rows(out, slice(bounds[b], bounds[b + 1])), inst_vox, cfg)
        preds.append(VertexPrediction(scene, inst_vox[local], TRAIN_TO_NYU40[classes], conf,
                                      semantic_vox[p2v], uncert[local]))
    return preds

"""Inference over a list of preprocessed scenes, with evaluation where GT exists.

Used by validation during training and by tools/test.py. Under DDP each rank
takes every world-th scene; the small per-scene match summaries, confusion
matrices and per-vertex (uncertainty, wrong) pairs are gathered, so the metrics
equal a single-process run. The uncertainty metric (evaluation/uncertainty.py)
is computed on the same scenes as AP, those with GT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from scene_pe.config import Config
from scene_pe.labels.label_set import LabelSet
from scene_pe.data.dataset import SceneDataset, VoxelCollate, worker_init
from scene_pe.data.transforms import build_transforms
from scene_pe.util import distributed as D
from scene_pe.inference.vertices import VertexPrediction, predict_batch
from scene_pe.evaluation.instance import InstanceEvaluator
from scene_pe.evaluation.io import read_gt_file
from scene_pe.evaluation.scannetpp import plus_scene_gt
from scene_pe.evaluation.semantic import SemanticEvaluator
from scene_pe.evaluation.uncertainty import UncertaintyEvaluator


def inference_loader(cfg: Config, scenes: list[str], rank: int = 0, world: int = 1) -> DataLoader:
    mine = scenes[rank::world]
    dataset = SceneDataset(cfg.data.root, mine, build_transforms(cfg.data.val_transforms), seed=cfg.train.seed,
                           label_set=cfg.data.label_set)
    return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=min(cfg.data.num_workers, len(mine)),
                      collate_fn=VoxelCollate(cfg.data.voxel), worker_init_fn=worker_init)


def predict_scenes(model: torch.nn.Module, cfg: Config, scenes: list[str], device: torch.device, *,
                   rank: int = 0, world: int = 1, progress: bool = True,
                   amp_dtype: torch.dtype | None = None
                   ) -> Iterator[tuple[VertexPrediction, dict]]:
    """Yield (per-vertex prediction, sample) for this rank's share of ``scenes``."""
    if not scenes[rank::world]:  # a rerun with every scene already predicted, or more ranks than scenes
        return
    model.eval()
    loader = inference_loader(cfg, scenes, rank, world)
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc="inference", leave=False, dynamic_ncols=True)
    try:
        for voxels, samples in loader:
            yield from zip(predict_batch(model, voxels.to(device), cfg.inference, amp_dtype,
                                         label_set=cfg.data.labels), samples)
    finally:
        model.train()


def evaluate_loader(model: torch.nn.Module, cfg: Config, scenes: list[str], device: torch.device, *,
                    rank: int = 0, world: int = 1, progress: bool = True,
                   amp_dtype: torch.dtype | None = None) -> dict:
    """Predict every scene and evaluate those with GT (``<root>/gt/<scene>.txt``).

    Returns mean AP / AP50 / AP25, mIoU and the uncertainty scalars
    (``unc_auroc``, ``unc_auroc_assigned``, ...; NaN without GT) plus the result
    objects under ``instance``, ``semantic`` and ``uncertainty``, the same on every rank.
    """
    inst_ev, sem_ev, unc_ev = new_evaluators(cfg.data.labels)
    gt_dir = Path(cfg.data.root) / "gt"
    for pred, sample in predict_scenes(model, cfg, scenes, device, rank=rank, world=world,
                                       progress=progress, amp_dtype=amp_dtype):
        gt_path = gt_dir / f"{pred.scene}.txt"
        if sample["has_labels"] and gt_path.exists():
            add_scene(inst_ev, sem_ev, pred, read_gt_file(gt_path, pred.scene), unc_ev, gt_dir)
    inst_ev, sem_ev, unc_ev = merge_evaluators(inst_ev, sem_ev, unc_ev)
    if not inst_ev.num_scenes:
        nan = float("nan")
        return {"ap": nan, "ap50": nan, "ap25": nan, "miou": nan, "unc_auroc": nan, "unc_auroc_assigned": nan,
                "instance": None, "semantic": None, "uncertainty": None}
    inst, sem, unc = inst_ev.result(), sem_ev.result(), unc_ev.result()
    return {"ap": inst.mean_ap, "ap50": inst.mean_ap50, "ap25": inst.mean_ap25, "miou": sem.miou,
            **unc.scalars(), "instance": inst, "semantic": sem, "uncertainty": unc}


def new_evaluators(labels: LabelSet) -> tuple[InstanceEvaluator, SemanticEvaluator, UncertaintyEvaluator]:
    """Empty evaluators of a label set (ScanNet++'s semantic GT is its own file of class ids)."""
    return (InstanceEvaluator(label_set=labels), SemanticEvaluator(labels, "semantic" if labels.rle_masks
                                                                   else "instance"), UncertaintyEvaluator(labels))


def add_scene(inst_ev: InstanceEvaluator, sem_ev: SemanticEvaluator, pred: VertexPrediction,
              gt: np.ndarray, unc_ev: UncertaintyEvaluator | None = None, gt_dir: Path | None = None) -> None:
    """Score one scene against its GT (``gt_dir``: its folder, where ScanNet++ keeps the semantic
    GT and the vertex mask beside it: those vertices are left out, as the toolkit does)."""
    if inst_ev.label_set.rle_masks:
        keep, semantic = plus_scene_gt(gt_dir, pred.scene, len(gt))
        inst_ev.add(pred.scene, gt[keep], pred.instance[keep], pred.labels, pred.confidence)
        sem_ev.add(pred.scene, semantic[keep], pred.semantic[keep])
        if unc_ev is not None:
            unc_ev.add(pred.scene, gt[keep], pred.instance[keep], pred.uncertainty[keep])
        return
    inst_ev.add(pred.scene, gt, pred.instance, pred.labels, pred.confidence)
    sem_ev.add(pred.scene, gt, pred.semantic)
    if unc_ev is not None:
        unc_ev.add(pred.scene, gt, pred.instance, pred.uncertainty)


def merge_evaluators(inst_ev: InstanceEvaluator, sem_ev: SemanticEvaluator, unc_ev: UncertaintyEvaluator):
    """Combine every rank's evaluators (no-op in a single process)."""
    gathered = D.all_gather_objects((inst_ev, sem_ev, unc_ev))
    if len(gathered) == 1:
        return inst_ev, sem_ev, unc_ev
    inst_all, sem_all, unc_all = new_evaluators(inst_ev.label_set)
    inst_all.min_region_size = inst_ev.min_region_size
    for i, s, u in gathered:
        inst_all.merge(i)
        sem_all.merge(s)
        unc_all.merge(u)
    return inst_all, sem_all, unc_all

"""Shared fixtures: a small generated ScanNet-format dataset, preprocessed once per session,
and a small model overfitted on one of its scenes (trained once per session)."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from scene_pe.config import Config, load_config
from scene_pe.data.preprocess import run_preprocess
from scene_pe.data.scannet import load_label_map
from scene_pe.synthetic.scenes import generate_dataset


def make_preprocessed(root: Path, num_train: int, num_val: int, num_test: int = 0, seed: int = 0,
                      num_vertices=(20000, 24000)) -> Path:
    raw, pre = root / "raw", root / "pre"
    splits = generate_dataset(raw, num_train, num_val, num_test, seed=seed, num_vertices=num_vertices)
    summary = run_preprocess(raw, pre, splits, load_label_map(raw / "scannetv2-labels.combined.tsv"),
                             workers=1, progress=False)
    assert summary.ok, summary.format()
    return pre


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """2 train + 1 val + 1 test generated scenes (~20k vertices), preprocessed."""
    return make_preprocessed(tmp_path_factory.mktemp("small"), 2, 1, 1)


ROOT = Path(__file__).resolve().parent.parent
OVERFIT_SCENE = "scene0000_00"


@dataclass
class OverfitRun:
    cfg: Config
    checkpoint: Path
    metrics: dict
    first_loss: float
    last_loss: float
    raw_scene: Path  # the raw ScanNet folder of the scene it was trained on


def one_scene_root(src: Path, dst: Path, scene: str) -> Path:
    """A preprocessed root whose train and val splits are the same single scene."""
    (dst / "splits").mkdir(parents=True)
    for sub in ("scenes", "gt"):
        (dst / sub).symlink_to(src / sub)
    for split in ("train", "val"):
        (dst / "splits" / f"{split}.txt").write_text(scene + "\n")
    return dst


@pytest.fixture(scope="session")
def overfit_run(small_dataset, tmp_path_factory) -> OverfitRun:
    """The demo's model (6 cm voxels here) overfitted on one generated scene: 300 steps."""
    from scene_pe.engine.trainer import Trainer

    tmp = tmp_path_factory.mktemp("overfit")
    root = one_scene_root(small_dataset, tmp / "one", OVERFIT_SCENE)
    cfg = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", [
        f"data.root={root}", f"run_dir={tmp / 'runs'}", "name=overfit",
        # mild augmentation: the voxel grid falls differently on the scene at every step, so the
        # model does not hinge on one grid (tools/predict.py's tests turn, scale and block the scene)
        "data.train_transforms=[{name: CenterShift}, {name: RandomRotateZ, max_angle: 0.2}, "
        "{name: RandomScale, low: 0.95, high: 1.05}, {name: RandomJitter, sigma: 0.005, clip: 0.01}]",
        "data.batch_size=1", "data.repeat=50",
        "data.num_workers=0", "data.voxel.voxel_size=0.06", "train.epochs=6", "train.val_every=6",
        "train.lr_milestones=[5]", "train.log_every=10"])
    trainer = Trainer(cfg, progress=False)
    first = trainer.train_step(next(iter(trainer.loader(0)))[0])["loss"]
    metrics = trainer.fit()
    last = trainer.train_step(next(iter(trainer.loader(0)))[0])["loss"]
    trainer.close()
    return OverfitRun(cfg, cfg.run_path / "last.pth", metrics, first, last,
                      small_dataset.parent / "raw" / "scans" / OVERFIT_SCENE)

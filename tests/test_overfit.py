"""The whole training path can learn: overfitting one generated scene reaches AP50 >= 0.9."""

from pathlib import Path

from scene_pe.config import load_config
from scene_pe.engine.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def one_scene_root(src: Path, dst: Path, scene: str) -> Path:
    """A preprocessed root whose train and val splits are the same single scene."""
    (dst / "splits").mkdir(parents=True)
    for sub in ("scenes", "gt"):
        (dst / sub).symlink_to(src / sub)
    for split in ("train", "val"):
        (dst / "splits" / f"{split}.txt").write_text(scene + "\n")
    return dst


def test_overfitting_one_scene_reaches_ap50(small_dataset, tmp_path):
    root = one_scene_root(small_dataset, tmp_path / "one", "scene0000_00")
    cfg = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", [
        f"data.root={root}", f"run_dir={tmp_path / 'runs'}", "name=overfit",
        "data.train_transforms=[{name: CenterShift}]", "data.batch_size=1", "data.repeat=50",
        "data.num_workers=0", "data.voxel.voxel_size=0.06", "train.epochs=6", "train.val_every=6",
        "train.lr_milestones=[5]", "train.log_every=10"])
    trainer = Trainer(cfg, progress=False)
    first = trainer.train_step(next(iter(trainer.loader(0)))[0])["loss"]
    metrics = trainer.fit()
    last = trainer.train_step(next(iter(trainer.loader(0)))[0])["loss"]
    trainer.close()
    assert last < 0.2 * first
    assert metrics["ap50"] >= 0.9, metrics
    assert metrics["miou"] > 0.5

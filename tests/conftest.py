"""The suite's own environment, and its shared fixtures.

Environment (set here, so that ``python -m pytest tests`` from any directory, with
any OMP_NUM_THREADS, under xdist or not, gives what ``make test`` gives):
- one CPU thread per process (scene_pe/util/threads.py: MinkowskiEngine's CPU
  forward is bitwise repeatable only on one thread, and several tests compare
  runs bit for bit), for this process and the tools it starts;
- the repository root as working directory;
- every global random generator seeded before each test, so no test depends on
  what ran before it;
- hypothesis derandomized, without an example database (no replay of examples
  that an earlier run on this machine found);
- pytest.ini: a per-test timeout (pytest-timeout), so a hung test fails instead
  of hanging CI.

Fixtures: a small generated ScanNet-format dataset, preprocessed once per session,
and a small model overfitted on one of its scenes (trained once per session);
under pytest-xdist both are built once for all workers (``shared_folder``).
"""

import os
from pathlib import Path

from scene_pe.util.threads import set_cpu_threads  # imports neither torch nor ME

ROOT = Path(__file__).resolve().parent.parent
set_cpu_threads(1)  # before torch / MinkowskiEngine / OpenBLAS load; the tools the tests start inherit it
os.environ["PYTHONHASHSEED"] = "0"  # the tools the tests start
os.chdir(ROOT)

import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from filelock import FileLock  # noqa: E402
from hypothesis import settings  # noqa: E402

from scene_pe.config import Config, load_config  # noqa: E402
from scene_pe.data.preprocess import run_preprocess  # noqa: E402
from scene_pe.data.scannet import load_label_map  # noqa: E402
from scene_pe.synthetic.scenes import generate_dataset  # noqa: E402

settings.register_profile("scene_pe", derandomize=True, database=None, deadline=None)
settings.load_profile("scene_pe")


@pytest.fixture(autouse=True)
def _seeded_global_generators():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def shared_folder(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per session, whatever the number of xdist workers: the first
    worker to get the lock builds it in the session's common temporary folder, the others
    wait and reuse it. ``.complete`` marks a finished build (a failed one is built again)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # every worker's basetemp lies in the session's one
    folder = base / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def untrained_run_factory(small_dataset, tmp_path_factory):
    """``make(*overrides)``: a new untrained run folder on the small dataset (``untrained_run``)."""
    return lambda *extra: untrained_run(tmp_path_factory.mktemp("untrained") / "run", small_dataset, extra)


def untrained_run(run: Path, data_root: Path, extra: tuple[str, ...] = ()) -> Path:
    """A run folder (config.yaml, last.pth carrying its config) with a randomly initialised small
    model; val = the 2 train scenes of ``data_root`` (GT on both); settings that give instances."""
    from scene_pe.config import dump_config
    from scene_pe.model.build import build_model
    from scene_pe.train.checkpoint import save_checkpoint

    run.mkdir(parents=True)
    cfg = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", [
        f"data.root={data_root}", "data.val_split=train", "data.num_workers=0", "data.voxel.voxel_size=0.08",
        "model.backbone.stem_channels=8", "model.head.hidden=16", "inference.probabilistic.min_size=2",
        "inference.min_vertices=10", "inference.probabilistic.score_threshold=0",
        "inference.probabilistic.exclude_stuff=false", *extra])  # instances from random weights
    torch.manual_seed(0)
    (run / "config.yaml").write_text(dump_config(cfg))
    save_checkpoint(run / "last.pth", {"model": build_model(cfg).state_dict(), "step": 0, "epoch": 0,
                                       "config": dump_config(cfg)})
    return run


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
    return shared_folder(tmp_path_factory, "small", lambda f: make_preprocessed(f, 2, 1, 1)) / "pre"


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


def overfit_config(root: Path, run_dir: Path) -> Config:
    return load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", [
        f"data.root={root}", f"run_dir={run_dir}", "name=overfit",
        # mild augmentation: the voxel grid falls differently on the scene at every step, so the
        # model does not hinge on one grid (tools/predict.py's tests turn, scale and block the scene)
        "data.train_transforms=[{name: CenterShift}, {name: RandomRotateZ, max_angle: 0.2}, "
        "{name: RandomScale, low: 0.95, high: 1.05}, {name: RandomJitter, sigma: 0.005, clip: 0.01}]",
        "data.batch_size=1", "data.repeat=50", "train.deterministic=true",
        "data.num_workers=0", "data.voxel.voxel_size=0.06", "train.epochs=6", "train.val_every=6",
        "train.lr_milestones=[5]", "train.log_every=10"])


@pytest.fixture(scope="session")
def overfit_run(small_dataset, tmp_path_factory) -> OverfitRun:
    """The demo's model (6 cm voxels here) overfitted on one generated scene: 300 steps, one thread,
    deterministic algorithms. The same bits on every run of this machine; another CPU's float sums
    give another model of the same quality, so tests on it assert what such a model reliably does."""
    def train(folder: Path) -> None:
        from scene_pe.train.trainer import Trainer

        root = one_scene_root(small_dataset, folder / "one", OVERFIT_SCENE)
        trainer = Trainer(overfit_config(root, folder / "runs"), progress=False)
        first = trainer.train_step(next(iter(trainer.loader(0)))[0])["loss"]
        metrics = trainer.fit()
        last = trainer.train_step(next(iter(trainer.loader(0)))[0])["loss"]
        trainer.close()
        figures = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}  # not the result objects
        (folder / "result.json").write_text(json.dumps({"metrics": figures, "first": first, "last": last}))

    folder = shared_folder(tmp_path_factory, "overfit", train)
    cfg = overfit_config(folder / "one", folder / "runs")
    result = json.loads((folder / "result.json").read_text())
    return OverfitRun(cfg, cfg.run_path / "last.pth", result["metrics"], result["first"], result["last"],
                      small_dataset.parent / "raw" / "scans" / OVERFIT_SCENE)

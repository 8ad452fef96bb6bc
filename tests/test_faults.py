"""Training faults by injection on the CPU (train/faults.py): non-finite steps change nothing,
out of memory retries scene by scene, unreadable scenes and dead loader workers are skipped."""

import copy
import gc
import logging
import multiprocessing.queues
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from scene_pe.config import load_config
from scene_pe.util.errors import RunError

ROOT = Path(__file__).resolve().parent.parent


def copy_root(src: Path, dst: Path) -> Path:
    """A private copy of the preprocessed data (the tests damage its files)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("gt"))
    return dst


def make_trainer(root: Path, run_dir: Path, *extra: str):
    from scene_pe.train.trainer import Trainer

    cfg = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", [
        f"data.root={root}", f"run_dir={run_dir}", "name=faults", "data.num_workers=0", "data.batch_size=1",
        "data.repeat=2", "data.voxel.voxel_size=0.1", "train.epochs=100", "train.val_every=0",
        "train.deterministic=true", "data.train_transforms=[{name: CenterShift}]", *extra])
    return Trainer(cfg, progress=False)


class Captured(logging.Handler):
    """The trainer's log lines (its logging setup replaces pytest's capturing handler)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []
        logging.getLogger("scene_pe").handlers = [self]  # replaces the previous test's

    def emit(self, record):
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def snapshot(trainer):
    return copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.optimizer.state_dict())


def same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict):
            if not same(x, y):
                return False
        elif isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif x != y:
            return False
    return True


def batch(trainer, index: int):
    voxels, samples, bad = trainer.loader(0).collate_fn([trainer.loader(0).dataset[index]])
    assert not bad
    return voxels, samples


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_a_non_finite_step_changes_nothing_and_is_logged(small_dataset, tmp_path, monkeypatch, where):
    trainer = make_trainer(small_dataset, tmp_path, "train.max_bad_steps=3")
    caplog = Captured()
    voxels, samples = batch(trainer, 0)
    before = snapshot(trainer)
    param = next(trainer.model.parameters())
    if where == "loss":
        import scene_pe.train.trainer as T
        real = T.compute_loss
        monkeypatch.setattr(T, "compute_loss", lambda *a: (lambda r: type(r)(r.total * float("nan"), r.terms))(real(*a)))
    else:
        handle = param.register_hook(lambda g: g * float("inf"))
    for k in range(2):
        assert trainer.train_step(voxels, samples) is None
        assert voxels.scenes[0] in caplog.text and f"{k + 1} in a row" in caplog.text
    after = snapshot(trainer)
    assert same(before[1], after[1])  # Adam: no moments, no step count
    assert same(before[0], after[0])  # parameters and BatchNorm statistics alike
    with pytest.raises(RunError, match="3 training steps in a row"):
        trainer.train_step(voxels, samples)
    # the same batch without the fault: a real step that moves the parameters
    monkeypatch.undo()
    if where == "gradient":
        handle.remove()
    trainer.faults.bad_in_a_row = 0
    assert trainer.train_step(voxels, samples) is not None
    assert not torch.equal(next(trainer.model.parameters()), before[0][next(iter(before[0]))])
    trainer.close()


def test_out_of_memory_retries_scene_by_scene_and_leaves_out_a_scene_too_big(small_dataset, tmp_path):
    trainer = make_trainer(small_dataset, tmp_path, "data.batch_size=2")
    caplog = Captured()
    loader = trainer.loader(0)
    a, b = loader.dataset[0], loader.dataset[1]
    assert a["scene"] != b["scene"]
    big = b["scene"]

    def no_memory(module, inputs):
        voxels = inputs[0]
        if len(voxels.scenes) > 1 or big in voxels.scenes:  # what a small GPU would do
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    initial = snapshot(trainer)
    handle = trainer.model.register_forward_pre_hook(no_memory)
    values = trainer.train_step(*loader.collate_fn([a, b])[:2])
    assert values is not None and "retrying one scene at a time" in caplog.text
    assert f"scene {big} alone does not fit" in caplog.text and trainer.faults.oom_scenes == [(0, big)]
    retried = snapshot(trainer)
    # the step equals a plain step on the scene that fit, bitwise (weights 1/2 then x2 are exact)
    handle.remove()
    trainer.model.load_state_dict(initial[0])
    trainer.optimizer.load_state_dict(copy.deepcopy(initial[1]))
    plain = trainer.train_step(*loader.collate_fn([a])[:2])
    assert plain["loss"] == values["loss"]
    assert same(snapshot(trainer)[0], retried[0]) and same(snapshot(trainer)[1], retried[1])
    # no scene fits: the step is skipped, nothing changes
    trainer.model.register_forward_pre_hook(lambda m, i: (_ for _ in ()).throw(torch.OutOfMemoryError("none")))
    before = snapshot(trainer)
    assert trainer.train_step(*loader.collate_fn([a, b])[:2]) is None
    assert same(before[1], snapshot(trainer)[1])
    trainer.close()


def test_a_scene_file_that_turns_unreadable_mid_run_is_skipped(small_dataset, tmp_path):
    root = copy_root(small_dataset, tmp_path / "data")
    trainer = make_trainer(root, tmp_path / "runs", "train.max_steps=4")
    caplog = Captured()
    victim = trainer.train_set.scenes[1]
    path = root / "scenes" / f"{victim}.npz"
    calls = []

    def damage(module, inputs):  # after the first step's forward the file is cut short
        calls.append(inputs[0].scenes)
        if len(calls) == 1:
            path.write_bytes(path.read_bytes()[:1000])

    trainer.model.register_forward_pre_hook(damage)
    before = copy.deepcopy(trainer.model.state_dict())
    trainer.fit()
    assert trainer.step == 4
    assert list(trainer.faults.unreadable) == [victim] and str(path) in trainer.faults.unreadable[victim]
    assert f"scene {victim} skipped" in caplog.text and "unreadable scenes skipped" in caplog.text
    assert all(victim not in scenes for scenes in calls[1:]) and len(calls) >= 2
    assert any(not torch.equal(v, trainer.model.state_dict()[k]) for k, v in before.items())
    trainer.close()


def test_a_loader_worker_that_dies_is_replaced_and_its_batch_skipped(small_dataset, tmp_path, 
                                                                      monkeypatch):
    import scene_pe.data.dataset as dataset_module

    trainer = make_trainer(small_dataset, tmp_path, "data.num_workers=1", "train.max_steps=4")
    caplog = Captured()
    victim = trainer.train_set.scenes[0]
    real = dataset_module.load_scene

    def dies_on_victim(root, scene, *args):  # runs in the (forked) worker
        if scene == victim and torch.utils.data.get_worker_info() is not None:
            # after the worker's queue thread has sent every batch it holds: a worker killed while
            # sending leaves a cut message that blocks the DataLoader's reader for good. Closing a
            # queue and joining its thread returns once all its data is in the pipe, however
            # loaded the machine (a fixed sleep was not enough on a busy one)
            for queue in [o for o in gc.get_objects() if isinstance(o, multiprocessing.queues.Queue)]:
                queue.close()
                queue.join_thread()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(root, scene, *args)

    trainer.sampler.set_epoch(0)
    victim_steps = [s for s in range(4) if trainer.batch_scenes(s) == [victim]]
    assert 0 < len(victim_steps) < 4
    monkeypatch.setattr(dataset_module, "load_scene", dies_on_victim)
    trainer.fit()
    assert trainer.step == 4
    # the batches holding the victim, and only they, were lost; the others were trained on
    assert trainer.faults.lost_batches == [(s, [victim]) for s in victim_steps], caplog.text
    assert set(victim_steps) <= set(trainer.faults.worker_deaths)
    assert "loader workers died" in caplog.text
    trainer.close()


def test_a_batch_whose_worker_died_before_its_tensors_were_fetched_counts_as_a_worker_death():
    from scene_pe.train.faults import is_worker_death

    def raised(code: str, filename: str) -> BaseException:
        try:
            exec(compile(code, filename, "exec"))
        except BaseException as e:  # noqa: BLE001  (the raised error is what is looked at)
            return e
        raise AssertionError("nothing raised")

    # torch fetches a batch's tensors from the sending worker's resource sharer, gone with the worker
    sharer = "/usr/lib/python3/multiprocessing/resource_sharer.py"
    assert is_worker_death(raised("raise ConnectionResetError(104, 'Connection reset by peer')", sharer))
    assert is_worker_death(raised("raise EOFError()", sharer))
    assert not is_worker_death(raised("raise ConnectionResetError(104, 'reset')", "scene_pe/data/dataset.py"))
    assert is_worker_death(RuntimeError("DataLoader worker (pid(s) 12) exited unexpectedly"))
    assert is_worker_death(RuntimeError("DataLoader worker (pid 12) is killed by signal: Killed."))
    assert not is_worker_death(RuntimeError("CUDA error: an illegal memory access"))

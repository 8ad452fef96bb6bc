"""scene_pe/data/provenance.py: generated folders, preprocessed folders and checkpoints say what they
rest on; tools/predict.py and tools/test.py say it once, and older checkpoints read as unknown."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.data import provenance as P
from scene_pe.synthetic.profiles import GENERATOR_VERSION

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
import predict as predict_tool  # noqa: E402

spec = importlib.util.spec_from_file_location("provenance_test_tool", TOOLS / "test.py")  # not stdlib's test
test_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(test_tool)


def test_records_and_their_one_line_descriptions(tmp_path):
    assert P.read_provenance(tmp_path) is None
    gen = P.generated_record("scannet", 7, 3)
    P.write_provenance(tmp_path / "raw", gen)
    assert P.read_provenance(tmp_path / "raw") == gen
    pre = P.preprocessed_record(tmp_path / "raw", "scannet")
    assert pre["generated"] == gen and P.is_generated(pre)
    assert "generated rooms (scene_pe.synthetic profile scannet, generator version 7, seed 3" in P.describe(pre)
    real = P.preprocessed_record(tmp_path / "real", "scannet")  # a raw folder without a record
    assert real["generated"] is None and not P.is_generated(real)
    assert "no generator record" in P.describe(real)
    assert P.describe(None).startswith("unknown")  # a checkpoint from before the record
    assert P.describe(P.training_record(tmp_path / "nothing")).startswith("unknown")


def test_only_a_generated_model_gets_the_real_scan_note():
    gen = {"source": "x", "generated": P.generated_record("basic", 1, 0)}
    notes = P.checkpoint_notes(gen)
    assert len(notes) == 2 and "not on ScanNet" in notes[1] and P.REAL_SCANS in notes[1]
    assert len(P.checkpoint_notes(None)) == 1 and P.checkpoint_notes(None)[0] == "trained on: " + P.describe(None)
    assert len(P.checkpoint_notes({"source": "x", "generated": None})) == 1


def test_a_damaged_record_is_an_error_naming_the_file(tmp_path):
    (tmp_path / P.PROVENANCE_NAME).write_text("[1, 2")
    with pytest.raises(P.ProvenanceError, match=P.PROVENANCE_NAME):
        P.read_provenance(tmp_path)
    (tmp_path / P.PROVENANCE_NAME).write_text("[1, 2]")
    with pytest.raises(P.ProvenanceError, match="JSON object"):
        P.read_provenance(tmp_path)


def test_generated_and_preprocessed_folders_carry_the_generator_record(small_dataset):
    raw = P.read_provenance(small_dataset.parent / "raw")
    assert raw == P.generated_record("basic", GENERATOR_VERSION, 0)
    pre = P.training_record(small_dataset)
    assert pre["generated"] == raw and pre["source"] == str(small_dataset.parent / "raw")


def test_the_trainer_records_its_data_in_every_checkpoint(small_dataset, tmp_path):
    from conftest import ROOT
    from scene_pe.config import load_config
    from scene_pe.train.trainer import Trainer

    cfg = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", [
        f"data.root={small_dataset}", f"run_dir={tmp_path}", "data.num_workers=0", "model.backbone.stem_channels=8",
        "model.head.hidden=16"])
    trainer = Trainer(cfg, progress=False)
    try:
        assert trainer.state()[P.CHECKPOINT_KEY] == P.training_record(small_dataset)
    finally:
        trainer.close(barrier=False)


def with_record(checkpoint, record):
    ck = torch.load(checkpoint, weights_only=True)
    ck[P.CHECKPOINT_KEY] = record
    torch.save(ck, checkpoint)


def test_predict_says_once_what_the_checkpoint_rests_on_old_ones_unknown(untrained_run_factory, tmp_path, capsys):
    run = untrained_run_factory()
    rng = np.random.default_rng(0)
    cloud = tmp_path / "room.npy"  # a small flat room: the model is random, the notes are the point
    np.save(cloud, np.c_[rng.uniform(0, 3, (3000, 2)), rng.uniform(0, 0.05, 3000), rng.integers(0, 255, (3000, 3))])
    argv = [str(cloud), "--checkpoint", str(run / "last.pth"), "--out", str(tmp_path / "out"), "--no-render",
            "--no-html", "--no-progress", "--overwrite", "--threads", "1"]
    assert predict_tool.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("trained on: unknown") == 1 and "not on ScanNet" not in out
    assert json.loads((tmp_path / "out" / "room.json").read_text())["trained_on"] is None

    record = {"source": "data/pre", "layout": "scannet", "generated": P.generated_record("basic", 1, 0)}
    with_record(run / "last.pth", record)
    assert predict_tool.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("trained on: generated rooms") == 1 and out.count("not on ScanNet") == 1
    assert json.loads((tmp_path / "out" / "room.json").read_text())["trained_on"] == record


def test_test_py_says_it_once_and_records_it_in_metrics(small_dataset, untrained_run_factory, tmp_path, capsys):
    run = untrained_run_factory()
    record = P.training_record(small_dataset)
    with_record(run / "last.pth", record)
    argv = [str(run / "config.yaml"), "--checkpoint", str(run / "last.pth"), "--split", "val",
            "--out", str(tmp_path / "t"), "--no-progress"]
    assert test_tool.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("trained on: generated rooms (scene_pe.synthetic profile basic") == 1
    assert out.count("not on ScanNet") == 1
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["trained_on"] == record

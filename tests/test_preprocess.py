"""Tests for scene_pe.data.preprocess, tools/preprocess.py and scene_pe.util.io."""

from __future__ import annotations

import json

import importlib.util
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

from scene_pe.superpoints.segmentator import segment_mesh
import pytest

from scene_pe.data import preprocess as pp
from scene_pe.labels.label_set import IGNORE_LABEL
from scene_pe.data.scannet import LABEL_MAP_NAME, gt_ids, load_label_map, read_mesh, read_scene
from scene_pe.evaluation.io import read_gt_file
from scene_pe.util import io as sio
from test_scannet import _bad, expected_labels, make_scene

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("preprocess_tool", ROOT / "tools" / "preprocess.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

pytestmark = pytest.mark.filterwarnings("ignore::scene_pe.data.scannet.SceneWarning")

FORMAT = {"coords": (np.float32, 2), "colors": (np.uint8, 2), "normals": (np.float32, 2),
          "semantic": (np.int16, 1), "instance": (np.int32, 1), "segment": (np.int32, 1),
          "has_labels": (np.bool_, 0), "num_vertices": (np.int64, 0), "label_set": (np.dtype("<U16"), 0)}


def make_root(tmp: Path) -> Path:
    """2 good train scenes, 2 broken ones, a test scene in scans_test, a missing val scene."""
    root = tmp / "scannet"
    for s in ("scene0000_00", "scene0001_00", "scene0002_00", "scene0003_00"):
        make_scene(root, s)
    _bad("truncated", root / "scans" / "scene0002_00")
    _bad("segs_count", root / "scans" / "scene0003_00")
    make_scene(root, "scene0707_00", annotated=False, sub="scans_test")
    (root / "scannetv2_train.txt").write_text("scene0000_00\nscene0001_00\nscene0002_00\nscene0003_00\n")
    (root / "scannetv2_val.txt").write_text("scene0004_00\n")
    (root / "scannetv2_test.txt").write_text("scene0707_00\n")
    return root


def run_tool(root: Path, out: Path, *extra: str) -> int:
    return tool.main(["--scannet-root", str(root), "--out", str(out), "--no-progress", *extra])


def all_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file())


def test_batch_good_and_bad(tmp_path, capsys):
    root, out = make_root(tmp_path), tmp_path / "out"
    assert run_tool(root, out, "--split", "all", "--workers", "1") == 1
    text = capsys.readouterr().out
    assert "written 3, skipped 0 (already done), failed 3" in text
    for scene, fname in [("scene0002_00", "_vh_clean_2.ply"), ("scene0003_00", "segs.json"),
                         ("scene0004_00", "scene0004_00")]:
        assert any(line.startswith("FAILED") and scene in line and fname in line for line in text.splitlines())
    names = sorted(p.relative_to(out).as_posix() for p in all_files(out))
    assert names == ["gt/scene0000_00.txt", "gt/scene0001_00.txt", "label_set.txt", "preprocess_report.txt",
                     "scene_pe_provenance.json",  # what a model trained on this folder rests on
                     "scenes/scene0000_00.npz", "scenes/scene0001_00.npz", "scenes/scene0707_00.npz",
                     "splits/test.txt", "splits/train.txt", "splits/val.txt"]
    record = json.loads((out / "scene_pe_provenance.json").read_text())
    assert record == {"source": str(root), "layout": "scannet", "generated": None}  # no generator record here
    assert (out / "splits/train.txt").read_text() == "scene0000_00\nscene0001_00\n"
    assert (out / "splits/val.txt").read_text() == ""
    assert (out / "splits/test.txt").read_text() == "scene0707_00\n"

    lm = load_label_map(root / LABEL_MAP_NAME)
    with np.load(out / "scenes/scene0000_00.npz") as z:
        assert set(z.files) == set(FORMAT)
        for k, (dtype, ndim) in FORMAT.items():
            assert z[k].dtype == dtype and z[k].ndim == ndim, k
        raw = read_scene(root / "scans/scene0000_00", lm)
        np.testing.assert_array_equal(z["coords"], raw.coords)
        np.testing.assert_array_equal(z["normals"], raw.normals)
        np.testing.assert_array_equal(z["semantic"], expected_labels()["semantic"])
        np.testing.assert_array_equal(z["instance"], expected_labels()["instance"])
        assert bool(z["has_labels"]) and int(z["num_vertices"]) == raw.num_vertices
    np.testing.assert_array_equal(read_gt_file(out / "gt/scene0000_00.txt"), expected_labels()["gt"])
    with np.load(out / "scenes/scene0707_00.npz") as z:
        assert not bool(z["has_labels"]) and (z["semantic"] == IGNORE_LABEL).all()
        assert (z["instance"] == -1).all()
        # no segs.json: the built-in segmentator on the mesh as stored
        xyz, _, faces = read_mesh(root / "scans_test/scene0707_00/scene0707_00_vh_clean_2.ply", "scene0707_00")
        np.testing.assert_array_equal(z["segment"], segment_mesh(xyz, faces))


def test_resume_skip_overwrite(tmp_path):
    root, out = make_root(tmp_path), tmp_path / "out"
    split = {"train": ["scene0000_00", "scene0001_00", "scene0003_00"]}
    lm = load_label_map(root / LABEL_MAP_NAME)
    s = pp.run_preprocess(root, out, split, lm, progress=False)
    assert [r.status for r in s.results] == ["written", "written", "failed"] and not s.ok
    npz = out / "scenes/scene0000_00.npz"
    os.utime(npz, (1, 1))
    s = pp.run_preprocess(root, out, split, lm, progress=False)
    assert [r.status for r in s.results] == ["skipped", "skipped", "failed"]
    assert npz.stat().st_mtime == 1  # untouched
    # fixing the broken scene: only it is written; a missing GT makes a scene not done
    make_scene(root, "scene0003_00")
    (out / "gt/scene0001_00.txt").unlink()
    s = pp.run_preprocess(root, out, split, lm, progress=False)
    assert [r.status for r in s.results] == ["skipped", "written", "written"] and s.ok
    assert (out / "splits/train.txt").read_text().split() == split["train"]
    s = pp.run_preprocess(root, out, split, lm, overwrite=True, progress=False)
    assert [r.status for r in s.results] == ["written"] * 3 and npz.stat().st_mtime > 1


def test_worker_pool_matches_in_process(tmp_path):
    root = make_root(tmp_path)
    lm = load_label_map(root / LABEL_MAP_NAME)
    split = {"train": ["scene0000_00", "scene0001_00", "scene0002_00"], "test": ["scene0707_00"]}
    s1 = pp.run_preprocess(root, tmp_path / "o1", split, lm, workers=1, progress=False)
    s2 = pp.run_preprocess(root, tmp_path / "o2", split, lm, workers=2, progress=False)
    assert [(r.scene, r.status) for r in s1.results] == [(r.scene, r.status) for r in s2.results]
    assert s2.of("failed")[0].scene == "scene0002_00" and "_vh_clean_2.ply" in s2.of("failed")[0].reason
    f1, f2 = all_files(tmp_path / "o1"), all_files(tmp_path / "o2")
    assert [p.relative_to(tmp_path / "o1") for p in f1] == [p.relative_to(tmp_path / "o2") for p in f2]
    for a, b in zip(f1, f2):
        assert a.read_bytes() == b.read_bytes(), a.name
    # warnings raised inside workers come back with the result (unknown raw category)
    assert any("unknown thing" in w for r in s2.results for w in r.warnings)


def test_cli_split_files_and_scenes(tmp_path, capsys):
    root, out = make_root(tmp_path), tmp_path / "out"
    assert run_tool(root, out, "--split", "train", "--split-file", str(tmp_path / "nope.txt")) == 2
    custom = tmp_path / "mine.txt"
    custom.write_text("scene0001_00\nscene0707_00\n")
    assert run_tool(root, out, "--split-file", str(custom), "--workers", "1") == 0
    assert (out / "splits/mine.txt").read_text().split() == ["scene0001_00", "scene0707_00"]
    assert run_tool(root, out, "--split", "train", "--scenes", "scene0000_00", "--no-align") == 0
    # the split list names the train scenes done on disk (scene0001_00 from the earlier run)
    assert (out / "splits/train.txt").read_text().split() == ["scene0000_00", "scene0001_00"]
    with np.load(out / "scenes/scene0000_00.npz") as z:
        raw = read_scene(root / "scans/scene0000_00", load_label_map(root / LABEL_MAP_NAME), align=False)
        np.testing.assert_array_equal(z["coords"], raw.coords)
    assert "written 1, skipped 0" in capsys.readouterr().out


def test_gt_matches_reader(tmp_path):
    root, out = make_root(tmp_path), tmp_path / "out"
    lm = load_label_map(root / LABEL_MAP_NAME)
    pp.run_preprocess(root, out, {}, lm, scenes=["scene0001_00"], progress=False)
    raw = read_scene(root / "scans/scene0001_00", lm)
    np.testing.assert_array_equal(read_gt_file(out / "gt/scene0001_00.txt"), gt_ids(raw))
    assert not (out / "splits").exists()  # --scenes alone: no split lists


# ---------------------------------------------------------------- atomic writes
def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    dest = tmp_path / "a.npz"
    sio.save_npz_atomic(dest, x=np.arange(3))
    old = dest.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(sio.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        sio.save_npz_atomic(dest, x=np.arange(5))
    with pytest.raises(OSError):
        sio.save_npz_atomic(tmp_path / "new.npz", x=np.arange(5))
    assert dest.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_atomic_write_mode_and_content(tmp_path):
    sio.write_lines_atomic(tmp_path / "d" / "l.txt", ["a", "b"])
    p = tmp_path / "d" / "l.txt"
    assert p.read_text() == "a\nb\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    with np.load(_write_npz(tmp_path / "z.npz")) as z:
        np.testing.assert_array_equal(z["x"], np.arange(4))
    assert (tmp_path / "z.npz").is_file() and not (tmp_path / "z.npz.npz").exists()


def test_killed_writer_leaves_no_file(tmp_path):
    dest = tmp_path / "scenes" / "scene0000_00.npz"
    child = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
             "from scene_pe.util.io import atomic_open\n"
             f"with atomic_open({str(dest)!r}) as f:\n"
             "    f.write(b'x' * 1000); f.flush(); print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not dest.exists()
    left = list(dest.parent.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".scene0000_00.npz.") and left[0].suffix == ".tmp"
    assert sio.remove_stale_temps(dest) == 1 and not any(dest.parent.iterdir())


def _write_npz(path: Path) -> Path:
    sio.save_npz_atomic(path, x=np.arange(4))
    return path


# ---------------------------------------------------------------- synthetic round trip
def test_synthetic_round_trip(tmp_path):
    from scene_pe.data import scannet_files as sf
    from scene_pe.labels.label_set import SCANNET20
    from scene_pe.synthetic.scenes import generate_scene, scene_seed, write_scene
    from scene_pe.synthetic.catalog import used_label_rows

    root, out = tmp_path / "raw", tmp_path / "out"
    specs = {"scene0000_00": True, "scene0001_00": True, "scene0002_00": False}
    scenes = {}
    for i, (name, labelled) in enumerate(specs.items()):
        scenes[name] = generate_scene(name, scene_seed(7, i), 4000 + 1000 * i, with_labels=labelled)
        write_scene(scenes[name], root / ("scans" if labelled else "scans_test"))
    sf.write_labels_tsv(root / LABEL_MAP_NAME, used_label_rows())
    sf.write_split_list(root / "scannetv2_train.txt", ["scene0000_00", "scene0001_00"])
    sf.write_split_list(root / "scannetv2_test.txt", ["scene0002_00"])
    assert run_tool(root, out, "--workers", "1") == 0
    assert (out / "splits/train.txt").read_text().split() == ["scene0000_00", "scene0001_00"]

    for name, s in scenes.items():
        with np.load(out / "scenes" / f"{name}.npz") as z:
            # test scenes ship no axisAlignment: their coords stay in the raw frame
            ref = s.aligned_vertices() if s.has_labels else s.vertices
            np.testing.assert_allclose(z["coords"], ref, atol=1e-4)
            np.testing.assert_array_equal(z["colors"], s.colors[:, :3])
            assert int(z["num_vertices"]) == s.num_vertices and bool(z["has_labels"]) == s.has_labels
            assert np.allclose(np.linalg.norm(z["normals"], axis=1), 1, atol=1e-5)
            if not s.has_labels:
                assert (z["semantic"] == IGNORE_LABEL).all() and (z["instance"] == -1).all()
                assert not (out / "gt" / f"{name}.txt").exists()
                continue
            np.testing.assert_array_equal(z["segment"], s.segments)
            raw = read_scene(root / "scans" / name, load_label_map(root / LABEL_MAP_NAME))
            assert raw.label_disagreement == 0.0  # labels.ply agrees with aggregation + tsv
            np.testing.assert_array_equal(z["semantic"], SCANNET20.to_train(s.nyu40))
            # instances: objects of the 18 classes, numbered in objectId order
            inst_objects = [g["objectId"] for g in sorted(s.seg_groups, key=lambda g: g["objectId"])
                            if np.isin(s.nyu40[s.object_id == g["objectId"]], SCANNET20.instance_ids).any()]
            expected = np.full(s.num_vertices, -1)
            for k, oid in enumerate(inst_objects):
                expected[s.object_id == oid] = k
            np.testing.assert_array_equal(z["instance"], expected)
            assert len(inst_objects) >= 3
        gt = np.where(s.object_id >= 0, s.nyu40.astype(np.int64) * 1000 + s.object_id + 1, 0)
        np.testing.assert_array_equal(read_gt_file(out / "gt" / f"{name}.txt"), gt)

"""Fuzzing the readers of files from elsewhere (hypothesis): every input gets a valid result or the
project's clear error naming the file, never another exception or a hang.

Readers: raw ScanNet scenes (binary and ascii PLY mesh and labels, segs.json, aggregation.json,
meta txt), the labels tsv, split lists, config YAML, benchmark submissions (scene txt and mask
files, folders and zips). Examples per reader: SCENE_PE_FUZZ_EXAMPLES (default 40, derandomized
so CI repeats the same inputs); SCENE_PE_FUZZ_EXAMPLES=2000 for a long run. Each test counts
the inputs it tried; ``pytest tests/test_fuzz.py -s`` prints the totals.
"""

import json
import os
import shutil
import warnings
import zipfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plyfile import PlyData

from scene_pe.config import load_config
from scene_pe.data.dataset import preprocessed_split
from scene_pe.data.scannet import load_label_map, read_scene
from scene_pe.evaluation.io import evaluate_instance_submission, evaluate_semantic_submission
from scene_pe.export.validate import validate_submission
from scene_pe.synthetic.scenes import generate_dataset
from scene_pe.util.errors import SceneError
from scene_pe.util.io import int_lines_bytes, read_lines
from scene_pe.util.typed_config import ConfigError

EXAMPLES = int(os.environ.get("SCENE_PE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=20), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
TRIED: Counter = Counter()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\nfuzz inputs tried: {sum(TRIED.values())} ({dict(TRIED)})")


def clear(error: BaseException, path) -> bool:
    """The project's clear error: a ValueError subclass (SceneError, ConfigError, ArchiveError...)
    or OSError whose message names the file."""
    return isinstance(error, (ValueError, OSError)) and Path(path).name in str(error)


def expect_clear(call, path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call()
    except Exception as e:  # noqa: BLE001 - the point of the test
        if not clear(e, path):
            raise AssertionError(f"unclear error for {path}: {type(e).__name__}: {e}") from e
        return e


# -- mutations ---------------------------------------------------------------------------
WEIRD_TOKENS = ["0", "-1", "1", "3", "99999999999999999999", "4294967296", "nan", "inf", "float", "double",
                "uchar", "char", "int", "uint", "int64", "list", "uchar int", "vertex", "face", "x", "",
                "binary_big_endian", "binary_little_endian", "ascii", "end_header", "\xff\xfe", "element"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@st.composite
def byte_mutation(draw, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "non_utf8"]))
    n = len(data)
    if kind == "truncate":
        return data[:draw(st.integers(0, max(n - 1, 0)))]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            out[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    at = draw(st.integers(0, n))
    chunk = draw(st.binary(min_size=1, max_size=16)) if kind == "insert" else b"\xff\xfe\x80"
    return data[:at] + chunk + data[at:]


@st.composite
def ply_mutation(draw, data: bytes) -> bytes:
    end = data.index(b"end_header") + len(b"end_header\n")
    header, body = data[:end].decode("latin-1").split("\n"), data[end:]
    if draw(st.booleans()):  # a header token replaced: counts, types, names, format
        i = draw(st.integers(0, len(header) - 2))
        words = header[i].split(" ")
        j = draw(st.integers(0, len(words) - 1))
        words[j] = draw(st.sampled_from(WEIRD_TOKENS))
        header[i] = " ".join(words)
        return "\n".join(header).encode("latin-1") + body
    return draw(byte_mutation(data))


@st.composite
def json_mutation(draw, text: bytes) -> bytes:
    if draw(st.booleans()):
        return draw(byte_mutation(text))
    obj = json.loads(text)
    # walk to a random container and replace, delete or retype one entry
    node = obj
    for _ in range(draw(st.integers(0, 3))):
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        k = draw(st.sampled_from(keys[:50]))
        if not isinstance(node[k], (dict, list)) or not node[k]:
            break
        node = node[k]
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if keys:
        k = draw(st.sampled_from(keys[:50]))
        if isinstance(node, dict) and draw(st.booleans()):
            del node[k]
        else:
            node[k] = draw(JSON_VALUES | st.sampled_from([2 ** 63, -(2 ** 63) - 1, 10 ** 30, [], {}, "0"]))
    return json.dumps(obj, allow_nan=True).encode()


# -- raw scenes ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzraw")
    generate_dataset(root, 1, 0, 0, seed=3, num_vertices=(1500, 3000))
    scene_dir = next((root / "scans").iterdir())
    # an ascii copy of the mesh, for the ascii PLY reader
    ply = PlyData.read(str(next(scene_dir.glob("*_vh_clean_2.ply"))))
    ply.text = True
    ascii_path = root / "ascii_mesh.ply"
    ply.write(str(ascii_path))
    return scene_dir, load_label_map(root / "scannetv2-labels.combined.tsv"), ascii_path


def scene_file(scene_dir: Path, kind: str) -> Path:
    name = scene_dir.name
    return scene_dir / {"mesh": f"{name}_vh_clean_2.ply", "labels": f"{name}_vh_clean_2.labels.ply",
                        "segs": f"{name}_vh_clean_2.0.010000.segs.json",
                        "aggregation": f"{name}.aggregation.json", "meta": f"{name}.txt"}[kind]


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["mesh", "mesh_ascii", "labels", "segs", "aggregation", "meta"]))
def test_raw_scene_readers(raw_scene, tmp_path_factory, data, kind):
    src, label_map, ascii_mesh = raw_scene
    work = tmp_path_factory.mktemp("s") / src.name
    shutil.copytree(src, work)
    target = scene_file(work, "mesh" if kind == "mesh_ascii" else kind)
    original = ascii_mesh.read_bytes() if kind == "mesh_ascii" else target.read_bytes()
    if kind.startswith("mesh") or kind == "labels":
        mutated = data.draw(ply_mutation(original))
    elif kind in ("segs", "aggregation"):
        mutated = data.draw(json_mutation(original))
    else:
        mutated = data.draw(byte_mutation(original))
    target.write_bytes(mutated)
    TRIED[f"scene {kind}"] += 1
    for source in ("aggregation", "labels_ply"):
        out = expect_clear(lambda: read_scene(work, label_map, semantic_source=source), target)
        if not isinstance(out, Exception):
            n = out.num_vertices
            assert out.coords.shape == (n, 3) and np.isfinite(out.coords).all()
            assert out.instance.shape == out.semantic.shape == (n,)
        else:  # the reader's own error: the scene and the damaged file, not a bare ValueError or OSError
            assert isinstance(out, SceneError) and out.scene == work.name, repr(out)
            assert Path(out.path).name == target.name, repr(out)
    shutil.rmtree(work.parent)


# -- labels tsv, split lists, config YAML ----------------------------------------------------
@FUZZ
@given(data=st.data())
def test_labels_tsv(raw_scene, tmp_path_factory, data):
    tsv = raw_scene[0].parent.parent / "scannetv2-labels.combined.tsv"
    lines = tsv.read_bytes().split(b"\n")[:12]
    path = tmp_path_factory.mktemp("tsv") / "labels.tsv"
    path.write_bytes(data.draw(byte_mutation(b"\n".join(lines))))
    TRIED["labels tsv"] += 1
    out = expect_clear(lambda: load_label_map(path), path)
    if isinstance(out, dict):
        assert all(isinstance(k, str) and isinstance(v, int) for k, v in out.items())


@FUZZ
@given(text=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_split_lists(tmp_path_factory, text):
    root = tmp_path_factory.mktemp("split")
    (root / "splits").mkdir()
    path = root / "splits" / "val.txt"
    path.write_bytes(text)
    TRIED["split list"] += 1
    out = expect_clear(lambda: read_lines(path), path)
    out2 = expect_clear(lambda: preprocessed_split(root, "val"), path)
    if isinstance(out, list):
        assert out == out2 and all(s and s == s.strip() for s in out)


CONFIG_TEXT = (ROOT / "configs" / "synthetic_margin.yaml").read_bytes()
YAML_INSERTS = ["!!python/object/apply:os.system ['echo hi']", "&a [*a]", "{", "[[[[[[[[", "1e400", "-.inf",
                ".nan", "~", "yes", "0x10", "'", "!!binary aGk=", "*undefined", "<<: *x", "? complex"]


@FUZZ
@given(data=st.data())
def test_config_yaml(tmp_path_factory, data):
    base = tmp_path_factory.mktemp("cfg")
    shutil.copy(ROOT / "configs" / "synthetic_probabilistic.yaml", base / "synthetic_probabilistic.yaml")
    text = CONFIG_TEXT
    if data.draw(st.booleans()):
        lines = text.decode().split("\n")
        i = data.draw(st.integers(0, len(lines) - 1))
        key, sep, _ = lines[i].partition(":")
        lines[i] = key + sep + " " + data.draw(st.sampled_from(YAML_INSERTS) | st.text(max_size=12))
        text = "\n".join(lines).encode("utf-8", "surrogatepass")
    else:
        text = data.draw(byte_mutation(text))
    path = base / "fuzzed.yaml"
    path.write_bytes(text)
    TRIED["config yaml"] += 1
    try:
        load_config(path)
    except ConfigError as e:
        assert ".yaml" in str(e) or str(base) in str(e), e  # names the file (or the _base_ it points to)


# -- submissions: txt files, mask files, zips --------------------------------------------------
SCENE = "scene0000_00"
N = 400


def submission(root: Path) -> tuple[Path, Path]:
    sub, gt = root / "sub", root / "gt"
    (sub / "predicted_masks").mkdir(parents=True)
    gt.mkdir()
    ids = np.zeros(N, np.int64)
    ids[:150], ids[150:300] = 5001, 3002
    (gt / f"{SCENE}.txt").write_bytes(int_lines_bytes(ids))
    lines = []
    for k, (lo, hi, label) in enumerate([(0, 150, 5), (150, 300, 3), (300, 400, 7)]):
        m = np.zeros(N, np.int64)
        m[lo:hi] = 1
        (sub / "predicted_masks" / f"{SCENE}_{k:03d}.txt").write_bytes(int_lines_bytes(m))
        lines.append(f"predicted_masks/{SCENE}_{k:03d}.txt {label} {0.9 - 0.1 * k:.4f}\n")
    (sub / f"{SCENE}.txt").write_text("".join(lines))
    return sub, gt


LINE_TOKENS = ["nan", "inf", "-inf", "1e999", "99999999999999999999999", "-5", "0", "\xff", "predicted_masks/../x.txt",
               "/etc/passwd", "predicted_masks/scene0000_00_000.txt", "", "1.5", "3"]


@st.composite
def scene_txt_mutation(draw, text: bytes) -> bytes:
    if draw(st.booleans()):
        return draw(byte_mutation(text))
    lines = [ln.split(" ") for ln in text.decode().rstrip("\n").split("\n")]
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines[i]) - 1))
    lines[i][j] = draw(st.sampled_from(LINE_TOKENS) | st.text(max_size=6))
    return ("\n".join(" ".join(w) for w in lines) + "\n").encode("utf-8", "surrogatepass")


@FUZZ
@given(data=st.data(), target=st.sampled_from(["scene", "mask", "zip"]))
def test_instance_submissions(tmp_path_factory, data, target):
    sub, gt = submission(tmp_path_factory.mktemp("sub"))
    if target == "scene":
        path = sub / f"{SCENE}.txt"
        path.write_bytes(data.draw(scene_txt_mutation(path.read_bytes())))
    elif target == "mask":
        path = sub / "predicted_masks" / f"{SCENE}_001.txt"
        path.write_bytes(data.draw(byte_mutation(path.read_bytes())))
    if target == "zip":
        path = sub.parent / "sub.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(sub.rglob("*.txt")):
                zf.write(p, p.relative_to(sub).as_posix())
        path.write_bytes(data.draw(byte_mutation(path.read_bytes())))
        sub = path
    TRIED[f"submission {target}"] += 1
    problems = validate_submission(sub, {SCENE: N})  # never raises: a list of problems
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    out = expect_clear(lambda: evaluate_instance_submission(sub, gt), path)
    if not isinstance(out, Exception):
        result, missing = out
        ap = np.asarray(result.ap, dtype=float)
        assert missing == [] and (np.isnan(ap) | ((ap >= 0) & (ap <= 1))).all()


@FUZZ
@given(data=st.data())
def test_semantic_submissions(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("sem")
    sub, gt = submission(root)
    sem = root / "sem"
    sem.mkdir()
    path = sem / f"{SCENE}.txt"
    path.write_bytes(data.draw(byte_mutation(int_lines_bytes(np.r_[np.full(200, 5), np.full(200, 3)]))))
    TRIED["semantic submission"] += 1
    problems = validate_submission(sem, {SCENE: N}, task="semantic")
    assert isinstance(problems, list)
    expect_clear(lambda: evaluate_semantic_submission(sem, gt), path)

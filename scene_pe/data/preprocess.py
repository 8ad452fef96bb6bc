"""Raw ScanNet scenes -> compact ``<out>/scenes/<scene>.npz`` (+ ``<out>/gt/<scene>.txt``).

ScanNet++ scenes (``classes`` given: the release's benchmark classes) also get the benchmark's
semantic GT (``<out>/gt_semantic/``) and the evaluation's vertex mask (``<out>/gt_mask/``).

One scene per task in a process pool; every file is written atomically, so a killed run
leaves only finished files and a rerun skips finished scenes (resumable). A failing scene
is recorded with its reason and the others still run.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
from tqdm import tqdm

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.labels.folder import claim_label_set
from scene_pe.labels.scannetpp import BenchmarkClasses
from scene_pe.data.scannet import (LabelMap, RawScene, ScenePaths, SemanticSource, gt_ids,
                                   read_scene, write_gt_txt)
from scene_pe.data.provenance import preprocessed_record, write_provenance
from scene_pe.data.scannetpp import PlusPaths, read_plus_scene
from scene_pe.util.errors import SceneError
from scene_pe.util.io import (atomic_open, remove_stale_temps, save_npz_atomic, signed_int_lines_bytes,
                              write_lines_atomic, write_text_atomic)

SPLITS = ("train", "val", "test")
SCAN_DIRS = ("scans", "scans_test")  # ScanNet puts test scenes in scans_test
Status = Literal["written", "skipped", "failed"]


@dataclass
class SceneResult:
    scene: str
    status: Status
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    maxrss_mb: float = 0.0  # peak RSS of the process that ran the scene, so far


@dataclass
class Summary:
    results: list[SceneResult]
    split_files: dict[str, Path] = field(default_factory=dict)

    def of(self, status: Status) -> list[SceneResult]:
        return [r for r in self.results if r.status == status]

    @property
    def ok(self) -> bool:
        return not self.of("failed")

    def format(self, max_lines: int = 20) -> str:
        """Human-readable summary: counts, every failure with its reason, some warnings."""
        lines = [f"written {len(self.of('written'))}, skipped {len(self.of('skipped'))} (already "
                 f"done), failed {len(self.of('failed'))}"]
        lines += [f"FAILED {r.reason}" for r in self.of("failed")]
        warns = [w for r in self.results for w in r.warnings]
        if warns:
            lines.append(f"{len(warns)} warnings:")
            lines += [f"  {w}" for w in warns[:max_lines]]
            if len(warns) > max_lines:
                lines.append(f"  ... {len(warns) - max_lines} more")
        return "\n".join(lines)


def output_paths(out_dir: str | Path, scene: str) -> tuple[Path, Path]:
    """(npz path, GT txt path) of one scene."""
    out = Path(out_dir)
    return out / "scenes" / f"{scene}.npz", out / "gt" / f"{scene}.txt"


def plus_gt_paths(out_dir: str | Path, scene: str) -> tuple[Path, Path]:
    """ScanNet++: (semantic GT txt, evaluation vertex mask txt) of one scene."""
    out = Path(out_dir)
    return out / "gt_semantic" / f"{scene}.txt", out / "gt_mask" / f"{scene}.txt"


def _annotated(scene_dir: Path, classes: BenchmarkClasses | None) -> bool:
    return (PlusPaths if classes is not None else ScenePaths).of(scene_dir).annotated


def is_done(out_dir: str | Path, scene: str, annotated: bool) -> bool:
    """A scene is done when its npz and, if annotated, its GT txt exist."""
    npz, gt = output_paths(out_dir, scene)
    return npz.is_file() and (not annotated or gt.is_file())


def scene_arrays(raw: RawScene) -> dict[str, np.ndarray]:
    """The arrays of the preprocessed format (/tmp/format.md contract)."""
    return {
        "coords": raw.coords.astype(np.float32),
        "colors": raw.colors.astype(np.uint8),
        "normals": raw.normals.astype(np.float32),
        "semantic": raw.semantic.astype(np.int16),
        "instance": raw.instance.astype(np.int32),
        "segment": raw.segment.astype(np.int32),
        "has_labels": np.array(raw.has_labels, dtype=bool),
        "label_set": np.array(raw.label_set.name, dtype="<U16"),
        "num_vertices": np.array(raw.num_vertices, dtype=np.int64),
    }


def preprocess_scene(scene_dir: str | Path, out_dir: str | Path, label_map: LabelMap | None,
                     align: bool = True, overwrite: bool = False,
                     semantic_source: SemanticSource = "aggregation",
                     label_set: LabelSet = SCANNET20, classes: BenchmarkClasses | None = None) -> SceneResult:
    """Read one raw scene and write its npz (and GT txt); never raises for a bad scene.
    ``classes``: the scene is a ScanNet++ one, labelled with these benchmark classes."""
    scene_dir = Path(scene_dir)
    scene = scene_dir.name
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if not overwrite and is_done(out_dir, scene, _annotated(scene_dir, classes)):
                return SceneResult(scene, "skipped")
            plus = read_plus_scene(scene_dir, classes) if classes is not None else None
            raw = plus.raw if plus is not None else read_scene(
                scene_dir, label_map, align=align, semantic_source=semantic_source, label_set=label_set)
            npz, gt = output_paths(out_dir, scene)
            for path in (npz, gt, *plus_gt_paths(out_dir, scene)):  # leftovers of a killed run
                remove_stale_temps(path)
            if plus is not None:  # the benchmark's semantic GT and vertex mask, before the GT txt
                sem_path, mask_path = plus_gt_paths(out_dir, scene)
                write_gt_txt(mask_path, plus.eval_mask)
                if raw.has_labels:
                    with atomic_open(sem_path, "wb") as f:  # class index, -100 unlabelled (toolkit's)
                        f.write(signed_int_lines_bytes(plus.gt_semantic))
            if raw.has_labels:  # GT first: the npz marks the scene done
                write_gt_txt(gt, plus.gt_instance if plus is not None else gt_ids(raw))
            save_npz_atomic(npz, **scene_arrays(raw))
            status, reason = "written", ""
        except SceneError as e:
            status, reason = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - one broken scene must not stop the batch
            status = "failed"
            reason = f"{scene}: {scene_dir}: unexpected {type(e).__name__}: {e}\n{traceback.format_exc()}"
    return SceneResult(scene, status, reason, [str(w.message) for w in caught],
                       time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def find_scene_dir(root: str | Path, scene: str, plus: bool = False) -> Path | None:
    """``root/scans/<scene>`` or ``root/scans_test/<scene>``, whichever exists (ScanNet++:
    ``root/data/<scene>``, or ``root/<scene>`` when ``root`` is the release's data folder)."""
    for sub in (("data", ".") if plus else SCAN_DIRS):
        d = Path(root) / sub / scene
        if d.is_dir():
            return d
    return None


def split_file_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"scannetv2_{split}.txt"


def split_name(path: str | Path) -> str:
    """``scannetv2_val.txt`` -> ``val``; any other file -> its stem."""
    stem = Path(path).stem
    return stem[len("scannetv2_"):] if stem.startswith("scannetv2_") else stem


def _run_job(args: tuple) -> SceneResult:
    return preprocess_scene(*args)


def run_preprocess(root: str | Path, out_dir: str | Path, splits: dict[str, list[str]],
                   label_map: LabelMap | None, scenes: Iterable[str] | None = None,
                   workers: int = 1, overwrite: bool = False, align: bool = True,
                   semantic_source: SemanticSource = "aggregation",
                   progress: bool = True, label_set: LabelSet = SCANNET20,
                   classes: BenchmarkClasses | None = None) -> Summary:
    """Preprocess the scenes of ``splits`` (filtered by ``scenes``; or just ``scenes``).

    Writes ``<out>/splits/<split>.txt`` listing each split's scenes that are done on disk,
    ``<out>/label_set.txt`` and ``<out>/preprocess_report.txt``. ``workers <= 1`` runs in
    this process. An output folder holds one label set: another one is refused.
    """
    out_dir = Path(out_dir)
    plus = classes is not None
    if plus:
        label_set = classes.label_set()
    claim_label_set(out_dir, label_set, classes)
    write_provenance(out_dir, preprocessed_record(root, "scannetpp" if plus else "scannet"))  # what a model trains on
    wanted = list(dict.fromkeys(scenes)) if scenes is not None else None
    if splits:
        order = [s for names in splits.values() for s in names]
        if wanted is not None:
            keep = set(wanted)
            order = [s for s in order if s in keep]
    else:
        order = wanted or []
    order = list(dict.fromkeys(order))

    results: dict[str, SceneResult] = {}
    jobs = []
    for scene in order:
        d = find_scene_dir(root, scene, plus)
        if d is None:
            where = "data/" if plus else "scans/ or scans_test/"
            results[scene] = SceneResult(scene, "failed", str(SceneError(
                scene, Path(root) / ("data" if plus else SCAN_DIRS[0]) / scene, f"scene folder not found under {where}")))
        elif not overwrite and is_done(out_dir, scene, _annotated(d, classes)):
            results[scene] = SceneResult(scene, "skipped")
        else:
            jobs.append((d, out_dir, label_map, align, overwrite, semantic_source, label_set, classes))

    bar = tqdm(total=len(jobs), desc="preprocess", unit="scene", disable=not progress)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            r = _run_job(job)
            results[r.scene] = r
            bar.update()
    else:
        # forkserver: workers fork from a clean single-threaded server (no threads inherited
        # from tqdm here) that imported this module once, so N workers start fast.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            futures = {pool.submit(_run_job, job): job[0] for job in jobs}
            for fut in as_completed(futures):
                d = futures[fut]
                try:
                    r = fut.result()
                except Exception as e:  # noqa: BLE001 - e.g. a worker killed by the OOM killer
                    r = SceneResult(d.name, "failed", f"{d.name}: {d}: worker died: {type(e).__name__}: {e}")
                results[r.scene] = r
                bar.update()
    bar.close()

    summary = Summary([results[s] for s in order])
    for split, names in splits.items():
        done = [s for s in names if (d := find_scene_dir(root, s, plus)) is not None
                and is_done(out_dir, s, _annotated(d, classes))]
        path = out_dir / "splits" / f"{split}.txt"
        write_lines_atomic(path, done)
        summary.split_files[split] = path
    if order:
        write_text_atomic(out_dir / "preprocess_report.txt", summary.format(max_lines=10**9) + "\n")
    return summary


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))

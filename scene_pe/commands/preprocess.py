"""tools/preprocess.py: the scenes of the chosen splits (ScanNet's or ScanNet++'s layout) preprocessed
by a worker pool into the package's scene format, failures reported at the end."""

from __future__ import annotations

import sys
from pathlib import Path

from scene_pe.data.preprocess import SPLITS, run_preprocess, split_file_path, split_name
from scene_pe.data.scannet import LABEL_MAP_NAME, load_label_map
from scene_pe.data.scannetpp import SPLIT_FILES
from scene_pe.labels.label_set import SCANNETPP_NAME, get_label_set
from scene_pe.labels.scannetpp import METADATA_SUBDIR, read_benchmark_metadata
from scene_pe.util.io import read_lines


def split_path(root: Path, split: str, plus: bool) -> Path:
    return root / "splits" / SPLIT_FILES[split] if plus else split_file_path(root, split)


def run(a) -> int:
    """tools/preprocess.py's arguments -> exit status (1: some scenes failed, 2: bad arguments)."""
    root = a.scannet_root
    plus = a.dataset == "scannetpp"
    if (a.label_set == SCANNETPP_NAME) != plus and a.label_set is not None:
        print("error: the scannetpp label set goes with --dataset scannetpp (and only it)", file=sys.stderr)
        return 2
    classes = None
    if plus:
        try:
            classes = read_benchmark_metadata(a.metadata or root / METADATA_SUBDIR)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    splits: dict[str, list[str]] = {}
    names = list(SPLITS) if "all" in a.split else a.split
    if not names and not a.split_file and a.scenes is None:
        names = [s for s in SPLITS if split_path(root, s, plus).is_file()]
        if not names:
            where = "splits/<nvs_sem_train|nvs_sem_val|sem_test>.txt" if plus else "scannetv2_<split>.txt"
            print(f"error: no {where} in {root}; use --split-file or --scenes", file=sys.stderr)
            return 2
    for split in names:
        path = split_path(root, split, plus)
        if not path.is_file():
            print(f"error: split list {path} not found (give it with --split-file)", file=sys.stderr)
            return 2
        splits[split] = read_lines(path)
    for path in a.split_file:
        if not path.is_file():
            print(f"error: split list {path} not found (give it with --split-file)", file=sys.stderr)
            return 2
        splits[split_name(path)] = read_lines(path)

    tsv = a.label_map or root / LABEL_MAP_NAME
    label_map = None
    if plus:
        pass  # ScanNet++ maps raw labels with the metadata's map_benchmark.csv
    elif tsv.is_file():
        label_map = load_label_map(tsv)
    else:  # test scenes need none; annotated scenes then fail with a clear reason
        print(f"warning: label map {tsv} not found: annotated scenes will fail", file=sys.stderr)

    try:
        summary = run_preprocess(root, a.out, splits, label_map, scenes=a.scenes, workers=a.workers,
                                 overwrite=a.overwrite, align=not a.no_align,
                                 semantic_source=a.semantic_source, progress=not a.no_progress,
                                 label_set=classes.label_set() if plus else get_label_set(a.label_set or "scannet20"),
                                 classes=classes)
    except ValueError as e:  # e.g. the output folder holds another label set
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary.format())
    for split, path in summary.split_files.items():
        print(f"split {split}: {path}")
    return 0 if summary.ok else 1

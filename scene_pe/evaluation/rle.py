"""ScanNet++'s run-length encoded instance masks (its toolkit's ``common/utils/rle.py`` format).

A mask over N vertices is the JSON object ``{"length": N, "counts": "s1 l1 s2 l2 ..."}``:
runs of inside vertices, each a 1-based start and a length, in increasing order.
"""

from __future__ import annotations

import json

import numpy as np

from scene_pe.util.errors import SceneError


def rle_encode(mask) -> dict:
    """Bool (or 0/1) mask -> ``{"length": N, "counts": "..."}`` (the runs of non-zero vertices)."""
    m = np.asarray(mask).ravel() != 0
    padded = np.concatenate([[False], m, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1  # 1-based run starts and ends, interleaved
    edges[1::2] -= edges[::2]  # ends -> lengths
    return {"length": int(m.size), "counts": " ".join(map(str, edges.tolist()))}


def rle_bytes(mask) -> bytes:
    return json.dumps(rle_encode(mask)).encode()


def rle_indices(data: bytes, scene: str, path: str) -> tuple[np.ndarray, int]:
    """RLE JSON -> (sorted vertex indices inside, length); errors name the file."""
    try:
        obj = json.loads(data.decode("utf-8"))
        length, counts = obj["length"], obj["counts"]
        if not isinstance(length, int) or isinstance(length, bool) or not isinstance(counts, str):
            raise TypeError("'length' must be an integer and 'counts' a string")
        runs = np.asarray(counts.split(), dtype=np.int64) if counts.strip() else np.zeros(0, np.int64)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, OverflowError) as e:
        raise SceneError(scene, path, f"not a run-length encoded mask {{\"length\", \"counts\"}}: "
                                      f"{type(e).__name__}: {e}") from None
    if len(runs) % 2:
        raise SceneError(scene, path, "'counts' must hold start/length pairs")
    starts, lengths = runs[::2] - 1, runs[1::2]
    ends = starts + lengths
    if length < 0 or (len(runs) and (starts.min() < 0 or lengths.min() < 1 or ends.max() > length
                                     or (starts[1:] < ends[:-1]).any())):
        raise SceneError(scene, path, f"runs must be increasing, non-overlapping and inside 1..{length}")
    # indices: each run's start repeated, plus 0..len-1 within the run
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + offsets, int(length)

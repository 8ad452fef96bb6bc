"""ScanNet v2 benchmark classes and the maps between NYU40 ids and training ids.

The benchmark scores 20 semantic classes (NYU40 ids below); the 18 instance
classes are the same without wall and floor. Training ids are 0..19 in the
order of ``SEMANTIC_NYU40_IDS``; every other NYU40 id (and 0, unannotated)
maps to ``IGNORE_LABEL``.
"""

from __future__ import annotations

import numpy as np

IGNORE_LABEL = -100  # torch.nn.functional.cross_entropy's default ignore_index

SEMANTIC_NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SEMANTIC_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
    "bookshelf", "picture", "counter", "desk", "curtain", "refrigerator",
    "shower curtain", "toilet", "sink", "bathtub", "otherfurniture",
)
STUFF_NYU40_IDS = (1, 2)  # wall, floor: semantic classes without instances
INSTANCE_NYU40_IDS = tuple(i for i in SEMANTIC_NYU40_IDS if i not in STUFF_NYU40_IDS)
INSTANCE_NAMES = tuple(
    n for i, n in zip(SEMANTIC_NYU40_IDS, SEMANTIC_NAMES) if i not in STUFF_NYU40_IDS
)
NUM_SEMANTIC = len(SEMANTIC_NYU40_IDS)  # 20
NYU40_CLASS_NAME = dict(zip(SEMANTIC_NYU40_IDS, SEMANTIC_NAMES))  # benchmark NYU40 id -> class name
NUM_NYU40 = 41  # ids 0 (unannotated) .. 40

def index_table(ids, fill: int) -> np.ndarray:
    """Lookup table over NYU40 ids 0..40: position of the id in ``ids``, ``fill`` elsewhere."""
    table = np.full(NUM_NYU40, fill, dtype=np.int64)
    table[list(ids)] = np.arange(len(ids))
    return table


def map_nyu40(table: np.ndarray, nyu40, fill: int) -> np.ndarray:
    """``table[nyu40]`` for any int array; values outside 0..40 map to ``fill``."""
    a = np.asarray(nyu40, dtype=np.int64)
    out = np.full(a.shape, fill, dtype=np.int64)
    ok = (a >= 0) & (a < NUM_NYU40)
    out[ok] = table[a[ok]]
    return out


# Index with an integer array, no Python loops.
NYU40_TO_TRAIN = index_table(SEMANTIC_NYU40_IDS, IGNORE_LABEL)
TRAIN_TO_NYU40 = np.asarray(SEMANTIC_NYU40_IDS, dtype=np.int64)
# True for training ids whose class has instances (all but wall and floor).
TRAIN_IS_INSTANCE = np.isin(TRAIN_TO_NYU40, INSTANCE_NYU40_IDS)
INSTANCE_TRAIN_IDS = np.flatnonzero(TRAIN_IS_INSTANCE)


def nyu40_to_train(nyu40: np.ndarray) -> np.ndarray:
    """Map NYU40 ids (any int array, values 0..40) to training ids or IGNORE_LABEL."""
    return map_nyu40(NYU40_TO_TRAIN, nyu40, IGNORE_LABEL)

"""Predicted instance masks as the vertex indices inside each: what a submission reader finds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class SparseMasks:
    """K masks over N vertices as the vertex indices inside each (what a file reader finds).

    ``indices``: the masks' sorted vertex indices, concatenated; ``offsets``:
    (K + 1,), mask k is ``indices[offsets[k]:offsets[k + 1]]``. Matching on
    these skips scanning K x N booleans.
    """

    indices: np.ndarray
    offsets: np.ndarray
    num_vertices: int

    @classmethod
    def of(cls, masks: Sequence[np.ndarray], num_vertices: int) -> "SparseMasks":
        sizes = [len(m) for m in masks]
        indices = np.concatenate(masks).astype(np.int64, copy=False) if masks else np.zeros(0, np.int64)
        return cls(indices, np.concatenate(([0], np.cumsum(sizes, dtype=np.int64))), num_vertices)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.offsets) - 1, self.num_vertices

    def rows(self) -> np.ndarray:
        """Mask index of each entry of ``indices``."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.offsets))

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        out[self.rows(), self.indices] = True
        return out

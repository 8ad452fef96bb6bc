"""Trilinear interpolation on a rectilinear grid, fast and bit-identical to scipy's.

``RegularGridInterpolator(axes, values, bounds_error=False, fill_value=None)``
(linear) spends most of its time in generic per-corner fancy indexing; the
elastic distortion of every training scene calls it twice on ~150k points.
This computes the same floating-point operations in the same order (interval
``a[i] <= x < a[i + 1]`` clipped to the grid, so outside points extrapolate;
distance ``(x - a[i]) / (a[i + 1] - a[i])``; corner weights multiplied axis by
axis; the 8 corner terms summed in scipy's corner order), with flat gathers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _interval(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``clip(searchsorted(a, x, "right") - 1, 0, len(a) - 2)``: the node interval of each x.

    Guessed from the mean spacing and corrected against the nodes themselves
    (a binary search costs 6x more on a near-uniform grid); NaN -> the last interval.
    """
    last = len(a) - 2
    guess = (x - a[0]) * (last + 1) / (a[-1] - a[0])
    np.floor(guess, out=guess)
    guess[np.isnan(guess)] = last
    i = np.clip(guess, 0, last).astype(np.intp)
    while True:  # rarely more than one pass: the guess is off by one at most near nodes
        down = (x < a[i]) & (i > 0)
        up = (x >= a[i + 1]) & (i < last)
        if not (down.any() or up.any()):
            return i
        i += up.astype(np.intp) - down


def interp_trilinear(axes: Sequence[np.ndarray], values: np.ndarray,
                     points: np.ndarray) -> np.ndarray:
    """Values (float64, shape ``(len(points),) + values.shape[3:]``) at ``points`` (P, 3).

    ``axes``: three strictly ascending float64 node arrays of at least 2 nodes;
    ``values``: float64 of shape ``(len(a0), len(a1), len(a2), ...)``.
    """
    sizes = [len(a) for a in axes]
    if min(sizes) < 2 or values.shape[:3] != tuple(sizes):
        raise ValueError(f"need axes of >= 2 nodes matching values {values.shape}, got {sizes}")
    points = np.asarray(points, dtype=np.float64)
    index, weights = [], []
    for d, a in enumerate(axes):
        x = points[:, d]
        i = _interval(a, x)
        y = (x - a[i]) / (a[i + 1] - a[i])
        index.append(i)
        weights.append((1 - y, y))  # lower node, upper node
    flat = values.reshape(sizes[0] * sizes[1] * sizes[2], -1)
    base = (index[0] * sizes[1] + index[1]) * sizes[2] + index[2]
    strides = (sizes[1] * sizes[2], sizes[2], 1)
    value = None
    for b0 in (0, 1):
        for b1 in (0, 1):
            w01 = weights[0][b0] * weights[1][b1]
            for b2 in (0, 1):
                term = np.take(flat, base + (b0 * strides[0] + b1 * strides[1] + b2), axis=0)
                term *= (w01 * weights[2][b2])[:, None]
                if value is None:
                    value = 0.0 + term  # as scipy: 0.0 + (-0.0) is 0.0
                else:
                    value += term
    return value.reshape((len(points),) + values.shape[3:])

"""Lovasz hinge: a convex surrogate of the Jaccard loss (Berman et al. 2018).

For a binary problem with labels g_i in {0, 1} and real scores s_i, the hinge
errors are m_i = max(0, 1 - s_i (2 g_i - 1)). The Jaccard loss of the set M of
mispredicted items is Delta(M) = |M| / |G u M| (G: the positives); it is
submodular, and its Lovasz extension evaluated at m,

    loss(m) = sum_r m_(r) [Delta({(1..r)}) - Delta({(1..r-1)})],

with m_(1) >= m_(2) >= ... (errors sorted decreasingly), is the loss. The
bracket is the gradient of the extension: computed below from cumulative
counts of positives and negatives in the sorted order, for many rows at once.
"""

from __future__ import annotations

import torch


def jaccard_steps(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Delta of the first r sorted items minus Delta of the first r-1, per row.

    gt_sorted: (..., n) in {0, 1} (float), ordered by decreasing error.
    If the first r items (a_r positives, b_r negatives) are mispredicted, the
    intersection is P - a_r and the union P + b_r (P: all positives), so
    Delta_r = 1 - (P - a_r) / (P + b_r); the union is >= 1 for r >= 1.
    """
    pos_total = gt_sorted.sum(-1, keepdim=True)
    inter = pos_total - gt_sorted.cumsum(-1)
    union = pos_total + (1.0 - gt_sorted).cumsum(-1)
    delta = 1.0 - inter / union
    return torch.cat([delta[..., :1], delta[..., 1:] - delta[..., :-1]], dim=-1)


def lovasz_hinge_rows(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge of each row: scores (R, n) real, labels (R, n) bool -> (R,).

    Rows with no positive and no error give 0. n must be >= 1.
    """
    signs = labels.to(scores.dtype) * 2.0 - 1.0
    errors = 1.0 - scores * signs
    errors_sorted, order = torch.sort(errors, dim=-1, descending=True, stable=True)
    gt_sorted = torch.gather(labels.to(scores.dtype), -1, order)
    # The Jaccard steps depend only on the (fixed) permutation: no gradient.
    steps = jaccard_steps(gt_sorted).detach()
    return (torch.relu(errors_sorted) * steps).sum(-1)

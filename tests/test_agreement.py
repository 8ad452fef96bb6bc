"""Mesh-vs-cloud instance agreement (evaluation/agreement.py) against hand-computed cases and brute force."""

import itertools

import numpy as np
import pytest

from scene_pe.evaluation.agreement import instance_agreement


def test_a_hand_computed_pair():
    # first: A = {0,1,2,3}, B = {4,5}, C = {6}; second: X = {0,1,2}, Y = {4,5,6}, Z = {3}
    first = np.array([0, 0, 0, 0, 1, 1, 2, -1])
    second = np.array([5, 5, 5, 9, 7, 7, 7, -1])  # ids need not be contiguous
    a = instance_agreement(first, second, iou=0.7)
    # A-X 3/4, B-Y 2/3, C-Z 0 would be the pairing's rest; C-Y 1/3 loses to B-Y in the sum
    np.testing.assert_allclose(a.ious, [0.75, 2 / 3, 0.0])
    assert (a.agreeing, a.first, a.second) == (1, 3, 3) and a.fraction == pytest.approx(1 / 3)
    same = instance_agreement(first, np.where(first >= 0, first + 10, -1))
    assert same.agreeing == same.first == 3 and (same.ious == 1).all()
    assert instance_agreement(np.full(5, -1), first[:5]).first == 0
    with pytest.raises(ValueError, match="not the same scan"):
        instance_agreement(first, second[:-1])


def test_the_pairing_maximises_the_summed_iou():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, ka, kb = 60, rng.integers(1, 5), rng.integers(1, 5)
        first, second = rng.integers(-1, ka, n), rng.integers(-1, kb, n)
        a = instance_agreement(first, second)
        fa, fb = np.unique(first[first >= 0]), np.unique(second[second >= 0])
        iou = np.array([[np.sum((first == i) & (second == j)) / np.sum((first == i) | (second == j)) for j in fb]
                        for i in fa])
        # brute force over every one-to-one pairing of the smaller side into the larger
        if len(fa) <= len(fb):
            best = max(sum(iou[i, p[i]] for i in range(len(fa))) for p in itertools.permutations(range(len(fb)), len(fa)))
        else:
            best = max(sum(iou[p[j], j] for j in range(len(fb))) for p in itertools.permutations(range(len(fa)), len(fb)))
        assert a.ious.sum() == pytest.approx(best)

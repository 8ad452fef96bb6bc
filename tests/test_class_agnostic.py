"""evaluation/instance.class_agnostic: AP of the grouping alone, whatever class each mask was given."""

import numpy as np

from scene_pe.evaluation.instance import class_agnostic, evaluate_instances
from scene_pe.labels.label_set import SCANNET20

CHAIR, TABLE, WALL = 5, 7, 1  # NYU40


def test_a_right_mask_with_the_wrong_class_scores_only_class_agnostically():
    gt = np.array([CHAIR * 1000 + 1] * 200 + [TABLE * 1000 + 2] * 200 + [WALL * 1000 + 3] * 100 + [0] * 100)
    masks = np.zeros((2, len(gt)), bool)
    masks[0, :200] = True  # the chair, called a table
    masks[1, 200:400] = True  # the table, called a chair
    labels, scores = np.array([TABLE, CHAIR]), np.array([0.9, 0.8])
    per_class = evaluate_instances({"s": (masks, labels, scores)}, {"s": gt})
    assert per_class.mean_ap50 == 0.0
    merged_gt, merged_labels = class_agnostic(gt, labels)
    one = SCANNET20.instance_ids[0]
    assert set(np.unique(merged_gt // 1000)) == {0, one, WALL}  # the wall (no instance class) stays
    assert len(np.unique(merged_gt[merged_gt >= one * 1000])) == 2  # two objects stay two
    agnostic = evaluate_instances({"s": (masks, merged_labels, scores)}, {"s": merged_gt})
    assert agnostic.mean_ap50 == agnostic.mean_ap == 1.0
    assert int(np.nansum(agnostic.num_gt)) == 2 and np.isnan(agnostic.ap50[1:]).all()

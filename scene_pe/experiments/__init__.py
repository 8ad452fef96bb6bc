"""Experiments on trained runs: the paper's ablation and its report, threshold tuning, diagnosis."""

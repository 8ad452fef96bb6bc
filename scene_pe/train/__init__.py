"""Training: the loop, its loss, fault handling, checkpoints."""

"""Superpoints: the built-in over-segmentation (segmentator.py) and superpoint pooling."""

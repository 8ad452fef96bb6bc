"""Over-segmentation of meshes and point clouds into superpoints (ScanNet's segmentator, tools/segment.py)."""

"""scene_pe: 3D instance segmentation of ScanNet scenes with probabilistic embeddings."""

__version__ = "0.1.0"

"""scene_pe: 3D instance segmentation of ScanNet scenes with probabilistic embeddings."""

import warnings

__version__ = "0.1.0"

# The CPU build of MinkowskiEngine warns on every import that it has no CUDA;
# that is intended on CPU machines (tests, CI, the demo).
warnings.filterwarnings("ignore", message="The MinkowskiEngine was compiled with CPU_ONLY")

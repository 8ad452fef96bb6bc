"""scene_pe: 3D instance segmentation of ScanNet scenes with probabilistic embeddings.

A scene flows one way: raw scene (data/scannet.py) -> preprocessed scene (data/preprocess.py)
-> voxels (sparse/) -> backbone and head (model/) -> clusters (method/) -> per-vertex
predictions (inference/) -> evaluation/ and export/. Each unit imports only units below it
(tests/test_layers.py), bottom to top:

- util, labels, geometry: the ground floor every layer may use (errors and files; the label
  sets and the ignore label; normals), without torch;
- sparse, superpoints: a scene's voxels and its over-segmentation;
- evaluation, export: the benchmark's metrics and files, on plain arrays (no torch, no open3d);
- data: reading, preprocessing and loading scenes (uses the voxelizer and the segmentator);
- model, method: the network, then the paper's mathematics on its outputs;
- config: the typed config, built from the pieces' own config classes;
- inference, train, experiments: a network run on scenes, trained, studied;
- synthetic, viz, predict, env, viewer: the generated rooms, pictures, any scan in, checks of
  the machine, the HTML viewer, which use everything below;
- commands: what each tool in tools/ does once its arguments are parsed (the tools stay thin).
"""

import warnings

__version__ = "0.1.0"

# The CPU build of MinkowskiEngine warns on every import that it has no CUDA;
# that is intended on CPU machines (tests, CI, the demo).
warnings.filterwarnings("ignore", message="The MinkowskiEngine was compiled with CPU_ONLY")

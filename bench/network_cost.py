"""Multiply-accumulates of a config's network on one scene, counted from MinkowskiEngine's kernel maps.

    python bench/network_cost.py [--config configs/scannet_probabilistic.yaml] [--ply SCAN.ply]
                                 [--vertices 150000]

A sparse convolution does one (Cin x Cout) multiply-accumulate block per
(input, output) pair of its kernel map: the count below sums, over every
convolution the forward pass runs, the pairs MinkowskiEngine built times its
channels (a 1x1 convolution or linear layer: one pair per voxel). Normalisation,
activations and the heads' element-wise work are left out (a few per cent).
A training step costs about three forwards (forward, and backward to inputs
and to weights). The scene: ``--ply`` (a mesh's vertices and colours, e.g.
a ScanNet ``_vh_clean_2.ply``), else a generated ScanNet-profile room of
``--vertices`` vertices. Prints the voxels and the MACs per forward and per
training step (times: bench/bench_backbone.py; the hooks here slow the forward).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_sample(ply: Path | None, vertices: int) -> tuple[dict, str]:
    if ply is not None:
        from plyfile import PlyData

        v = PlyData.read(str(ply))["vertex"]
        xyz = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32)
        rgb = np.stack([v["red"], v["green"], v["blue"]], 1).astype(np.float32) / 255.0
        return {"coords": xyz, "colors": rgb, "normals": np.zeros_like(xyz)}, ply.name
    from scene_pe.synthetic.scenes import generate_scene

    scene = generate_scene("cost_scene", 0, num_vertices_target=vertices, profile="scannet")
    xyz = scene.aligned_vertices().astype(np.float32)
    return {"coords": xyz, "colors": scene.colors[:, :3].astype(np.float32) / 255.0,
            "normals": np.zeros_like(xyz)}, f"generated ScanNet-profile room ({len(xyz)} vertices)"


def count_macs(model, voxels) -> int:
    """Multiply-accumulates of one forward, from forward hooks on every ME convolution and linear layer."""
    import MinkowskiEngine as ME
    import torch

    total = [0]

    def hook(module, inputs, output):
        x, kg = inputs[0], module.kernel_generator
        cin, cout = module.kernel.shape[-2:]
        if kg.kernel_volume == 1 and not kg.requires_strided_coordinates:
            pairs = x.F.shape[0]
        else:
            maps = x.coordinate_manager.kernel_map(
                x.coordinate_map_key, output.coordinate_map_key, stride=kg.kernel_stride,
                kernel_size=kg.kernel_size, dilation=kg.kernel_dilation, region_type=kg.region_type,
                is_transpose=module.is_transpose)
            pairs = sum(int(m.shape[1]) for m in maps.values())
        total[0] += pairs * int(cin) * int(cout)

    def linear_hook(module, inputs, output):
        total[0] += inputs[0].F.shape[0] * module.linear.in_features * module.linear.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, ME.MinkowskiConvolution | ME.MinkowskiConvolutionTranspose)]
    handles += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, ME.MinkowskiLinear)]
    model.eval()
    with torch.no_grad():
        model(voxels)
    for h in handles:
        h.remove()
    return total[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "scannet_probabilistic.yaml")
    ap.add_argument("--ply", type=Path, help="a mesh or cloud PLY with vertex colours (default: a generated room)")
    ap.add_argument("--vertices", type=int, default=150_000, help="generated room size (without --ply)")
    args = ap.parse_args(argv)
    if args.ply is not None and not args.ply.is_file():
        print(f"network_cost: {args.ply}: no such file", file=sys.stderr)
        return 2
    import torch

    from scene_pe.config import load_config
    from scene_pe.model.build import build_model
    from scene_pe.sparse.voxelize import voxelize

    cfg = load_config(args.config)
    sample, what = load_sample(args.ply, args.vertices)
    voxels = voxelize([sample], cfg.data.voxel)
    torch.manual_seed(0)
    macs = count_macs(build_model(cfg), voxels)
    print(f"{args.config.name}: {cfg.model.backbone.name} at {cfg.data.voxel.voxel_size * 100:g} cm on {what}: "
          f"{voxels.coordinates.shape[0]} voxels; {macs / 1e9:.1f} GMAC per forward ({2 * macs / 1e9:.1f} GFLOP), "
          f"~{3 * macs / 1e9:.0f} GMAC per training step and scene")
    return 0


if __name__ == "__main__":
    sys.exit(main())

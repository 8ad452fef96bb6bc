"""Checks of the machine scene_pe runs on: the MinkowskiEngine build and its convolution, GPU timings, DDP (make gpu-check), the check as one folder for another machine (make gpu-bundle)."""

"""Label sets: the classes each benchmark scores, their ids, and the ignore label (no torch, no open3d)."""

"""The ScanNet benchmark's metrics: instance AP / AP50 / AP25, semantic IoU, uncertainty AUROC, their file readers (no torch, no open3d)."""

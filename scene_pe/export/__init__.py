"""Benchmark submission files and their validation (no torch, no open3d)."""

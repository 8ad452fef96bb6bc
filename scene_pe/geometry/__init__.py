"""Geometry every layer shares: normals of meshes and point clouds."""

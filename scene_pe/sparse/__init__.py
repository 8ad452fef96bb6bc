"""Voxelization of a scene into a MinkowskiEngine sparse tensor, and the maps back to its vertices."""

"""From a trained network to per-vertex predictions: outputs, clusters, vertices, prediction files, loader evaluation."""

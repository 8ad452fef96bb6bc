"""The paper's mathematics on head outputs: kernels, both heads' losses, greedy clustering, uncertainty, superpoint pooling."""

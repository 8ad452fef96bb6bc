"""Helpers with no knowledge of scenes or the method: errors, atomic files, archives, typed configs, threads, process groups, the CUDA architectures of a build against a GPU."""

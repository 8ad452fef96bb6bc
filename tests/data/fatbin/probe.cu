// A one-line kernel compiled for tests/test_cuda_arch.py (see README.md beside it).
__global__ void scene_pe_probe(float *x) { x[threadIdx.x] += 1.0f; }

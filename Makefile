# The two commands of the README. Both set up everything they need first
# (venv, Debian prerequisites, the patched MinkowskiEngine wheel).
VENV ?= .venv
PY := $(VENV)/bin/python
# One OpenMP thread per process unless set: MinkowskiEngine's CPU kernels and
# torch's small ops slow down by up to 10x when OpenMP threads of several
# processes (loader workers, test subprocesses) spin on 2 shared cores, and
# one thread makes CPU runs bitwise repeatable.
export OMP_NUM_THREADS ?= 1

# Test workers (pytest-xdist): one per core this process may use (nproc follows taskset; it
# also obeys OMP_NUM_THREADS, which make >= 4.4 passes to $(shell): so without it).
TEST_WORKERS ?= $(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)

.PHONY: setup test demo gpu-check gpu-bundle docker-check lock clean-venv

setup:
	VENV=$(VENV) ./tools/setup_env.sh

test: setup
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile

demo: setup
	$(PY) tools/demo.py $(DEMO_ARGS)

# MinkowskiEngine's CUDA build and convolution, training / inference timings on
# the GPU (CPU part only without CUDA); docs/gpu.md. Build with ME_CUDA=1 there.
gpu-check: setup
	$(PY) tools/gpu_check.py $(GPU_CHECK_ARGS)

# The GPU check as one folder (.gpu/, under 60 MiB: the CUDA MinkowskiEngine wheel, a saved
# scene, the sources, run.sh) for a machine with a CUDA torch and nothing else; docs/gpu.md.
gpu-bundle: setup
	$(PY) tools/gpu_bundle.py $(GPU_BUNDLE_ARGS)

# Build docker/Dockerfile's CPU image and test it in containers (docs/docker.md); needs
# root or a running Docker daemon. Not part of setup: it runs on the host's Python.
docker-check: setup
	./docker/check.sh

# requirements.lock: the exact versions setup installs (after changing requirements.txt)
lock:
	./tools/lock_requirements.sh

clean-venv:
	rm -rf $(VENV)

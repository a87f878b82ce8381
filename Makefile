# Everything starts from python3 alone: `make demo` and `make test` create .venv on first use.
# The CPU build of torch is pinned, and installed before anything that depends on torch, so that
# set-up never pulls the CUDA wheels. Two stages, each with its stamp: $(STAMP) holds what the demo
# needs (torch, Triton, the package with its native op, the plot extra); $(TEST_STAMP) adds the test
# extra and torchrec. `make test` after `make demo` installs only the difference.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TRITON_SPEC ?= triton==3.8.0
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_JSON ?=

.PHONY: setup test lint demo bench clean

setup: $(TEST_STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.h csrc/*.cpp csrc/cuda/*.cu)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q "$(TRITON_SPEC)" setuptools wheel
	@# FUSEDSCHED_BUILD_NATIVE from the environment: 0 skips fusedsched._C, 1 requires it, unset tries.
	$(PY) -m pip install -q --no-build-isolation -e ".[plot]"
	touch $@

# The test extra's requirements are read from the installed package's metadata: installing
# ".[test]" would reinstall, and so rebuild, the package itself. The trainers
# (requirements-trainers.txt), the other stacks' schedulers (requirements-stacks.txt) and torchrec
# with its needs come last, pinned and without their metadata's torchvision, fbgemm-gpu, CUDA
# packages and unpinned torch: pip checks dependencies after every install that has them, and would
# then report those as missing.
$(TEST_STAMP): $(STAMP) requirements-trainers.txt requirements-stacks.txt requirements-torchrec.txt
	$(PY) -c 'import importlib.metadata as m; print("\n".join(r.split(";")[0] for r in m.requires("fusedsched") if "extra == \"test\"" in r))' > $(VENV)/requirements-test.txt
	$(PY) -m pip install -q -r $(VENV)/requirements-test.txt
	$(PY) -m pip install -q --no-deps -r requirements-trainers.txt
	DS_BUILD_OPS=0 $(PY) -m pip install -q --no-deps --no-build-isolation -r requirements-stacks.txt
	$(PY) -m pip install -q --no-deps -r requirements-torchrec.txt
	touch $@

test: $(TEST_STAMP)
	$(PY) -m pytest -q tests

# ruff's rules are pyproject.toml's [tool.ruff]; .ci/run runs this after the tests.
lint: $(TEST_STAMP)
	$(PY) -m ruff check src tests benchmarks scripts setup.py

demo: $(STAMP)
	$(PY) -m fusedsched demo

# BENCH_JSON=out.json also writes the results as JSON.
bench: $(STAMP)
	$(PY) -m fusedsched bench $(if $(BENCH_JSON),--json "$(BENCH_JSON)")

clean:
	rm -rf $(VENV) .venv-cuda build src/*.egg-info src/fusedsched/_C*.so

# --- GPU readiness, checked without a GPU -----------------------------------------------------
# check-gpu-build compiles both GPU kernels for sm_80 and sm_90 on a machine with no GPU: the
# native extension with its CUDA kernel against the CUDA build of torch in $(CUDA_VENV) (kept apart
# from .venv, whose torch is the CPU build), and the Triton kernel ahead of time with .venv's
# Triton (scripts/check_gpu_build.py). CUDA_HOME names the nvcc toolkit to build with.
CUDA_VENV ?= .venv-cuda
CUDA_PY := $(CUDA_VENV)/bin/python
CUDA_TORCH_SPEC ?= torch==2.14.1
CUDA_HOME ?= /usr/local/cuda
CUDA_ARCHS ?= 8.0;9.0
CUDA_STAMP := $(CUDA_VENV)/.installed

.PHONY: check-gpu-build gpu-wheels

$(CUDA_STAMP):
	test -x $(CUDA_PY) || $(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_PY) -m pip install -q "$(CUDA_TORCH_SPEC)" setuptools wheel ninja numpy
	touch $@

check-gpu-build: $(STAMP) $(CUDA_STAMP)
	$(PY) scripts/check_gpu_build.py --cuda-python $(CUDA_PY) --cuda-home "$(CUDA_HOME)" --archs "$(CUDA_ARCHS)"

# --- GPU evidence kit (CONTRIBUTING.md, "GPU evidence") ----------------------------------------------
# gpu-wheels puts into .whl/ the cp312 wheels the lent GPU machine lacks (it has no network), checks
# that every requirement is either carried or on that machine, and records the commit in .whl/SOURCE.
GPU_WHEELS ?= pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
	typing-extensions==4.16.0

gpu-wheels:
	$(PYTHON) scripts/gpu_wheels.py $(GPU_WHEELS)

# Everything starts from python3 alone: `make test` and `make demo` create .venv on first use.
# The CPU build of torch is pinned so that set-up never pulls the CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TRITON_SPEC ?= triton==3.8.0
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py requirements-torchrec.txt $(wildcard csrc/*.h csrc/*.cpp csrc/cuda/*.cu)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q "$(TRITON_SPEC)" setuptools wheel
	@# torchrec and its needs, pinned, without their metadata's fbgemm-gpu and unpinned torch.
	$(PY) -m pip install -q --no-deps -r requirements-torchrec.txt
	@# FUSEDSCHED_BUILD_NATIVE from the environment: 0 skips fusedsched._C, 1 requires it, unset tries.
	$(PY) -m pip install -q --no-build-isolation -e ".[test,plot]"
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) -m fusedsched demo

bench: $(STAMP)
	$(PY) -m fusedsched bench

clean:
	rm -rf $(VENV) build src/*.egg-info src/fusedsched/_C*.so

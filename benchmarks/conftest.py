"""pytest-benchmark suites for fusedsched; the measuring code is :mod:`fusedsched.tools.bench`'s.

Not collected by ``make test`` (pyproject's ``testpaths`` is ``tests``). Run, e.g.::

    .venv/bin/python -m pytest benchmarks/ --benchmark-columns=median,iqr,min,max,rounds,iterations

``FUSEDSCHED_BENCH_DEVICE`` (``cpu`` / ``cuda``; default cuda when available) and
``FUSEDSCHED_BENCH_GROUPS`` (default ``1,10,100,1000,10000``) set the grid; ``scheduler.step()`` is
timed in both of :data:`fusedsched.tools.bench.REGIMES` (schedules active, and finished). Every result carries
``extra_info``: device, versions, commit, backend, groups. Nothing here asserts a time; on CPU the
CUDA-only suites skip with a reason. pytest-benchmark runs the candidates one after the other;
``python -m fusedsched bench`` alternates them round-robin in one process instead.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from fusedsched.tools import bench

DEVICE = torch.device(os.environ.get("FUSEDSCHED_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))
GROUPS = [int(g) for g in os.environ.get("FUSEDSCHED_BENCH_GROUPS", "1,10,100,1000,10000").split(",")]
SCHEDULER_CANDIDATES = [bench.fused_name(b) for b in bench.device_backends(DEVICE)] + [
    bench.HOST, bench.LAMBDA_FLOAT, bench.LAMBDA_TENSOR]
TRAINING_VARIANTS = [bench.GRAPH_FUSED, bench.GRAPH_FLOOR, bench.GRAPH_HOST_FILL, bench.EAGER_LAMBDA]
NODE_CANDIDATES = [bench.fused_name(b) for b in bench.device_backends(DEVICE)] + [bench.NODE_FLOOR]

def pytest_generate_tests(metafunc):
    """The declared grid: ``groups`` x the candidate list each suite asks for by fixture name."""
    for name, values in (("groups", GROUPS), ("scheduler_candidate", SCHEDULER_CANDIDATES),
                         ("training_variant", TRAINING_VARIANTS), ("node_candidate", NODE_CANDIDATES),
                         ("regime", list(bench.REGIMES))):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values)


@pytest.fixture(scope="session")
def device() -> torch.device:
    return DEVICE


@pytest.fixture(scope="session")
def require_cuda() -> None:
    if DEVICE.type != "cuda":
        pytest.skip(f"needs CUDA; benchmarking on {DEVICE.type}")


@pytest.fixture(scope="session")
def env() -> dict:
    return bench.stamp(DEVICE)


@pytest.fixture
def measure(benchmark, env):
    """``measure(fn, group, **info)``: pedantic timing of ``fn`` (synchronized on GPU), stamped."""

    def run(fn, group: str, rounds: int = 15, warmup_rounds: int = 3, target_s: float = 0.005, **info):
        if DEVICE.type == "cuda":
            def call():
                fn()
                torch.cuda.synchronize(DEVICE)
        else:
            call = fn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LambdaLR's first step warns that optimizer.step() was not called
            call()
        benchmark.group = group
        benchmark.extra_info.update(env, **info)
        benchmark.pedantic(call, rounds=rounds, warmup_rounds=warmup_rounds,
                           iterations=bench.calibrate(call, DEVICE, target_s))

    return run

"""Property tests over random configs of the new kinds (``kind_strategies``) at steps beside their
edges and far away: the native CPU op's float64 equals ``compute_lr`` bit for bit; every backend
is within one float32 ulp; the vectorized form and the compiled program agree with ``compute_lr``;
configs survive a dump / load round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _compare import assert_lrs_match, expected_f32
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kind_strategies import NEW_KIND_STRATEGIES

from fusedsched import LearningRate, compute_lr, compute_lr_array
from fusedsched.config import MAX_STEP, dump_config, load_config
from fusedsched.ops import _native, advance_, unavailable_reason
from fusedsched.kinds import build_table
from fusedsched.program import evaluate_table
from fusedsched.schedules import schedule_marks

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow to inf, 0 * inf in extreme draws
BACKENDS = [b for b in ("native", "reference", "triton") if unavailable_reason(b, "cpu") is None]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _scale(cfg: LearningRate) -> float:
    """The config's largest finite rate: rounding in a formula is relative to its terms, not its result."""
    def floats(data):
        if isinstance(data, float):
            yield data
        elif isinstance(data, dict):
            for v in data.values():
                yield from floats(v)
        elif isinstance(data, list):
            for v in data:
                yield from floats(v)

    return max((abs(v) for v in floats(cfg.model_dump(exclude_none=True)) if math.isfinite(v)), default=0.0)


def _ints(data) -> set[int]:
    if isinstance(data, bool):
        return set()
    if isinstance(data, int):
        return {data}
    if isinstance(data, dict):
        return set().union(set(), *map(_ints, data.values()))
    if isinstance(data, list):
        return set().union(set(), *map(_ints, data))
    return set()


@st.composite
def configs_and_steps(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(NEW_KIND_STRATEGIES)), min_size=1, max_size=4))
    configs = [draw(NEW_KIND_STRATEGIES[k]) for k in kinds]
    edges = sorted({0} | set(m for c in configs for m in schedule_marks(c))
                   | set().union(*(_ints(c.model_dump(exclude_none=True)) for c in configs)))
    near = st.builds(lambda m, d: min(max(m + d, 0), MAX_STEP), st.sampled_from(edges), st.integers(-2, 2))
    steps = draw(st.lists(st.one_of(near, st.integers(0, 300), st.integers(0, MAX_STEP)), min_size=1, max_size=6))
    return configs, steps


@pytest.mark.skipif(_native._C is None, reason=f"native extension not available: {_native.REASON}")
@SETTINGS
@given(configs_and_steps())
def test_native_float64_is_compute_lr(case):
    configs, steps = case
    table = build_table(configs).table
    step, lrs = torch.zeros((), dtype=torch.int64), torch.zeros(len(configs), dtype=torch.float64)
    for s in steps:
        step.fill_(s)
        torch.ops.fusedsched.advance_native_.default(step, table, lrs, 0)
        for got, cfg in zip(lrs.tolist(), configs):
            want = compute_lr(cfg, s)
            assert got == want or (math.isnan(got) and math.isnan(want)), (cfg, s, got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(case=configs_and_steps())
def test_every_backend_within_one_ulp(backend, case):
    configs, steps = case
    table = build_table(configs).table
    for s in steps:
        step, lrs = torch.tensor(s), torch.zeros(len(configs), dtype=torch.float32)
        advance_(step, table, lrs, 0, backend)
        assert_lrs_match(lrs, expected_f32(configs, s), f"{backend} step {s}: {configs}")


@SETTINGS
@given(configs_and_steps())
def test_program_and_array_agree_with_compute_lr(case):
    configs, steps = case
    table = build_table(configs).table
    scale = np.array([_scale(c) for c in configs])
    for s in steps:
        want = np.array([compute_lr(c, s) for c in configs])
        got = evaluate_table(table, torch.tensor(s)).numpy()
        array = np.array([compute_lr_array(c, np.array([s]))[0] for c in configs])
        for other, what in ((got, "program"), (array, "array")):  # torch's / numpy's libm: last bits differ
            with np.errstate(invalid="ignore", over="ignore"):
                close = (other == want) | (np.isnan(other) & np.isnan(want)) | (
                    np.abs(other - want) <= 1e-12 * np.maximum(np.abs(want), scale))
            assert close.all(), (what, s, configs, other, want)


@SETTINGS
@given(st.sampled_from(sorted(NEW_KIND_STRATEGIES)).flatmap(lambda k: NEW_KIND_STRATEGIES[k]))
def test_dump_load_round_trip(cfg):
    for fmt in ("dict", "yaml", "json"):
        assert load_config(dump_config(cfg, fmt), LearningRate) == cfg

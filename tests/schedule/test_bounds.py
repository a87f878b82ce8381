"""Each kind's ``bounds()`` against its values: ``schedule_bounds`` is never narrower than
``compute_lr`` over a dense sample of steps (every step up to 160, every mark and config number
with its neighbours, powers of two up to 2**62), and where a kind's docstring calls its bound
exact, both ends are values some sampled step takes.

NaN bounds mean "a value may be NaN": a sampled NaN needs them, and they come in pairs.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import FAR_STEPS, KIND_STRATEGIES, ints_in

from fusedsched import LearningRate
from fusedsched.schedule.kinds import kind_row, schedule_bounds
from fusedsched.schedule.kinds._row import fold_ranges, widened
from fusedsched.schedule.plateau_state import PlateauColumn, plateau_update
from fusedsched.schedule.reference import prepare_lr

LIMIT = 2**62


def sampled_steps(cfg: LearningRate) -> list[int]:
    """Every step worth evaluating: the first 160, each mark and each integer of the config with
    its neighbours (a kind's extremes sit there), far steps, and powers of two and their neighbours."""
    edges = set(kind_row(cfg).marks()) | ints_in(cfg.model_dump(exclude_none=True))
    steps = set(range(160)) | {e + d for e in edges for d in range(-3, 4)} | set(FAR_STEPS)
    steps |= {2**k + d for k in range(8, 63) for d in (-1, 0, 1)}
    return sorted(s for s in steps if 0 <= s <= LIMIT)


def exact(cfg: LearningRate) -> bool:
    """The configs whose bounds the kinds' docstrings call exact (both ends attained)."""
    s = cfg.schedule
    if cfg.kind in ("constant", "piecewise_constant", "linear_ramp_to_constant", "linear_ramp_to_cosine",
                    "polynomial_decay", "log_warmup"):
        return True
    if cfg.kind == "cosine_annealing":
        return s.hard_restarts or s.k_decay != 1
    if cfg.kind == "warmup_stable_decay":
        return s.ramp_shape != "cosine" or s.num_ramp_steps == 0
    return False


def check_bounds(cfg: LearningRate) -> tuple[float, float]:
    lo, hi = schedule_bounds(cfg)
    f = prepare_lr(cfg)
    values = [f(s) for s in sampled_steps(cfg)]
    assert math.isnan(lo) == math.isnan(hi), (lo, hi)
    nans = [v for v in values if math.isnan(v)]
    if math.isnan(lo):
        if exact(cfg):
            assert nans, f"exact bounds are NaN but no sampled value is: {cfg}"
        return lo, hi
    assert not nans, f"a value is NaN, the bounds ({lo!r}, {hi!r}) are not: {cfg}"
    outside = [v for v in values if not lo <= v <= hi]
    assert not outside, f"values {outside[:3]} outside the bounds ({lo!r}, {hi!r}) of {cfg}"
    if exact(cfg):
        assert lo in values and hi in values, f"exact bounds ({lo!r}, {hi!r}) not attained: {cfg}"
    return lo, hi


@pytest.mark.parametrize("kind", sorted(KIND_STRATEGIES))
@settings(max_examples=60)
@given(data=st.data())
def test_every_kinds_values_lie_within_its_bounds(kind, data):
    check_bounds(data.draw(KIND_STRATEGIES[kind]))


def test_every_kind_has_bounds():
    assert set(KIND_STRATEGIES) == set(LearningRate.KINDS)


# --- the bounds of particular configs --------------------------------------------------------------


def _cfg(**kind) -> LearningRate:
    return LearningRate.model_validate(kind)


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (_cfg(constant=0.9), (0.9, 0.9)),
        (_cfg(piecewise_constant={"learning_rate_boundaries": [0, 5], "learning_rate_values": [7.0, 0.5, 0.25]}),
         (0.25, 0.5)),  # 7.0 is never reached: the first boundary is 0
        (_cfg(linear_ramp_to_constant={"learning_rate": 0.999, "num_ramp_steps": 10}), (0.0, 0.999)),
        # the README example: not a momentum cycle, from 0.038 up to 0.95 and down to 3.8e-6
        (_cfg(one_cycle={"max_learning_rate": 0.95, "total_steps": 1000}), (0.95 / 25 / 1e4, 0.95)),
        (_cfg(one_cycle={"base_momentum": 0.85, "max_momentum": 0.95, "total_steps": 300}), (0.85, 0.95)),
        (_cfg(cyclic={"base_learning_rate": 0.95, "max_learning_rate": 0.85, "step_size_up": 7}), (0.85, 0.95)),
        (_cfg(exponential_decay={"learning_rate": 0.5, "decay_rate": 1.01, "decay_steps": 3}), (0.5, math.inf)),
        (_cfg(exponential_decay={"learning_rate": 0.5, "decay_rate": 1.01, "decay_steps": 3, "end_learning_rate": 0.9}),
         (0.5, 0.9)),
        (_cfg(exponential_decay={"learning_rate": 0.5, "decay_rate": 0.5, "decay_steps": 3}), (0.0, 0.5)),
        (_cfg(inverse_sqrt={"learning_rate": 0.5, "num_ramp_steps": 4}), (0.0, 0.5)),
        (_cfg(plateau={"learning_rate": 0.5, "min_learning_rate": 0.1}), (0.1, 0.5)),
        (_cfg(plateau={"learning_rate": 0.5, "min_learning_rate": 0.7}), (0.5, 0.5)),
        (_cfg(cosine_with_restarts={"learning_rate": 0.5, "cycle_steps": 4, "cycle_decay": 1.5}), (math.nan, math.nan)),
        (_cfg(product={"schedules": [{"constant": 0.9}, {"constant": 1.5}]}), (0.9 * 1.5, 0.9 * 1.5)),
        (_cfg(join={"schedules": [{"constant": 0.3}, {"linear_ramp_to_constant": {"learning_rate": 0.9, "num_ramp_steps": 2}}],
                    "boundaries": [5]}), (0.0, 0.9)),
    ],
    ids=lambda v: v.kind if isinstance(v, LearningRate) else None,
)
def test_bounds_of_known_configs(cfg, expected):
    got = check_bounds(cfg)
    assert repr(got) == repr(expected)


def test_a_one_cycle_on_whole_steps_attains_both_ends():
    cfg = _cfg(one_cycle={"max_learning_rate": 0.95, "total_steps": 1000, "div_factor": 4.0, "final_div_factor": 2.0})
    lo, hi = check_bounds(cfg)
    values = [compute for compute in map(prepare_lr(cfg), range(1001))]
    assert lo == min(values) and hi == max(values)


def test_products_mind_signs_and_zero():
    assert fold_ranges([(-2.0, 3.0), (-5.0, 4.0)]) == (-15.0, 12.0)
    assert fold_ranges([(0.0, 2.0), (0.5, 0.5), (3.0, 3.0)]) == (0.0, 3.0)
    lo, hi = fold_ranges([(0.0, 1.0), (1.0, math.inf)])  # 0 * inf: a value may be NaN
    assert math.isnan(lo) and math.isnan(hi)
    assert widened((0.0, 1.0))[0] == 0.0 and widened((0.0, 1.0))[1] > 1.0
    assert widened((-1.0, -0.5)) < (-1.0, -0.5) and widened((-1.0, -0.5))[1] <= 0.0


def test_a_product_regrouped_by_a_join_stays_within_its_bounds():
    """A join whose schedules are products, as a later factor of a product: (a * b) * c regrouped."""
    inner = {"product": {"schedules": [{"constant": 0.7}, {"linear_ramp_to_constant": {"learning_rate": 0.3, "num_ramp_steps": 7}}]}}
    cfg = _cfg(product={"schedules": [{"cosine_annealing": {"learning_rate": 0.9, "num_steps": 13}},
                                      {"join": {"schedules": [inner, {"constant": 0.11}], "boundaries": [20]}}]})
    check_bounds(cfg)


@settings(max_examples=60)
@given(rate=st.floats(1e-300, 1e300), low=st.one_of(st.just(0.0), st.floats(0.0, 1e300)),
       factor=st.floats(0.0, 0.5), eps=st.one_of(st.just(0.0), st.just(1e-8)))
def test_a_plateau_lowered_by_its_metrics_stays_within_its_bounds(rate, low, factor, eps):
    """No metric ever improves: every reduction lowers the rate until min_learning_rate (or eps) stops it."""
    cfg = _cfg(plateau={"learning_rate": rate, "min_learning_rate": low, "factor": factor, "patience": 0, "eps": eps})
    lo, hi = schedule_bounds(cfg)
    column = cfg.plateau.settings().fresh()
    seen = [column[PlateauColumn.VALUE]]
    for _ in range(2500):
        plateau_update(column, 1.0)
        seen.append(column[PlateauColumn.VALUE])
    assert all(lo <= v <= hi for v in seen) and max(seen) == hi == rate
    if eps == 0:  # halving at least, from below 1e300: min_learning_rate (or 0) is reached
        assert min(seen) == lo

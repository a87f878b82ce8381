"""Hypothesis strategies for valid configs of the schedule kinds beyond tml's four.

``NEW_KIND_STRATEGIES[kind]`` draws valid ``LearningRate`` configs of that kind (built through the
pydantic model, so every draw passes validation); ``join`` and ``product`` nest other kinds.
Step counts are mostly small (a short run crosses every edge) and sometimes anywhere up to
``MAX_STEP``; learning rates are mostly ordinary and sometimes extreme (0, subnormal, huge).
"""

from __future__ import annotations

from typing import Any

import pydantic
from hypothesis import strategies as st

from fusedsched import LearningRate
from fusedsched.config import MAX_STEP

FAR_STEPS = (2**40 - 1, 2**40, 2**40 + 1, 2**41)


def counts(min_value: int = 0, max_value: int = MAX_STEP) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(min_value, min(50, max_value)), st.integers(min_value, max_value),
                     st.sampled_from([v for v in FAR_STEPS if min_value <= v <= max_value] or [min_value]))


rates = st.one_of(
    st.sampled_from([0.0, 0.1, 1e-3, 3e-4, 1.0, 0.7]),
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
)
positives = st.one_of(st.sampled_from([0.5, 0.9, 1.0, 2.0, 0.999]), st.floats(min_value=1e-3, max_value=50.0))
shapes = st.sampled_from(["linear", "cosine", "1-sqrt"])


def _config(kind: str, schedule: Any) -> LearningRate:
    return LearningRate.model_validate({kind: schedule})


@st.composite
def _exponential_decay(draw):
    return _config("exponential_decay", {
        "learning_rate": draw(rates), "decay_rate": draw(positives), "decay_steps": draw(counts(1)),
        "num_ramp_steps": draw(counts(0)), "staircase": draw(st.booleans()),
        "end_learning_rate": draw(st.one_of(st.none(), rates))})


@st.composite
def _polynomial_decay(draw):
    ramp = draw(counts(0, MAX_STEP - 1))
    return _config("polynomial_decay", {
        "learning_rate": draw(rates), "end_learning_rate": draw(rates), "num_ramp_steps": ramp,
        "final_num_steps": ramp + draw(counts(1, MAX_STEP - ramp)), "power": draw(positives)})


@st.composite
def _warmup_stable_decay(draw):
    ramp = draw(counts(0))
    stable = draw(counts(0, MAX_STEP - ramp))
    return _config("warmup_stable_decay", {
        "learning_rate": draw(rates), "final_learning_rate": draw(rates), "num_ramp_steps": ramp,
        "num_stable_steps": stable, "num_decay_steps": draw(counts(0, MAX_STEP - ramp - stable)),
        "decay_shape": draw(shapes), "ramp_shape": draw(shapes), "num_cycles": draw(positives)})


@st.composite
def _cosine_annealing(draw):
    return _config("cosine_annealing", {
        "learning_rate": draw(rates), "final_learning_rate": draw(rates), "num_ramp_steps": draw(counts(0)),
        "num_steps": draw(counts(1)), "num_cycles": draw(st.one_of(st.just(0.5), positives)),
        "hard_restarts": draw(st.booleans())})


@st.composite
def _cosine_with_restarts(draw):
    return _config("cosine_with_restarts", {
        "learning_rate": draw(rates), "final_learning_rate": draw(rates), "num_ramp_steps": draw(counts(0)),
        "cycle_steps": draw(counts(1)), "cycle_mult": draw(st.one_of(st.integers(1, 4), st.integers(1, 1000))),
        "cycle_decay": draw(positives)})


@st.composite
def _one_cycle(draw):
    for _ in range(20):  # a zero-length phase is invalid: draw again
        try:
            return _config("one_cycle", {
                "max_learning_rate": draw(rates), "total_steps": draw(counts(1)),
                "pct_start": draw(st.floats(0.0, 1.0)), "anneal_strategy": draw(st.sampled_from(["cos", "linear"])),
                "div_factor": draw(positives), "final_div_factor": draw(positives),
                "three_phase": draw(st.booleans())})
        except pydantic.ValidationError:
            continue
    return _config("one_cycle", {"max_learning_rate": 0.1, "total_steps": 100})


@st.composite
def _inverse_sqrt(draw):
    return _config("inverse_sqrt", {"learning_rate": draw(rates), "num_ramp_steps": draw(counts(0)),
                                    "timescale": draw(st.one_of(st.none(), counts(1)))})


def _plain() -> st.SearchStrategy[LearningRate]:
    tml = st.one_of(
        rates.map(lambda c: _config("constant", c)),
        st.builds(lambda lr, ramp: _config("linear_ramp_to_constant", {"learning_rate": lr, "num_ramp_steps": ramp}),
                  rates, counts(1)),
    )
    return st.one_of(tml, *(s for k, s in NEW_KIND_STRATEGIES.items() if k not in ("join", "product")))


@st.composite
def _join(draw):
    schedules = draw(st.lists(_plain(), min_size=1, max_size=3))
    boundaries = sorted(draw(st.sets(counts(0), min_size=len(schedules) - 1, max_size=len(schedules) - 1)))
    return _config("join", {"schedules": [s.model_dump(exclude_none=True) for s in schedules], "boundaries": boundaries})


@st.composite
def _product(draw):
    schedules = draw(st.lists(st.one_of(_plain(), _join()), min_size=1, max_size=3))
    return _config("product", {"schedules": [s.model_dump(exclude_none=True) for s in schedules]})


NEW_KIND_STRATEGIES: dict[str, st.SearchStrategy[LearningRate]] = {
    "exponential_decay": _exponential_decay(),
    "polynomial_decay": _polynomial_decay(),
    "warmup_stable_decay": _warmup_stable_decay(),
    "cosine_annealing": _cosine_annealing(),
    "cosine_with_restarts": _cosine_with_restarts(),
    "one_cycle": _one_cycle(),
    "inverse_sqrt": _inverse_sqrt(),
}
NEW_KIND_STRATEGIES["join"] = _join()
NEW_KIND_STRATEGIES["product"] = _product()

"""Hypothesis strategies for valid schedule configs: one strategy per ``LearningRate`` kind.

``KIND_STRATEGIES[kind]`` draws valid ``LearningRate`` configs of that kind (built through the
pydantic model, so every draw passes validation). ``test_properties.py`` fails when a name in
``LearningRate.KINDS`` has no entry here: a new kind needs its strategy added beside the others.

Step counts and boundaries are mostly small (so a short run of ``step()`` crosses every edge) and
sometimes anywhere up to ``MAX_STEP`` (2**53 - 2, the largest the config accepts); learning rates
are mostly ordinary and sometimes extreme (0, subnormal, beyond float32's range).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from kind_strategies import NEW_KIND_STRATEGIES

from fusedsched import LearningRate
from fusedsched.config import MAX_STEP

#: Steps near the precision goal's bound (DESIGN.md: exact to within 1 ulp up to at least 2**40).
FAR_STEPS = (2**40 - 1, 2**40, 2**40 + 1, 2**41)


def step_counts(min_value: int = 0) -> st.SearchStrategy[int]:
    """An integer step count or boundary ``>= min_value``: usually below 50, sometimes huge."""
    return st.one_of(
        st.integers(min_value, 50),
        st.integers(min_value, MAX_STEP),
        st.sampled_from([v for v in FAR_STEPS if v >= min_value]),
    )


#: A learning rate: finite and >= 0, as the config requires.
rates = st.one_of(
    st.sampled_from([0.0, 0.1, 1e-3, 3e-4, 1.0, 0.7]),
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),  # subnormals up to 1.8e308
)


def _config(kind: str, schedule: Any) -> LearningRate:
    return LearningRate.model_validate({kind: schedule})


@st.composite
def _piecewise_constant(draw: st.DrawFn) -> LearningRate:
    boundaries = sorted(draw(st.sets(step_counts(0), max_size=6)))
    values = draw(st.lists(rates, min_size=len(boundaries) + 1, max_size=len(boundaries) + 1))
    return _config("piecewise_constant", {"learning_rate_boundaries": boundaries, "learning_rate_values": values})


@st.composite
def _linear_ramp_to_cosine(draw: st.DrawFn) -> LearningRate:
    ramp = draw(step_counts(1).filter(lambda r: r < MAX_STEP))
    final = ramp + draw(st.one_of(st.integers(1, 50), st.integers(1, MAX_STEP - ramp)))
    return _config(
        "linear_ramp_to_cosine",
        {
            "learning_rate": draw(rates),
            "final_learning_rate": draw(rates),
            "num_ramp_steps": ramp,
            "final_num_steps": final,
        },
    )


KIND_STRATEGIES: dict[str, st.SearchStrategy[LearningRate]] = {
    "constant": rates.map(lambda c: _config("constant", c)),
    "piecewise_constant": _piecewise_constant(),
    "linear_ramp_to_constant": st.builds(
        lambda lr, ramp: _config("linear_ramp_to_constant", {"learning_rate": lr, "num_ramp_steps": ramp}),
        rates,
        step_counts(1),
    ),
    "linear_ramp_to_cosine": _linear_ramp_to_cosine(),
    **NEW_KIND_STRATEGIES,  # the kinds beyond tml's four, join and product nesting them
}

#: A valid config of any kind that has a strategy.
learning_rates = st.one_of(*KIND_STRATEGIES.values())


def _ints_in(data: Any) -> set[int]:
    """Every integer in a config's dump: its step counts and boundaries, whatever the kind."""
    if isinstance(data, bool):
        return set()
    if isinstance(data, int):
        return {data}
    if isinstance(data, dict):
        return set().union(*map(_ints_in, data.values())) if data else set()
    if isinstance(data, (list, tuple)):
        return set().union(*map(_ints_in, data)) if data else set()
    return set()


def interesting_steps(configs: list[LearningRate]) -> st.SearchStrategy[int]:
    """A step worth visiting for ``configs``: at or beside one of their edges, small, or far away."""
    marks = sorted({0} | set().union(*(_ints_in(c.model_dump(exclude_none=True)) for c in configs)))
    near_a_mark = st.builds(
        lambda mark, offset: min(max(mark + offset, 0), MAX_STEP), st.sampled_from(marks), st.integers(-2, 2)
    )
    return st.one_of(near_a_mark, st.integers(0, 60), st.integers(0, 2**41), st.sampled_from(FAR_STEPS))

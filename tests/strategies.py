"""Hypothesis strategies for valid schedule configs: one strategy per ``LearningRate`` kind.

``KIND_STRATEGIES[kind]`` draws valid ``LearningRate`` configs of that kind (built through the
pydantic model, so every draw passes validation); ``join``, ``product`` and ``offset`` nest other kinds.
``NEW_KIND_STRATEGIES`` holds those of the kinds beyond tml's four. ``test_properties.py`` fails
when a name in ``LearningRate.KINDS`` has no entry here: a new kind needs its strategy added beside
the others.

Step counts and boundaries are mostly small (so a short run of ``step()`` crosses every edge) and
sometimes anywhere up to ``MAX_STEP`` (2**53 - 2, the largest the config accepts); learning rates
are mostly ordinary and sometimes extreme (0, subnormal, beyond float32's range).
"""

from __future__ import annotations

from typing import Any

import pydantic
from hypothesis import strategies as st

from fusedsched import LearningRate
from fusedsched.tml.config import MAX_STEP

#: Steps near the precision goal's bound (docs/precision.md: within 1 ulp up to at least 2**40).
FAR_STEPS = (2**40 - 1, 2**40, 2**40 + 1, 2**41)


def step_counts(min_value: int = 0, max_value: int = MAX_STEP) -> st.SearchStrategy[int]:
    """An integer step count or boundary in ``[min_value, max_value]``: usually below 50, sometimes huge."""
    return st.one_of(
        st.integers(min_value, min(50, max_value)),
        st.integers(min_value, max_value),
        st.sampled_from([v for v in FAR_STEPS if min_value <= v <= max_value] or [min_value]),
    )


#: A learning rate: finite and >= 0, as the config requires.
rates = st.one_of(
    st.sampled_from([0.0, 0.1, 1e-3, 3e-4, 1.0, 0.7]),
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),  # subnormals up to 1.8e308
)
#: A positive factor or exponent (decay rates, powers, cycle counts).
positives = st.one_of(st.sampled_from([0.5, 0.9, 1.0, 2.0, 0.999]), st.floats(min_value=1e-3, max_value=50.0))
shapes = st.sampled_from(["linear", "cosine", "1-sqrt"])
#: timm's k-decay exponent (1: none), and the decay lengths it is drawn with (docs/precision.md: up to 10**7).
k_decays = st.one_of(st.just(1.0), st.sampled_from([2.0, 0.5]), st.floats(0.1, 4.0))
K_DECAY_STEPS = 10**7


def _config(kind: str, schedule: Any) -> LearningRate:
    return LearningRate.model_validate({kind: schedule})


# --- tml's four kinds ---------------------------------------------------------------------------

_constant = rates.map(lambda c: _config("constant", c))
_linear_ramp_to_constant = st.builds(
    lambda lr, ramp: _config("linear_ramp_to_constant", {"learning_rate": lr, "num_ramp_steps": ramp}),
    rates,
    step_counts(1),
)


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


# --- the kinds beyond tml's four ----------------------------------------------------------------


@st.composite
def _exponential_decay(draw):
    return _config("exponential_decay", {
        "learning_rate": draw(rates), "decay_rate": draw(positives), "decay_steps": draw(step_counts(1)),
        "num_ramp_steps": draw(step_counts(0)), "staircase": draw(st.booleans()),
        "end_learning_rate": draw(st.one_of(st.none(), rates))})


@st.composite
def _polynomial_decay(draw):
    ramp, k = draw(step_counts(0, MAX_STEP - 1)), draw(k_decays)
    return _config("polynomial_decay", {
        "learning_rate": draw(rates), "end_learning_rate": draw(rates), "num_ramp_steps": ramp,
        "final_num_steps": ramp + draw(step_counts(1, MAX_STEP - ramp if k == 1 else K_DECAY_STEPS)),
        "power": draw(positives), "k_decay": k})


@st.composite
def _warmup_stable_decay(draw):
    ramp = draw(step_counts(0))
    stable = draw(step_counts(0, MAX_STEP - ramp))
    decay_shape = draw(st.one_of(shapes, st.just("exponential")))
    # Megatron's exponential anneal: decays up to K_DECAY_STEPS (docs/precision.md, as k-decay)
    longest = MAX_STEP - ramp - stable if decay_shape != "exponential" else min(K_DECAY_STEPS, MAX_STEP - ramp - stable)
    return _config("warmup_stable_decay", {
        "learning_rate": draw(rates), "final_learning_rate": draw(rates), "num_ramp_steps": ramp,
        "num_stable_steps": stable, "num_decay_steps": draw(step_counts(0, longest)),
        "decay_shape": decay_shape, "ramp_shape": draw(shapes), "num_cycles": draw(positives)})


@st.composite
def _cosine_annealing(draw):
    k = {"hard_restarts": True} if draw(st.booleans()) else {"k_decay": draw(k_decays)}
    return _config("cosine_annealing", {
        "learning_rate": draw(rates), "final_learning_rate": draw(rates), "num_ramp_steps": draw(step_counts(0)),
        "num_steps": draw(step_counts(1, MAX_STEP if k.get("k_decay", 1) == 1 else K_DECAY_STEPS)),
        "num_cycles": draw(st.one_of(st.just(0.5), positives)), **k})


@st.composite
def _tanh_decay(draw):
    lower = draw(st.one_of(st.just(-7.0), st.floats(-10.0, 5.0)))
    return _config("tanh_decay", {
        "learning_rate": draw(rates), "final_learning_rate": draw(rates), "num_steps": draw(step_counts(1)),
        "lower_bound": lower, "upper_bound": lower + draw(st.one_of(st.just(10.0), st.floats(1e-3, 10.0)))})


@st.composite
def _cosine_with_restarts(draw):
    return _config("cosine_with_restarts", {
        "learning_rate": draw(rates), "final_learning_rate": draw(rates), "num_ramp_steps": draw(step_counts(0)),
        "cycle_steps": draw(step_counts(1)), "cycle_mult": draw(st.one_of(st.integers(1, 4), st.integers(1, 1000))),
        "cycle_decay": draw(positives)})


@st.composite
def _one_cycle(draw):
    for _ in range(20):  # a zero-length phase is invalid: draw again
        try:
            # the first and last values as divisions (torch's div_factor, final_div_factor) or given
            # (initial_learning_rate, final_learning_rate: torch's momentum cycle)
            initial = draw(st.one_of(st.builds(lambda d: {"div_factor": d}, positives),
                                     st.builds(lambda v: {"initial_learning_rate": v}, rates)))
            final = draw(st.one_of(st.builds(lambda d: {"final_div_factor": d}, positives),
                                   st.builds(lambda v: {"final_learning_rate": v}, rates)))
            return _config("one_cycle", {
                "max_learning_rate": draw(rates), "total_steps": draw(step_counts(1)),
                "pct_start": draw(st.floats(0.0, 1.0)), "anneal_strategy": draw(st.sampled_from(["cos", "linear"])),
                **initial, **final, "three_phase": draw(st.booleans())})
        except pydantic.ValidationError:
            continue
    return _config("one_cycle", {"max_learning_rate": 0.1, "total_steps": 100})


@st.composite
def _cyclic(draw):
    mode = draw(st.sampled_from(["triangular", "triangular2", "exp_range"]))
    gamma = draw(st.one_of(st.sampled_from([1.0, 0.99994, 0.5]), st.floats(1e-3, 1.0))) if mode == "exp_range" else 1.0
    return _config("cyclic", {"base_learning_rate": draw(rates), "max_learning_rate": draw(rates),
                              "step_size_up": draw(step_counts(1)),
                              "step_size_down": draw(st.one_of(st.none(), step_counts(1, MAX_STEP // 2))),
                              "mode": mode, "gamma": gamma})


@st.composite
def _plateau(draw):
    # without a metric (these tests give none) a plateau is its learning_rate at every step
    return _config("plateau", {"learning_rate": draw(rates), "factor": draw(st.floats(0.0, 0.99)),
                               "patience": draw(st.integers(0, 20)), "mode": draw(st.sampled_from(["min", "max"]))})


@st.composite
def _inverse_sqrt(draw):
    return _config("inverse_sqrt", {"learning_rate": draw(rates), "num_ramp_steps": draw(step_counts(0)),
                                    "timescale": draw(st.one_of(st.none(), step_counts(1)))})


@st.composite
def _log_warmup(draw):
    return _config("log_warmup", {"learning_rate": draw(rates), "initial_learning_rate": draw(rates),
                                  "num_steps": draw(step_counts(2))})


def _plain() -> st.SearchStrategy[LearningRate]:
    """A kind that nests none: tml's constant and linear ramp, or a kind beyond tml's four but join, product and offset."""
    tml = st.one_of(_constant, _linear_ramp_to_constant)
    # a plateau is drawn on its own, not inside a composite: a schedule holds at most one
    return st.one_of(tml, *(s for k, s in NEW_KIND_STRATEGIES.items() if k not in ("join", "product", "offset", "plateau")))


@st.composite
def _join(draw):
    schedules = draw(st.lists(_plain(), min_size=1, max_size=3))
    boundaries = sorted(draw(st.sets(step_counts(0), min_size=len(schedules) - 1, max_size=len(schedules) - 1)))
    return _config("join", {"schedules": [s.model_dump(exclude_none=True) for s in schedules], "boundaries": boundaries})


@st.composite
def _product(draw):
    schedules = draw(st.lists(st.one_of(_plain(), _join()), min_size=1, max_size=3))
    return _config("product", {"schedules": [s.model_dump(exclude_none=True) for s in schedules]})


@st.composite
def _offset(draw):
    schedule = draw(st.one_of(_plain(), _join()))
    steps = draw(st.one_of(st.integers(0, 300), st.just(2**40)))
    return _config("offset", {"schedule": schedule.model_dump(exclude_none=True), "steps": steps})


NEW_KIND_STRATEGIES: dict[str, st.SearchStrategy[LearningRate]] = {
    "exponential_decay": _exponential_decay(),
    "polynomial_decay": _polynomial_decay(),
    "warmup_stable_decay": _warmup_stable_decay(),
    "cosine_annealing": _cosine_annealing(),
    "cosine_with_restarts": _cosine_with_restarts(),
    "one_cycle": _one_cycle(),
    "cyclic": _cyclic(),
    "tanh_decay": _tanh_decay(),
    "plateau": _plateau(),
    "inverse_sqrt": _inverse_sqrt(),
    "log_warmup": _log_warmup(),
    "join": _join(),
    "product": _product(),
    "offset": _offset(),
}

KIND_STRATEGIES: dict[str, st.SearchStrategy[LearningRate]] = {
    "constant": _constant,
    "piecewise_constant": _piecewise_constant(),
    "linear_ramp_to_constant": _linear_ramp_to_constant,
    "linear_ramp_to_cosine": _linear_ramp_to_cosine(),
    **NEW_KIND_STRATEGIES,
}

#: A valid config of any kind that has a strategy.
learning_rates = st.one_of(*KIND_STRATEGIES.values())


def ints_in(data: Any) -> set[int]:
    """Every integer in a config's dump: its step counts and boundaries, whatever the kind."""
    if isinstance(data, bool):
        return set()
    if isinstance(data, int):
        return {data}
    if isinstance(data, dict):
        return set().union(*map(ints_in, data.values())) if data else set()
    if isinstance(data, (list, tuple)):
        return set().union(*map(ints_in, data)) if data else set()
    return set()


def interesting_steps(configs: list[LearningRate]) -> st.SearchStrategy[int]:
    """A step worth visiting for ``configs``: at or beside one of their edges, small, or far away."""
    marks = sorted({0} | set().union(*(ints_in(c.model_dump(exclude_none=True)) for c in configs)))
    near_a_mark = st.builds(
        lambda mark, offset: min(max(mark + offset, 0), MAX_STEP), st.sampled_from(marks), st.integers(-2, 2)
    )
    return st.one_of(near_a_mark, st.integers(0, 60), st.integers(0, 2**41), st.sampled_from(FAR_STEPS))

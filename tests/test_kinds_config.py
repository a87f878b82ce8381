"""The schedule kinds beyond tml's four: every validation rule fails naming the field and the value;
they load from YAML (nested ``join`` / ``product`` included) and dump back unchanged."""

import math

import pydantic
import pytest

from fusedsched import config
from fusedsched.config import (
    CosineAnnealing,
    CosineWithRestarts,
    ExponentialDecay,
    InverseSqrt,
    Join,
    LearningRate,
    OneCycle,
    PolynomialDecay,
    Product,
    WarmupStableDecay,
    dump_config,
    load_config,
)

EXP = dict(learning_rate=0.1, decay_rate=0.5, decay_steps=10)
POLY = dict(learning_rate=0.1, final_num_steps=100)
WSD = dict(learning_rate=0.1, num_ramp_steps=10, num_stable_steps=20, num_decay_steps=30)
ANNEAL = dict(learning_rate=0.1, num_steps=50)
RESTARTS = dict(learning_rate=0.1, cycle_steps=10)
ONE = dict(max_learning_rate=0.1, total_steps=100)
INV = dict(learning_rate=0.1, num_ramp_steps=10)
CONST = {"constant": 0.5}
JOIN = dict(schedules=[CONST, {"constant": 0.1}], boundaries=[10])


def _with(base, **changes):
    return {**base, **changes}


# (model, kwargs, field named in the message, value named in the message): one rule each
INVALID = [
    # exponential_decay
    (ExponentialDecay, _with(EXP, learning_rate=-0.1), "learning_rate", "-0.1"),
    (ExponentialDecay, _with(EXP, decay_rate=0.0), "decay_rate", "0.0"),
    (ExponentialDecay, _with(EXP, decay_rate=-0.5), "decay_rate", "-0.5"),
    (ExponentialDecay, _with(EXP, decay_rate=math.inf), "decay_rate", "inf"),
    (ExponentialDecay, _with(EXP, decay_rate=math.nan), "decay_rate", "nan"),
    (ExponentialDecay, _with(EXP, decay_rate=True), "decay_rate", "True"),
    (ExponentialDecay, _with(EXP, decay_steps=0), "decay_steps", "0"),
    (ExponentialDecay, _with(EXP, decay_steps=2**53), "decay_steps", str(2**53)),
    (ExponentialDecay, _with(EXP, num_ramp_steps=-1), "num_ramp_steps", "-1"),
    (ExponentialDecay, _with(EXP, staircase=1), "staircase", "1"),
    (ExponentialDecay, _with(EXP, end_learning_rate=-1e-3), "end_learning_rate", "-0.001"),
    # polynomial_decay
    (PolynomialDecay, _with(POLY, end_learning_rate=math.nan), "end_learning_rate", "nan"),
    (PolynomialDecay, _with(POLY, num_ramp_steps=-2), "num_ramp_steps", "-2"),
    (PolynomialDecay, _with(POLY, power=0.0), "power", "0.0"),
    (PolynomialDecay, _with(POLY, final_num_steps=10, num_ramp_steps=10), "final_num_steps", "(10)"),
    (PolynomialDecay, _with(POLY, final_num_steps=1.5), "final_num_steps", "1.5"),
    # warmup_stable_decay
    (WarmupStableDecay, _with(WSD, final_learning_rate=math.inf), "final_learning_rate", "inf"),
    (WarmupStableDecay, _with(WSD, num_ramp_steps=-1), "num_ramp_steps", "-1"),
    (WarmupStableDecay, _with(WSD, num_stable_steps=-5), "num_stable_steps", "-5"),
    (WarmupStableDecay, _with(WSD, num_decay_steps=-3), "num_decay_steps", "-3"),
    (WarmupStableDecay, _with(WSD, decay_shape="exponential"), "decay_shape", "exponential"),
    (WarmupStableDecay, _with(WSD, ramp_shape="sqrt"), "ramp_shape", "sqrt"),
    (WarmupStableDecay, _with(WSD, num_cycles=0), "num_cycles", "0"),
    (
        WarmupStableDecay,
        _with(WSD, num_ramp_steps=2**52, num_stable_steps=2**52, num_decay_steps=5),
        "num_ramp_steps + num_stable_steps + num_decay_steps",
        str(2**53 + 5),
    ),
    # cosine_annealing
    (CosineAnnealing, _with(ANNEAL, num_steps=0), "num_steps", "0"),
    (CosineAnnealing, _with(ANNEAL, num_cycles=-0.5), "num_cycles", "-0.5"),
    (CosineAnnealing, _with(ANNEAL, final_learning_rate=-1.0), "final_learning_rate", "-1.0"),
    (CosineAnnealing, _with(ANNEAL, hard_restarts="yes"), "hard_restarts", "yes"),
    (CosineAnnealing, _with(ANNEAL, num_ramp_steps=-4), "num_ramp_steps", "-4"),
    # cosine_with_restarts
    (CosineWithRestarts, _with(RESTARTS, cycle_steps=0), "cycle_steps", "0"),
    (CosineWithRestarts, _with(RESTARTS, cycle_mult=0), "cycle_mult", "0"),
    (CosineWithRestarts, _with(RESTARTS, cycle_mult=1.5), "cycle_mult", "1.5"),
    (CosineWithRestarts, _with(RESTARTS, cycle_decay=0.0), "cycle_decay", "0.0"),
    (CosineWithRestarts, _with(RESTARTS, num_ramp_steps=-1), "num_ramp_steps", "-1"),
    # one_cycle
    (OneCycle, _with(ONE, max_learning_rate=-0.1), "max_learning_rate", "-0.1"),
    (OneCycle, _with(ONE, total_steps=0), "total_steps", "0"),
    (OneCycle, _with(ONE, pct_start=1.5), "pct_start", "1.5"),
    (OneCycle, _with(ONE, pct_start=-0.1), "pct_start", "-0.1"),
    (OneCycle, _with(ONE, pct_start=True), "pct_start", "True"),
    (OneCycle, _with(ONE, anneal_strategy="exp"), "anneal_strategy", "exp"),
    (OneCycle, _with(ONE, div_factor=0.0), "div_factor", "0.0"),
    (OneCycle, _with(ONE, final_div_factor=-1.0), "final_div_factor", "-1.0"),
    (OneCycle, _with(ONE, three_phase=0), "three_phase", "0"),
    # pct_start * total_steps == 1: the first phase ends at step 0, where it also starts
    (OneCycle, _with(ONE, total_steps=10, pct_start=0.1), "zero length", "pct_start=0.1"),
    # inverse_sqrt
    (InverseSqrt, _with(INV, num_ramp_steps=-1), "num_ramp_steps", "-1"),
    (InverseSqrt, _with(INV, timescale=0), "timescale", "0"),
    (InverseSqrt, dict(learning_rate=0.1), "num_ramp_steps", "Field required"),
    # join
    (Join, dict(schedules=[], boundaries=[]), "schedules", "[]"),
    (Join, _with(JOIN, boundaries=[]), "boundaries has 0", "schedules has 2"),
    (Join, _with(JOIN, boundaries=[-1]), "boundaries[0]", "-1"),
    (Join, dict(schedules=[CONST] * 3, boundaries=[5, 5]), "strictly increasing", "5 then 5"),
    (Join, _with(JOIN, schedules=[CONST, {"constant": -1.0}]), "constant", "-1.0"),
    # product
    (Product, dict(schedules=[]), "schedules", "[]"),
    (Product, dict(schedules=[CONST, {"linear_ramp_to_constant": {"learning_rate": 1.0, "num_ramp_steps": 0}}]),
     "num_ramp_steps", "0"),
    # exactly one kind, now among all of them
    (LearningRate, dict(exponential_decay=EXP, one_cycle=ONE), "exactly one of constant", "got: exponential_decay, one_cycle"),
]


@pytest.mark.parametrize("model, kwargs, field, value", INVALID, ids=lambda x: getattr(x, "__name__", None))
def test_invalid_config_names_field_and_value(model, kwargs, field, value):
    with pytest.raises(pydantic.ValidationError) as info:
        model(**kwargs)
    message = str(info.value)
    assert field in message
    assert value in message


def test_unknown_field_in_a_new_kind_rejected():
    with pytest.raises(pydantic.ValidationError, match="warmup_steps"):
        LearningRate(exponential_decay=_with(EXP, warmup_steps=3))


def test_kinds_lists_every_field():
    fields = set(LearningRate.model_fields)
    assert set(LearningRate.KINDS) == fields
    assert len(LearningRate.KINDS) == 13


def test_defaults():
    e = ExponentialDecay(**EXP)
    assert (e.num_ramp_steps, e.staircase, e.end_learning_rate) == (0, False, None)
    p = PolynomialDecay(**POLY)
    assert (p.end_learning_rate, p.num_ramp_steps, p.power) == (0.0, 0, 1.0)
    w = WarmupStableDecay(**WSD)
    assert (w.final_learning_rate, w.decay_shape, w.ramp_shape, w.num_cycles) == (0.0, "cosine", "linear", 0.5)
    r = CosineWithRestarts(**RESTARTS)
    assert (r.final_learning_rate, r.num_ramp_steps, r.cycle_mult, r.cycle_decay) == (0.0, 0, 1, 1.0)
    o = OneCycle(**ONE)
    assert (o.pct_start, o.anneal_strategy, o.div_factor, o.final_div_factor, o.three_phase) == (0.3, "cos", 25.0, 1e4, False)
    assert InverseSqrt(**INV).resolved_timescale == 10
    assert InverseSqrt(learning_rate=0.1, num_ramp_steps=0).resolved_timescale == 10_000
    assert InverseSqrt(**INV, timescale=7).resolved_timescale == 7
    a = CosineAnnealing(**ANNEAL)
    assert (a.final_learning_rate, a.num_ramp_steps, a.num_cycles, a.hard_restarts) == (0.0, 0, 0.5, False)


def test_one_cycle_phase_that_no_step_reaches_may_be_empty():
    # pct_start = 0: the warm-up phase ends at step -1 and is never used, so its length is no error
    cfg = OneCycle(max_learning_rate=1.0, total_steps=10, pct_start=0.0)
    assert [first <= last for first, last, *_ in cfg.phases()] == [False, True]


NESTED_YAML = """
join:
  boundaries: [100, 1000]
  schedules:
    - linear_ramp_to_constant: {learning_rate: 0.01, num_ramp_steps: 100}
    - product:
        schedules:
          - exponential_decay: {learning_rate: 0.01, decay_rate: 0.5, decay_steps: 300, staircase: true}
          - cosine_annealing: {learning_rate: 1.0, final_learning_rate: 0.5, num_steps: 100}
    - join:
        boundaries: [10]
        schedules:
          - constant: 0.001
          - cosine_with_restarts: {learning_rate: 0.001, cycle_steps: 50, cycle_mult: 2, cycle_decay: 0.9}
"""


def test_nested_join_and_product_load_and_round_trip():
    cfg = load_config(NESTED_YAML, LearningRate)
    assert cfg.kind == "join"
    second = cfg.join.schedules[1]
    assert second.kind == "product" and [c.kind for c in second.product.schedules] == ["exponential_decay", "cosine_annealing"]
    assert cfg.join.schedules[2].join.schedules[1].cosine_with_restarts.cycle_mult == 2
    for fmt in ("dict", "yaml", "json"):
        assert load_config(dump_config(cfg, fmt), LearningRate) == cfg


@pytest.mark.parametrize("kind, body", [
    ("exponential_decay", EXP), ("polynomial_decay", POLY), ("warmup_stable_decay", WSD),
    ("cosine_annealing", ANNEAL), ("cosine_with_restarts", RESTARTS), ("one_cycle", ONE),
    ("inverse_sqrt", INV), ("join", JOIN), ("product", dict(schedules=[CONST, CONST])),
])
def test_every_kind_loads_with_explicit_nulls_for_the_others(kind, body):
    data = {k: None for k in LearningRate.KINDS}
    data[kind] = body
    cfg = load_config(data, LearningRate)
    assert cfg.kind == kind
    assert load_config(dump_config(cfg, "yaml"), LearningRate) == cfg


def test_kind_models_are_importable_from_config_and_package():
    import fusedsched
    import fusedsched.kinds

    for name in ("LearningRate", "ExponentialDecay", "Join", "Product", "OneCycle"):
        assert getattr(config, name) is getattr(fusedsched.kinds, name)
    assert fusedsched.LearningRate is config.LearningRate


@pytest.mark.parametrize("first", ["fusedsched.kinds", "fusedsched.kinds.cosine", "fusedsched.kinds._row",
                                   "fusedsched.config", "fusedsched.program", "fusedsched.schedules"])
def test_kinds_and_config_import_in_any_order(first):
    # a package __init__ that imports nothing (lazily, PEP 562) lets any module come first
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "fusedsched"
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('fusedsched'); pkg.__path__ = [{str(src)!r}]; sys.modules['fusedsched'] = pkg\n"
        f"import {first}\n"
        "from fusedsched.config import LearningRate, ExponentialDecay\n"
        "from fusedsched.kinds import kind_row\n"
        "print(kind_row(LearningRate(exponential_decay=dict(learning_rate=1.0, decay_rate=0.5, decay_steps=1))).formula()(3))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.125"

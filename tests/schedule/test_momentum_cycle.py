"""``one_cycle`` in torch's momentum terms: ``base_momentum`` and ``max_momentum``, as
``OneCycleLR(cycle_momentum=True)`` takes them (docs/semantics.md, "one_cycle").

- its values are torch's momentum cycle (SGD's ``momentum``), for ordinary pairs and both anneal
  strategies, two and three phases;
- one set of terms per config, each refusal naming the fields; a dump loads back as it was;
- its bounds are the two momenta, so a beta1 driven by it is within ``[0, 1)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pydantic
import pytest
import torch
from _peers import assert_rates_match
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as tls

from fusedsched import LearningRate, compute_lr, load_config
from fusedsched.schedule.kinds import schedule_bounds

TOTAL = 100


def torch_momenta(base: float, high: float, total: int, **kw) -> list[float]:
    """SGD's ``momentum`` under ``OneCycleLR(cycle_momentum=True)``, steps ``0 .. total - 1``."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = tls.OneCycleLR(opt, 0.1, total_steps=total, cycle_momentum=True, base_momentum=base, max_momentum=high, **kw)
    out = [opt.param_groups[0]["momentum"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(total - 1):
            sched.step()
            out.append(opt.param_groups[0]["momentum"])
    return out


# the ordinary pairs among them: (0.5, 0.95), (0.5, 0.9), (0.701, 0.933)
PAIRS = [(0.85, 0.95), (0.5, 0.95), (0.5, 0.9), (0.701, 0.933), (0.0, 0.99)]


@pytest.mark.parametrize("base, high", PAIRS)
@pytest.mark.parametrize("strategy, three, pct", [("cos", False, 0.3), ("linear", False, 0.25), ("cos", True, 0.3),
                                                  ("linear", True, 0.45)])
def test_momentum_terms_give_torchs_momentum_cycle(base, high, strategy, three, pct):
    cfg = LearningRate(one_cycle={"base_momentum": base, "max_momentum": high, "total_steps": TOTAL, "pct_start": pct,
                                  "anneal_strategy": strategy, "three_phase": three})
    ours = [compute_lr(cfg, s) for s in range(TOTAL)]
    theirs = torch_momenta(base, high, TOTAL, pct_start=pct, anneal_strategy=strategy, three_phase=three)
    assert_rates_match(ours, theirs, what="OneCycleLR momentum")
    assert ours[0] == high and min(ours) == base  # the cycle's start and its trough, exactly
    assert ours[-1] == high and compute_lr(cfg, 10**9) == ours[-1]  # back up, then held
    assert schedule_bounds(cfg) == (base, high)


def test_momentum_terms_are_the_rate_terms_peaking_at_base_momentum():
    """The same shapes: ``initial = minimum = max_momentum``, ``peak = base_momentum``."""
    momentum = LearningRate(one_cycle={"base_momentum": 0.5, "max_momentum": 0.75, "total_steps": 40})
    rate = LearningRate(one_cycle={"max_learning_rate": 0.5, "div_factor": 0.5 / 0.75, "final_div_factor": 1.0,
                                   "total_steps": 40})
    assert 0.5 / (0.5 / 0.75) == 0.75  # this pair has exact factors (not every pair does)
    assert [compute_lr(momentum, s) for s in range(45)] == [compute_lr(rate, s) for s in range(45)]


YAML = """
one_cycle: {base_momentum: 0.85, max_momentum: 0.95, total_steps: 300}
"""


def test_a_momentum_cycle_loads_from_yaml_and_dumps_back():
    cfg = load_config(YAML, LearningRate)
    dumped = cfg.model_dump(exclude_none=True)
    assert dumped["one_cycle"].keys() == {"base_momentum", "max_momentum", "total_steps", "pct_start",
                                          "anneal_strategy", "three_phase"}
    assert LearningRate.model_validate(dumped) == cfg
    assert LearningRate.model_validate_json(cfg.model_dump_json(exclude_none=True)) == cfg


@pytest.mark.parametrize("fields, words", [
    ({"total_steps": 10}, ["max_learning_rate", "base_momentum and max_momentum"]),
    ({"base_momentum": 0.85, "total_steps": 10}, ["base_momentum (0.85) needs max_momentum"]),
    ({"max_momentum": 0.95, "total_steps": 10}, ["max_momentum (0.95) needs base_momentum"]),
    ({"max_learning_rate": 0.1, "base_momentum": 0.85, "max_momentum": 0.95, "total_steps": 10},
     ["max_learning_rate and base_momentum / max_momentum"]),
    ({"base_momentum": 0.85, "max_momentum": 0.95, "div_factor": 25.0, "total_steps": 10},
     ["div_factor and base_momentum / max_momentum"]),
    ({"base_momentum": -0.85, "max_momentum": 0.95, "total_steps": 10}, ["base_momentum", "-0.85"]),
])
def test_one_set_of_terms_is_required(fields, words):
    with pytest.raises(pydantic.ValidationError) as info:
        LearningRate(one_cycle=fields)
    for word in words:
        assert word in str(info.value)


def test_the_rate_terms_keep_their_defaults_and_dump():
    cfg = LearningRate(one_cycle={"max_learning_rate": 0.1, "total_steps": 10})
    assert (cfg.one_cycle.initial, cfg.one_cycle.peak, cfg.one_cycle.minimum) == (0.1 / 25, 0.1, 0.1 / 25 / 1e4)
    assert cfg.model_dump(exclude_none=True)["one_cycle"] == {
        "max_learning_rate": 0.1, "total_steps": 10, "pct_start": 0.3, "anneal_strategy": "cos", "three_phase": False}
    assert LearningRate.model_validate(cfg.model_dump(exclude_none=True)) == cfg
    assert np.isclose(compute_lr(cfg, 0), 0.1 / 25)


@settings(max_examples=60)
@given(base=st.floats(0.0, 0.999), high=st.floats(0.0, 0.999), total=st.integers(2, 400), pct=st.floats(0.05, 0.95),
       strategy=st.sampled_from(["cos", "linear"]), three=st.booleans())
def test_a_momentum_cycles_bounds_hold_its_values(base, high, total, pct, strategy, three):
    try:
        cfg = LearningRate(one_cycle={"base_momentum": base, "max_momentum": high, "total_steps": total,
                                      "pct_start": pct, "anneal_strategy": strategy, "three_phase": three})
    except pydantic.ValidationError:  # a phase of zero length
        return
    lo, hi = schedule_bounds(cfg)
    values = [compute_lr(cfg, s) for s in range(total + 2)]
    assert all(lo <= v <= hi for v in values)
    # within the two momenta (the cosine's bound is its own expression at c = 2: an ulp off v0 at most)
    ulp = 2 * math.ulp(max(base, high))
    assert min(base, high) - ulp <= lo and hi <= max(base, high) + ulp


def test_max_learning_rate_alone_is_no_momentum_cycle():
    """The example the docs warn about: it starts at 0.038, rises to 0.95 and falls to 3.8e-6."""
    cfg = LearningRate(one_cycle={"max_learning_rate": 0.95, "total_steps": 1000})
    values = [compute_lr(cfg, s) for s in range(1000)]
    assert values[0] == pytest.approx(0.038, rel=1e-14) and (max(values), values[-1]) == (0.95, 0.95 / 25 / 1e4)


def test_a_one_cycle_pickled_before_the_momentum_terms_loads():
    cfg = LearningRate(one_cycle={"max_learning_rate": 0.1, "total_steps": 10}).one_cycle
    state = cfg.__getstate__()
    old = {**state, "__dict__": {k: v for k, v in state["__dict__"].items() if k not in ("base_momentum", "max_momentum")}}
    loaded = type(cfg).__new__(type(cfg))
    loaded.__setstate__(old)
    assert loaded == cfg and loaded.model_dump() == cfg.model_dump() and loaded.bounds() == cfg.bounds()

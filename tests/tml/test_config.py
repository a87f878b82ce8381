"""Config models: each validation rule fails naming the field and the value; loading, dumping.

The kinds beyond tml's four too: they load from YAML (nested ``join`` / ``product`` included) and dump
back unchanged."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
import yaml

import fusedsched
import fusedsched.schedule.kinds
from fusedsched import LogWarmup, TanhDecay
from fusedsched.tml import config
from fusedsched.tml.config import (
    AdagradConfig,
    AdamConfig,
    CosineAnnealing,
    CosineWithRestarts,
    ExponentialDecay,
    InverseSqrt,
    Join,
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    MultiTaskLearningRates,
    OneCycle,
    OptimizerConfig,
    PiecewiseConstant,
    PolynomialDecay,
    Product,
    SgdConfig,
    WarmupStableDecay,
    dump_config,
    load_config,
)

EXAMPLE = Path(fusedsched.__file__).parent / "examples" / "recap_multitask.yaml"

COSINE = dict(learning_rate=0.1, final_learning_rate=0.01, num_ramp_steps=10, final_num_steps=100)
RAMP = dict(learning_rate=0.1, num_ramp_steps=10)
PIECEWISE = dict(learning_rate_boundaries=[10, 20], learning_rate_values=[0.1, 0.01, 0.001])
# the kinds beyond tml's four
EXP = dict(learning_rate=0.1, decay_rate=0.5, decay_steps=10)
POLY = dict(learning_rate=0.1, final_num_steps=100)
WSD = dict(learning_rate=0.1, num_ramp_steps=10, num_stable_steps=20, num_decay_steps=30)
ANNEAL = dict(learning_rate=0.1, num_steps=50)
RESTARTS = dict(learning_rate=0.1, cycle_steps=10)
ONE = dict(max_learning_rate=0.1, total_steps=100)
INV = dict(learning_rate=0.1, num_ramp_steps=10)
LOGW = dict(learning_rate=0.1, num_steps=100)
TANH = dict(learning_rate=0.1, num_steps=100)
CONST = {"constant": 0.5}
JOIN = dict(schedules=[CONST, {"constant": 0.1}], boundaries=[10])



def _with(base, **changes):
    return {**base, **changes}


# (model, kwargs, field named in the message, value named in the message)
INVALID = [
    # learning rates: finite and >= 0
    (LearningRate, dict(constant=-0.1), "constant", "-0.1"),
    (LearningRate, dict(constant=math.nan), "constant", "nan"),
    (LearningRate, dict(constant=math.inf), "constant", "inf"),
    (LinearRampToConstant, _with(RAMP, learning_rate=-1.0), "learning_rate", "-1.0"),
    (LinearRampToCosine, _with(COSINE, learning_rate=math.inf), "learning_rate", "inf"),
    (LinearRampToCosine, _with(COSINE, final_learning_rate=-0.5), "final_learning_rate", "-0.5"),
    (
        PiecewiseConstant,
        _with(PIECEWISE, learning_rate_values=[0.1, math.nan, 0.001]),
        "learning_rate_values",
        "nan",
    ),
    (AdamConfig, dict(lr=-1e-3), "lr", "-0.001"),
    (SgdConfig, dict(lr=math.nan), "lr", "nan"),
    (AdagradConfig, dict(lr=-2.0), "lr", "-2.0"),
    # num_ramp_steps >= 1, final_num_steps > num_ramp_steps
    (LinearRampToConstant, _with(RAMP, num_ramp_steps=0), "num_ramp_steps", "0"),
    (LinearRampToCosine, _with(COSINE, num_ramp_steps=-3), "num_ramp_steps", "-3"),
    (LinearRampToCosine, _with(COSINE, final_num_steps=10), "final_num_steps", "(10)"),
    (LinearRampToCosine, _with(COSINE, final_num_steps=5), "final_num_steps", "(5)"),
    # integer fields: no bools, no fractions
    (LinearRampToConstant, _with(RAMP, num_ramp_steps=1.5), "num_ramp_steps", "1.5"),
    (LinearRampToConstant, _with(RAMP, num_ramp_steps=True), "num_ramp_steps", "True"),
    (LinearRampToCosine, _with(COSINE, final_num_steps=100.5), "final_num_steps", "100.5"),
    (
        PiecewiseConstant,
        _with(PIECEWISE, learning_rate_boundaries=[10, 20.5]),
        "learning_rate_boundaries",
        "20.5",
    ),
    (
        PiecewiseConstant,
        _with(PIECEWISE, learning_rate_boundaries=[True, 20]),
        "learning_rate_boundaries",
        "True",
    ),
    # boundaries strictly increasing and >= 0; one more value than boundaries
    (
        PiecewiseConstant,
        _with(PIECEWISE, learning_rate_boundaries=[-5, 20]),
        "learning_rate_boundaries",
        "-5",
    ),
    (
        PiecewiseConstant,
        _with(PIECEWISE, learning_rate_boundaries=[20, 20]),
        "learning_rate_boundaries",
        "20",
    ),
    (
        PiecewiseConstant,
        _with(PIECEWISE, learning_rate_boundaries=[20, 10]),
        "learning_rate_boundaries",
        "10",
    ),
    (
        PiecewiseConstant,
        _with(PIECEWISE, learning_rate_values=[0.1, 0.01]),
        "learning_rate_values has 2",
        "learning_rate_boundaries has 2",
    ),
    (
        PiecewiseConstant,
        dict(learning_rate_boundaries=[], learning_rate_values=[]),
        "learning_rate_values has 0",
        "learning_rate_boundaries has 0",
    ),
    # optimizer hyper-parameters
    (AdamConfig, dict(lr=0.1, betas=(1.0, 0.999)), "betas", "1.0"),
    (AdamConfig, dict(lr=0.1, betas=(0.9, -0.1)), "betas", "-0.1"),
    (AdamConfig, dict(lr=0.1, eps=-1e-8), "eps", "-1e-08"),
    (AdagradConfig, dict(lr=0.1, eps=math.inf), "eps", "inf"),
    (SgdConfig, dict(lr=0.1, momentum=-0.9), "momentum", "-0.9"),
    # exactly one kind / optimizer, named
    (LearningRate, dict(), "exactly one of constant", "got: none"),
    (
        LearningRate,
        dict(constant=0.1, linear_ramp_to_constant=RAMP),
        "exactly one of constant",
        "got: constant, linear_ramp_to_constant",
    ),
    (OptimizerConfig, dict(), "exactly one of adam, sgd, adagrad", "got: none"),
    (
        OptimizerConfig,
        dict(adam=dict(lr=0.1), sgd=dict(lr=0.1)),
        "exactly one of adam, sgd, adagrad",
        "got: adam, sgd",
    ),
    (
        OptimizerConfig,
        dict(
            sgd=dict(lr=0.1),
            learning_rate=dict(constant=0.1),
            multi_task_learning_rates=dict(
                tower_learning_rates={"a": dict(constant=0.1)},
                backbone_learning_rate=dict(constant=0.1),
            ),
        ),
        "learning_rate and multi_task_learning_rates",
        "mutually exclusive",
    ),
    # towers
    (
        MultiTaskLearningRates,
        dict(tower_learning_rates={}, backbone_learning_rate=dict(constant=0.1)),
        "tower_learning_rates",
        "at least one tower",
    ),
    (
        MultiTaskLearningRates,
        dict(
            tower_learning_rates={"": dict(constant=0.1)}, backbone_learning_rate=dict(constant=0.1)
        ),
        "tower_learning_rates",
        "''",
    ),
    (
        MultiTaskLearningRates,
        dict(
            tower_learning_rates={"is.clicked": dict(constant=0.1)},
            backbone_learning_rate=dict(constant=0.1),
        ),
        "tower_learning_rates",
        "'is.clicked'",
    ),
    # nested errors surface with their path
    (
        OptimizerConfig,
        dict(
            adam=dict(lr=0.1),
            learning_rate=dict(linear_ramp_to_cosine=_with(COSINE, final_num_steps=10)),
        ),
        "final_num_steps (10) must be greater than num_ramp_steps (10)",
        "learning_rate.linear_ramp_to_cosine",
    ),
    # --- the kinds beyond tml's four: one rule each
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
    (PolynomialDecay, _with(POLY, k_decay=-1.0), "k_decay", "-1.0"),
    (PolynomialDecay, _with(POLY, k_decay=True), "k_decay", "True"),
    # warmup_stable_decay
    (WarmupStableDecay, _with(WSD, final_learning_rate=math.inf), "final_learning_rate", "inf"),
    (WarmupStableDecay, _with(WSD, num_ramp_steps=-1), "num_ramp_steps", "-1"),
    (WarmupStableDecay, _with(WSD, num_stable_steps=-5), "num_stable_steps", "-5"),
    (WarmupStableDecay, _with(WSD, num_decay_steps=-3), "num_decay_steps", "-3"),
    (WarmupStableDecay, _with(WSD, decay_shape="square"), "decay_shape", "square"),
    (WarmupStableDecay, _with(WSD, ramp_shape="exponential"), "ramp_shape", "exponential"),  # a decay shape only
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
    (CosineAnnealing, _with(ANNEAL, k_decay=0.0), "k_decay", "0.0"),
    (CosineAnnealing, _with(ANNEAL, k_decay=math.inf), "k_decay", "inf"),
    (CosineAnnealing, _with(ANNEAL, k_decay=2.0, hard_restarts=True), "k_decay (2.0) applies only", "hard_restarts"),
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
    # log_warmup
    (LogWarmup, _with(LOGW, num_steps=1), "num_steps", "(1) must be >= 2"),
    (LogWarmup, _with(LOGW, num_steps=0), "num_steps", "(0) must be >= 2"),
    (LogWarmup, _with(LOGW, num_steps=-3), "num_steps", "-3"),
    (LogWarmup, _with(LOGW, num_steps=2.5), "num_steps", "2.5"),
    (LogWarmup, _with(LOGW, num_steps=True), "num_steps", "True"),
    (LogWarmup, _with(LOGW, num_steps=2**53), "num_steps", str(2**53)),
    (LogWarmup, _with(LOGW, learning_rate=-0.1), "learning_rate", "-0.1"),
    (LogWarmup, _with(LOGW, initial_learning_rate=math.inf), "initial_learning_rate", "inf"),
    (LogWarmup, _with(LOGW, initial_learning_rate=math.nan), "initial_learning_rate", "nan"),
    (LogWarmup, dict(learning_rate=0.1), "num_steps", "Field required"),
    # tanh_decay
    (TanhDecay, _with(TANH, num_steps=0), "num_steps", "0"),
    (TanhDecay, _with(TANH, final_learning_rate=-0.1), "final_learning_rate", "-0.1"),
    (TanhDecay, _with(TANH, lower_bound=math.nan), "lower_bound", "nan"),
    (TanhDecay, _with(TANH, upper_bound=-math.inf), "upper_bound", "-inf"),
    (TanhDecay, _with(TANH, upper_bound=False), "upper_bound", "False"),
    (TanhDecay, _with(TANH, lower_bound=3.0), "lower_bound (3.0) must be less than upper_bound", "(3.0)"),
    (TanhDecay, _with(TANH, lower_bound=1.0, upper_bound=-1.0), "lower_bound (1.0)", "upper_bound (-1.0)"),
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
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("model", [LearningRate, LinearRampToCosine, AdamConfig, OptimizerConfig])
def test_unknown_field_rejected(model):
    valid = {
        LearningRate: dict(constant=0.1),
        LinearRampToCosine: COSINE,
        AdamConfig: dict(lr=0.1),
        OptimizerConfig: dict(sgd=dict(lr=0.1)),
    }[model]
    with pytest.raises(pydantic.ValidationError, match="learning_rat"):
        model(**valid, learning_rat=0.1)


def test_unknown_nested_field_rejected():
    with pytest.raises(pydantic.ValidationError, match="warmup"):
        LearningRate(linear_ramp_to_constant=dict(RAMP, warmup=3))


def test_integral_float_coerces_to_int():
    cfg = LinearRampToCosine(**_with(COSINE, num_ramp_steps=10.0, final_num_steps=100.0))
    assert (cfg.num_ramp_steps, cfg.final_num_steps) == (10, 100)
    assert type(cfg.num_ramp_steps) is int


def test_explicit_nulls_accepted():
    lr = LearningRate(
        constant=None,
        piecewise_constant=None,
        linear_ramp_to_constant=None,
        linear_ramp_to_cosine=COSINE,
    )
    assert lr.kind == "linear_ramp_to_cosine"
    assert lr.schedule == LinearRampToCosine(**COSINE)
    cfg = OptimizerConfig(
        learning_rate=None,
        adam=None,
        sgd=dict(lr=0.1),
        adagrad=None,
        multi_task_learning_rates=None,
    )
    assert cfg.optimizer_name == "sgd"
    assert cfg.optimizer == SgdConfig(lr=0.1)


def test_nested_dicts_coerce():
    lr = LearningRate(piecewise_constant=PIECEWISE)
    assert isinstance(lr.piecewise_constant, PiecewiseConstant)
    assert lr.kind == "piecewise_constant"
    assert lr.schedule.learning_rate_values == [0.1, 0.01, 0.001]
    assert LearningRate(constant=0.5).schedule == 0.5
    cfg = OptimizerConfig(adagrad=dict(lr=0.01), learning_rate=dict(linear_ramp_to_constant=RAMP))
    assert cfg.optimizer_name == "adagrad"
    assert cfg.optimizer == AdagradConfig(lr=0.01, eps=0.0)
    assert cfg.learning_rate.schedule == LinearRampToConstant(learning_rate=0.1, num_ramp_steps=10)


def test_defaults_match_tml():
    assert AdamConfig(lr=0.1).betas == (0.9, 0.999)
    assert AdamConfig(lr=0.1).eps == 1e-7
    assert SgdConfig(lr=0.1).momentum == 0.0
    assert AdagradConfig(lr=0.1).eps == 0.0
    assert OptimizerConfig(adam=dict(lr=0.1)).learning_rate is None


def test_piecewise_with_no_boundaries_is_a_constant():
    assert PiecewiseConstant(
        learning_rate_boundaries=[], learning_rate_values=[0.3]
    ).learning_rate_values == [0.3]


def example_configs():
    return [
        OptimizerConfig(adam=dict(lr=1e-3, betas=[0.8, 0.95], eps=1e-8)),
        OptimizerConfig(
            sgd=dict(lr=0.1, momentum=0.9), learning_rate=dict(piecewise_constant=PIECEWISE)
        ),
        OptimizerConfig(adagrad=dict(lr=0.01), learning_rate=dict(linear_ramp_to_cosine=COSINE)),
        load_config(EXAMPLE, section="optimizer"),
        LearningRate(constant=1e-7),
        MultiTaskLearningRates(
            tower_learning_rates={"t": dict(linear_ramp_to_constant=RAMP)},
            backbone_learning_rate=dict(constant=0.0),
        ),
    ]


@pytest.mark.parametrize("fmt", ["dict", "yaml", "json"])
@pytest.mark.parametrize("cfg", example_configs(), ids=lambda c: type(c).__name__)
def test_round_trip(cfg, fmt):
    dumped = dump_config(cfg, fmt)
    assert isinstance(dumped, dict if fmt == "dict" else str)
    assert load_config(dumped, type(cfg)) == cfg


def test_dump_drops_unset_fields():
    cfg = OptimizerConfig(sgd=dict(lr=0.1), learning_rate=dict(constant=0.1))
    assert dump_config(cfg) == {
        "learning_rate": {"constant": 0.1},
        "sgd": {"lr": 0.1, "momentum": 0.0},
    }
    assert json.loads(dump_config(cfg, "json")) == dump_config(cfg)
    assert yaml.safe_load(dump_config(cfg, "yaml")) == dump_config(cfg)
    with pytest.raises(ValueError, match="toml"):
        dump_config(cfg, "toml")


def test_round_trip_through_files(tmp_path):
    cfg = example_configs()[2]
    for name, fmt in [("c.yaml", "yaml"), ("c.yml", "yaml"), ("c.json", "json")]:
        path = tmp_path / name
        path.write_text(dump_config(cfg, fmt))
        assert load_config(path) == cfg
        assert load_config(str(path)) == cfg


def test_load_example_yaml():
    cfg = load_config(EXAMPLE, section="optimizer")
    assert cfg.optimizer_name == "adam"
    assert cfg.optimizer == AdamConfig(lr=0.001, betas=(0.9, 0.999), eps=1e-7)
    assert cfg.learning_rate is None
    mt = cfg.multi_task_learning_rates
    assert mt.backbone_learning_rate.kind == "linear_ramp_to_cosine"
    kinds = {name: lr.kind for name, lr in mt.tower_learning_rates.items()}
    assert kinds == {
        "is_clicked": "linear_ramp_to_cosine",
        "is_replied": "linear_ramp_to_constant",
        "is_favorited": "piecewise_constant",
    }


def test_load_whole_training_yaml_with_dotted_section():
    text = "training:\n  optimizer:\n    sgd: {lr: 0.5}\n    adam: null\nmodel: {}\n"
    assert load_config(text, section="training.optimizer") == OptimizerConfig(sgd=dict(lr=0.5))
    assert load_config(
        "learning_rate:\n  constant: 1.0e-3\n", LearningRate, section="learning_rate"
    ) == (LearningRate(constant=1e-3))


def test_load_json_text_and_dict():
    assert load_config('{"sgd": {"lr": 1e-07}}') == OptimizerConfig(sgd=dict(lr=1e-7))
    assert load_config({"optimizer": {"sgd": {"lr": 0.1}}}, section="optimizer") == OptimizerConfig(
        sgd=dict(lr=0.1)
    )


def test_load_invalid_config_raises_validation_error():
    with pytest.raises(pydantic.ValidationError, match="exactly one of adam, sgd, adagrad"):
        load_config("adam: {lr: 0.1}\nsgd: {lr: 0.1}\n")


@pytest.mark.parametrize(
    "source, section, words",
    [
        ("missing/dir/none.yaml", None, ["not found", "none.yaml"]),
        (Path("missing/none.json"), None, ["not found", "none.json"]),
        ("adam: [lr: 0.1\n", None, ["cannot parse", "YAML"]),
        ("- 1\n- 2\n", None, ["must be a mapping", "list"]),
        ("just a sentence", None, ["'just a sentence'", "not found", "text of a mapping", "str"]),
        ("/no/such/file", None, ["'/no/such/file'", "not found"]),
        ("", None, ["empty"]),
        ("model: {}\n", "optimizer", ["section 'optimizer' not found", "model"]),
        (
            "training: {model: 1}\n",
            "training.optimizer",
            ["'training.optimizer' not found", "'optimizer'"],
        ),
        ("optimizer: 3\n", "optimizer", ["section 'optimizer' must be a mapping", "int"]),
        ({"model": {}}, "optimizer", ["section 'optimizer' not found"]),
    ],
)
def test_load_errors_name_the_problem(source, section, words):
    with pytest.raises(ValueError) as info:
        load_config(source, section=section)
    assert not isinstance(info.value, pydantic.ValidationError)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_load_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: [\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="list.yaml.*must be a mapping"):
        load_config(str(listed))
    with pytest.raises(ValueError, match="list.yaml.*must be a mapping, got list"):
        load_config(listed, section="optimizer")


def test_load_rejects_other_source_types():
    with pytest.raises(TypeError, match="int"):
        load_config(3)
    with pytest.raises(TypeError, match="cls must be a config model class or None, got <class 'dict'>"):
        load_config({"sgd": {"lr": 0.1}}, dict)
    with pytest.raises(TypeError, match="section must be a dotted key path"):
        load_config({"optimizer": {"sgd": {"lr": 0.1}}}, section=["optimizer"])


@pytest.mark.parametrize(
    "model, fields",
    [
        (LinearRampToConstant, {"learning_rate": 0.1, "num_ramp_steps": 2**53}),
        (LinearRampToCosine, {"learning_rate": 0.1, "final_learning_rate": 0.0, "num_ramp_steps": 1, "final_num_steps": 2**60}),
        (PiecewiseConstant, {"learning_rate_boundaries": [1, 2**54], "learning_rate_values": [0.1, 0.2, 0.3]}),
    ],
)
def test_steps_beyond_float64_exactness_are_rejected(model, fields):
    with pytest.raises(pydantic.ValidationError, match=r"must be <= 2\*\*53 - 2"):
        model(**fields)


# --- reading files: every failure a ValueError naming the path, duplicate keys named -------------


def test_a_directory_is_not_a_config_file(tmp_path):
    for source in (tmp_path, str(tmp_path)):
        with pytest.raises(ValueError, match=f"config path {tmp_path} is a directory, not a file"):
            load_config(source)


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope"
    for source in (missing, str(missing)):
        with pytest.raises(ValueError, match=f"not found.*{missing}|{missing}.*not found"):
            load_config(source)


def test_a_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("sgd:\n  lr: 0.1  # caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.yaml is not UTF-8 text: byte 0xe9 at offset 21"):
        load_config(path)


def test_a_utf8_bom_is_accepted(tmp_path):
    for name in ("bom.yaml", "bom.json"):
        path = tmp_path / name
        text = "sgd: {lr: 0.1}\n" if name.endswith("yaml") else '{"sgd": {"lr": 0.1}}'
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert load_config(path) == OptimizerConfig(sgd=dict(lr=0.1))


@pytest.mark.parametrize(
    "text, key, line",
    [
        ("sgd: {lr: 0.1}\nsgd: {lr: 0.2}\n", "'sgd'", 2),
        ("optimizer:\n  sgd:\n    lr: 0.1\n    momentum: 0.5\n    lr: 0.2\n", "'lr'", 5),
        ("sgd: {lr: 0.1, lr: 0.2}\n", "'lr'", 1),
        ("tables:\n  - name: a\n    name: b\n", "'name'", 3),
        ("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 1\n  y: 2\n", "'y'", 5),
        ("1: a\n1.0: b\n", "1.0", 2),
    ],
)
def test_duplicate_yaml_keys_are_errors_naming_the_key(text, key, line):
    with pytest.raises(ValueError, match=rf"duplicate key {key} at line {line}") as info:
        load_config(text)
    assert not isinstance(info.value, pydantic.ValidationError)


def test_duplicate_keys_in_a_file_name_the_file(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("optimizer:\n  sgd: {lr: 0.1}\n  sgd: {lr: 0.2}\n")
    with pytest.raises(ValueError, match=r"twice.yaml: duplicate key 'sgd' at line 3 \(first at line 2\)"):
        load_config(path, section="optimizer")


@pytest.mark.parametrize("text", ['{"sgd": {"lr": 0.1, "lr": 0.2}}', '{"sgd": {"lr": 0.1}, "sgd": {"lr": 0.1}}'])
def test_duplicate_json_keys_are_errors_naming_the_key(text, tmp_path):
    key = "'lr'" if '"lr": 0.2' in text else "'sgd'"
    with pytest.raises(ValueError, match=f"config text: duplicate key {key}"):
        load_config(text)
    path = tmp_path / "twice.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"twice.json: duplicate key {key}"):
        load_config(path)


def test_the_same_key_in_different_mappings_and_merge_overrides_are_fine():
    text = """
base: &base {lr: 0.5, momentum: 0.1}
mid: &mid
  <<: *base
  momentum: 0.2
deep:
  inner: &inner
    <<: {lr: 0.7}
    lr: 0.8
optimizer:
  sgd:
    <<: *mid
    lr: 0.1
other:
  <<: *inner
  lr: 0.9
"""
    assert load_config(text, section="optimizer") == OptimizerConfig(sgd=dict(lr=0.1, momentum=0.2))
    from fusedsched.tml.config import parse_config_text

    data = parse_config_text(text)
    assert data["other"] == {"lr": 0.9} and data["deep"]["inner"] == {"lr": 0.8} and data["mid"]["lr"] == 0.5


def test_read_config_file_is_the_file_part_of_load_config(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("training: {steps: 3}\noptimizer:\n  sgd: {lr: 0.1}\n")
    data = fusedsched.read_config_file(path)
    assert data == {"training": {"steps": 3}, "optimizer": {"sgd": {"lr": 0.1}}}
    assert fusedsched.read_config_file(str(path)) == data
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty.yaml is empty"):
        fusedsched.read_config_file(tmp_path / "empty.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(ValueError, match="cannot parse config file .*bad.yaml"):
        fusedsched.read_config_file(tmp_path / "bad.yaml")


# --- the kinds beyond tml's four ------------------------------------------------------------------


def test_unknown_field_in_a_new_kind_rejected():
    with pytest.raises(pydantic.ValidationError, match="warmup_steps"):
        LearningRate(exponential_decay=_with(EXP, warmup_steps=3))


def test_kinds_lists_every_field():
    fields = set(LearningRate.model_fields)
    assert set(LearningRate.KINDS) == fields
    assert len(LearningRate.KINDS) == 18


def test_defaults_of_the_new_kinds():
    e = ExponentialDecay(**EXP)
    assert (e.num_ramp_steps, e.staircase, e.end_learning_rate) == (0, False, None)
    p = PolynomialDecay(**POLY)
    assert (p.end_learning_rate, p.num_ramp_steps, p.power, p.k_decay) == (0.0, 0, 1.0, 1.0)
    w = WarmupStableDecay(**WSD)
    assert (w.final_learning_rate, w.decay_shape, w.ramp_shape, w.num_cycles) == (0.0, "cosine", "linear", 0.5)
    r = CosineWithRestarts(**RESTARTS)
    assert (r.final_learning_rate, r.num_ramp_steps, r.cycle_mult, r.cycle_decay) == (0.0, 0, 1, 1.0)
    o = OneCycle(**ONE)
    assert (o.pct_start, o.anneal_strategy, o.three_phase) == (0.3, "cos", False)
    assert (o.initial, o.minimum) == (o.max_learning_rate / 25.0, o.max_learning_rate / 25.0 / 1e4)  # the factors' defaults
    assert InverseSqrt(**INV).resolved_timescale == 10
    assert InverseSqrt(learning_rate=0.1, num_ramp_steps=0).resolved_timescale == 10_000
    assert InverseSqrt(**INV, timescale=7).resolved_timescale == 7
    a = CosineAnnealing(**ANNEAL)
    assert (a.final_learning_rate, a.num_ramp_steps, a.num_cycles, a.hard_restarts, a.k_decay) == (0.0, 0, 0.5, False, 1.0)
    t = TanhDecay(**TANH)
    assert (t.final_learning_rate, t.lower_bound, t.upper_bound) == (0.0, -7.0, 3.0)  # timm's lb, ub
    assert LogWarmup(**LOGW).initial_learning_rate == 0.0


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
    ("inverse_sqrt", INV), ("log_warmup", LOGW), ("join", JOIN), ("product", dict(schedules=[CONST, CONST])),
])
def test_every_kind_loads_with_explicit_nulls_for_the_others(kind, body):
    data = {k: None for k in LearningRate.KINDS}
    data[kind] = body
    cfg = load_config(data, LearningRate)
    assert cfg.kind == kind
    assert load_config(dump_config(cfg, "yaml"), LearningRate) == cfg


def test_kind_models_are_importable_from_config_and_package():
    for name in ("LearningRate", "ExponentialDecay", "Join", "Product", "OneCycle"):
        assert getattr(config, name) is getattr(fusedsched.schedule.kinds, name)
    assert fusedsched.LearningRate is config.LearningRate


@pytest.mark.parametrize("first", ["fusedsched.schedule.kinds", "fusedsched.schedule.kinds.cosine", "fusedsched.schedule.kinds._row",
                                   "fusedsched.tml.config", "fusedsched.schedule.program", "fusedsched.schedule.reference"])
def test_kinds_and_config_import_in_any_order(first):
    # a package __init__ that imports nothing (lazily, PEP 562) lets any module come first
    src = Path(__file__).resolve().parents[2] / "src" / "fusedsched"
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('fusedsched'); pkg.__path__ = [{str(src)!r}]; sys.modules['fusedsched'] = pkg\n"
        f"import {first}\n"
        "from fusedsched.tml.config import LearningRate, ExponentialDecay\n"
        "from fusedsched.schedule.kinds import kind_row\n"
        "print(kind_row(LearningRate(exponential_decay=dict(learning_rate=1.0, decay_rate=0.5, decay_steps=1))).formula()(3))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.125"


# --- load_config reports the likely cause first ----------------------------------------------------


@pytest.mark.parametrize("text, cls, section, loc", [
    ("learning_rate: {cosine_annealing: {learning_rate: 0.1, num_step: 100}}\nsgd: {lr: 0.1}\n", None, None,
     ("learning_rate", "cosine_annealing", "num_step")),
    ("cosine_annealing: {learning_rate: 0.1, num_step: 100}\n", LearningRate, None, ("cosine_annealing", "num_step")),
    ("optimizer:\n  learning_rate: {cosine_annealing: {learning_rate: 0.1, num_step: 100}}\n", LearningRate,
     "optimizer.learning_rate", ("cosine_annealing", "num_step")),
])
def test_load_config_leads_with_a_misspelt_required_field(text, cls, section, loc):
    with pytest.raises(pydantic.ValidationError) as info:
        load_config(text, cls, section)
    first = info.value.errors()[0]
    assert (first["type"], first["loc"]) == ("extra_forbidden", loc)
    assert "(unknown key 'num_step'; did you mean 'num_steps'?)" in first["msg"]
    lines = str(info.value).splitlines()
    assert lines[0] == "2 validation errors for " + (cls or OptimizerConfig).__name__ + (f" (section {section!r})" if section else "")
    assert lines[1] == ".".join(loc) and "did you mean 'num_steps'?" in lines[2]
    assert "Field required" in lines[4]  # pydantic's own error, still there, after the cause


UNINDENTED = {
    "a bare schedule": ("cosine_annealing:\nlearning_rate: 0.1\nnum_steps: 100\n", LearningRate, None,
                        ("cosine_annealing",), "cosine_annealing is empty and the top level has stray keys"),
    "an optimizer section": ("adam: {lr: 0.1}\nlearning_rate:\n  cosine_annealing:\n  learning_rate: 0.1\n  num_steps: 100\n",
                             None, None, ("learning_rate", "cosine_annealing"),
                             "learning_rate.cosine_annealing is empty and learning_rate has stray keys"),
    "an optimizer section in a file": (
        "optimizer:\n  adam: {lr: 0.1}\n  learning_rate:\n    cosine_annealing:\n    learning_rate: 0.1\n    num_steps: 100\n",
        OptimizerConfig, "optimizer", ("learning_rate", "cosine_annealing"),
        "learning_rate.cosine_annealing is empty and learning_rate has stray keys"),
    "a learning_rate section": ("learning_rate:\n  cosine_annealing:\n  learning_rate: 0.1\n  num_steps: 100\n",
                                LearningRate, "learning_rate", ("cosine_annealing",),
                                "cosine_annealing is empty and the top level has stray keys"),
}


@pytest.mark.parametrize("case", UNINDENTED)
def test_load_config_reports_an_unindented_schedule(case):
    text, cls, section, loc, message = UNINDENTED[case]
    with pytest.raises(pydantic.ValidationError) as info:
        load_config(text, cls, section)
    errors = info.value.errors()
    assert len(errors) == 1, errors  # the stray keys' own errors are this one
    assert (errors[0]["type"], errors[0]["loc"]) == ("schedule_not_indented", loc)
    assert errors[0]["msg"] == (f"{message} 'learning_rate', 'num_steps': are the schedule's fields indented "
                                "under cosine_annealing?")


def test_load_config_leaves_other_validation_errors_as_pydantic_gives_them():
    bad = {"learning_rate": {"constant": 0.1, "warmup": 3}, "sgd": {"lr": -1.0}}
    with pytest.raises(pydantic.ValidationError) as info:
        load_config(bad)
    with pytest.raises(pydantic.ValidationError) as direct:
        OptimizerConfig.model_validate(bad)
    assert str(info.value) == str(direct.value)  # no missing field to hint at, nothing unindented
    # explicit nulls for the unused kinds are still fine
    assert load_config({"cosine_annealing": {"learning_rate": 0.1, "num_steps": 10}, "constant": None},
                       LearningRate) == LearningRate(cosine_annealing=dict(learning_rate=0.1, num_steps=10))

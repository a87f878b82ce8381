"""Pydantic v2 models of the tml optimizer config, validated at construction, and their loading.

Field names are tml's: its core schema (``optimizers/config.py``, :class:`OptimizerConfig`) and
recap's (``RecapOptimizerConfig``), so a tml training YAML loads unchanged, in either schema:
``load_config("train.yaml", section="optimizer")``. Unlike tml, every
rule is checked when a model is built (see docs/semantics.md); a broken config raises
pydantic's ``ValidationError`` (a ``ValueError``) whose message names the field and the value.

The models are in :mod:`.schemas`, reading and validating a source in :mod:`.loading`, the
bounds every source is held to (size, depth, values) in :mod:`.limits`; their public names are
importable from here.
"""

from __future__ import annotations

from .limits import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_VALUES
from .loading import dump_config, load_config, parse_config_text, read_config_file
from .schemas import (
    ALL_PARAMS,
    BACKBONE,
    MAX_STEP,
    AdagradConfig,
    AdamConfig,
    Beta,
    CosineAnnealing,
    CosineWithRestarts,
    EmbeddingOptimizerConfig,
    ExponentialDecay,
    GroupSchedules,
    HyperparameterSchedules,
    InverseSqrt,
    Join,
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    Multipliers,
    MultiTaskLearningRates,
    OneCycle,
    OptimizerConfig,
    PiecewiseConstant,
    PolynomialDecay,
    Product,
    Rate,
    RecapAdamConfig,
    RecapMultiTaskLearningRates,
    RecapOptimizerConfig,
    SgdConfig,
    StepInt,
    WarmupStableDecay,
    optimizer_schema,
    validate_optimizer_config,
)

__all__ = [
    "ALL_PARAMS",
    "BACKBONE",
    "AdagradConfig",
    "AdamConfig",
    "Beta",
    "CosineAnnealing",
    "CosineWithRestarts",
    "EmbeddingOptimizerConfig",
    "ExponentialDecay",
    "GroupSchedules",
    "HyperparameterSchedules",
    "InverseSqrt",
    "Join",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_VALUES",
    "MAX_STEP",
    "MultiTaskLearningRates",
    "Multipliers",
    "OneCycle",
    "OptimizerConfig",
    "PiecewiseConstant",
    "PolynomialDecay",
    "Product",
    "Rate",
    "RecapAdamConfig",
    "RecapMultiTaskLearningRates",
    "RecapOptimizerConfig",
    "SgdConfig",
    "StepInt",
    "WarmupStableDecay",
    "dump_config",
    "load_config",
    "optimizer_schema",
    "parse_config_text",
    "read_config_file",
    "validate_optimizer_config",
]

"""Pydantic v2 models of the tml optimizer sections, validated at construction.

Field names are tml's: its core schema (``optimizers/config.py``, :class:`OptimizerConfig`) and
recap's (``RecapOptimizerConfig``), so a tml training YAML's optimizer section validates unchanged,
in either schema (:func:`optimizer_schema` tells them apart). Unlike tml, every rule is checked
when a model is built (see docs/semantics.md); a broken config raises pydantic's
``ValidationError`` (a ``ValueError``) whose message names the field and the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import pydantic

from ...schedule.fields import MAX_STEP, Beta, ConfigModel, Rate, StepInt, exactly_one
from ...schedule.kinds import (
    CosineAnnealing,
    CosineWithRestarts,
    ExponentialDecay,
    InverseSqrt,
    Join,
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    OneCycle,
    PiecewiseConstant,
    PolynomialDecay,
    Product,
    WarmupStableDecay,
)
from ...shim.hyperparameters import KEYS, range_refusal, scaled

# The schedule kinds live in fusedsched.schedule.kinds and the field types in fusedsched.schedule.fields; they are
# re-exported here, where a tml config's models have always been imported from.
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
    "optimizer_schema",
    "validate_optimizer_config",
]


#: tml core's param group names: the one group of a single schedule, and the shared parameters'
#: group beside the towers of ``multi_task_learning_rates``.
ALL_PARAMS = "ALL_PARAMS"
BACKBONE = "backbone"


# --- optimizers --------------------------------------------------------------------------------


class AdamConfig(ConfigModel):
    """tml's Adam (torch ``Adam``). ``weight_decay`` (unset: 0) and ``decoupled_weight_decay`` (unset:
    False; True makes it torch's ``AdamW``) are fusedsched's additions, so weight decay can be scheduled."""

    lr: Rate
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: Rate = 1e-7
    weight_decay: Rate | None = None
    decoupled_weight_decay: pydantic.StrictBool | None = None


class SgdConfig(ConfigModel):
    """tml's SGD (torch ``SGD``); ``weight_decay`` (unset: 0) is fusedsched's addition."""

    lr: Rate
    momentum: Rate = 0.0
    weight_decay: Rate | None = None


class AdagradConfig(ConfigModel):
    lr: Rate
    eps: Rate = 0.0


class MultiTaskLearningRates(ConfigModel):
    """tml recap's per-tower schedules: one per tower name, plus one for the shared backbone."""

    tower_learning_rates: dict[str, LearningRate]
    backbone_learning_rate: LearningRate

    @pydantic.field_validator("tower_learning_rates")
    @classmethod
    def _towers(cls, towers: dict[str, LearningRate]) -> dict[str, LearningRate]:
        if not towers:
            raise ValueError("tower_learning_rates must name at least one tower, got {}")
        for name in towers:
            if not name or "." in name:
                raise ValueError(
                    f"tower_learning_rates: tower name {name!r} must be non-empty, without '.'"
                )
        return towers


class HyperparameterSchedules(ConfigModel):
    """A schedule for each hyperparameter the optimizer step reads beside ``lr`` (each optional).

    ``beta1`` and ``beta2`` are Adam's ``betas[0]`` and ``betas[1]``; a schedule replaces the
    optimizer's value of its hyperparameter from step 0 on (docs/semantics.md).
    """

    weight_decay: LearningRate | None = None
    beta1: LearningRate | None = None
    beta2: LearningRate | None = None
    momentum: LearningRate | None = None
    eps: LearningRate | None = None

    def scheduled(self) -> dict[str, LearningRate]:
        """``{name: schedule}`` of the set fields, in :data:`~fusedsched.shim.hyperparameters.KEYS` order."""
        return {name: getattr(self, name) for name in KEYS if getattr(self, name) is not None}


class GroupSchedules(HyperparameterSchedules):
    """``hyperparameter_schedules``: the fields schedule every param group; ``per_group`` schedules
    the named groups (``ALL_PARAMS``, or a tower or ``backbone``), its entries replacing the
    every-group schedule of the same hyperparameter for that group."""

    per_group: dict[str, HyperparameterSchedules] | None = None


class Multipliers(ConfigModel):
    """A group's constant factors (each finite and >= 0, unset: 1): its ``lr`` schedule's, and a
    scheduled hyperparameter's; the row's value is ``compute_lr(schedule, step) * m``."""

    lr: Rate | None = None
    weight_decay: Rate | None = None
    beta1: Rate | None = None
    beta2: Rate | None = None
    momentum: Rate | None = None
    eps: Rate | None = None

    def given(self) -> dict[str, float]:
        """``{key: m}`` of the set fields, ``lr`` first, then in :data:`~fusedsched.shim.hyperparameters.KEYS` order."""
        return {key: getattr(self, key) for key in ("lr", *KEYS) if getattr(self, key) is not None}


class OptimizerConfig(ConfigModel):
    """One optimizer (exactly one of adam / sgd / adagrad) and at most one way to schedule its lr.

    ``learning_rate`` schedules every param group; ``multi_task_learning_rates`` gives each tower
    and the backbone its own schedule. With neither, the lr is the chosen optimizer's ``lr``.

    fusedsched's additions: ``hyperparameter_schedules`` schedules what the optimizer reads beside
    ``lr`` (for every group, or ``per_group``), and ``multipliers`` scales a group's schedules by
    constants (``{group: {lr | hyperparameter: m}}``). The groups are :attr:`group_names`.
    """

    learning_rate: LearningRate | None = None
    adam: AdamConfig | None = None
    sgd: SgdConfig | None = None
    adagrad: AdagradConfig | None = None
    multi_task_learning_rates: MultiTaskLearningRates | None = None
    hyperparameter_schedules: GroupSchedules | None = None
    multipliers: dict[str, Multipliers] | None = None

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adam", "sgd", "adagrad")
    #: the hyperparameters each optimizer's step reads beside lr, so the ones a schedule may drive
    READS: ClassVar[dict[str, tuple[str, ...]]] = {
        "adam": ("weight_decay", "beta1", "beta2", "eps"),
        "sgd": ("weight_decay", "momentum"),
        "adagrad": ("weight_decay", "eps"),
    }

    @pydantic.model_validator(mode="after")
    def _one_optimizer(self) -> OptimizerConfig:
        exactly_one(self, self.OPTIMIZERS)
        if self.learning_rate is not None and self.multi_task_learning_rates is not None:
            raise ValueError(
                "learning_rate and multi_task_learning_rates are mutually exclusive, got both"
            )
        self._check_group_names()
        self._check_hyperparameters()
        return self

    def _check_group_names(self) -> None:
        per_group = (self.hyperparameter_schedules and self.hyperparameter_schedules.per_group) or {}
        for field, given in (("hyperparameter_schedules.per_group", per_group), ("multipliers", self.multipliers or {})):
            for name in given:
                if name not in self.group_names:
                    raise ValueError(
                        f"{field}: group {name!r} is not a param group of this config; the groups are "
                        f"{list(self.group_names)}"
                    )

    def _check_hyperparameters(self) -> None:
        scheduled = self.hyperparameters_by_group()
        reads = self.READS[self.optimizer_name]
        for group, schedules in scheduled.items():
            for name in schedules:
                if name not in reads:
                    raise ValueError(
                        f"hyperparameter_schedules: {name} (group {group!r}) is not read by {self.optimizer_name}, "
                        f"whose step reads {list(reads)} beside lr"
                    )
        for group, multipliers in (self.multipliers or {}).items():
            for key, m in multipliers.given().items():
                if key != "lr" and key not in scheduled.get(group, {}):
                    raise ValueError(
                        f"multipliers.{group}.{key} = {m!r}, but {key} of group {group!r} has no schedule to "
                        f"multiply: schedule it in hyperparameter_schedules"
                    )
        self._check_ranges(scheduled)

    def _check_ranges(self, scheduled: dict[str, dict[str, LearningRate]]) -> None:
        """Each group's schedule times its multiplier stays in its hyperparameter's range at every
        step (:func:`~fusedsched.shim.hyperparameters.range_refusal`), as ``LRShim`` requires."""
        per_group = (self.hyperparameter_schedules.per_group or {}) if self.hyperparameter_schedules else {}
        multipliers = self.multipliers_by_group()
        for group, schedules in scheduled.items():
            for name, schedule in schedules.items():
                m = multipliers.get(group, {}).get(name, 1.0)
                reason = range_refusal(name, scaled(schedule, m))
                if reason is not None:
                    own = per_group.get(group)
                    source = ("hyperparameter_schedules" if own is None or getattr(own, name) is None
                              else f"hyperparameter_schedules.per_group.{group}")
                    times = f", times multipliers.{group}.{name} = {m!r}" if m != 1.0 else ""
                    raise ValueError(f"{source}.{name} (group {group!r}){times}: {reason}")

    @property
    def group_names(self) -> tuple[str, ...]:
        """The param groups the config schedules: ``(ALL_PARAMS,)``, or every tower then ``backbone``."""
        rates = self.multi_task_learning_rates
        return (ALL_PARAMS,) if rates is None else (*rates.tower_learning_rates, BACKBONE)

    def hyperparameters_by_group(self, group_names: Sequence[str] | None = None) -> dict[str, dict[str, LearningRate]]:
        """``{group: {hyperparameter: schedule}}``, in group order and ``KEYS`` order, groups without one left out.

        A ``per_group`` entry replaces the every-group schedule of the same hyperparameter.
        ``group_names`` (default :attr:`group_names`): the groups built, e.g. from other towers;
        a ``per_group`` name outside them is kept, last, for the scheduler to refuse.
        """
        schedules = self.hyperparameter_schedules
        if schedules is None:
            return {}
        names = self.group_names if group_names is None else tuple(group_names)
        per_group = schedules.per_group or {}
        out = {}
        for group in (*names, *(g for g in per_group if g not in names)):
            own = per_group.get(group)
            merged = {**schedules.scheduled(), **(own.scheduled() if own else {})}
            if merged:
                out[group] = {name: merged[name] for name in KEYS if name in merged}
        return out

    def multipliers_by_group(self, group_names: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
        """``{group: {key: m}}`` of the set multipliers, in group order; groups without one left out.

        ``group_names``: as in :meth:`hyperparameters_by_group` (a name outside them is kept, last).
        """
        given = {group: m.given() for group, m in (self.multipliers or {}).items()}
        names = self.group_names if group_names is None else tuple(group_names)
        order = (*names, *(g for g in given if g not in names))
        return {group: given[group] for group in order if given.get(group)}

    @property
    def optimizer_name(self) -> Literal["adam", "sgd", "adagrad"]:
        return exactly_one(self, self.OPTIMIZERS)  # type: ignore[return-value]

    @property
    def optimizer(self) -> AdamConfig | SgdConfig | AdagradConfig:
        return getattr(self, self.optimizer_name)


# --- recap's optimizer schema -----------------------------------------------------------------


class RecapAdamConfig(ConfigModel):
    """Recap's Adam: ``betas=(beta_1, beta_2)``, ``eps=epsilon``. No ``lr``: every rate is scheduled."""

    beta_1: Beta = 0.9
    beta_2: Beta = 0.999
    epsilon: Rate = 1e-7


class RecapMultiTaskLearningRates(ConfigModel):
    """Recap's per-task schedules; task names are arbitrary strings (dots included).

    ``backbone_learning_rate`` may be null when no parameter falls to the backbone.
    """

    tower_learning_rates: dict[str, LearningRate]
    backbone_learning_rate: LearningRate | None = None

    @pydantic.field_validator("tower_learning_rates")
    @classmethod
    def _tasks(cls, tasks: dict[str, LearningRate]) -> dict[str, LearningRate]:
        if not tasks:
            raise ValueError("tower_learning_rates must name at least one task, got {}")
        if "" in tasks:
            raise ValueError("tower_learning_rates: a task name must be non-empty, got ''")
        return tasks


class RecapOptimizerConfig(ConfigModel):
    """Recap's optimizer section (``RecapOptimizerConfig``): Adam, and exactly one of
    ``multi_task_learning_rates`` (one schedule per task, plus the backbone) and
    ``single_task_learning_rate`` (one schedule for every parameter)."""

    adam: RecapAdamConfig
    multi_task_learning_rates: RecapMultiTaskLearningRates | None = None
    single_task_learning_rate: LearningRate | None = None

    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("multi_task_learning_rates", "single_task_learning_rate")

    @pydantic.model_validator(mode="after")
    def _one_learning_rate(self) -> RecapOptimizerConfig:
        exactly_one(self, self.LEARNING_RATES)
        return self

    @property
    def optimizer_name(self) -> Literal["adam"]:
        return "adam"

    @property
    def optimizer(self) -> RecapAdamConfig:
        return self.adam


class EmbeddingOptimizerConfig(ConfigModel):
    """Recap's ``large_embeddings.optimizer``: ``learning_rate`` schedules the SGD group ``dense_ebc``
    (parameters whose name contains ``embedding_bags``); ``init_learning_rate`` is kept as recap has it."""

    learning_rate: LearningRate | None = None
    init_learning_rate: Rate


# Fields that only one of the two optimizer schemas has: they tell a section's schema.
_CORE_FIELDS = ("learning_rate", "sgd", "adagrad")
_CORE_ADAM_FIELDS = ("lr", "betas", "eps")
_RECAP_FIELDS = ("single_task_learning_rate",)
_RECAP_ADAM_FIELDS = ("beta_1", "beta_2", "epsilon")


def optimizer_schema(data: Mapping[str, Any]) -> type[OptimizerConfig] | type[RecapOptimizerConfig]:
    """Which schema an optimizer section is written in, told apart by its fields.

    tml core (``OptimizerConfig``) has ``learning_rate``, ``sgd``, ``adagrad`` and
    ``adam: {lr, betas, eps}``; recap (``RecapOptimizerConfig``) has ``single_task_learning_rate``
    and ``adam: {beta_1, beta_2, epsilon}``. A field counts when written, even as null. An ``adam``
    with none of these fields is recap's (tml core's needs ``lr``).

    Raises:
        ValueError: the section mixes the two schemas, or has fields of neither (names them).
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"an optimizer section must be a mapping, got {type(data).__name__}")
    adam = data.get("adam")
    adam_keys = list(adam) if isinstance(adam, Mapping) else []
    core = [k for k in _CORE_FIELDS if k in data] + [f"adam.{k}" for k in _CORE_ADAM_FIELDS if k in adam_keys]
    recap = [k for k in _RECAP_FIELDS if k in data] + [f"adam.{k}" for k in _RECAP_ADAM_FIELDS if k in adam_keys]
    if core and recap:
        raise ValueError(
            f"the optimizer section mixes tml core fields ({', '.join(core)}) with recap fields "
            f"({', '.join(recap)}); write one schema: tml core (adam: {{lr, betas, eps}}, sgd, adagrad, "
            "learning_rate) or recap (adam: {beta_1, beta_2, epsilon}, single_task_learning_rate)"
        )
    if core:
        return OptimizerConfig
    if recap or isinstance(adam, Mapping):
        return RecapOptimizerConfig
    raise ValueError(
        "cannot tell the optimizer schema: tml core needs adam: {lr, ...}, sgd or adagrad; recap needs "
        f"adam: {{beta_1, beta_2, epsilon}} (all optional); found fields: {', '.join(map(str, data)) or 'none'}"
    )


def validate_optimizer_config(
    data: OptimizerConfig | RecapOptimizerConfig | Mapping[str, Any],
) -> OptimizerConfig | RecapOptimizerConfig:
    """A config model from a mapping in either optimizer schema (see :func:`optimizer_schema`).

    A model is returned as it is; anything else but a mapping is a ``TypeError``.
    """
    if isinstance(data, (OptimizerConfig, RecapOptimizerConfig)):
        return data
    if not isinstance(data, Mapping):
        raise TypeError(
            "an optimizer config must be an OptimizerConfig, a RecapOptimizerConfig or a mapping, "
            f"got {type(data).__name__}"
        )
    return optimizer_schema(data).model_validate(dict(data))

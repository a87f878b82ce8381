"""Schedules for the hyperparameters an optimizer step reads beside ``lr``, and per-group multipliers.

``LRShim(..., hyperparameters={group: {key: schedule}}, multipliers={group: {key: m}})``:

- a scheduled hyperparameter is one more *row* of the schedule table: the rows are every group's
  ``lr`` first, in group order, then the scheduled hyperparameters in group order and in the order
  of :data:`KEYS`, one row per distinct ``(name, schedule times multiplier)``: groups whose
  hyperparameter has the same schedule and multiplier (every group's ``beta1`` on one momentum
  cycle) share its row, evaluated once, and their views point at the same element (:attr:`Row.slot`).
  A hyperparameter without a schedule adds no row;
- a multiplier ``m`` of a row compiles into its program as ``product(schedule, constant(m))``: the
  row's value is ``compute_lr(schedule, s) * m``, exactly (one float64 multiplication, the last
  factor; the kernels multiply the factors in the same order). A multiplier of 1 adds nothing;
- every row's schedule times its multiplier stays in its hyperparameter's range at every step
  (:meth:`~fusedsched.optimizers.group_key.GroupKey.refusal`: betas in ``[0, 1)``, the others in
  ``[0, inf)``), judged from its bounds over all steps (:func:`~fusedsched.schedule.kinds.schedule_bounds`),
  not from a sample of steps: :func:`range_refusal`.

:data:`KEYS` maps each hyperparameter name to where it sits in a param group (a
:class:`~fusedsched.optimizers.group_key.GroupKey`): ``weight_decay``, ``momentum``, ``eps`` are
group keys; ``beta1`` and ``beta2`` are ``betas[0]`` and ``betas[1]``. :class:`Rows` names every
row of a scheduler's table: the groups' ``lr`` rows, then the hyperparameters' (shared) rows.

Everything here is checked before any group is touched (``TypeError`` / ``ValueError`` naming the
entry and the value).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..optimizers.graphsafe import GraphSafeOptimizer
from ..optimizers.group_key import BETA1, BETA2, EPS, MOMENTUM, WEIGHT_DECAY, GroupKey
from ..schedule.kinds import LearningRate, schedule_bounds

__all__ = [
    "KEYS",
    "Row",
    "Rows",
    "check_optimizer_reads",
    "range_refusal",
    "rows",
    "scaled",
    "validate_hyperparameters",
    "validate_multipliers",
]

#: hyperparameter name -> where it sits in a param group, in row order
KEYS: dict[str, GroupKey] = {
    "weight_decay": WEIGHT_DECAY,
    "beta1": BETA1,
    "beta2": BETA2,
    "momentum": MOMENTUM,
    "eps": EPS,
}


@dataclass(frozen=True)
class Row:
    """One scheduled hyperparameter of one group: where its value goes, and where it is evaluated."""

    group: int  #: the group's index, in group order
    name: str  #: the hyperparameter (a key of :data:`KEYS`)
    slot: int  #: its row of the table and of the value buffer (shared by equal schedules)

    @property
    def group_key(self) -> GroupKey:
        return KEYS[self.name]


def _schedule(value: Any, where: str) -> LearningRate:
    if isinstance(value, LearningRate):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a LearningRate or a mapping, got {type(value).__name__}")
    try:
        return LearningRate.model_validate(value)
    except ValueError as exc:
        raise ValueError(f"{where} is not a valid LearningRate: {exc}") from None


def _per_group(value: Any, what: str, group_names: Sequence[str]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping of group name to {{key: value}}, got {type(value).__name__}")
    for name, entry in value.items():
        if name not in group_names:
            raise ValueError(f"{what} names group {name!r}, which is not one of the groups {list(group_names)}")
        if not isinstance(entry, Mapping):
            raise TypeError(f"{what}[{name!r}] must be a mapping of key to value, got {type(entry).__name__}")
    return value


def validate_hyperparameters(
    hyperparameters: Any, group_names: Sequence[str], what: str = "hyperparameters"
) -> dict[str, dict[str, LearningRate]]:
    """``{group: {name: LearningRate}}`` in group order and :data:`KEYS` order; groups without one left out."""
    given = _per_group(hyperparameters, what, group_names)
    out: dict[str, dict[str, LearningRate]] = {}
    for group in group_names:
        entry = given.get(group, {})
        unknown = [k for k in entry if k not in KEYS]
        if unknown:
            raise ValueError(
                f"{what}[{group!r}] has unknown hyperparameter {unknown[0]!r}: schedulable are {list(KEYS)} "
                f"(lr is scheduled by lr_dict)"
            )
        schedules = {k: _schedule(entry[k], f"{what}[{group!r}][{k!r}]") for k in KEYS if k in entry}
        if schedules:
            out[group] = schedules
    return out


def validate_multipliers(
    multipliers: Any,
    group_names: Sequence[str],
    hyperparameters: Mapping[str, Mapping[str, LearningRate]],
    what: str = "multipliers",
) -> dict[str, dict[str, float]]:
    """``{group: {name: m}}`` (``name``: ``lr`` or a scheduled hyperparameter; ``m`` a finite float >= 0)."""
    given = _per_group(multipliers, what, group_names)
    out: dict[str, dict[str, float]] = {}
    for group in group_names:
        entry = given.get(group, {})
        scheduled = ["lr", *hyperparameters.get(group, {})]
        values = {}
        for key, m in entry.items():
            where = f"{what}[{group!r}][{key!r}]"
            if key not in scheduled:
                if key in KEYS:
                    raise ValueError(
                        f"{where} = {m!r}, but {key} of group {group!r} has no schedule to multiply: "
                        f"schedule it in hyperparameters[{group!r}][{key!r}]"
                    )
                raise ValueError(f"{where}: unknown key {key!r}; multipliers apply to {['lr', *KEYS]}")
            if isinstance(m, bool) or not isinstance(m, (int, float)):
                raise TypeError(f"{where} must be a number, got {m!r} ({type(m).__name__})")
            if not math.isfinite(m) or m < 0:
                raise ValueError(f"{where} must be a finite number >= 0, got {m!r}")
            values[key] = float(m)
        if values:
            out[group] = {k: values[k] for k in ["lr", *KEYS] if k in values}
    return out


def scaled(schedule: LearningRate, multiplier: float) -> LearningRate:
    """``schedule * multiplier`` as one schedule: ``schedule`` itself for 1, else ``product(schedule, constant)``."""
    if multiplier == 1.0:
        return schedule
    return LearningRate(product={"schedules": [schedule, LearningRate(constant=multiplier)]})


def range_refusal(name: str, schedule: LearningRate) -> str | None:
    """Why ``schedule`` (its multiplier compiled in: :func:`scaled`) may leave the range of the
    hyperparameter ``name`` at some step, with its worst value and the range; None when it cannot.

    >>> range_refusal("beta2", scaled(LearningRate(constant=0.9), 1.5))
    'its highest value is 1.35, not below 1; beta2 (betas[1]) must lie in [0, 1) at every step'
    """
    key = KEYS[name]
    reason = key.refusal(*schedule_bounds(schedule))
    return None if reason is None else f"{reason}; {name} ({key.label}) must lie in {key.range} at every step"


def _identity(schedule: LearningRate) -> str:
    """Equal for equal schedules only: every field, floats by ``repr`` (``-0.0``, ``inf`` kept apart)."""
    return repr(schedule.model_dump(exclude_none=True))


@dataclass(frozen=True)
class Rows:
    """Every row of a scheduler's table: each group's ``lr`` (in group order), then the scheduled
    hyperparameters' rows (:attr:`hyper`: each group's, pointing at a row that groups with the same
    schedule and multiplier share). Row ``i``'s schedule is ``configs[i]``."""

    group_names: tuple[str, ...]
    configs: tuple[LearningRate, ...]  #: every row's schedule, multipliers compiled in
    hyper: tuple[Row, ...]  #: every group's scheduled hyperparameters, in group and :data:`KEYS` order

    def names(self) -> list[tuple[str, str]]:
        """``(group, key)`` of every row, ``key`` ``"lr"`` or a hyperparameter; a shared row is named
        by its first group."""
        owners: dict[int, tuple[str, str]] = {}
        for r in self.hyper:
            owners.setdefault(r.slot, (self.group_names[r.group], r.name))
        return [(name, "lr") for name in self.group_names] + [owners[slot] for slot in sorted(owners)]

    def index(self) -> dict[tuple[str, str], int]:
        """Every ``(group, key)``'s row, shared rows included."""
        return {**{(name, "lr"): i for i, name in enumerate(self.group_names)},
                **{(self.group_names[r.group], r.name): r.slot for r in self.hyper}}

    def plateau_rows(self, keys: Iterable[tuple[str, str]], plateaus: Iterable[int]) -> dict[tuple[str, str], int]:
        """``{(group, key): row}`` for ``keys``, each of which must be one of the ``plateaus`` rows;
        ``ValueError`` listing the keys that are not, and where the plateaus are."""
        index, plateaus = self.index(), set(plateaus)
        unknown = [key for key in keys if index.get(key) not in plateaus]
        if unknown:
            names = self.names()
            raise ValueError(f"no plateau at {unknown}; the plateaus are at {[names[r] for r in sorted(plateaus)]}")
        return {key: index[key] for key in keys}

    def by_group(self, values: Sequence[Any]) -> dict[str, dict[str, Any]]:
        """``{group: {key: values[row]}}`` for the scheduled hyperparameters (``values``: one per row)."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.hyper:
            out.setdefault(self.group_names[r.group], {})[r.name] = values[r.slot]
        return out


def rows(
    group_names: Sequence[str],
    lr_dict: Mapping[str, LearningRate],
    hyperparameters: Mapping[str, Mapping[str, LearningRate]],
    multipliers: Mapping[str, Mapping[str, float]],
    share: bool = True,
) -> Rows:
    """Every row's schedule (multiplier compiled in) and every group's :class:`Row` s.

    The lr rows in group order, then one row per distinct ``(name, scaled schedule)`` in order of
    first use; ``share=False`` gives every group's hyperparameter a row of its own (the same values).

    Raises:
        ValueError: a hyperparameter's schedule times its multiplier may leave its range
            (:func:`range_refusal`), naming the group, the key, the worst value and the range.
    """
    configs = [scaled(lr_dict[g], multipliers.get(g, {}).get("lr", 1.0)) for g in group_names]
    extra = []
    slots: dict[tuple[str, str], int] = {}
    judged: dict[tuple[str, str], str | None] = {}  # each distinct row once
    for i, group in enumerate(group_names):
        for name, schedule in hyperparameters.get(group, {}).items():
            m = multipliers.get(group, {}).get(name, 1.0)
            config = scaled(schedule, m)
            key = (name, _identity(config))
            if key not in judged:
                judged[key] = range_refusal(name, config)
            if judged[key] is not None:
                times = f" times multipliers[{group!r}][{name!r}] ({m!r})" if m != 1.0 else ""
                raise ValueError(f"hyperparameters[{group!r}][{name!r}]{times}: {judged[key]}")
            slot = slots.get(key) if share else None
            if slot is None:
                slot = slots[key] = len(configs)
                configs.append(config)
            extra.append(Row(i, name, slot))
    return Rows(tuple(group_names), tuple(configs), tuple(extra))


def check_optimizer_reads(
    extra: Sequence[Row], groups: Sequence[dict], owners: Sequence[Any], names: Sequence[str], device: bool
) -> None:
    """Refuse a row whose group lacks its key, or (``device``) whose optimizer would read a tensor by value.

    In device mode a row is a 0-dim tensor view; only the graph-safe optimizers read every
    hyperparameter as a tensor without a host sync (torch's fused kernels take them as floats, the
    foreach paths as Python scalars; ``FusedAdagrad`` takes only ``lr``): docs/optimizers.md.
    """
    for row in extra:
        group, owner, name = groups[row.group], owners[row.group], names[row.group]
        cls = type(owner).__name__
        if not row.group_key.in_group(group):
            raise ValueError(
                f"hyperparameters[{name!r}][{row.name!r}]: param group {name!r} ({cls}) has no "
                f"{row.group_key.key!r}, so its optimizer does not read {row.name}"
            )
        if device and not isinstance(owner, GraphSafeOptimizer):
            raise ValueError(
                f"hyperparameters[{name!r}][{row.name!r}]: in device mode a scheduled {row.name} is a 0-dim "
                f"tensor, and {cls} reads it by value (torch's fused kernels take it as a float, its foreach "
                f"paths as a Python scalar: a host sync, frozen in a CUDA graph, a recompile under torch.compile). "
                f"Use fusedsched.GraphSafeAdam, GraphSafeAdamW or GraphSafeSGD, or host mode (device_schedule=False)"
            )

"""Changing a running schedule without a jump: what ``LRShim.switch`` and a load's schedules are.

A switch at step ``at`` makes a row's schedule (a group's ``lr``, or one of its scheduled
hyperparameters) the ``join`` of the one in effect and the new one (docs/switching.md)::

    effective(s) = old(s)          for s < at
                   new(s - at)     for s >= at      (join(schedules=[old, new], boundaries=[at]))

so the new schedule counts from ``at`` and nothing before ``at`` changes. Where ``old`` is itself a
``join``, its pieces that start at ``at`` or later are dropped and the rest kept flat (the same
values, the config one writes by hand). A rate field of the new schedule may be ``"current"``:
it is ``compute_lr(old, at)`` (float64, exact; before the row's multiplier, which applies to both),
so a schedule that starts from that field continues from the rate the row has at ``at``.

- :func:`plan_switch` checks a switch's arguments and resolves ``"current"`` into a
  :class:`~fusedsched.shim.checkpoint.Switch`; :func:`switched` applies one to :class:`Schedules`;
- :func:`resumed` gives the schedules a load resumes: the configured ones with the checkpoint's
  switches applied (``"configured"``), or the checkpoint's own (``"checkpoint"``);
- :func:`replacement` checks that the engine can take new schedules (the rows keep their places
  in device mode; the plateaus stay where they are; the device table has room) and prepares them.

Everything here changes nothing: the scheduler applies a :class:`Replacement` once it is built.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from ..schedule.fields import MAX_STEP, Rate
from ..schedule.kinds import Join, LearningRate, PlateauRow, compile_plateau, plateaus
from ..schedule.reference import compute_lr
from .checkpoint import (
    Switch,
    check_schedule_policy,
    check_step,
    parse_switches,
    saved_schedules,
    state_mapping,
    validate_lr_dict,
)
from .engine import Engine, plateau_rows
from .hyperparameters import KEYS, Rows, rows, scaled, validate_hyperparameters

__all__ = ["CURRENT", "Replacement", "Schedules", "joined", "plan_switch", "planned", "replacement", "resumed", "switched"]

#: the word a rate field of a switch's schedule may hold: the row's rate at ``at``
CURRENT = "current"
_RATE = Rate.__metadata__[-1]  # the validator that makes a float field a rate


@dataclass(frozen=True)
class Schedules:
    """A scheduler's schedules by group: ``lr``, the scheduled hyperparameters, the multipliers."""

    lr: dict[str, LearningRate]
    hyperparameters: dict[str, dict[str, LearningRate]]
    multipliers: dict[str, dict[str, float]]

    def same_as(self, other: Schedules) -> bool:
        """Every schedule and multiplier equal, field by field (floats by ``repr``)."""
        return _dumps(self) == _dumps(other)


def _dumps(schedules: Schedules) -> str:
    return repr(([(g, c.model_dump(exclude_none=True)) for g, c in schedules.lr.items()],
                 [(g, [(k, c.model_dump(exclude_none=True)) for k, c in e.items()])
                  for g, e in schedules.hyperparameters.items()],
                 [(g, sorted(e.items())) for g, e in schedules.multipliers.items()]))


# --- one switch --------------------------------------------------------------------------------


def joined(old: LearningRate, new: LearningRate, at: int) -> LearningRate:
    """``old`` before step ``at``, ``new`` counted from ``at`` on: ``join([old, new], [at])``, with
    ``old``'s own ``join`` pieces that start at ``at`` or later dropped and the others kept flat."""
    if old.kind == "join":
        kept = sum(b < at for b in old.join.boundaries)
        schedules, boundaries = [*old.join.schedules[: kept + 1], new], [*old.join.boundaries[:kept], at]
    else:
        schedules, boundaries = [old, new], [at]
    return LearningRate(join=Join(schedules=schedules, boundaries=boundaries))


def switched(schedules: Schedules, switch: Switch, where: str = "switch") -> Schedules:
    """``schedules`` with ``switch`` applied (:func:`joined` at ``switch.at``); ``ValueError`` naming
    ``where`` if it switches a hyperparameter that has no schedule here."""
    for group, entry in switch.hyperparameters.items():
        missing = [key for key in entry if key not in schedules.hyperparameters.get(group, {})]
        if missing:
            raise ValueError(f"{where} switches {missing[0]} of group {group!r}, which has no {missing[0]} schedule "
                             f"here (scheduled: {sorted(schedules.hyperparameters.get(group, {}))})")
    at = switch.at
    lr = {g: joined(cfg, switch.lr[g], at) if g in switch.lr else cfg for g, cfg in schedules.lr.items()}
    hyper = {g: {k: joined(cfg, switch.hyperparameters[g][k], at) if k in switch.hyperparameters.get(g, {}) else cfg
                 for k, cfg in entry.items()} for g, entry in schedules.hyperparameters.items()}
    return Schedules(lr, hyper, schedules.multipliers)


def _switch_step(at: Any, step: int) -> int:
    """``at`` checked: a step from the current one (``step``, ``last_epoch``) on; None is the current one."""
    if at is None:
        return max(step, 0)
    at = check_step(at, "at")
    if at > MAX_STEP:
        raise OverflowError(f"at must be <= 2**53 - 2 ({MAX_STEP}): a join's boundary is exact in float64 only up "
                            f"to there, got {at}")
    if at < step:
        raise ValueError(f"at={at} is before the current step {step} (last_epoch): a switch changes the schedule from "
                         f"a step on, and the steps already taken keep the rates they had; give at >= {step}")
    return at


def _requests(schedules: Any, hyperparameters: Any, group_names: Sequence[str],
              now: Schedules) -> list[tuple[str, str, str, Any]]:
    """``(where, group, key, schedule as given)`` for every row a switch names, each group and key checked."""
    out = []
    if schedules is not None:
        if not isinstance(schedules, Mapping):
            raise TypeError(f"schedules must be a mapping of group name to LearningRate (or a dict), "
                            f"got {type(schedules).__name__}")
        for group, value in schedules.items():
            if group not in group_names:
                raise ValueError(f"schedules names group {group!r}, which is not one of the groups {list(group_names)}")
            out.append((f"schedules[{group!r}]", group, "lr", value))
    if hyperparameters is not None:
        if not isinstance(hyperparameters, Mapping):
            raise TypeError(f"hyperparameters must be a mapping of group name to {{key: schedule}}, "
                            f"got {type(hyperparameters).__name__}")
        for group, entry in hyperparameters.items():
            if group not in group_names:
                raise ValueError(f"hyperparameters names group {group!r}, which is not one of the groups "
                                 f"{list(group_names)}")
            if not isinstance(entry, Mapping):
                raise TypeError(f"hyperparameters[{group!r}] must be a mapping of key to schedule, "
                                f"got {type(entry).__name__}")
            for key, value in entry.items():
                where = f"hyperparameters[{group!r}][{key!r}]"
                if key not in KEYS:
                    raise ValueError(f"{where}: unknown hyperparameter {key!r}; schedulable are {list(KEYS)} "
                                     f"(lr is switched by schedules)")
                if key not in now.hyperparameters.get(group, {}):
                    raise ValueError(f"{where}: group {group!r} has no {key} schedule to switch (a switch changes a "
                                     f"schedule in effect: schedule it at construction, LRShim(hyperparameters=...))")
                out.append((where, group, key, value))
    if not out:
        raise ValueError("switch() got nothing to switch: give schedules={group: schedule} and/or "
                         "hyperparameters={group: {key: schedule}}")
    return out


def _is_rate(annotation: Any, metadata: Sequence[Any] = ()) -> bool:
    """Whether a field of this annotation (and pydantic metadata) is a :data:`~fusedsched.schedule.fields.Rate`."""
    if any(m is _RATE for m in metadata):
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        return any(m is _RATE for m in annotation.__metadata__)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_rate(a) for a in typing.get_args(annotation))
    return False


def _model(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The model class an annotation (or its ``X | None``) names, else None."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [m for m in map(_model, typing.get_args(annotation)) if m is not None]
        return found[0] if found else None
    return None


def _resolved(value: Any, annotation: Any, metadata: Sequence[Any], current: Callable[[], float], path: str) -> Any:
    """``value`` with every ``"current"`` in a rate field replaced by ``current()``; ``ValueError``
    naming the field's path where ``"current"`` sits in any other field."""
    if isinstance(value, str) and value == CURRENT:
        if not _is_rate(annotation, metadata):
            raise ValueError(f"{path} is 'current', but only a rate field (a learning rate or a hyperparameter's "
                             f"value: learning_rate, final_learning_rate, constant, ...) may be 'current'")
        return current()
    model = _model(annotation)
    if model is not None and isinstance(value, Mapping):
        fields = model.model_fields
        return {k: _resolved(v, fields[k].annotation, fields[k].metadata, current, f"{path}.{k}") if k in fields else v
                for k, v in value.items()}
    if typing.get_origin(annotation) is list and isinstance(value, (list, tuple)):
        (item,) = typing.get_args(annotation)
        return [_resolved(v, item, (), current, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _current_of(old: LearningRate, at: int, where: str) -> Callable[[], float]:
    """``"current"`` for a row whose schedule in effect is ``old``: ``compute_lr(old, at)``, once."""
    found: list[float] = []

    def current() -> float:
        if not found:
            plateau: PlateauRow | None = compile_plateau(old)
            if plateau is not None and plateau.active(at):
                raise ValueError(f"{where}: 'current' at step {at}, where the schedule in effect is a plateau, whose "
                                 f"rate follows the metrics, not the step: give the rate as a number "
                                 f"(plateau_states() holds its value)")
            found.append(compute_lr(old, at))
        return found[0]

    return current


def plan_switch(now: Schedules, group_names: Sequence[str], schedules: Any, hyperparameters: Any, at: Any,
                step: int) -> Switch:
    """The :class:`~fusedsched.shim.checkpoint.Switch` that ``LRShim.switch(schedules, hyperparameters=...,
    at=...)`` asks for, at the current step ``step``, every ``"current"`` resolved against ``now``.

    Raises ``TypeError`` / ``ValueError`` / ``OverflowError`` naming the argument (and field) and the
    value: an unknown group or key, a hyperparameter without a schedule, ``at`` before ``step``,
    ``"current"`` in a field that is not a rate (or where the schedule in effect is a plateau), an
    invalid schedule, a schedule holding a plateau.
    """
    at = _switch_step(at, step)
    lr: dict[str, Any] = {}
    hyper: dict[str, dict[str, Any]] = {}
    for where, group, key, value in _requests(schedules, hyperparameters, group_names, now):
        old = now.lr[group] if key == "lr" else now.hyperparameters[group][key]
        if isinstance(value, Mapping):
            value = _resolved(value, LearningRate, (), _current_of(old, at, where), where)
        elif not isinstance(value, LearningRate):
            raise TypeError(f"{where} must be a LearningRate or a mapping, got {type(value).__name__}")
        if key == "lr":
            lr[group] = value
        else:
            hyper.setdefault(group, {})[key] = value
    lr = validate_lr_dict(lr, "schedules") if lr else {}
    hyper = validate_hyperparameters(hyper, group_names)
    news = [(f"schedules[{g!r}]", c) for g, c in lr.items()]
    news += [(f"hyperparameters[{g!r}][{k!r}]", c) for g, e in hyper.items() for k, c in e.items()]
    for where, cfg in news:
        if plateaus(cfg):
            raise ValueError(f"{where} holds a plateau: a switch cannot bring one (a plateau's state is laid out when "
                             f"the LRShim is built); build the LRShim with the plateau in its schedule")
    return Switch(at, {g: lr[g] for g in group_names if g in lr}, hyper)


# --- a load's schedules ------------------------------------------------------------------------------


def resumed(state_dict: Any, policy: Any, configured: Schedules,
            group_names: Sequence[str]) -> tuple[Schedules, tuple[Switch, ...]]:
    """``(schedules, switches)`` a load of ``state_dict`` resumes under ``policy``: ``"configured"``,
    ``configured`` with the checkpoint's switches applied in order; ``"checkpoint"``, the checkpoint's
    own schedules (those it holds; the configured ones where it has none, as a state written before
    hyperparameters existed). Checked; changes nothing."""
    policy = check_schedule_policy(policy)
    state_dict = state_mapping(state_dict)
    switches = parse_switches(state_dict.get("switches"), group_names)
    if policy == "checkpoint":
        lr, hyper, mults = saved_schedules(state_dict, group_names)
        return Schedules({g: lr[g] for g in group_names} if lr is not None else configured.lr,
                         configured.hyperparameters if hyper is None else hyper,
                         configured.multipliers if mults is None else mults), switches
    schedules = configured
    for i, switch in enumerate(switches):
        schedules = switched(schedules, switch, f"state_dict['switches'][{i}]")
    return schedules, switches


# --- what the engine takes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    """New schedules, checked and prepared for the engine; ``changed`` False when they are the ones in effect."""

    schedules: Schedules
    switches: tuple[Switch, ...]
    rows: Rows
    changed: bool
    prepared: Any = None  #: what the engine's ``replace_schedules`` installs
    moves: dict[int, int] = field(default_factory=dict)  #: each plateau's row now -> its row after
    plateau_rows: dict[int, PlateauRow] = field(default_factory=dict)

    def plateau_keys(self) -> list[tuple[str, str]]:
        """``(group, key)`` of every row that holds a plateau, after the replacement."""
        names = self.rows.names()
        return [names[row] for row in self.plateau_rows]


def _fixed_rows(now: Rows, schedules: Schedules) -> Rows:
    """Device mode: every ``(group, key)`` keeps its row (a view of one buffer element, read by address
    in a captured graph); ``ValueError`` where that cannot hold."""
    names, mults = now.group_names, schedules.multipliers
    keys_now = {(names[r.group], r.name) for r in now.hyper}
    keys_new = {(g, k) for g, entry in schedules.hyperparameters.items() for k in entry}
    if keys_now != keys_new:
        raise ValueError(f"in device mode the scheduled hyperparameters stay those of construction, "
                         f"{sorted(keys_now)}, not {sorted(keys_new)} (each is a view of the device buffer)")
    configs = [scaled(schedules.lr[g], mults.get(g, {}).get("lr", 1.0)) for g in names]
    by_slot: dict[int, tuple[tuple[str, str], LearningRate]] = {}
    for r in now.hyper:
        key = (names[r.group], r.name)
        cfg = scaled(schedules.hyperparameters[key[0]][r.name], mults.get(key[0], {}).get(r.name, 1.0))
        first = by_slot.setdefault(r.slot, (key, cfg))
        if first[1].model_dump(exclude_none=True) != cfg.model_dump(exclude_none=True):
            raise ValueError(f"hyperparameters[{key[0]!r}][{r.name!r}] shares its row of the device table with "
                             f"{first[0]} (the same schedule and multiplier at construction), so in device mode "
                             f"they keep one schedule: switch them together, to the same schedule")
    configs += [by_slot[slot][1] for slot in range(len(names), len(now.configs))]
    return Rows(names, tuple(configs), now.hyper)


def _plateaus_by_key(table_rows: Rows, found: Mapping[int, PlateauRow]) -> dict[tuple[str, str], Any]:
    return {key: found[row].settings for key, row in table_rows.index().items() if row in found}


def replacement(engine: Engine, rows_now: Rows, now: Schedules, schedules: Schedules,
                switches: tuple[Switch, ...]) -> Replacement:
    """``schedules`` (and the ``switches`` that made them) checked for ``engine``, whose rows are
    ``rows_now`` and schedules ``now``: device mode keeps every row in its place; the rows holding a
    plateau, and its settings, stay the same (a cut after the plateau started keeps it); the engine
    has room (``engine.prepare_schedules``). ``ValueError`` naming what does not fit; changes nothing."""
    if schedules.same_as(now):
        return Replacement(now, switches, rows_now, changed=False, plateau_rows=dict(engine.plateau_rows))
    if engine.on_device:
        new_rows = _fixed_rows(rows_now, schedules)
    else:
        new_rows = rows(rows_now.group_names, schedules.lr, schedules.hyperparameters, schedules.multipliers)
    configs = list(new_rows.configs)
    found = plateau_rows(configs)
    before, after = _plateaus_by_key(rows_now, engine.plateau_rows), _plateaus_by_key(new_rows, found)
    if before != after:
        raise ValueError(
            f"the plateaus must stay where they are, with their settings: {sorted(before)} hold one now, "
            f"{sorted(after)} would{' (with other settings)' if set(before) == set(after) else ''} (a plateau's state "
            f"is laid out when the LRShim is built: a switch may cut a plateau that has started, not add one, "
            f"nor cut one away before it starts)")
    index = new_rows.index()
    moves = {row: index[key] for key, row in rows_now.index().items() if row in engine.plateau_rows}
    prepared = engine.prepare_schedules(configs, new_rows.names())
    return Replacement(schedules, switches, new_rows, True, prepared, moves, found)


def planned(engine: Engine, rows_now: Rows, now: Schedules, switches: tuple[Switch, ...], schedules: Any,
            hyperparameters: Any, at: Any) -> Replacement:
    """``LRShim.switch(schedules, hyperparameters=..., at=...)`` for ``engine`` at its step:
    :func:`plan_switch`, :func:`switched`, then :func:`replacement`, every check done."""
    change = plan_switch(now, rows_now.group_names, schedules, hyperparameters, at, engine.step)
    return replacement(engine, rows_now, now, switched(now, change), (*switches, change))

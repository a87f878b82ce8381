"""What an ``LRShim`` checkpoint holds, checked before anything is applied.

:func:`parse_state_dict` reads a state dict (from ``LRShim.state_dict()``, through ``torch.save`` /
``torch.load(weights_only=True)``) for a scheduler whose groups and schedules are given, and returns
a :class:`ResumeState`, or raises ``TypeError`` / ``ValueError`` / ``OverflowError`` naming the
entry and the value. It touches no optimizer and no scheduler: the scheduler applies the result.

Which schedules a load resumes is the caller's choice (``LRShim.load_state_dict(schedules=...)``):
the configured ones with the checkpoint's switches (:class:`Switch`, :func:`parse_switches`) applied,
or the checkpoint's own (:func:`saved_schedules`); :func:`schedule_differences` names every field
where the checkpoint's differ from those (nested ``join`` / ``product`` schedules by their path,
e.g. ``join.schedules[1].product.schedules[0].exponential_decay.decay_rate``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic

from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate
from .hyperparameters import validate_hyperparameters, validate_multipliers

__all__ = [
    "MAX_EPOCH",
    "ResumeState",
    "SCHEDULE_POLICIES",
    "ScheduleChangedWarning",
    "Switch",
    "check_schedule_policy",
    "check_step",
    "checked_plateau_state",
    "hyperparameter_differences",
    "parse_state_dict",
    "parse_switches",
    "saved_schedules",
    "schedule_differences",
    "scheduler_state",
    "state_mapping",
    "validate_lr_dict",
]

#: The largest step the int64 step counter holds.
MAX_EPOCH = 2**63 - 1


class ScheduleChangedWarning(UserWarning):
    """A checkpoint's schedules differ from the configured ones; the configured ones are used."""

    @classmethod
    def of(cls, resume: ResumeState) -> ScheduleChangedWarning:
        lines = "\n  ".join(resume.differences)
        return cls(f"the checkpoint's schedules differ from the configured ones; using the configured schedules "
                   f"(and the checkpoint's switches) from step {resume.last_epoch}:\n  {lines}")


@dataclass(frozen=True)
class ResumeState:
    """A checked checkpoint, for the scheduler to apply.

    Attributes:
        last_epoch: the step of the last completed ``step()`` (-1: none).
        step_count: torch's ``_step_count`` (calls of ``step()``), or None when the state has none.
        base_lrs: one float per group in the scheduler's group order, or None when the state has none.
        differences: one line per field where a checkpoint schedule differs from the configured one.
        plateaus: ``{(group, key): [value, best, bad_epochs, cooldown_left]}``, the saved state of each
            configured plateau the checkpoint holds (``key`` ``"lr"`` or a hyperparameter).
    """

    last_epoch: int
    step_count: int | None
    base_lrs: tuple[float, ...] | None
    differences: tuple[str, ...]
    plateaus: dict[tuple[str, str], list[float]] = dataclasses.field(default_factory=dict)


#: ``load_state_dict(schedules=...)``: which schedules a load resumes (docs/checkpoints.md)
SCHEDULE_POLICIES = ("configured", "checkpoint")


def check_schedule_policy(schedules: Any) -> str:
    """``schedules`` if it is one of :data:`SCHEDULE_POLICIES`, else ``ValueError`` naming it."""
    if not isinstance(schedules, str) or schedules not in SCHEDULE_POLICIES:
        raise ValueError(f"schedules must be 'configured' (the configured schedules, with the checkpoint's switches "
                         f"applied) or 'checkpoint' (the checkpoint's own), got {schedules!r}")
    return schedules


@dataclass(frozen=True)
class Switch:
    """One ``LRShim.switch``: from step ``at`` on, each group's ``lr`` (and each ``(group, key)`` of
    ``hyperparameters``) follows its new schedule counted from ``at`` (its step 0 is ``at``), with
    every ``"current"`` resolved to a number (docs/switching.md)."""

    at: int
    lr: dict[str, LearningRate]
    hyperparameters: dict[str, dict[str, LearningRate]]

    def entry(self) -> dict[str, Any]:
        """As checkpoint data: ``{"at", "lr": {group: dump}, "hyperparameters": {group: {key: dump}}}``."""
        return {"at": self.at, "lr": {g: cfg.model_dump(exclude_none=True) for g, cfg in self.lr.items()},
                "hyperparameters": {g: {k: cfg.model_dump(exclude_none=True) for k, cfg in entry.items()}
                                    for g, entry in self.hyperparameters.items()}}


def parse_switches(saved: Any, group_names: Sequence[str]) -> tuple[Switch, ...]:
    """``state_dict['switches']`` (absent: none) as :class:`Switch` records, each checked: ``at`` a
    step, its groups this scheduler's, its schedules valid; ``TypeError`` / ``ValueError`` naming the entry."""
    if saved is None:
        return ()
    if not isinstance(saved, (list, tuple)):
        raise TypeError(f"state_dict['switches'] must be a list of {{at, lr, hyperparameters}}, got {saved!r:.200}")
    switches = []
    for i, entry in enumerate(saved):
        where = f"state_dict['switches'][{i}]"
        if not isinstance(entry, Mapping) or "at" not in entry or not set(entry) <= {"at", "lr", "hyperparameters"}:
            raise ValueError(f"{where} must be a mapping with 'at' and at most 'lr' and 'hyperparameters', got {entry!r:.200}")
        at = check_step(entry["at"], f"{where}['at']")
        if at > MAX_STEP:
            raise OverflowError(f"{where}['at'] must be <= 2**53 - 2 ({MAX_STEP}), a join's boundary, got {at}")
        lr = validate_lr_dict(entry["lr"], f"{where}['lr']") if entry.get("lr") else {}
        unknown = [name for name in lr if name not in group_names]
        if unknown:
            raise ValueError(f"{where}['lr'] names {unknown}, not among this LRShim's groups {list(group_names)}")
        hyper = validate_hyperparameters(entry.get("hyperparameters") or {}, group_names, f"{where}['hyperparameters']")
        switches.append(Switch(at, lr, hyper))
    return tuple(switches)


#: a saved plateau's fields, in :data:`fusedsched.schedule.plateau_state.STATE_COLUMNS` order
PLATEAU_FIELDS = ("value", "best", "bad_epochs", "cooldown_left")


def plateau_entry(state: Sequence[float]) -> dict[str, float | int]:
    """One plateau's state as checkpoint data: ``{"value", "best", "bad_epochs", "cooldown_left"}``."""
    value, best, bad, cooldown = (float(x) for x in state)
    return {"value": value, "best": best, "bad_epochs": int(bad), "cooldown_left": int(cooldown)}


def scheduler_state(
    last_epoch: int,
    step_count: int,
    base_lrs: Sequence[Any],
    last_lr: list[float],
    lr_dict: Mapping[str, LearningRate],
    hyperparameters: Mapping[str, Mapping[str, LearningRate]],
    multipliers: Mapping[str, Mapping[str, float]],
    plateaus: Mapping[tuple[str, str], Sequence[float]],
    switches: Sequence[Switch] = (),
) -> dict[str, Any]:
    """``LRShim.state_dict()``: plain Python data only (ints, floats, strings, lists, dicts), loadable
    with ``torch.load(weights_only=True)`` (docs/checkpoints.md). ``lr_dict`` and ``hyperparameters``
    are the schedules in effect (switches joined in); ``plateaus``: ``{(group, key): state}`` and
    ``switches``: their entries (each omitted when empty); ``base_lrs``' numbers or one-element
    tensors as floats."""
    state: dict[str, Any] = {
        "last_epoch": last_epoch,
        "_step_count": step_count,
        "base_lrs": [float(lr) for lr in base_lrs],
        "_last_lr": last_lr,
        "lr_dict": {name: cfg.model_dump(exclude_none=True) for name, cfg in lr_dict.items()},
        "hyperparameters": {
            name: {key: cfg.model_dump(exclude_none=True) for key, cfg in entry.items()}
            for name, entry in hyperparameters.items()
        },
        "multipliers": {name: dict(entry) for name, entry in multipliers.items()},
    }
    if plateaus:
        by_group: dict[str, dict[str, Any]] = {}
        for (group, key), plateau in plateaus.items():
            by_group.setdefault(group, {})[key] = plateau_entry(plateau)
        state["plateaus"] = by_group
    if switches:
        state["switches"] = [switch.entry() for switch in switches]
    return state


def _parse_plateaus(saved: Any, configured: Sequence[tuple[str, str]]) -> tuple[dict, list[str]]:
    """``(states, differences)`` for the configured plateaus from ``state_dict['plateaus']``."""
    where = "state_dict['plateaus']"
    if saved is None:
        saved = {}
    if not isinstance(saved, Mapping) or not all(isinstance(v, Mapping) for v in saved.values()):
        raise TypeError(f"{where} must be {{group: {{key: {{{', '.join(PLATEAU_FIELDS)}}}}}}}, got {saved!r:.200}")
    states, differences = {}, []
    for group, key in configured:
        entry = saved.get(group, {}).get(key)
        if entry is None:
            differences.append(f"group {group!r} {key}: the checkpoint holds no plateau state (the plateau starts fresh)")
            continue
        if not isinstance(entry, Mapping) or sorted(entry) != sorted(PLATEAU_FIELDS):
            raise ValueError(f"{where}[{group!r}][{key!r}] must have exactly the keys {list(PLATEAU_FIELDS)}, got {entry!r:.200}")
        states[(group, key)] = checked_plateau_state([entry[f] for f in PLATEAU_FIELDS], f"{where}[{group!r}][{key!r}]")
    return states, differences


def checked_plateau_state(values: Sequence[Any], where: str) -> list[float]:
    """``[value, best, bad_epochs, cooldown_left]`` as floats, or ``TypeError`` / ``ValueError`` naming
    ``where`` and the field: ``value`` finite and >= 0, ``best`` a number (``inf`` before any metric),
    ``bad_epochs`` and ``cooldown_left`` whole numbers >= 0."""
    if len(values) != len(PLATEAU_FIELDS) or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                 for v in values):
        raise TypeError(f"{where} must hold {len(PLATEAU_FIELDS)} numbers ({', '.join(PLATEAU_FIELDS)}), "
                        f"got {list(values)!r:.200}")
    state = [float(v) for v in values]
    value, best, *counts = state
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where}: value must be finite and >= 0, got {value!r}")
    if best != best:
        raise ValueError(f"{where}: best must be a number (inf before any metric), got {best!r}")
    for field, count in zip(PLATEAU_FIELDS[2:], counts):
        if not (math.isfinite(count) and count >= 0 and count == int(count)):
            raise ValueError(f"{where}: {field} must be a whole number >= 0, got {count!r}")
    return state


def check_step(value: Any, name: str, minimum: int = 0) -> int:
    """``value`` as an int in ``[minimum, MAX_EPOCH]``; TypeError / ValueError / OverflowError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > MAX_EPOCH:
        raise OverflowError(f"{name} must be < 2**63 (the step counter is an int64), got {value}")
    return value


def validate_lr_dict(lr_dict: Any, what: str = "lr_dict") -> dict[str, LearningRate]:
    """``{group name: LearningRate}`` from a mapping of ``LearningRate`` or plain dicts, in its order."""
    if not isinstance(lr_dict, Mapping):
        raise TypeError(
            f"{what} must be a mapping of group name to LearningRate (e.g. {{'ALL_PARAMS': cfg}}), "
            f"got {type(lr_dict).__name__}"
        )
    configs = {}
    for name, cfg in lr_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"{what} keys must be group names (str), got {name!r} ({type(name).__name__})")
        if isinstance(cfg, LearningRate):
            configs[name] = cfg
            continue
        if not isinstance(cfg, Mapping):
            raise TypeError(f"{what}[{name!r}] must be a LearningRate or a mapping, got {type(cfg).__name__}")
        try:
            configs[name] = LearningRate.model_validate(cfg)
        except ValueError as exc:
            raise ValueError(f"{what}[{name!r}] is not a valid LearningRate: {exc}") from None
    if not configs:
        raise ValueError(f"{what} is empty: give one schedule per param group")
    return configs


# --- schedule differences -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """As the checkpoint shows it: models as their dumps."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(exclude_none=True)
    return [_plain(v) for v in value] if isinstance(value, list) else value


def _differences(path: str, saved: Any, configured: Any) -> list[str]:
    """One line per leaf where ``saved`` and ``configured`` differ, named by its field path."""
    if isinstance(saved, LearningRate) and isinstance(configured, LearningRate):
        if saved.kind != configured.kind:
            of = f" of {path}" if path else ""
            return [f"schedule kind{of} is {saved.kind} in the checkpoint, {configured.kind} configured"]
        kind = saved.kind
        return _differences(f"{path}.{kind}" if path else kind, getattr(saved, kind), getattr(configured, kind))
    if isinstance(saved, pydantic.BaseModel) and type(saved) is type(configured):
        shown = saved.model_dump(exclude_none=True)  # the fields a dump shows, the checkpoint's first
        fields = list(shown) + [f for f in configured.model_dump(exclude_none=True) if f not in shown]
        return [line for f in fields for line in _differences(f"{path}.{f}", getattr(saved, f), getattr(configured, f))]
    if isinstance(saved, list) and isinstance(configured, list):
        if len(saved) == len(configured):
            pairs = enumerate(zip(saved, configured))
            return [line for i, (a, b) in pairs for line in _differences(f"{path}[{i}]", a, b)]
        return [
            f"{path} is {_plain(saved)!r} in the checkpoint (length {len(saved)}), "
            f"{_plain(configured)!r} configured (length {len(configured)})"
        ]
    if saved == configured:
        return []
    return [f"{path} is {_plain(saved)!r} in the checkpoint, {_plain(configured)!r} configured"]


def schedule_differences(name: str, saved: LearningRate, configured: LearningRate) -> list[str]:
    """One line per field where the checkpoint's schedule of group ``name`` differs from the configured one.

    A field is named by its path (``linear_ramp_to_cosine.final_num_steps``; inside ``join`` and
    ``product``, ``join.schedules[1].product.schedules[0].exponential_decay.decay_rate``) with both
    values; lists of equal length are compared entry by entry, others shown whole with their lengths.
    """
    return [f"group {name!r}: {line}" for line in _differences("", saved, configured)]


def hyperparameter_differences(
    name: str,
    saved: Mapping[str, LearningRate],
    configured: Mapping[str, LearningRate],
    saved_multipliers: Mapping[str, float],
    configured_multipliers: Mapping[str, float],
) -> list[str]:
    """One line per field where group ``name``'s hyperparameter schedules or multipliers differ.

    A schedule's field is named by its key then its path (``weight_decay.linear_ramp_to_cosine.learning_rate``);
    a hyperparameter scheduled on one side only, or a multiplier (1 where none is given), by its key.
    """
    lines = []
    for key in list(saved) + [k for k in configured if k not in saved]:
        if key in saved and key in configured:
            lines += _differences(key, saved[key], configured[key])
        else:
            was = _plain(saved[key]) if key in saved else "not scheduled"
            now = _plain(configured[key]) if key in configured else "not scheduled"
            lines.append(f"{key} is {was!r} in the checkpoint, {now!r} configured")
    for key in list(saved_multipliers) + [k for k in configured_multipliers if k not in saved_multipliers]:
        was, now = saved_multipliers.get(key, 1.0), configured_multipliers.get(key, 1.0)
        if was != now:
            lines.append(f"multipliers[{key!r}] is {was!r} in the checkpoint, {now!r} configured")
    return [f"group {name!r}: {line}" for line in lines]


# --- the state dict -------------------------------------------------------------------------------


def state_mapping(state_dict: Any) -> Mapping[str, Any]:
    """``state_dict`` if it is a mapping with a ``last_epoch``, else ``TypeError`` / ``ValueError``."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping (from LRShim.state_dict()), got {type(state_dict).__name__}")
    if "last_epoch" not in state_dict:
        raise ValueError(f"state_dict has no 'last_epoch' (keys: {sorted(state_dict)})")
    return state_dict


def saved_schedules(
    state_dict: Mapping[str, Any], group_names: Sequence[str]
) -> tuple[dict[str, LearningRate] | None, dict[str, dict[str, LearningRate]] | None, dict[str, dict[str, float]] | None]:
    """The state's ``lr_dict`` (in the state's order), ``hyperparameters`` and ``multipliers``, each
    checked (None where the state has none: one written before they existed). A ``lr_dict`` for other
    group names (or another number of groups) is refused with both lists."""
    lr = None
    if state_dict.get("lr_dict") is not None:
        lr = validate_lr_dict(state_dict["lr_dict"], "state_dict['lr_dict']")
        names = list(group_names)
        if sorted(lr) != sorted(names):
            raise ValueError(
                f"the state's groups {list(lr)} do not match this LRShim's groups {names}: "
                f"no schedule in the state for {[n for n in names if n not in lr]}, "
                f"not in this LRShim: {[n for n in lr if n not in names]}"
            )
    if state_dict.get("hyperparameters") is None and state_dict.get("multipliers") is None:
        return lr, None, None
    hyper = validate_hyperparameters(state_dict.get("hyperparameters") or {}, group_names, "state_dict['hyperparameters']")
    mults = validate_multipliers(state_dict.get("multipliers") or {}, group_names, hyper, "state_dict['multipliers']")
    return lr, hyper, mults


def parse_state_dict(
    state_dict: Any,
    group_names: Sequence[str],
    configured_lr_dict: Mapping[str, LearningRate],
    strict: bool = False,
    configured_hyperparameters: Mapping[str, Mapping[str, LearningRate]] | None = None,
    configured_multipliers: Mapping[str, Mapping[str, float]] | None = None,
    configured_plateaus: Sequence[tuple[str, str]] = (),
) -> ResumeState:
    """Check ``state_dict`` for a scheduler of ``group_names`` (in group order) that resumes ``configured_lr_dict``
    (and ``configured_hyperparameters`` / ``configured_multipliers``, ``{group: {key: ...}}``): its
    configured schedules with the checkpoint's switches applied, or the checkpoint's own.

    The state's ``hyperparameters`` and ``multipliers`` are compared when it has them (a state
    written before they existed has neither: nothing to compare). ``configured_plateaus`` lists the
    ``(group, key)`` rows whose schedule holds a plateau: their saved state is taken from
    ``state_dict['plateaus']``, and a missing one is a difference (the plateau starts fresh).

    Groups are matched by name: a state saved for other names (or another group count) is refused
    with both lists, and its ``base_lrs`` are reordered into ``group_names``' order. Where a
    checkpoint schedule differs from the configured one, :attr:`ResumeState.differences` lists every
    difference; ``strict=True`` raises ``ValueError`` with them instead.

    Raises:
        TypeError / ValueError / OverflowError: the entry at fault and its value.
    """
    state_dict = state_mapping(state_dict)
    last_epoch = check_step(state_dict["last_epoch"], "state_dict['last_epoch']", minimum=-1)
    if state_dict.get("device_step") is not None:
        device_step = check_step(state_dict["device_step"], "state_dict['device_step']", minimum=-1)
        if device_step != last_epoch:
            raise ValueError(
                f"state_dict['device_step'] ({device_step}) != state_dict['last_epoch'] ({last_epoch}): "
                f"the state is inconsistent"
            )
    steps = state_dict.get("_step_count")
    steps = None if steps is None else check_step(steps, "state_dict['_step_count']")
    names = list(group_names)
    order = list(range(len(names)))
    differences: list[str] = []
    saved, saved_hyper, saved_mults = saved_schedules(state_dict, names)
    if saved is not None:
        saved_names = list(saved)
        order = [saved_names.index(n) for n in names]
        for name in names:
            differences += schedule_differences(name, saved[name], configured_lr_dict[name])
    hyper = configured_hyperparameters or {}
    mults = configured_multipliers or {}
    if saved_hyper is not None:
        for name in names:
            differences += hyperparameter_differences(
                name, saved_hyper.get(name, {}), hyper.get(name, {}), saved_mults.get(name, {}), mults.get(name, {})
            )
    base_lrs = state_dict.get("base_lrs")
    if base_lrs is not None:
        if not isinstance(base_lrs, (list, tuple)) or len(base_lrs) != len(names):
            raise ValueError(
                f"state_dict['base_lrs'] must be a list of {len(names)} numbers (one per group), "
                f"got {base_lrs!r:.200}"
            )
        try:
            base_lrs = tuple(float(base_lrs[i]) for i in order)  # a number or a one-element tensor
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"state_dict['base_lrs'] must hold numbers, got {base_lrs!r:.200}") from None
    plateaus: dict[tuple[str, str], list[float]] = {}
    if configured_plateaus:
        plateaus, missing = _parse_plateaus(state_dict.get("plateaus"), configured_plateaus)
        differences += missing
    if differences and strict:
        lines = "\n  ".join(differences)
        raise ValueError(f"the checkpoint's schedules differ from the configured ones (strict=True):\n  {lines}")
    return ResumeState(last_epoch, steps, base_lrs, tuple(differences), plateaus)

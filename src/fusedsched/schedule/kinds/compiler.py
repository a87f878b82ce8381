"""Compiling schedules to programs: each ``LearningRate`` to its segments, every group into one table.

The compile rules are the kinds' own (``segments()``, beside each formula); the segment format,
the table and its evaluator are :mod:`fusedsched.schedule.program`'s, which knows no kind. A schedule that
holds a ``plateau`` also compiles to that plateau's settings and the steps it is active on
(:func:`compile_plateau`), from which an engine builds its state (:mod:`fusedsched.schedule.plateau_state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..plateau_state import Plateau
from ..program import INF, ScheduleTable, Segment, Shape, num_factors
from .compose import LearningRate, kind_row, plateaus

__all__ = ["PlateauRow", "build_table", "compile_plateau", "compile_schedule", "with_plateau_value"]


def compile_schedule(lr_config: LearningRate) -> tuple[Segment, ...]:
    """The program of one schedule: its segments (see :mod:`fusedsched.schedule.program` for their meaning)."""
    return tuple(kind_row(lr_config).segments())


def build_table(lr_configs: Sequence[LearningRate], device=None) -> ScheduleTable:
    """Every schedule compiled and packed, one group each, into one table on ``device``.

    Raises:
        ValueError: ``lr_configs`` is empty.
    """
    return ScheduleTable.from_programs([compile_schedule(c) for c in lr_configs], device)


@dataclass(frozen=True)
class PlateauRow:
    """A row's plateau: its settings, and the steps ``start <= s < stop`` on which the op updates it."""

    settings: Plateau
    start: float
    stop: float

    def active(self, step: int) -> bool:
        """Whether a step that arrives at ``step`` updates the plateau (a negative step counts as 0)."""
        return self.start <= max(step, 0) < self.stop


def compile_plateau(lr_config: LearningRate) -> PlateauRow | None:
    """``lr_config``'s plateau and where its segment is active, or None (none, or cut away by a join)."""
    found = plateaus(lr_config)
    if not found:
        return None
    program = compile_schedule(lr_config)
    at = [k for k, seg in enumerate(program) if seg.shape == Shape.PLATEAU]
    if not at:
        return None
    k = at[0]
    stop = program[k].stop
    if num_factors(program) == 1:  # the kernels take the last segment with START <= s
        stop = min([stop, *(seg.start for seg in program[k + 1 :])], default=INF)
    return PlateauRow(found[0].settings(), program[k].start, stop)


def _replace_plateau_rate(data: Any, value: float) -> Any:
    if isinstance(data, dict):
        return {k: ({**v, "learning_rate": value} if k == "plateau" and isinstance(v, dict)
                    else _replace_plateau_rate(v, value)) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace_plateau_rate(v, value) for v in data]
    return data


def with_plateau_value(lr_config: LearningRate, value: float) -> LearningRate:
    """``lr_config`` with its plateau's rate set to ``value``: its formula where a metric has lowered it."""
    return LearningRate.model_validate(_replace_plateau_rate(lr_config.model_dump(exclude_none=True), value))

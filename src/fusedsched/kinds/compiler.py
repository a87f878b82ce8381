"""Compiling schedules to programs: each ``LearningRate`` to its segments, every group into one table.

The compile rules are the kinds' own (``segments()``, beside each formula); the segment format,
the table and its evaluator are :mod:`fusedsched.program`'s, which knows no kind.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..program import ScheduleTable, Segment
from .compose import LearningRate, kind_row

__all__ = ["build_table", "compile_schedule"]


def compile_schedule(lr_config: LearningRate) -> tuple[Segment, ...]:
    """The program of one schedule: its segments (see :mod:`fusedsched.program` for their meaning)."""
    return tuple(kind_row(lr_config).segments())


def build_table(lr_configs: Sequence[LearningRate], device=None) -> ScheduleTable:
    """Every schedule compiled and packed, one group each, into one table on ``device``.

    Raises:
        ValueError: ``lr_configs`` is empty.
    """
    return ScheduleTable.from_programs([compile_schedule(c) for c in lr_configs], device)

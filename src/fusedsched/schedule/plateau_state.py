r"""A plateau's state in device memory: torch's ``ReduceLROnPlateau``, one column per row of the table.

A ``PLATEAU`` segment (:class:`fusedsched.schedule.program.Shape`) has no formula of the step: its value is
the ``VALUE`` of its row in a float64 tensor of shape ``[NUM_PLATEAU_COLUMNS, R]`` (R = the table's
rows), which the op ``advance_`` reads and updates in the same launch. Without that tensor (a table
evaluated alone) the segment's value is ``V0``, its initial value: the rate no metric has lowered.

The columns: the state (``VALUE``, ``BEST``, ``BAD_EPOCHS``, ``COOLDOWN_LEFT``, written by the op) and
the settings (read only). A row without a plateau has zeros there and is never read.

One update, on a step that advances (``increment`` 1, not skipped) and gives a metric ``m`` (read
as float64, torch's ``float(metrics)``), for each row whose active segment at the new step is a
``PLATEAU``, in torch's order::

    if is_better(m, BEST): BEST = m; BAD_EPOCHS = 0    else: BAD_EPOCHS += 1
    if COOLDOWN_LEFT > 0:  COOLDOWN_LEFT -= 1; BAD_EPOCHS = 0
    if BAD_EPOCHS > PATIENCE:
        x = VALUE * FACTOR;  new = MIN > x ? MIN : x      (Python's max(x, MIN), NaN included)
        if VALUE - new > EPS: VALUE = new
        COOLDOWN_LEFT = COOLDOWN; BAD_EPOCHS = 0

    is_better(m, best):  MIN_REL  m < best * (1.0 - THRESHOLD)     MIN_ABS  m < best - THRESHOLD
                         MAX_REL  m > best * (THRESHOLD + 1.0)     MAX_ABS  m > best + THRESHOLD

A NaN metric is never better (every comparison with NaN is false): a bad epoch, as in torch.
:func:`plateau_update` is this rule over Python floats,
the oracle the kernels are tested against; :func:`plateau_step` is the same rule over arrays (torch
or numpy), every row at once, for the ``reference`` backend.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "NUM_PLATEAU_COLUMNS",
    "STATE_COLUMNS",
    "Plateau",
    "PlateauColumn",
    "PlateauMode",
    "is_better",
    "plateau_step",
    "plateau_tensor",
    "plateau_update",
]


class PlateauColumn(enum.IntEnum):
    VALUE = 0
    BEST = 1
    BAD_EPOCHS = 2
    COOLDOWN_LEFT = 3
    INITIAL = 4
    FACTOR = 5
    MIN = 6
    THRESHOLD = 7
    MODE = 8
    PATIENCE = 9
    COOLDOWN = 10
    EPS = 11


NUM_PLATEAU_COLUMNS = len(PlateauColumn)
#: the columns the op writes (a checkpoint holds these; the settings come from the config)
STATE_COLUMNS = (PlateauColumn.VALUE, PlateauColumn.BEST, PlateauColumn.BAD_EPOCHS, PlateauColumn.COOLDOWN_LEFT)


class PlateauMode(enum.IntEnum):
    """``mode`` and ``threshold_mode`` as one code: what "better" means."""

    MIN_REL = 0
    MIN_ABS = 1
    MAX_REL = 2
    MAX_ABS = 3

    @classmethod
    def of(cls, mode: str, threshold_mode: str) -> PlateauMode:
        return cls({("min", "rel"): 0, ("min", "abs"): 1, ("max", "rel"): 2, ("max", "abs"): 3}[(mode, threshold_mode)])


@dataclass(frozen=True)
class Plateau:
    """One row's plateau settings (torch's ``ReduceLROnPlateau`` arguments, ``min_lr`` as ``min``)."""

    initial: float
    factor: float = 0.1
    min: float = 0.0
    threshold: float = 1e-4
    mode: str = "min"
    threshold_mode: str = "rel"
    patience: int = 10
    cooldown: int = 0
    eps: float = 1e-8

    @property
    def code(self) -> PlateauMode:
        return PlateauMode.of(self.mode, self.threshold_mode)

    def fresh(self) -> list[float]:
        """The column of a plateau no metric has reached yet (torch's ``_reset``)."""
        column = [0.0] * NUM_PLATEAU_COLUMNS
        column[PlateauColumn.VALUE] = float(self.initial)
        column[PlateauColumn.BEST] = math.inf if self.mode == "min" else -math.inf
        column[PlateauColumn.INITIAL] = float(self.initial)
        column[PlateauColumn.FACTOR] = float(self.factor)
        column[PlateauColumn.MIN] = float(self.min)
        column[PlateauColumn.THRESHOLD] = float(self.threshold)
        column[PlateauColumn.MODE] = float(self.code)
        column[PlateauColumn.PATIENCE] = float(self.patience)
        column[PlateauColumn.COOLDOWN] = float(self.cooldown)
        column[PlateauColumn.EPS] = float(self.eps)
        return column


def is_better(mode: int, threshold: float, a: float, best: float) -> bool:
    """torch's ``ReduceLROnPlateau._is_better`` for the mode code ``mode``."""
    if mode == PlateauMode.MIN_REL:
        return a < best * (1.0 - threshold)
    if mode == PlateauMode.MIN_ABS:
        return a < best - threshold
    if mode == PlateauMode.MAX_REL:
        return a > best * (threshold + 1.0)
    return a > best + threshold


def plateau_update(column: list[float], metric: float) -> None:
    """One step of a plateau given ``metric``, in place on ``column`` (the rule in the module docstring)."""
    C = PlateauColumn
    m = float(metric)
    if is_better(int(column[C.MODE]), column[C.THRESHOLD], m, column[C.BEST]):
        column[C.BEST] = m
        column[C.BAD_EPOCHS] = 0.0
    else:
        column[C.BAD_EPOCHS] += 1.0
    if column[C.COOLDOWN_LEFT] > 0:
        column[C.COOLDOWN_LEFT] -= 1.0
        column[C.BAD_EPOCHS] = 0.0
    if column[C.BAD_EPOCHS] > column[C.PATIENCE]:
        old = column[C.VALUE]
        x = old * column[C.FACTOR]
        new = column[C.MIN] if column[C.MIN] > x else x
        if old - new > column[C.EPS]:
            column[C.VALUE] = new
        column[C.COOLDOWN_LEFT] = column[C.COOLDOWN]
        column[C.BAD_EPOCHS] = 0.0


def plateau_tensor(plateaus: Sequence[Plateau | None], device: torch.device | str | None = None) -> torch.Tensor:
    """The float64 ``[NUM_PLATEAU_COLUMNS, R]`` tensor of fresh plateaus, one column per row (None: zeros)."""
    columns = [p.fresh() if p is not None else [0.0] * NUM_PLATEAU_COLUMNS for p in plateaus]
    return torch.tensor(columns, dtype=torch.float64).T.contiguous().to(device)


def plateau_step(columns, metric, active, where) -> tuple:
    """:func:`plateau_update` over arrays: ``columns`` the ``NUM_PLATEAU_COLUMNS`` rows of the state
    (each ``[R]``, torch or numpy float64), ``metric`` a float64 scalar (a 0-dim tensor on the rows'
    device, or a float), ``active`` a bool ``[R]`` (the rows to update), ``where`` ``torch.where`` or
    ``numpy.where``. Returns the new ``(VALUE, BEST, BAD_EPOCHS, COOLDOWN_LEFT)`` rows, the other
    rows' unchanged. The same operations in the same order as :func:`plateau_update`, selected per
    row (no data-dependent shape, no host sync)."""
    C = PlateauColumn
    value, best, bad, left = columns[C.VALUE], columns[C.BEST], columns[C.BAD_EPOCHS], columns[C.COOLDOWN_LEFT]
    mode, threshold, m = columns[C.MODE], columns[C.THRESHOLD], metric
    better = where(
        mode == PlateauMode.MIN_REL, m < best * (1.0 - threshold),
        where(mode == PlateauMode.MIN_ABS, m < best - threshold,
              where(mode == PlateauMode.MAX_REL, m > best * (threshold + 1.0), m > best + threshold)),
    )
    new_best = where(better, m, best)
    new_bad = where(better, 0.0, bad + 1.0)
    cooling = left > 0
    new_left = where(cooling, left - 1.0, left)
    new_bad = where(cooling, 0.0, new_bad)
    reduce = new_bad > columns[C.PATIENCE]
    x = value * columns[C.FACTOR]
    lowest = columns[C.MIN]
    new = where(lowest > x, lowest, x)  # Python's max(x, MIN), NaN included
    new_value = where(reduce & (value - new > columns[C.EPS]), new, value)
    new_left = where(reduce, columns[C.COOLDOWN], new_left)
    new_bad = where(reduce, 0.0, new_bad)
    return (where(active, new_value, value), where(active, new_best, best), where(active, new_bad, bad),
            where(active, new_left, left))

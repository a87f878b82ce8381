"""Schedule programs: every ``LearningRate`` compiles to a few segments, all groups pack into one table.

A segment is ``(start, shape, end, v0, v1, p)``. A group's learning rate at step ``s`` is its last
segment with ``start <= s``, evaluated at ``s``::

    CONSTANT:  v0
    LINEAR:    clamp(v0 + ((v1 - v0) / (end - start)) * (s - start), min(v0, v1), max(v0, v1))
    COSINE:    v1 + (v0 - v1) * 0.5 * (1 + cos(p * (s - start) / (end - start)))

Each shape keeps the operation order of the reference formula it stands for, so the device result
rounds the same way as ``compute_lr``: ``linear_ramp_to_constant`` is one clamped LINEAR segment
(``min(L, (L / R) * s)``), ``linear_ramp_to_cosine`` is LINEAR, COSINE (``p = pi``), CONSTANT.

The table is a float64 tensor of shape ``[S, NUM_COLUMNS, G]`` (S = the longest program, G = the
number of groups), so one column of one segment is contiguous over groups. Shorter programs are
padded with ``start = +inf``, which no step reaches. Every value a kernel needs (pi included) lives
in the table, never in a kernel argument: Triton types Python float arguments as float32 on GPU.

The shape and column codes here are the single source of truth; ``csrc/schedule_math.h`` mirrors
them and ``tests/test_codes.py`` fails if the two drift apart.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Sequence

import torch

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import LearningRate


class Shape(enum.IntEnum):
    CONSTANT = 0
    LINEAR = 1
    COSINE = 2


class Column(enum.IntEnum):
    START = 0
    SHAPE = 1
    END = 2
    V0 = 3
    V1 = 4
    P = 5


NUM_COLUMNS = len(Column)


@dataclass(frozen=True)
class Segment:
    """One piece of a program: from step ``start`` on, the group follows ``shape``."""

    start: int
    shape: Shape
    v0: float
    v1: float = 0.0
    end: int | None = None
    p: float = 0.0

    def row(self) -> list[float]:
        end = self.start + 1 if self.end is None else self.end  # unused by CONSTANT; never 0/0
        row = [0.0] * NUM_COLUMNS
        row[Column.START] = float(self.start)
        row[Column.SHAPE] = float(self.shape)
        row[Column.END] = float(end)
        row[Column.V0] = float(self.v0)
        row[Column.V1] = float(self.v1)
        row[Column.P] = float(self.p)
        return row


def compile_schedule(lr_config: "LearningRate") -> tuple[Segment, ...]:
    """The segments of one schedule (see the module docstring for their meaning)."""
    kind, cfg = lr_config.kind, lr_config.schedule
    if kind == "constant":
        return (Segment(0, Shape.CONSTANT, cfg),)
    if kind == "piecewise_constant":
        values, bounds = cfg.learning_rate_values, cfg.learning_rate_boundaries
        return (Segment(0, Shape.CONSTANT, values[0]),) + tuple(
            Segment(b, Shape.CONSTANT, v) for b, v in zip(bounds, values[1:])
        )
    if kind == "linear_ramp_to_constant":
        # min(L, (L / R) * s) for every s: the clamp is the min, so no second segment is needed.
        return (Segment(0, Shape.LINEAR, 0.0, cfg.learning_rate, end=cfg.num_ramp_steps),)
    if kind == "linear_ramp_to_cosine":
        L, F = cfg.learning_rate, cfg.final_learning_rate
        R, T = cfg.num_ramp_steps, cfg.final_num_steps
        return (
            Segment(0, Shape.LINEAR, 0.0, L, end=R),
            Segment(R, Shape.COSINE, L, F, end=T, p=math.pi),
            Segment(T + 1, Shape.CONSTANT, F),
        )
    raise ValueError(f"unknown schedule kind {kind!r}")


def pack_programs(programs: Sequence[Sequence[Segment]], device=None) -> torch.Tensor:
    """Pack programs (one per group) into the float64 ``[S, NUM_COLUMNS, G]`` table on ``device``."""
    if not programs:
        raise ValueError("pack_programs needs at least one program (one per param group), got 0")
    num_segments = max(len(p) for p in programs)
    padding = [math.inf] + [0.0] * (NUM_COLUMNS - 1)
    rows = [[seg.row() for seg in prog] + [padding] * (num_segments - len(prog)) for prog in programs]
    table = torch.tensor(rows, dtype=torch.float64)  # [G, S, W]
    return table.permute(1, 2, 0).contiguous().to(device)


@dataclass(frozen=True)
class ScheduleTable:
    """Every group's compiled schedule, packed once into one device tensor."""

    table: torch.Tensor
    programs: tuple[tuple[Segment, ...], ...]

    @classmethod
    def build(cls, lr_configs: "Sequence[LearningRate]", device=None) -> "ScheduleTable":
        programs = tuple(compile_schedule(c) for c in lr_configs)
        return cls(pack_programs(programs, device), programs)

    @property
    def num_groups(self) -> int:
        return self.table.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.table.device


def evaluate_table(table: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Every group's float64 learning rate at ``step`` (an integer tensor), with torch ops only.

    No host sync and no data-dependent shapes: this is the ``reference`` backend's math and
    the host-side evaluation of compiled programs that the tests compare with ``compute_lr``.
    """
    s = step.to(torch.float64).reshape(())
    starts = table[:, Column.START]  # [S, G]
    index = ((starts <= s).sum(0) - 1).clamp_(min=0)  # last segment with start <= s
    seg = table.gather(0, index.view(1, 1, -1).expand(1, NUM_COLUMNS, -1)).squeeze(0)  # [W, G]
    start, shape, end = seg[Column.START], seg[Column.SHAPE], seg[Column.END]
    v0, v1, p = seg[Column.V0], seg[Column.V1], seg[Column.P]
    span = end - start
    linear = v0 + ((v1 - v0) / span) * (s - start)
    linear = torch.minimum(torch.maximum(linear, torch.minimum(v0, v1)), torch.maximum(v0, v1))
    cosine = v1 + (v0 - v1) * 0.5 * (1 + torch.cos(p * (s - start) / span))
    out = torch.where(shape == Shape.LINEAR, linear, v0)
    return torch.where(shape == Shape.COSINE, cosine, out)

"""Warm-ups that are not tml's linear ramp: ``log_warmup`` (DeepSpeed's logarithmic warm-up, the
default ``warmup_type`` of its ``WarmupLR``, ``WarmupDecayLR`` and ``WarmupCosineLR``), its model
beside its formula and its compile rule."""

from __future__ import annotations

import math
from collections.abc import Callable

import pydantic

from ..fields import ConfigModel, Rate, StepInt
from ..program import Segment, Shape
from ._row import Kind, Range, chain, sorted_marks, span

__all__ = ["LogWarmup"]


class LogWarmup(ConfigModel, Kind):
    """DeepSpeed's logarithmic warm-up from I to L over N steps, then L.

    ``s < N``: ``I + (L - I) * ((1.0 / log(N)) * log(s + 1))`` (I at step 0, about L at N - 1);
    ``s >= N``: ``L`` exactly; with I = ``initial_learning_rate``, L = ``learning_rate``,
    N = ``num_steps`` (>= 2: ``log(1)`` is 0). I may exceed L (a logarithmic decline).
    The operation order is DeepSpeed's (``min_lr + delta_lr * gamma``, ``gamma =
    inverse_log_warm_up * log(last_batch_iteration + 1)``), so its rates are reproduced bit for bit.
    Segments: LOG (``p = 1.0 / log(N)``), CONSTANT.
    Bounds: I (step 0), the last warm-up value (step N - 1) and L; exact (the value is monotone in
    ``p * log(s + 1)``, and ``log`` in ``s``).

    >>> cfg = LogWarmup(learning_rate=1.0, num_steps=4)
    >>> [cfg.formula()(s) for s in (0, 1, 3, 4)]
    [0.0, 0.5, 1.0, 1.0]
    """

    learning_rate: Rate
    initial_learning_rate: Rate = 0.0
    num_steps: StepInt

    @pydantic.field_validator("num_steps")
    @classmethod
    def _at_least_two(cls, value: int, info: pydantic.ValidationInfo) -> int:
        if value < 2:
            raise ValueError(f"{info.field_name} ({value}) must be >= 2 (the ramp divides by log(num_steps))")
        return value

    @property
    def inverse_log(self) -> float:
        """``1.0 / log(num_steps)``: DeepSpeed's ``inverse_log_warm_up``, the LOG segment's ``p``."""
        return 1.0 / math.log(self.num_steps)

    def formula(self) -> Callable[[int], float]:
        I, L, N, p = self.initial_learning_rate, self.learning_rate, self.num_steps, self.inverse_log
        return lambda s: I + (L - I) * (p * math.log(s + 1)) if s < N else L

    def segments(self) -> list[Segment]:
        I, L, N = self.initial_learning_rate, self.learning_rate, self.num_steps
        return chain([Segment(0, Shape.LOG, I, L, p=self.inverse_log, end=N), Segment(N, Shape.CONSTANT, L)])

    def marks(self) -> list[int]:
        return sorted_marks(self.num_steps)

    def bounds(self) -> Range:
        f, N = self.formula(), self.num_steps
        return span(f(0), f(N - 1), f(N))

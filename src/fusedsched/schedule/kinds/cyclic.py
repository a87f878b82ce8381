"""``cyclic``: torch's ``CyclicLR``, a triangle wave between two rates, its model beside its formula
and its compile rule."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import pydantic

from ..fields import ConfigModel, Positive, PositiveStep, Rate
from ..program import Segment, Shape
from ._row import Kind, Range, sorted_marks, span

__all__ = ["Cyclic"]


class Cyclic(ConfigModel, Kind):
    """torch's ``CyclicLR``: from ``base_learning_rate`` up to ``max_learning_rate`` over
    ``step_size_up`` steps, back down over ``step_size_down`` (default: ``step_size_up``), forever.

    With B, M the two rates, T = ``step_size_up + step_size_down`` and r = ``step_size_up / T``
    (in float64, as torch computes them), at step ``s``::

        c = floor(1 + s / T);  x = 1.0 + s / T - c
        f = x / r  if x <= r  else  (x - 1) / (r - 1)
        lr = B + ((M - B) * f) * scale

    ``mode``: ``triangular`` (scale 1.0), ``triangular2`` (``0.5 ** (c - 1)``: the height halves
    every cycle; torch's ``1 / (2.0 ** (c - 1))``, the same number while torch can compute it),
    ``exp_range`` (``gamma ** s``, 0 < ``gamma`` <= 1). Segment: one CYCLIC (``p = r``, ``w`` the scale's base, ``q = 1``
    when the scale's exponent is the step itself).
    Bounds: B and ``B + ((M - B) * 1.0) * 1.0`` (f and the scale are in [0, 1], and the value is
    monotone in each); a safe bound, reached where f is exactly 1 at scale 1.

    >>> cfg = Cyclic(base_learning_rate=0.1, max_learning_rate=0.5, step_size_up=2, mode="triangular2")
    >>> [round(cfg.formula()(s), 12) for s in range(9)]
    [0.1, 0.3, 0.5, 0.3, 0.1, 0.2, 0.3, 0.2, 0.1]
    """

    base_learning_rate: Rate
    max_learning_rate: Rate
    step_size_up: PositiveStep
    step_size_down: PositiveStep | None = None
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"
    gamma: Positive = 1.0

    @pydantic.field_validator("gamma")
    @classmethod
    def _gamma_at_most_one(cls, gamma: float) -> float:
        if gamma > 1:
            raise ValueError(f"gamma ({gamma!r}) must be <= 1: gamma ** s grows without bound otherwise")
        return gamma

    @pydantic.model_validator(mode="after")
    def _gamma_only_for_exp_range(self) -> Cyclic:
        if self.gamma != 1.0 and self.mode != "exp_range":
            raise ValueError(f"gamma ({self.gamma!r}) applies only to mode 'exp_range', got mode {self.mode!r}")
        return self

    @property
    def resolved_step_size_down(self) -> int:
        return self.step_size_up if self.step_size_down is None else self.step_size_down

    def _constants(self) -> tuple[float, float, float, bool]:
        """``(T, r, w, iterations)``: the period, the rising fraction, the scale's base, and whether its
        exponent is the step (else ``c - 1``)."""
        up = float(self.step_size_up)
        total = up + float(self.resolved_step_size_down)
        base = {"triangular": 1.0, "triangular2": 0.5, "exp_range": self.gamma}[self.mode]
        return total, up / total, base, self.mode == "exp_range"

    def formula(self) -> Callable[[int], float]:
        B, M = self.base_learning_rate, self.max_learning_rate
        T, r, w, iterations = self._constants()

        def cyclic(s: int) -> float:
            cycle = math.floor(1 + s / T)
            x = 1.0 + s / T - cycle
            f = x / r if x <= r else (x - 1) / (r - 1)
            return B + ((M - B) * f) * w ** float(s if iterations else cycle - 1)

        return cyclic

    def segments(self) -> list[Segment]:
        T, r, w, iterations = self._constants()
        return [Segment(0, Shape.CYCLIC, self.base_learning_rate, self.max_learning_rate, p=r,
                        q=1.0 if iterations else 0.0, w=w, origin=0, end=T)]

    def marks(self) -> list[int]:
        up, period = self.step_size_up, self.step_size_up + self.resolved_step_size_down
        return sorted_marks(up, period)

    def bounds(self) -> Range:
        B, M = self.base_learning_rate, self.max_learning_rate
        return span(B, B + ((M - B) * 1.0) * 1.0)

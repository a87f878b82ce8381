"""``tanh_decay``: one cycle of timm's ``TanhLRScheduler``, its model beside its formula and its
compile rule."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

import pydantic
from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from ..fields import ConfigModel, PositiveStep, Rate, no_bool
from ..program import Segment, Shape
from ._row import Kind, Range, chain, cosine_blend, sorted_marks, span

__all__ = ["TanhDecay"]


def _finite(value: float, info: ValidationInfo) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{info.field_name} ({value!r}) must be finite")
    return value


Finite = Annotated[float, BeforeValidator(no_bool), AfterValidator(_finite)]


class TanhDecay(ConfigModel, Kind):
    """timm's ``TanhLRScheduler`` over one cycle (arXiv 1806.01593): from about L down to about F
    along a hyperbolic tangent over N steps, then F.

    With L = ``learning_rate``, F = ``final_learning_rate``, N = ``num_steps``,
    lb = ``lower_bound``, ub = ``upper_bound`` (timm's ``lb``, ``ub``; lb < ub), at step ``s``::

        s < N:   x = s / N;  F + 0.5 * (L - F) * (1 - tanh(lb * (1.0 - x) + ub * x))
        s >= N:  F

    (timm's operation order; F once its last cycle is over). timm's restarts are a ``join`` of one
    ``tanh_decay`` per cycle. Segments: TANH (``p = lb``, ``q = ub``), CONSTANT.
    Bounds: F, and the value at ``1 - tanh`` of the argument's extremes (lb and ub, widened by its
    rounding and by an ulp of ``tanh``); a safe bound, a few ulps wide of the values.

    >>> cfg = TanhDecay(learning_rate=1.0, num_steps=4, lower_bound=-1.0, upper_bound=1.0)
    >>> [round(cfg.formula()(s), 12) for s in range(5)]
    [0.880797077978, 0.73105857863, 0.5, 0.26894142137, 0.0]
    """

    learning_rate: Rate
    final_learning_rate: Rate = 0.0
    num_steps: PositiveStep
    lower_bound: Finite = -7.0
    upper_bound: Finite = 3.0

    @pydantic.model_validator(mode="after")
    def _bounds_ordered(self) -> TanhDecay:
        if not self.lower_bound < self.upper_bound:
            raise ValueError(f"lower_bound ({self.lower_bound!r}) must be less than upper_bound ({self.upper_bound!r})")
        return self

    def formula(self) -> Callable[[int], float]:
        L, F, N, lb, ub = self.learning_rate, self.final_learning_rate, self.num_steps, self.lower_bound, self.upper_bound

        def tanh_decay(s: int) -> float:
            if s >= N:
                return F
            x = s / N
            return F + 0.5 * (L - F) * (1 - math.tanh(lb * (1.0 - x) + ub * x))

        return tanh_decay

    def segments(self) -> list[Segment]:
        L, F, N = self.learning_rate, self.final_learning_rate, self.num_steps
        return chain([Segment(0, Shape.TANH, L, F, p=self.lower_bound, q=self.upper_bound, end=N),
                      Segment(N, Shape.CONSTANT, F)])

    def marks(self) -> list[int]:
        return sorted_marks(self.num_steps)

    def bounds(self) -> Range:
        # F + 0.5 * (L - F) * q (cosine_blend's order: 0.5 * x is x * 0.5), monotone in q = 1 - tanh(a);
        # a = lb * (1.0 - x) + ub * x for x = s / N in [0, 1] lies in [lb, ub] but for rounding (< 4
        # ulps of the larger bound), and tanh is within an ulp of its monotone true value
        L, F, lb, ub = self.learning_rate, self.final_learning_rate, self.lower_bound, self.upper_bound
        slack = 8 * math.ulp(max(abs(lb), abs(ub)))
        q_lo = max(0.0, 1 - math.tanh(ub + slack) - 2.0**-52)
        q_hi = min(2.0, 1 - math.tanh(lb - slack) + 2.0**-52)
        return span(F, cosine_blend(F, L, q_lo), cosine_blend(F, L, q_hi))

"""tml's four schedule kinds: ``constant``, ``piecewise_constant``, ``linear_ramp_to_constant``,
``linear_ramp_to_cosine`` (docs/semantics.md, the seed semantics), each model beside its formula
and its compile rule."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import pydantic

from ..fields import ConfigModel, PositiveStep, Rate, StepInt
from ..program import Segment, Shape
from ._row import (
    Kind,
    Range,
    chain,
    check_end_after_ramp,
    cosine_range,
    ramp_range,
    ramp_segments,
    sorted_marks,
    span,
    tml_ramp,
    union,
)

__all__ = ["ConstantRow", "LinearRampToConstant", "LinearRampToCosine", "PiecewiseConstant"]


@dataclass(frozen=True)
class ConstantRow(Kind):
    """``lr(s) = c``. (The ``constant`` kind is a bare float in the config; this is its row.)
    Bounds: ``(c, c)``, exact."""

    value: float

    def formula(self) -> Callable[[int], float]:
        c = self.value
        return lambda s: c

    def bounds(self) -> Range:
        return span(self.value)

    def segments(self) -> list[Segment]:
        return chain([Segment(0, Shape.CONSTANT, self.value)])


class PiecewiseConstant(ConfigModel, Kind):
    """``lr(s) = v[bisect_right(b, s)]``: ``v[0]`` before ``b[0]``, ``v[i]`` from ``b[i-1]`` on.

    Bounds: the extremes of the values some step reaches (``v[0]`` only when ``b[0] > 0``), exact.
    """

    learning_rate_boundaries: list[StepInt]
    learning_rate_values: list[Rate]

    @pydantic.field_validator("learning_rate_boundaries")
    @classmethod
    def _boundaries(cls, b: list[int]) -> list[int]:
        for i, value in enumerate(b):
            if value < 0:
                raise ValueError(f"learning_rate_boundaries[{i}] ({value}) must be >= 0")
            if i and value <= b[i - 1]:
                raise ValueError(
                    f"learning_rate_boundaries must be strictly increasing, "
                    f"got {b[i - 1]} then {value} at index {i}"
                )
        return b

    @pydantic.model_validator(mode="after")
    def _lengths(self) -> PiecewiseConstant:
        nb, nv = len(self.learning_rate_boundaries), len(self.learning_rate_values)
        if nv != nb + 1:
            raise ValueError(
                f"learning_rate_values has {nv} entries but learning_rate_boundaries has {nb}: "
                f"need len(learning_rate_values) == len(learning_rate_boundaries) + 1 ({nb + 1})"
            )
        return self

    def formula(self) -> Callable[[int], float]:
        b, v = tuple(self.learning_rate_boundaries), tuple(self.learning_rate_values)
        return lambda s: v[bisect.bisect_right(b, s)]

    def segments(self) -> list[Segment]:
        values, bounds = self.learning_rate_values, self.learning_rate_boundaries
        return chain([Segment(0, Shape.CONSTANT, values[0])] + [
            Segment(b, Shape.CONSTANT, v) for b, v in zip(bounds, values[1:])
        ])

    def marks(self) -> list[int]:
        return list(self.learning_rate_boundaries)

    def bounds(self) -> Range:
        f = self.formula()
        return span(f(0), *map(f, self.learning_rate_boundaries))


class LinearRampToConstant(ConfigModel, Kind):
    """``lr(s) = min(L, (L / R) * s)``: from 0 to ``learning_rate`` L over ``num_ramp_steps`` R.

    One clamped LINEAR segment: the clamp is the min. Bounds: ``(0, L)``, exact.
    """

    learning_rate: Rate
    num_ramp_steps: PositiveStep

    def formula(self) -> Callable[[int], float]:
        return tml_ramp(self.learning_rate, self.num_ramp_steps)

    def segments(self) -> list[Segment]:
        return chain(ramp_segments(self.learning_rate, self.num_ramp_steps))

    def marks(self) -> list[int]:
        return [self.num_ramp_steps]

    def bounds(self) -> Range:
        # min(L, (L / R) * s) is monotone in s, 0 at step 0, and L from the first step where the
        # line reaches L (step R's value may round just below L; a slope that underflows never does)
        L, R = self.learning_rate, self.num_ramp_steps
        return span(0.0, L if L / R > 0 else 0.0)


class LinearRampToCosine(ConfigModel, Kind):
    """Linear ramp from 0 to L over R steps, cosine decay to F at step T, then F.

    ``s < R``: ``(L / R) * s``;
    ``R <= s <= T``: ``F + (L - F) * 0.5 * (1 + cos(pi * (s - R) / (T - R)))``;
    ``s > T``: ``F``, with L = ``learning_rate``, F = ``final_learning_rate``,
    R = ``num_ramp_steps``, T = ``final_num_steps`` (T > R).
    Segments: LINEAR, COSINE (``p = pi``), CONSTANT.
    Bounds: the ramp's ends (steps 0 and R - 1), the cosine's start (step R) and F; exact.
    """

    learning_rate: Rate
    final_learning_rate: Rate
    num_ramp_steps: PositiveStep
    final_num_steps: StepInt

    _end_after_ramp = pydantic.model_validator(mode="after")(check_end_after_ramp)

    def formula(self) -> Callable[[int], float]:
        L, F = self.learning_rate, self.final_learning_rate
        R, T = self.num_ramp_steps, self.final_num_steps

        def linear_ramp_to_cosine(s: int) -> float:
            if s < R:
                return (L / R) * s
            if s <= T:
                return F + (L - F) * 0.5 * (1 + math.cos(math.pi * (s - R) / (T - R)))
            return F

        return linear_ramp_to_cosine

    def segments(self) -> list[Segment]:
        L, F = self.learning_rate, self.final_learning_rate
        R, T = self.num_ramp_steps, self.final_num_steps
        return chain(ramp_segments(L, R) + [
            Segment(R, Shape.COSINE, L, F, p=math.pi, end=T),
            Segment(T + 1, Shape.CONSTANT, F),
        ])

    def marks(self) -> list[int]:
        return sorted_marks(self.num_ramp_steps, self.final_num_steps)

    def bounds(self) -> Range:
        ramp = ramp_range(self.formula(), self.num_ramp_steps)
        return union(span(*ramp), cosine_range(self.learning_rate, self.final_learning_rate))

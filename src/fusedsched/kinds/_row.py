"""What every schedule kind provides, and the pieces several kinds share.

A kind is one row: its pydantic model, its float64 formula and its compile rule to segments, in
one class. Each kind model mixes in :class:`Kind` and implements:

- ``formula()``: the float64 formula with its constants bound, ``s -> lr`` for an ``int`` step
  ``s >= 0`` (no checks; :func:`fusedsched.schedules.compute_lr` adds them);
- ``formula_array(s)``: the same formula over an ``int64`` array, vectorized with numpy;
- ``segments()``: the program, a list of :class:`fusedsched.program.Segment` (see program.py);
- ``marks()``: the steps where the schedule changes shape (plots mark them).

Every formula is written in the operation order of the segment shape it compiles to, so that the
native kernels (which evaluate shapes in that order, with the same libm functions) reproduce
``compute_lr`` bit for bit in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from ..config import StepInt, _at_least_one, _no_bool
from ..program import Segment, Shape, chain

__all__ = [
    "Count",
    "Kind",
    "Positive",
    "PositiveStep",
    "after_ramp",
    "after_ramp_array",
    "chain",
    "check_end_after_ramp",
    "clamped_line",
    "clamped_line_array",
    "fold",
    "ramp_segments",
    "sorted_marks",
    "tml_ramp",
    "tml_ramp_array",
]


def _non_negative(value: int, info: ValidationInfo) -> int:
    if value < 0:
        raise ValueError(f"{info.field_name} ({value}) must be >= 0")
    return value


def _positive(value: float, info: ValidationInfo) -> float:
    if not (math.isfinite(value) and value > 0):  # also rejects NaN
        raise ValueError(f"{info.field_name} ({value!r}) must be finite and > 0")
    return value


#: A step count that may be 0 (e.g. ``num_ramp_steps: 0`` means no ramp).
Count = Annotated[StepInt, AfterValidator(_non_negative)]
#: A step count >= 1 (a period, a number of decay steps).
PositiveStep = Annotated[StepInt, AfterValidator(_at_least_one)]
#: A finite float > 0 (a decay rate, a power, a division factor).
Positive = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_positive)]


class Kind:
    """The row protocol (see the module docstring); composite kinds also override the factor hooks."""

    def formula(self) -> Callable[[int], float]:
        raise NotImplementedError

    def formula_array(self, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def segments(self) -> list[Segment]:
        raise NotImplementedError

    def marks(self) -> list[int]:
        return []

    # A product multiplies its factors left to right; nested products and products inside joins
    # contribute their own factors in order (the order the kernels multiply active segments in).
    def factor_formula(self) -> Callable[[int], tuple[float, ...]]:
        f = self.formula()
        return lambda s: (f(s),)

    def factor_arrays(self, s: np.ndarray) -> list[np.ndarray]:
        return [self.formula_array(s)]


def fold(factors: Sequence[Any]) -> Any:
    """``((f0 * f1) * f2) ...``: how a product's factors combine (floats or arrays)."""
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out


# --- tml's linear ramp, shared by every kind with a ``num_ramp_steps`` warm-up ------------------


def tml_ramp(L: float, R: int) -> Callable[[int], float]:
    """``min(L, (L / R) * s)``, the ramp of ``linear_ramp_to_constant`` (R >= 1)."""
    slope = L / R
    return lambda s: min(L, slope * s)


def tml_ramp_array(L: float, R: int, s: np.ndarray) -> np.ndarray:
    return np.minimum(L, (L / R) * s)


def ramp_segments(L: float, R: int) -> list[Segment]:
    """The ramp as one clamped LINEAR segment from 0 (none when ``R == 0``)."""
    return [Segment(0, Shape.LINEAR, 0.0, L, end=R)] if R > 0 else []


def after_ramp(L: float, R: int, rest: Callable[[int], float]) -> Callable[[int], float]:
    """``tml_ramp`` before ``R``, ``rest(s)`` from ``R`` on."""
    if R == 0:
        return rest
    ramp = tml_ramp(L, R)
    return lambda s: ramp(s) if s < R else rest(s)


def after_ramp_array(L: float, R: int, s: np.ndarray, rest: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The array form of :func:`after_ramp`: ``rest`` gets only the steps ``>= R``."""
    out = np.empty(s.shape, dtype=np.float64)
    before = s < R
    out[before] = tml_ramp_array(L, R, s[before]) if R > 0 else 0.0
    out[~before] = rest(s[~before])
    return out


def clamped_line(v0: float, v1: float, span: float) -> Callable[[float], float]:
    """The LINEAR shape: ``v0 + ((v1 - v0) / span) * u``, clamped between ``v0`` and ``v1``."""
    slope, lo, hi = (v1 - v0) / span, min(v0, v1), max(v0, v1)
    return lambda u: min(max(v0 + slope * u, lo), hi)


def clamped_line_array(v0: float, v1: float, span: float, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(v0 + ((v1 - v0) / span) * u, min(v0, v1)), max(v0, v1))


def check_end_after_ramp(model: Any) -> Any:
    """``model.final_num_steps > model.num_ramp_steps``, else a ``ValueError`` naming both values."""
    if model.final_num_steps <= model.num_ramp_steps:
        raise ValueError(
            f"final_num_steps ({model.final_num_steps}) must be greater than "
            f"num_ramp_steps ({model.num_ramp_steps})"
        )
    return model


def sorted_marks(*marks: int) -> list[int]:
    """Distinct positive marks, ascending (step 0 is never worth marking)."""
    return sorted({int(m) for m in marks if m > 0})


"""What every schedule kind provides, and the pieces several kinds share.

A kind is one row: its pydantic model, its float64 formula and its compile rule to segments, in
one class. Each kind model mixes in :class:`Kind` and implements:

- ``formula()``: the float64 formula with its constants bound, ``s -> lr`` for an ``int`` step
  ``s >= 0`` (no checks; :func:`fusedsched.schedule.reference.compute_lr` adds them): the independent
  oracle every backend is tested against;
- ``segments()``: the program, a list of :class:`fusedsched.schedule.program.Segment` (see program.py),
  which every backend evaluates (and :func:`fusedsched.compute_lr_array` too);
- ``marks()``: the steps where the schedule changes shape (plots mark them).

Every formula is written in the operation order of the segment shape it compiles to, so that the
native kernels (which evaluate shapes in that order, with the same libm functions) reproduce
``compute_lr`` bit for bit in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..program import Segment, Shape, chain

__all__ = [
    "Kind",
    "after_ramp",
    "chain",
    "check_end_after_ramp",
    "clamped_line",
    "fold",
    "power",
    "ramp_segments",
    "sorted_marks",
    "tml_ramp",
]


class Kind:
    """The row protocol (see the module docstring); composite kinds also override ``factor_formula``."""

    def formula(self) -> Callable[[int], float]:
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


def power(base: float, exponent: float) -> float:
    """``base ** exponent`` (C's ``pow``), with ``inf`` instead of Python's OverflowError."""
    try:
        return base**exponent
    except OverflowError:
        return math.inf


def fold(factors: Sequence[Any]) -> Any:
    """``((f0 * f1) * f2) ...``: how a product's factors combine."""
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out


# --- tml's linear ramp, shared by every kind with a ``num_ramp_steps`` warm-up ------------------


def tml_ramp(L: float, R: int) -> Callable[[int], float]:
    """``min(L, (L / R) * s)``, the ramp of ``linear_ramp_to_constant`` (R >= 1)."""
    slope = L / R
    return lambda s: min(L, slope * s)


def ramp_segments(L: float, R: int) -> list[Segment]:
    """The ramp as one clamped LINEAR segment from 0 (none when ``R == 0``)."""
    return [Segment(0, Shape.LINEAR, 0.0, L, end=R)] if R > 0 else []


def after_ramp(L: float, R: int, rest: Callable[[int], float]) -> Callable[[int], float]:
    """``tml_ramp`` before ``R``, ``rest(s)`` from ``R`` on."""
    if R == 0:
        return rest
    ramp = tml_ramp(L, R)
    return lambda s: ramp(s) if s < R else rest(s)


def clamped_line(v0: float, v1: float, span: float) -> Callable[[float], float]:
    """The LINEAR shape: ``v0 + ((v1 - v0) / span) * u``, clamped between ``v0`` and ``v1``."""
    slope, lo, hi = (v1 - v0) / span, min(v0, v1), max(v0, v1)
    return lambda u: min(max(v0 + slope * u, lo), hi)


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


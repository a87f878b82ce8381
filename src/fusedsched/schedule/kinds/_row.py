"""What every schedule kind provides, and the pieces several kinds share.

A kind is one row: its pydantic model, its float64 formula and its compile rule to segments, in
one class. Each kind model mixes in :class:`Kind` and implements:

- ``formula()``: the float64 formula with its constants bound, ``s -> lr`` for an ``int`` step
  ``s >= 0`` (no checks; :func:`fusedsched.schedule.reference.compute_lr` adds them): the independent
  oracle every backend is tested against;
- ``segments()``: the program, a list of :class:`fusedsched.schedule.program.Segment` (see program.py),
  which every backend evaluates (and :func:`fusedsched.compute_lr_array` too);
- ``marks()``: the steps where the schedule changes shape (plots mark them);
- ``bounds()``: ``(lowest, highest)``, the range of ``formula()`` over every step ``s >= 0`` (to
  infinity), from the config alone: never narrower than the float64 values themselves, exact where
  the kind's docstring says so (both ends attained), else a safe bound (a limit, or an end no whole
  step reaches); ``(nan, nan)`` when some value may be NaN. A scheduled hyperparameter is held to
  its range with it (:mod:`fusedsched.shim.hyperparameters`).

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
    "Range",
    "after_ramp",
    "chain",
    "check_end_after_ramp",
    "clamped_line",
    "cosine_blend",
    "cosine_range",
    "fold",
    "fold_ranges",
    "power",
    "ramp_range",
    "ramp_segments",
    "sorted_marks",
    "span",
    "tml_ramp",
    "union",
    "widened",
]

Range = tuple[float, float]


class Kind:
    """The row protocol (see the module docstring); composite kinds also override ``factor_formula``."""

    def formula(self) -> Callable[[int], float]:
        raise NotImplementedError

    def segments(self) -> list[Segment]:
        raise NotImplementedError

    def marks(self) -> list[int]:
        return []

    def bounds(self) -> Range:
        raise NotImplementedError

    # A product multiplies its factors left to right; nested products and products inside joins
    # contribute their own factors in order (the order the kernels multiply active segments in).
    def factor_formula(self) -> Callable[[int], tuple[float, ...]]:
        f = self.formula()
        return lambda s: (f(s),)

    # The ranges of the factors ``factor_formula`` gives, in its order (a product folds them).
    def factor_bounds(self) -> list[Range]:
        return [self.bounds()]


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


# --- ranges: what ``bounds()`` is built from ----------------------------------------------------
#
# Rounding to nearest is monotone: if x <= y then fl(x op c) <= fl(y op c) for + and -, and for * and
# / by a c >= 0 (reversed for c < 0). So an expression that is monotone in one variable, evaluated
# in float64, takes its extremes where that variable does, and a bound evaluates the kind's own
# expression there, in its operation order: the bound is then a value of the same float64
# arithmetic, not a neighbour of it.


def span(*values: float) -> Range:
    """``(min, max)`` of ``values``; ``(nan, nan)`` when one is NaN."""
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    return min(values), max(values)


def union(*ranges: Range) -> Range:
    """The smallest range holding every range of ``ranges``."""
    return span(*(v for r in ranges for v in r))


def cosine_blend(end: float, start: float, c: float) -> float:
    """``end + (start - end) * 0.5 * c``: the cosine shapes at ``c = 1 + cos(angle)``, in their
    operation order (``start`` at ``c = 2``, up to rounding; ``end`` at ``c = 0``)."""
    return end + (start - end) * 0.5 * c


def cosine_range(start: float, end: float) -> Range:
    """The range of :func:`cosine_blend` over ``c`` in ``[0, 2]``, whatever the angle: monotone in
    ``c``, it lies between ``end`` (``c = 0``) and its value at ``c = 2``."""
    return span(cosine_blend(end, start, 0.0), cosine_blend(end, start, 2.0))


def _times(a: Range, b: Range) -> Range:
    """The range of ``x * y`` (float64) for ``x`` in ``a`` and ``y`` in ``b``: the corners' extremes
    (``fl(x * y)`` is monotone in each factor); NaN when a corner is (``0 * inf``)."""
    return span(a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])


def fold_ranges(ranges: Sequence[Range]) -> Range:
    """The range of :func:`fold` of factors in ``ranges``, folded in the same order."""
    out = ranges[0]
    for r in ranges[1:]:
        out = _times(out, r)
    return out


def widened(r: Range) -> Range:
    """``r`` widened outwards by a few float64 ulps (relative ``2**-50``, and the smallest subnormal),
    never across 0: a product regrouped (``a * (b * c)`` for ``(a * b) * c``) rounds differently by
    less than that."""
    lo, hi = r
    if math.isnan(lo) or math.isnan(hi):
        return r
    tiny, rel = 2.0 * 5e-324, 2.0**-50
    lo = (lo - abs(lo) * rel - tiny) if lo < 0 else max(lo - lo * rel - tiny, 0.0)
    hi = (hi + abs(hi) * rel + tiny) if hi > 0 else min(hi + abs(hi) * rel + tiny, 0.0)
    return lo, hi


def ramp_range(formula: Callable[[int], float], R: int) -> list[float]:
    """The values of a ``num_ramp_steps`` ramp that bound it: ``formula`` at steps 0 and ``R - 1``
    (the ramp is monotone in ``s``); none when ``R == 0``."""
    return [formula(0), formula(R - 1)] if R > 0 else []


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


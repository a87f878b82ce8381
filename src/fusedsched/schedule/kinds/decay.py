"""Decays after tml's linear ramp: ``exponential_decay`` (optax), ``polynomial_decay`` and
``inverse_sqrt`` (Hugging Face ``transformers.optimization``), each model beside its formula and
its compile rule."""

from __future__ import annotations

import math
from collections.abc import Callable

import pydantic
from pydantic import StrictBool

from ..fields import MAX_STEP, ConfigModel, Count, Positive, PositiveStep, Rate, StepInt
from ..program import Segment, Shape
from ._row import (
    Kind,
    Range,
    after_ramp,
    chain,
    check_end_after_ramp,
    power,
    ramp_range,
    ramp_segments,
    sorted_marks,
    span,
)

__all__ = ["ExponentialDecay", "InverseSqrt", "PolynomialDecay"]


class ExponentialDecay(ConfigModel, Kind):
    """tml's linear ramp, then optax's ``exponential_decay`` with ``transition_begin = R``.

    ``s < R``: ``min(L, (L / R) * s)``;
    ``s >= R``: ``x = L * r ** ((s - R) / k)`` (``(s - R) // k`` when ``staircase``), bounded by
    ``end_learning_rate`` E when set: ``max(x, E)`` when ``r < 1`` (a floor), else ``min(x, E)``
    (a ceiling); with L = ``learning_rate``, r = ``decay_rate``, k = ``decay_steps``,
    R = ``num_ramp_steps``. When L is 0 the decay phase is the bound of 0 (never ``0 * inf``).
    Segments: LINEAR (the ramp), EXPONENTIAL (``p = r``, ``q = staircase``, ``v1`` = the bound:
    E, or 0 / +inf, which bound nothing).
    Bounds: the ramp's ends, and from L (step R) to the decay's limit: the floor (E, or 0) when
    ``r < 1``, the ceiling (E, or +inf) when ``r > 1``; a safe bound (the limit is reached, if at
    all, far away).

    >>> cfg = ExponentialDecay(learning_rate=1.0, decay_rate=0.5, decay_steps=2, num_ramp_steps=2)
    >>> [cfg.formula()(s) for s in (0, 1, 2, 3, 4, 6)]
    [0.0, 0.5, 1.0, 0.7071067811865476, 0.5, 0.25]
    """

    learning_rate: Rate
    decay_rate: Positive
    decay_steps: PositiveStep
    num_ramp_steps: Count = 0
    staircase: StrictBool = False
    end_learning_rate: Rate | None = None

    def _bound(self) -> tuple[float, Callable[[float], float]]:
        """The bound's table value and the Python function that applies it, in the kernels' form."""
        r, E = self.decay_rate, self.end_learning_rate
        if r < 1:
            floor = 0.0 if E is None else E  # max(x, 0) is x for the x >= 0 this kind produces
            return floor, lambda x: max(x, floor)
        ceiling = math.inf if E is None else E
        return ceiling, lambda x: min(x, ceiling)

    def formula(self) -> Callable[[int], float]:
        L, r, k, R = self.learning_rate, self.decay_rate, self.decay_steps, self.num_ramp_steps
        _, bound = self._bound()
        if L == 0:
            held = bound(0.0)
            return after_ramp(L, R, lambda s: held)
        if self.staircase:
            return after_ramp(L, R, lambda s: bound(L * power(r, (s - R) // k)))
        return after_ramp(L, R, lambda s: bound(L * power(r, (s - R) / k)))

    def _bound_reached(self) -> int | None:
        """The first step from which the rate is ``end_learning_rate`` for good, or None.

        ``L * r ** e`` is monotone in the step, so once bounded it stays bounded: found by
        bisection over the formula itself, so the constant segment there changes no value.
        """
        if self.end_learning_rate is None or self.learning_rate == 0 or self.decay_rate == 1:
            return None
        f, E, R = self.formula(), self.end_learning_rate, self.num_ramp_steps
        lo, hi = R, R + 1  # f(lo) is not E (or lo == R), f(hi) is to be found
        while f(hi) != E:
            lo, hi = hi, R + 2 * (hi - R)
            if hi > MAX_STEP:
                return None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if f(mid) == E else (mid, hi)
        return R if f(R) == E else hi

    def segments(self) -> list[Segment]:
        L, r, k, R = self.learning_rate, self.decay_rate, self.decay_steps, self.num_ramp_steps
        value, bound = self._bound()
        if L == 0:
            return chain(ramp_segments(L, R) + [Segment(R, Shape.CONSTANT, bound(0.0))])
        decay = [Segment(R, Shape.EXPONENTIAL, L, value, p=r, q=float(self.staircase), end=R + k)]
        reached = self._bound_reached()
        if reached is not None:  # the same values, without a pow() per step
            decay = decay[:1] if reached > R else []
            decay.append(Segment(reached, Shape.CONSTANT, self.end_learning_rate))
        return chain(ramp_segments(L, R) + decay)

    def marks(self) -> list[int]:
        return sorted_marks(self.num_ramp_steps, self.num_ramp_steps + self.decay_steps)

    def bounds(self) -> Range:
        # L * r ** e lies in [0, L] when r <= 1 and in [L, inf] when r >= 1 (e >= 0), and the bound
        # is monotone: the decay runs from its value at e = 0 (step R) towards bound(0) or bound(inf)
        f, r, R = self.formula(), self.decay_rate, self.num_ramp_steps
        _, bound = self._bound()
        if self.learning_rate == 0 or r == 1:
            limit = f(R)
        else:
            limit = bound(0.0) if r < 1 else bound(math.inf)
        return span(*ramp_range(f, R), f(R), limit)


class PolynomialDecay(ConfigModel, Kind):
    """tml's linear ramp, then Hugging Face's ``get_polynomial_decay_schedule_with_warmup`` (times L).

    ``s < R``: ``min(L, (L / R) * s)``;
    ``R <= s <= T``: ``E + (L - E) * (1 - (s - R) / (T - R)) ** power``;
    ``s > T``: ``E``, with L = ``learning_rate``, E = ``end_learning_rate``, R = ``num_ramp_steps``,
    T = ``final_num_steps`` (T > R). E may exceed L (a polynomial rise, torch's ``LinearLR``).
    ``k_decay`` k != 1 (timm's k-decay): ``(s - R) ** k / (T - R) ** k`` for ``(s - R) / (T - R)``.
    Segments: LINEAR, POWER (``w`` = k when k != 1), CONSTANT.
    Bounds: the ramp's ends, ``E + (L - E) * 1.0`` (step R) and E (step T); exact. NaN when
    ``(T - R) ** k`` overflows (``inf / inf`` at step T).

    >>> cfg = PolynomialDecay(learning_rate=1.0, final_num_steps=4, power=2.0)
    >>> [cfg.formula()(s) for s in (0, 1, 2, 4, 5)]
    [1.0, 0.5625, 0.25, 0.0, 0.0]
    """

    learning_rate: Rate
    end_learning_rate: Rate = 0.0
    num_ramp_steps: Count = 0
    final_num_steps: StepInt
    power: Positive = 1.0
    k_decay: Positive = 1.0

    _end_after_ramp = pydantic.model_validator(mode="after")(check_end_after_ramp)

    def formula(self) -> Callable[[int], float]:
        L, E, R, T, p = self.learning_rate, self.end_learning_rate, self.num_ramp_steps, self.final_num_steps, self.power
        D, k = T - R, self.k_decay
        if k != 1:  # float64 throughout, as the kernels: inf past overflow
            Dk = power(float(D), k)
            return after_ramp(L, R, lambda s: E + (L - E) * power(1 - power(float(s - R), k) / Dk, p) if s <= T else E)
        return after_ramp(L, R, lambda s: E + (L - E) * (1 - (s - R) / D) ** p if s <= T else E)

    def segments(self) -> list[Segment]:
        L, E, R, T = self.learning_rate, self.end_learning_rate, self.num_ramp_steps, self.final_num_steps
        w = 0.0 if self.k_decay == 1 else self.k_decay
        return chain(ramp_segments(L, R) + [
            Segment(R, Shape.POWER, L, E, p=self.power, w=w, end=T),
            Segment(T + 1, Shape.CONSTANT, E),
        ])

    def marks(self) -> list[int]:
        return sorted_marks(self.num_ramp_steps, self.final_num_steps)

    def bounds(self) -> Range:
        # E + (L - E) * q with q = (1 - x) ** p in [0, 1], monotone in q: q = 1 at step R, 0 at step T
        f, R, T = self.formula(), self.num_ramp_steps, self.final_num_steps
        return span(*ramp_range(f, R), f(R), f(T), f(T + 1))


class InverseSqrt(ConfigModel, Kind):
    """tml's linear ramp, then Hugging Face's ``get_inverse_sqrt_schedule`` (times L).

    ``s < R``: ``min(L, (L / R) * s)``;
    ``s >= R``: ``L * (1.0 / sqrt((s + shift) / timescale))`` with ``shift = timescale - R``
    (``s + shift`` computed as ``float(s) - float(R - timescale)``, as the kernels do: the same
    below 2**53, and rounded alike beyond);
    ``timescale`` defaults, as in Hugging Face, to R, or 10,000 when R is 0.
    Segments: LINEAR, INV_SQRT (``ORIGIN = R - timescale``, ``END = R``).
    Bounds: the ramp's ends, L (step R) and 0 (the limit, never reached); a safe bound.

    >>> cfg = InverseSqrt(learning_rate=1.0, num_ramp_steps=4)
    >>> [cfg.formula()(s) for s in (0, 2, 4, 16)]
    [0.0, 0.5, 1.0, 0.5]
    """

    learning_rate: Rate
    num_ramp_steps: Count
    timescale: PositiveStep | None = None

    @property
    def resolved_timescale(self) -> int:
        return self.timescale if self.timescale is not None else (self.num_ramp_steps or 10_000)

    def formula(self) -> Callable[[int], float]:
        L, R, ts = self.learning_rate, self.num_ramp_steps, self.resolved_timescale
        origin = float(R - ts)  # s - origin is s + shift, rounded like the kernels past 2**53
        return after_ramp(L, R, lambda s: L * (1.0 / math.sqrt((float(s) - origin) / ts)))

    def segments(self) -> list[Segment]:
        L, R, ts = self.learning_rate, self.num_ramp_steps, self.resolved_timescale
        return chain(ramp_segments(L, R) + [Segment(R, Shape.INV_SQRT, L, origin=R - ts, end=R)])

    def marks(self) -> list[int]:
        return sorted_marks(self.num_ramp_steps)

    def bounds(self) -> Range:
        # L * (1.0 / sqrt(x)) with x >= 1 from step R on (x = 1 there): in [0, L]
        f, R = self.formula(), self.num_ramp_steps
        return span(*ramp_range(f, R), f(R), 0.0)

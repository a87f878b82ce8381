"""Cosine-shaped kinds: ``cosine_annealing`` (torch ``CosineAnnealingLR``, Hugging Face's cosine
schedules), ``cosine_with_restarts`` (torch ``CosineAnnealingWarmRestarts`` with timm's
``cycle_decay``), ``warmup_stable_decay`` (Hugging Face ``get_wsd_schedule``) and ``one_cycle``
(torch ``OneCycleLR``), each model beside its formula and its compile rule."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, Literal

import pydantic
from pydantic import StrictBool

from ..fields import ConfigModel, Count, Positive, PositiveStep, Rate
from ..program import Segment, Shape
from ._row import (
    Kind,
    Range,
    after_ramp,
    chain,
    clamped_line,
    cosine_blend,
    cosine_range,
    power,
    ramp_range,
    ramp_segments,
    sorted_marks,
    span,
    union,
)

__all__ = ["CosineAnnealing", "CosineWithRestarts", "OneCycle", "WarmupStableDecay", "restart_cycle"]

class CosineAnnealing(ConfigModel, Kind):
    """tml's linear ramp, then a cosine between L and F that never stops: torch's
    ``CosineAnnealingLR`` (periodic past ``T_max``) and Hugging Face's cosine schedules.

    ``s < R``: ``min(L, (L / R) * s)``; then, with ``u = s - R`` and N = ``num_steps``:

    - ``hard_restarts: false``: ``F + (L - F) * 0.5 * (1 + cos(p * u / N))`` for every ``u``,
      ``p = pi * num_cycles * 2.0`` (``num_cycles = 0.5``: down to F at N, back up to L at 2N...).
      When the period ``N / num_cycles`` is a whole number of steps P (always for torch's
      ``CosineAnnealingLR``: P = 2N), ``u`` is first reduced to ``u % P``: the same cosine,
      without a huge argument at huge steps. ``k_decay`` k != 1 (timm's k-decay, not periodic):
      ``p * u ** k / N ** k`` for ``p * u / N`` while ``u < N``, then F (as timm's cycles end);
    - ``hard_restarts: true``: ``F + (L - F) * 0.5 * (1 + cos(pi * ((num_cycles * (u / N)) % 1.0)))``
      while ``u < N``, then F (``num_cycles`` cosine decays, each restarting at L).

    Segments: LINEAR, then COSINE (periodic: no end, ``q`` = P); COSINE (``w`` = k) and CONSTANT
    with k-decay; or COSINE_CYCLES and CONSTANT.
    Bounds: the ramp's ends, the cosine's start (step R) and F; exact with ``hard_restarts`` or
    k-decay (F from step R + N on), else safe (F is reached only where the angle is a whole odd
    multiple of pi). k-decay: NaN when the angle overflows at the last step (``inf / inf``).

    >>> cfg = CosineAnnealing(learning_rate=1.0, final_learning_rate=0.5, num_steps=2)
    >>> [cfg.formula()(s) for s in (0, 1, 2, 3, 4)]
    [1.0, 0.75, 0.5, 0.75, 1.0]
    """

    learning_rate: Rate
    final_learning_rate: Rate = 0.0
    num_ramp_steps: Count = 0
    num_steps: PositiveStep
    num_cycles: Positive = 0.5
    hard_restarts: StrictBool = False
    k_decay: Positive = 1.0

    @pydantic.model_validator(mode="after")
    def _k_decay_without_hard_restarts(self) -> CosineAnnealing:
        if self.k_decay != 1 and self.hard_restarts:
            raise ValueError(f"k_decay ({self.k_decay!r}) applies only with hard_restarts false")
        return self

    def formula(self) -> Callable[[int], float]:
        L, F, R, N, k = self.learning_rate, self.final_learning_rate, self.num_ramp_steps, self.num_steps, self.num_cycles
        if self.k_decay != 1:  # float64 throughout, as the kernels: inf past overflow, then NaN
            p, kd, Nk = math.pi * k * 2.0, self.k_decay, power(float(N), self.k_decay)

            def k_decay(s: int) -> float:
                if s - R >= N:
                    return F
                angle = p * power(float(s - R), kd) / Nk
                return F + (L - F) * 0.5 * (1 + (math.cos(angle) if math.isfinite(angle) else math.nan))

            return after_ramp(L, R, k_decay)
        if self.hard_restarts:
            pi = math.pi
            return after_ramp(L, R, lambda s: F + (L - F) * 0.5 * (1 + math.cos(pi * ((k * ((s - R) / N)) % 1.0))) if s - R < N else F)
        p, P = math.pi * k * 2.0, self.period
        if P:
            return after_ramp(L, R, lambda s: F + (L - F) * 0.5 * (1 + math.cos(p * ((s - R) % P) / N)))
        return after_ramp(L, R, lambda s: F + (L - F) * 0.5 * (1 + math.cos(p * (s - R) / N)))

    @property
    def period(self) -> int:
        """The cosine's period ``num_steps / num_cycles`` when it is a whole number of steps, else 0."""
        P = self.num_steps / self.num_cycles
        periodic = not self.hard_restarts and self.k_decay == 1
        return int(P) if periodic and P.is_integer() and P * self.num_cycles == self.num_steps else 0

    def segments(self) -> list[Segment]:
        L, F, R, N, k = self.learning_rate, self.final_learning_rate, self.num_ramp_steps, self.num_steps, self.num_cycles
        if self.hard_restarts:
            return chain(ramp_segments(L, R) + [
                Segment(R, Shape.COSINE_CYCLES, L, F, p=math.pi, q=k, end=R + N),
                Segment(R + N, Shape.CONSTANT, F),
            ])
        if self.k_decay != 1:
            return chain(ramp_segments(L, R) + [
                Segment(R, Shape.COSINE, L, F, p=math.pi * k * 2.0, w=self.k_decay, end=R + N),
                Segment(R + N, Shape.CONSTANT, F),
            ])
        return chain(ramp_segments(L, R) + [Segment(R, Shape.COSINE, L, F, p=math.pi * k * 2.0, q=self.period, end=R + N)])

    def marks(self) -> list[int]:
        return sorted_marks(self.num_ramp_steps, self.num_ramp_steps + self.num_steps)

    def bounds(self) -> Range:
        f, R, N = self.formula(), self.num_ramp_steps, self.num_steps
        # every branch is cosine_blend(F, L, c) with c = 1 + cos(angle) in [0, 2], c = 2 at step R; a
        # k-decay angle is monotone in the step, so if it overflows anywhere it does at R + N - 1
        nan = [f(R + N - 1)] if self.k_decay != 1 else []
        return span(*ramp_range(f, R), *nan, *cosine_range(self.learning_rate, self.final_learning_rate))


def int_power(base: float, n: int) -> float:
    """``base ** n`` for an integer ``n >= 0`` by squaring (the native kernels' exact sequence of
    multiplications; a handful of them, where ``pow`` costs several times more)."""
    result = 1.0
    while n > 0:
        if n & 1:
            result *= base
        base *= base
        n >>= 1
    return result


def restart_cycle(u: int, length: int, mult: int) -> tuple[int, float, float]:
    """The cycle holding step ``u`` of cycles ``length * mult**n`` long: ``(n, t, T)`` with ``t``
    the step within the cycle and ``T`` its length.

    Closed form, in float64 exactly as the native kernels compute it: an estimate of ``n`` from
    ``log``, corrected by comparing ``u`` with the exact cycle starts
    ``length * ((mult**n - 1) / (mult - 1))`` (whole numbers; exact while below 2**53, so ``n``,
    ``t`` and ``T`` are the exact ones at every step a config allows, and past that the kernels
    and this function still agree bit for bit).
    """
    u, span = float(u), float(length)
    if mult == 1:
        n = math.floor(u / span)
        return n, u - n * span, span
    m = float(mult)
    estimate = math.log(u * (m - 1) / span + 1) / math.log(m)
    n = int(estimate) if estimate >= 0 else 0
    power = int_power(m, n)
    if span * ((power - 1) / (m - 1)) > u:
        n, power = n - 1, power / m
    if span * ((power * m - 1) / (m - 1)) <= u:
        n, power = n + 1, power * m
    return n, u - span * ((power - 1) / (m - 1)), span * power


class CosineWithRestarts(ConfigModel, Kind):
    """tml's linear ramp, then torch's ``CosineAnnealingWarmRestarts(T_0 = cycle_steps,
    T_mult = cycle_mult, eta_min = F)`` with each cycle's peak scaled by ``cycle_decay ** n``
    (timm's ``cycle_decay``).

    ``s < R``: ``min(L, (L / R) * s)``; then, with ``u = s - R`` in cycle ``n`` (which starts at
    ``C * (m**n - 1) / (m - 1)``, or ``n * C`` when ``m = 1``), ``t`` steps into it, of length
    ``T = C * m**n``: ``F + (L * d ** n - F) * 0.5 * (1 + cos(pi * t / T))``, with
    C = ``cycle_steps``, m = ``cycle_mult``, d = ``cycle_decay`` (``d ** n`` by squaring:
    :func:`int_power`). The cycle is found in closed form
    (no unrolling: exact at any step), and the program is two segments whatever the step.
    Segments: LINEAR, COSINE_RESTARTS.
    Bounds: the ramp's ends, F, and the cycles' starts: the first's (step R) and, with ``d < 1``,
    the limit of their peaks (``L * d ** n`` towards 0); a safe bound. ``d > 1``: ``(nan, nan)``,
    the peaks grow without bound (``inf``, then ``inf * 0`` is NaN where the cosine reaches -1).

    >>> cfg = CosineWithRestarts(learning_rate=1.0, cycle_steps=2, cycle_mult=2, cycle_decay=0.5)
    >>> [cfg.formula()(s) for s in (0, 1, 2, 4, 6)]  # cycles [0, 2), [2, 6), [6, 14)
    [1.0, 0.5, 0.5, 0.25, 0.25]
    """

    learning_rate: Rate
    final_learning_rate: Rate = 0.0
    num_ramp_steps: Count = 0
    cycle_steps: PositiveStep
    cycle_mult: PositiveStep = 1
    cycle_decay: Positive = 1.0

    def formula(self) -> Callable[[int], float]:
        L, F, R = self.learning_rate, self.final_learning_rate, self.num_ramp_steps
        C, m, d = self.cycle_steps, self.cycle_mult, self.cycle_decay

        def restarts(s: int) -> float:
            n, t, T = restart_cycle(s - R, C, m)
            return F + (L * int_power(d, n) - F) * 0.5 * (1 + math.cos(math.pi * t / T))

        return after_ramp(L, R, restarts)

    def segments(self) -> list[Segment]:
        L, F, R = self.learning_rate, self.final_learning_rate, self.num_ramp_steps
        C, m, d = self.cycle_steps, self.cycle_mult, self.cycle_decay
        return chain(ramp_segments(L, R) + [
            Segment(R, Shape.COSINE_RESTARTS, L, F, p=math.pi, q=m, w=d, end=R + C),
        ])

    def marks(self) -> list[int]:
        R, C, m = self.num_ramp_steps, self.cycle_steps, self.cycle_mult
        return sorted_marks(R, *(R + C * (m**n - 1) // (m - 1) if m > 1 else R + n * C for n in (1, 2, 3)))

    def bounds(self) -> Range:
        # cosine_blend(F, P, c) is monotone in the peak P = L * d ** n and in c = 1 + cos in [0, 2]:
        # its extremes are F (c = 0) and the blends at c = 2 of the extreme peaks, L (n = 0) and,
        # when d < 1, 0 (d ** n <= 1 by squaring, so L * d ** n is in [0, L])
        L, F, d = self.learning_rate, self.final_learning_rate, self.cycle_decay
        if d > 1:
            return math.nan, math.nan
        peaks = (L, 0.0) if d < 1 else (L,)
        return span(*ramp_range(self.formula(), self.num_ramp_steps), F, *(cosine_blend(F, P, 2.0) for P in peaks))


Shape3 = Literal["linear", "cosine", "1-sqrt"]
DecayShape = Literal["linear", "cosine", "1-sqrt", "exponential"]  # exponential: Megatron's WSD anneal


class WarmupStableDecay(ConfigModel, Kind):
    """Hugging Face's ``get_wsd_schedule`` times L: warm up from F to L, hold L, decay to F, hold F.

    With L = ``learning_rate``, F = ``final_learning_rate`` (HF's ``min_lr_ratio * L``),
    W / S / D = ``num_ramp_steps`` / ``num_stable_steps`` / ``num_decay_steps``:

    - ``s < W`` (``ramp_shape``): linear ``clamp(F + ((L - F) / W) * s)``; cosine
      ``L + (F - L) * 0.5 * (1 + cos(pi * s / W))``; 1-sqrt ``F + (L - F) * (1 - sqrt((s - W) / -W))``;
    - ``W <= s < W + S``: L;
    - ``W + S <= s < W + S + D``, ``u = s - W - S`` (``decay_shape``): linear
      ``clamp(L + ((F - L) / D) * u)``; cosine ``F + (L - F) * 0.5 * (1 + cos(p * u / D))`` with
      ``p = pi * num_cycles * 2.0``; 1-sqrt ``F + (L - F) * (1 - sqrt(u / D))``; exponential
      (Megatron's ``lr_wsd_decay_style="exponential"``) ``F + ((2.0 * pow(0.5, u / D)) - 1.0) * (L - F)``;
    - then F.

    Segments: LINEAR / COSINE / ONE_MINUS_SQRT, CONSTANT, LINEAR / COSINE / ONE_MINUS_SQRT /
    EXP_ANNEAL, CONSTANT.
    Bounds: each phase's extremes (linear and 1-sqrt are monotone: their first and last steps; a
    cosine lies between its ``c = 2`` value and its end value, the exponential anneal between its
    first value and F), L when held, and F; exact but for a cosine ramp, whose end value L no ramp
    step reaches.

    >>> cfg = WarmupStableDecay(learning_rate=1.0, num_ramp_steps=2, num_stable_steps=1,
    ...                         num_decay_steps=2, decay_shape="linear")
    >>> [cfg.formula()(s) for s in range(6)]
    [0.0, 0.5, 1.0, 1.0, 0.5, 0.0]
    """

    learning_rate: Rate
    final_learning_rate: Rate = 0.0
    num_ramp_steps: Count
    num_stable_steps: Count
    num_decay_steps: Count
    decay_shape: DecayShape = "cosine"
    ramp_shape: Shape3 = "linear"
    num_cycles: Positive = 0.5

    @pydantic.model_validator(mode="after")
    def _total_is_exact(self) -> WarmupStableDecay:
        total = self.num_ramp_steps + self.num_stable_steps + self.num_decay_steps
        if total > 2**53 - 2:
            raise ValueError(
                f"num_ramp_steps + num_stable_steps + num_decay_steps ({total}) must be <= 2**53 - 2 "
                f"(exact in float64)"
            )
        return self

    def _ramp(self) -> Callable[[int], float]:
        L, F, W = self.learning_rate, self.final_learning_rate, self.num_ramp_steps
        if self.ramp_shape == "linear":
            return clamped_line(F, L, W)
        if self.ramp_shape == "cosine":
            return lambda s: L + (F - L) * 0.5 * (1 + math.cos(math.pi * s / W))
        return lambda s: F + (L - F) * (1 - math.sqrt((s - W) / (0 - W)))

    def _decay(self) -> Callable[[int], float]:
        L, F, D = self.learning_rate, self.final_learning_rate, self.num_decay_steps
        if self.decay_shape == "linear":
            return clamped_line(L, F, D)
        if self.decay_shape == "cosine":
            p = math.pi * self.num_cycles * 2.0
            return lambda u: F + (L - F) * 0.5 * (1 + math.cos(p * u / D))
        if self.decay_shape == "exponential":
            return lambda u: F + ((2.0 * math.pow(0.5, u / D)) - 1.0) * (L - F)
        return lambda u: F + (L - F) * (1 - math.sqrt(u / D))

    def formula(self) -> Callable[[int], float]:
        L, F = self.learning_rate, self.final_learning_rate
        W, S, D = self.num_ramp_steps, self.num_stable_steps, self.num_decay_steps
        ramp = self._ramp() if W else None
        decay = self._decay() if D else None

        def wsd(s: int) -> float:
            if s < W:
                return ramp(s)
            if s < W + S:
                return L
            if s < W + S + D:
                return decay(s - W - S)
            return F

        return wsd

    def segments(self) -> list[Segment]:
        L, F = self.learning_rate, self.final_learning_rate
        W, S, D = self.num_ramp_steps, self.num_stable_steps, self.num_decay_steps
        segments = []
        if W:
            segments.append({
                "linear": Segment(0, Shape.LINEAR, F, L, end=W),
                "cosine": Segment(0, Shape.COSINE, F, L, p=math.pi, end=W),
                "1-sqrt": Segment(0, Shape.ONE_MINUS_SQRT, L, F, origin=W, end=0),
            }[self.ramp_shape])
        if S:
            segments.append(Segment(W, Shape.CONSTANT, L))
        if D:
            segments.append({
                "linear": Segment(W + S, Shape.LINEAR, L, F, end=W + S + D),
                "cosine": Segment(W + S, Shape.COSINE, L, F, p=math.pi * self.num_cycles * 2.0, end=W + S + D),
                "1-sqrt": Segment(W + S, Shape.ONE_MINUS_SQRT, L, F, end=W + S + D),
                "exponential": Segment(W + S, Shape.EXP_ANNEAL, L, F, end=W + S + D),
            }[self.decay_shape])
        segments.append(Segment(W + S + D, Shape.CONSTANT, F))
        return chain(segments)

    def marks(self) -> list[int]:
        W, S, D = self.num_ramp_steps, self.num_stable_steps, self.num_decay_steps
        return sorted_marks(W, W + S, W + S + D)

    def bounds(self) -> Range:
        L, F = self.learning_rate, self.final_learning_rate
        W, S, D = self.num_ramp_steps, self.num_stable_steps, self.num_decay_steps
        f = self.formula()
        values = [F]  # from W + S + D on
        if W:  # linear (clamped), 1-sqrt (sqrt is correctly rounded): monotone in the step
            values += cosine_range(F, L) if self.ramp_shape == "cosine" else [f(0), f(W - 1)]
        if S:
            values.append(L)
        if D:
            if self.decay_shape == "cosine":
                values += cosine_range(L, F)
            elif self.decay_shape == "exponential":  # F + q * (L - F), q = 2 * 0.5 ** x - 1 in [0, 1]
                values.append(f(W + S))  # q = 1; q = 0 is F
            else:  # linear (clamped), 1-sqrt: monotone in the step
                values += [f(W + S), f(W + S + D - 1)]
        return span(*values)


class OneCycle(ConfigModel, Kind):
    """torch's ``OneCycleLR`` learning rate, or its momentum cycle; from ``total_steps - 1`` on it
    holds its last value.

    Its three values, in one of two sets of torch's terms:

    - a rate: ``peak = max_learning_rate``, ``initial = initial_learning_rate`` (torch's
      ``initial_lr``) or else ``max_learning_rate / div_factor`` (25), ``minimum =
      final_learning_rate`` (torch's ``min_lr``) or else ``initial / final_div_factor`` (1e4); a
      value and its factor are not given together (initial -> peak -> minimum);
    - a momentum (``base_momentum`` and ``max_momentum``, ``OneCycleLR(cycle_momentum=True)``'s
      arguments, alone): ``initial = minimum = max_momentum``, ``peak = base_momentum``
      (max_momentum -> base_momentum -> max_momentum, while the rate rises and falls).

    With T = ``total_steps``, p = ``pct_start``, the phases end (torch's float ``end_step``s) at
    ``float(p * T) - 1`` and ``T - 1`` (two phases: initial -> peak -> minimum), or at
    ``float(p * T) - 1``, ``float(2 * p * T) - 2`` and ``T - 1`` (``three_phase``: initial -> peak
    -> initial -> minimum). Step ``s`` takes the first phase with ``s <= end`` (the last phase
    otherwise); from that phase's start ``a`` (the previous ``end``, 0.0 for the first) to its
    ``end`` it anneals from ``v0`` to ``v1``: ``cos``
    ``v1 + (v0 - v1) * 0.5 * (1 + cos(pi * (s - a) / (end - a)))``, ``linear``
    ``clamp(v0 + ((v1 - v0) / (end - a)) * (s - a))``. torch raises past ``T``; here
    ``lr(s) = lr(T - 1)`` for ``s >= T``.
    Segments: one COSINE or LINEAR per phase that some step reaches, then CONSTANT.
    Bounds: the values of each phase some step reaches, ``v0`` and ``v1`` (``cos``: its value at
    ``c = 2`` for ``v0``); exact when the phases end on whole steps (as torch's usually do), safe
    otherwise; NaN when a value divided by a factor below 1 overflows.

    >>> cfg = OneCycle(max_learning_rate=1.0, total_steps=5, pct_start=0.4, div_factor=4.0,
    ...                final_div_factor=2.0, anneal_strategy="linear")
    >>> [cfg.formula()(s) for s in range(7)]
    [0.25, 1.0, 0.7083333333333333, 0.41666666666666663, 0.125, 0.125, 0.125]
    >>> momentum = OneCycle(base_momentum=0.85, max_momentum=0.95, total_steps=5, pct_start=0.4,
    ...                     anneal_strategy="linear")
    >>> [round(momentum.formula()(s), 12) for s in range(6)]
    [0.95, 0.85, 0.883333333333, 0.916666666667, 0.95, 0.95]
    """

    max_learning_rate: Rate | None = None
    total_steps: PositiveStep
    pct_start: float = 0.3
    anneal_strategy: Literal["cos", "linear"] = "cos"
    div_factor: Positive | None = None  # 25.0 unless initial_learning_rate is given
    final_div_factor: Positive | None = None  # 1e4 unless final_learning_rate is given
    three_phase: StrictBool = False
    initial_learning_rate: Rate | None = None
    final_learning_rate: Rate | None = None
    base_momentum: Rate | None = None
    max_momentum: Rate | None = None

    RATE_TERMS: ClassVar[tuple[str, ...]] = ("max_learning_rate", "div_factor", "final_div_factor",
                                            "initial_learning_rate", "final_learning_rate")
    MOMENTUM_TERMS: ClassVar[tuple[str, ...]] = ("base_momentum", "max_momentum")

    @pydantic.model_validator(mode="after")
    def _one_set_of_terms(self) -> OneCycle:
        momentum = [k for k in self.MOMENTUM_TERMS if getattr(self, k) is not None]
        if not momentum:
            if self.max_learning_rate is None:
                raise ValueError(
                    "one_cycle needs max_learning_rate (a rate's cycle), or base_momentum and max_momentum "
                    "(a momentum cycle, as torch's OneCycleLR(cycle_momentum=True))"
                )
            return self
        if len(momentum) == 1:
            other = next(k for k in self.MOMENTUM_TERMS if k not in momentum)
            raise ValueError(f"one_cycle: {momentum[0]} ({getattr(self, momentum[0])!r}) needs {other} too: a "
                             f"momentum cycle runs max_momentum -> base_momentum -> max_momentum")
        rate = [k for k in self.RATE_TERMS if k in self.model_fields_set and getattr(self, k) is not None]
        if rate:
            raise ValueError(
                f"one_cycle: {', '.join(rate)} and base_momentum / max_momentum are two ways to write its "
                f"values; give one: a momentum cycle's are base_momentum and max_momentum alone"
            )
        return self

    def __setstate__(self, state: dict) -> None:
        """A pickle written before the momentum terms holds no such fields: they were unset."""
        given = state["__dict__"]
        state["__dict__"] = {name: given.get(name) for name in type(self).model_fields}
        super().__setstate__(state)

    @pydantic.model_serializer(mode="wrap")
    def _dump(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict:
        """A momentum cycle's dump leaves out the rate's factors (their defaults), so it loads again."""
        data = handler(self)
        if self.base_momentum is not None and isinstance(data, dict):
            for key in self.RATE_TERMS:
                data.pop(key, None)
        return data

    @pydantic.model_validator(mode="after")
    def _a_value_or_its_factor(self) -> OneCycle:
        for value, factor in (("initial_learning_rate", "div_factor"), ("final_learning_rate", "final_div_factor")):
            if getattr(self, value) is not None and getattr(self, factor) is not None:
                raise ValueError(f"{factor} ({getattr(self, factor)!r}) and {value} ({getattr(self, value)!r}): "
                                 f"give one ({value} is the value {factor} would divide down to)")
        return self

    @property
    def peak(self) -> float:
        """The first phase's end: ``max_learning_rate``, or a momentum cycle's ``base_momentum``."""
        return self.base_momentum if self.base_momentum is not None else self.max_learning_rate

    @property
    def initial(self) -> float:
        """The first phase's start: ``initial_learning_rate``, or ``max_learning_rate / div_factor`` (25);
        a momentum cycle's ``max_momentum``."""
        if self.max_momentum is not None:
            return self.max_momentum
        if self.initial_learning_rate is not None:
            return self.initial_learning_rate
        return self.max_learning_rate / (25.0 if self.div_factor is None else self.div_factor)

    @property
    def minimum(self) -> float:
        """The last phase's end: ``final_learning_rate``, or ``initial / final_div_factor`` (1e4); a momentum
        cycle's ``max_momentum``."""
        if self.max_momentum is not None:
            return self.max_momentum
        if self.final_learning_rate is not None:
            return self.final_learning_rate
        return self.initial / (1e4 if self.final_div_factor is None else self.final_div_factor)

    @pydantic.field_validator("pct_start", mode="before")
    @classmethod
    def _pct(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"pct_start ({value!r}) must be a number in [0, 1]")
        return value

    @pydantic.model_validator(mode="after")
    def _phases_have_length(self) -> OneCycle:
        for first, last, start, end, _, _ in self.phases():
            if first <= last and end == start:
                raise ValueError(
                    f"one_cycle phase ending at step {end} has zero length (pct_start={self.pct_start}, "
                    f"total_steps={self.total_steps}): torch would divide by zero there"
                )
        return self

    def phases(self) -> list[tuple[int, int, float, float, float, float]]:
        """``(first step, last step, start, end, v0, v1)`` per phase, as torch's ``get_lr`` picks them;
        ``first > last`` when no step in ``[0, T - 1]`` reaches the phase."""
        T, p = self.total_steps, self.pct_start
        initial, peak, minimum = self.initial, self.peak, self.minimum
        if self.three_phase:
            ends = [float(p * T) - 1, float(2 * p * T) - 2, T - 1]
            values = [(initial, peak), (peak, initial), (initial, minimum)]
        else:
            ends = [float(p * T) - 1, T - 1]
            values = [(initial, peak), (peak, minimum)]
        out, start, reached = [], 0.0, -1.0  # reached: the largest end before this phase
        for i, (end, (v0, v1)) in enumerate(zip(ends, values)):
            first = max(0, math.floor(reached) + 1)
            last = T - 1 if i == len(ends) - 1 else min(T - 1, math.floor(end))
            out.append((first, last, start, end, v0, v1))
            start, reached = end, max(reached, end)
        return out

    def _phase_formula(self, start: float, end: float, v0: float, v1: float) -> Callable[[int], float]:
        if self.anneal_strategy == "linear":
            line = clamped_line(v0, v1, end - start)
            return lambda s: line(s - start)
        return lambda s: v1 + (v0 - v1) * 0.5 * (1 + math.cos(math.pi * (s - start) / (end - start)))

    def formula(self) -> Callable[[int], float]:
        pieces = [(last, self._phase_formula(start, end, v0, v1))
                  for first, last, start, end, v0, v1 in self.phases() if first <= last]
        T = self.total_steps

        def one_cycle(s: int) -> float:
            s = min(s, T - 1)
            for last, f in pieces:
                if s <= last:
                    return f(s)
            raise AssertionError("unreachable: the last phase ends at T - 1")

        return one_cycle

    def segments(self) -> list[Segment]:
        shape = Shape.LINEAR if self.anneal_strategy == "linear" else Shape.COSINE
        p = 0.0 if shape == Shape.LINEAR else math.pi
        segments = [Segment(first, shape, v0, v1, p=p, origin=start, end=end)
                    for first, last, start, end, v0, v1 in self.phases() if first <= last]
        T = self.total_steps
        segments.append(Segment(T, Shape.CONSTANT, self.formula()(T - 1)))
        return chain(segments)

    def marks(self) -> list[int]:
        return sorted_marks(*(first for first, last, *_ in self.phases() if first <= last), self.total_steps - 1)

    def bounds(self) -> Range:
        # a reached phase runs (s - start) / (end - start) over [0, 1]: linear is clamped between v0
        # and v1, cos lies between v1 (c = 0) and its c = 2 value, whatever the angle
        line = self.anneal_strategy == "linear"
        reached = [(v0, v1) for first, last, start, end, v0, v1 in self.phases() if first <= last]
        if not all(math.isfinite(v) for pair in reached for v in pair):  # a div_factor < 1 overflowed
            return math.nan, math.nan  # inf - inf, inf * 0
        return union(*(span(v0, v1) if line else cosine_range(v0, v1) for v0, v1 in reached))

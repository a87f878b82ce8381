"""``LearningRate`` (exactly one kind per schedule) and the kinds built from other schedules:
``join`` (optax ``join_schedules``), ``product`` (a product of schedules: torch's
``ChainedScheduler``) and ``offset`` (a schedule already some steps in)."""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from typing import ClassVar

import pydantic

from ..fields import ConfigModel, Count, Rate, StepInt, exactly_one
from ..program import Segment, shifted
from ._row import Kind, Range, fold, fold_ranges, sorted_marks, union, widened
from .cosine import CosineAnnealing, CosineWithRestarts, OneCycle, WarmupStableDecay
from .cyclic import Cyclic
from .decay import ExponentialDecay, InverseSqrt, PolynomialDecay
from .plateau import ReduceOnPlateau
from .tanh import TanhDecay
from .tml import ConstantRow, LinearRampToConstant, LinearRampToCosine, PiecewiseConstant
from .warmup import LogWarmup

__all__ = ["Join", "LearningRate", "Offset", "Product", "kind_row", "plateaus", "schedule_bounds"]


def _at_least_one_schedule(schedules: list) -> list:
    if not schedules:
        raise ValueError("schedules must hold at least one schedule, got []")
    return schedules


class Join(ConfigModel, Kind):
    """optax's ``join_schedules``: ``schedules[i]`` runs from ``boundaries[i - 1]`` on (the first
    from step 0), seeing the step relative to that boundary.

    ``lr(s) = schedules[i](s - boundaries[i - 1])`` with ``i = bisect_right(boundaries, s)``
    (``schedules[0](s)`` when ``i == 0``). Boundaries are strictly increasing integers >= 0,
    one fewer than the schedules; a schedule may itself be a ``join`` or a ``product``.
    Segments: each schedule's, shifted to its boundary and cut at the next.
    Bounds: the union of the schedules' bounds (each over all its steps, also those cut away); a
    safe bound.

    >>> cfg = Join(schedules=[LearningRate(constant=1.0), LearningRate(
    ...     linear_ramp_to_constant=dict(learning_rate=0.5, num_ramp_steps=2))], boundaries=[3])
    >>> [cfg.formula()(s) for s in range(6)]
    [1.0, 1.0, 1.0, 0.0, 0.25, 0.5]
    """

    schedules: list[LearningRate]
    boundaries: list[StepInt]

    _check_schedules = pydantic.field_validator("schedules")(_at_least_one_schedule)

    @pydantic.field_validator("boundaries")
    @classmethod
    def _boundaries(cls, b: list[int]) -> list[int]:
        for i, value in enumerate(b):
            if value < 0:
                raise ValueError(f"boundaries[{i}] ({value}) must be >= 0")
            if i and value <= b[i - 1]:
                raise ValueError(f"boundaries must be strictly increasing, got {b[i - 1]} then {value} at index {i}")
        return b

    @pydantic.model_validator(mode="after")
    def _lengths(self) -> Join:
        ns, nb = len(self.schedules), len(self.boundaries)
        if nb != ns - 1:
            raise ValueError(
                f"boundaries has {nb} entries but schedules has {ns}: "
                f"need len(boundaries) == len(schedules) - 1 ({ns - 1})"
            )
        return self

    def _spans(self) -> list[tuple[int, float]]:
        """``(from, until)`` of each schedule."""
        b = self.boundaries
        return list(zip([0, *b], [*b, float("inf")]))

    def _pick(self, parts: list[Callable]) -> Callable:
        b = tuple(self.boundaries)

        def join(s: int):
            i = bisect.bisect_right(b, s)
            return parts[i](s - b[i - 1]) if i else parts[0](s)

        return join

    def formula(self) -> Callable[[int], float]:
        return self._pick([kind_row(c).formula() for c in self.schedules])

    def factor_formula(self) -> Callable[[int], tuple[float, ...]]:
        return self._pick([kind_row(c).factor_formula() for c in self.schedules])

    def segments(self) -> list[Segment]:
        return [seg for cfg, (lo, hi) in zip(self.schedules, self._spans())
                for seg in shifted(kind_row(cfg).segments(), lo, hi)]

    def marks(self) -> list[int]:
        return sorted_marks(*self.boundaries, *(lo + m for cfg, (lo, hi) in zip(self.schedules, self._spans())
                                                for m in kind_row(cfg).marks() if lo + m < hi))

    def bounds(self) -> Range:
        return union(*(kind_row(c).bounds() for c in self.schedules))

    def factor_bounds(self) -> list[Range]:
        # one factor of an enclosing product; a schedule of several factors is regrouped by that
        # (a * (b * c) for (a * b) * c), which rounds differently by a few ulps
        several = any(len(kind_row(c).factor_bounds()) > 1 for c in self.schedules)
        return [widened(self.bounds()) if several else self.bounds()]


class Product(ConfigModel, Kind):
    """A product of schedules: ``lr(s) = schedules[0](s) * schedules[1](s) * ...``, left to right.

    Nested products (also inside a ``join``) contribute their own factors in order, so the
    multiplication order is the flat list of factors (the order the kernels multiply in). torch's
    ``ChainedScheduler`` of multiplicative schedulers is a product.
    Segments: each factor's program, one after the other (one active segment per factor).
    Bounds: the factors' bounds multiplied in the same order (each product's extremes are at its
    factors' extremes, signs and zero included; ``0 * inf`` is NaN); a safe bound, exact for one
    factor that varies (a schedule times a constant multiplier).

    >>> cfg = Product(schedules=[LearningRate(constant=0.5), LearningRate(
    ...     linear_ramp_to_constant=dict(learning_rate=1.0, num_ramp_steps=2))])
    >>> [cfg.formula()(s) for s in range(3)]
    [0.0, 0.25, 0.5]
    """

    schedules: list[LearningRate]

    _check_schedules = pydantic.field_validator("schedules")(_at_least_one_schedule)

    def factor_formula(self) -> Callable[[int], tuple[float, ...]]:
        parts = [kind_row(c).factor_formula() for c in self.schedules]
        return lambda s: tuple(x for f in parts for x in f(s))

    def formula(self) -> Callable[[int], float]:
        factors = self.factor_formula()
        return lambda s: fold(factors(s))

    def segments(self) -> list[Segment]:
        return [seg for cfg in self.schedules for seg in kind_row(cfg).segments()]

    def marks(self) -> list[int]:
        return sorted_marks(*(m for cfg in self.schedules for m in kind_row(cfg).marks()))

    def factor_bounds(self) -> list[Range]:
        return [r for cfg in self.schedules for r in kind_row(cfg).factor_bounds()]

    def bounds(self) -> Range:
        return fold_ranges(self.factor_bounds())


class Offset(ConfigModel, Kind):
    """A schedule already ``steps`` steps in: ``lr(s) = schedule(s + steps)``.

    Inside a ``join``, a later schedule sees the step relative to its boundary; an ``offset`` of
    that boundary gives it the outer step back (timm's cosine after a warm-up that is not a
    prefix, DeepSpeed's cosine counted from the last warm-up step).
    Segments: the schedule's, moved ``steps`` earlier (``SHIFT - steps``) and cut at step 0.
    Bounds: the schedule's (its steps from ``steps`` on are among its steps); a safe bound.

    >>> cfg = Offset(schedule=LearningRate(linear_ramp_to_constant=dict(learning_rate=1.0,
    ...     num_ramp_steps=4)), steps=2)
    >>> [cfg.formula()(s) for s in range(4)]
    [0.5, 0.75, 1.0, 1.0]
    """

    schedule: LearningRate
    steps: Count

    def formula(self) -> Callable[[int], float]:
        f, k = kind_row(self.schedule).formula(), self.steps
        return lambda s: f(s + k)

    def factor_formula(self) -> Callable[[int], tuple[float, ...]]:
        f, k = kind_row(self.schedule).factor_formula(), self.steps
        return lambda s: f(s + k)

    def segments(self) -> list[Segment]:
        k, out = self.steps, []
        for seg in kind_row(self.schedule).segments():
            start, stop = max(seg.start - k, 0), seg.stop - k
            if start < stop:  # origin and end are local: only the shift moves
                out.append(dataclasses.replace(seg, start=start, stop=stop, shift=seg.shift - k))
        return out

    def marks(self) -> list[int]:
        return sorted_marks(*(m - self.steps for m in kind_row(self.schedule).marks()))

    def bounds(self) -> Range:
        return kind_row(self.schedule).bounds()

    def factor_bounds(self) -> list[Range]:
        return kind_row(self.schedule).factor_bounds()


class LearningRate(ConfigModel):
    """A learning-rate schedule: exactly one kind is set (the others None/null).

    tml's four kinds (``constant``, ``piecewise_constant``, ``linear_ramp_to_constant``,
    ``linear_ramp_to_cosine``) and the kinds of the big libraries (see each kind's model).
    """

    constant: Rate | None = None
    piecewise_constant: PiecewiseConstant | None = None
    linear_ramp_to_constant: LinearRampToConstant | None = None
    linear_ramp_to_cosine: LinearRampToCosine | None = None
    exponential_decay: ExponentialDecay | None = None
    polynomial_decay: PolynomialDecay | None = None
    warmup_stable_decay: WarmupStableDecay | None = None
    cosine_annealing: CosineAnnealing | None = None
    cosine_with_restarts: CosineWithRestarts | None = None
    one_cycle: OneCycle | None = None
    inverse_sqrt: InverseSqrt | None = None
    log_warmup: LogWarmup | None = None
    cyclic: Cyclic | None = None
    tanh_decay: TanhDecay | None = None
    plateau: ReduceOnPlateau | None = None
    join: Join | None = None
    product: Product | None = None
    offset: Offset | None = None

    KINDS: ClassVar[tuple[str, ...]] = (
        "constant",
        "piecewise_constant",
        "linear_ramp_to_constant",
        "linear_ramp_to_cosine",
        "exponential_decay",
        "polynomial_decay",
        "warmup_stable_decay",
        "cosine_annealing",
        "cosine_with_restarts",
        "one_cycle",
        "inverse_sqrt",
        "log_warmup",
        "cyclic",
        "tanh_decay",
        "plateau",
        "join",
        "product",
        "offset",
    )

    @pydantic.model_validator(mode="after")
    def _one_kind(self) -> LearningRate:
        exactly_one(self, self.KINDS)
        if self.kind in ("join", "product", "offset") and len(plateaus(self)) > 1:
            raise ValueError(
                f"a schedule holds at most one plateau (one state per group), got {len(plateaus(self))} "
                f"in this {self.kind}"
            )
        return self

    @property
    def kind(self) -> str:
        """The name of the field that is set, e.g. ``"linear_ramp_to_cosine"``."""
        return exactly_one(self, self.KINDS)

    @property
    def schedule(self) -> float | Kind:
        """The value of the field that is set (a float for ``constant``)."""
        return getattr(self, self.kind)


def plateaus(lr_config: LearningRate) -> list[ReduceOnPlateau]:
    """Every ``plateau`` in ``lr_config``, depth first (at most one in a valid config)."""
    schedule = lr_config.schedule
    if isinstance(schedule, ReduceOnPlateau):
        return [schedule]
    if isinstance(schedule, (Join, Product)):
        return [p for c in schedule.schedules for p in plateaus(c)]
    if isinstance(schedule, Offset):
        return plateaus(schedule.schedule)
    return []


def kind_row(lr_config: LearningRate) -> Kind:
    """The row (model, formula, compile rule) of ``lr_config``'s kind."""
    schedule = lr_config.schedule
    return ConstantRow(schedule) if lr_config.kind == "constant" else schedule


def schedule_bounds(lr_config: LearningRate) -> Range:
    """``(lowest, highest)``: the range of ``lr_config``'s float64 values over every step ``s >= 0``,
    from its config (no step is sampled), never narrower than the values themselves;
    ``(nan, nan)`` when a value may be NaN. Each kind's docstring says whether its bound is exact.

    >>> schedule_bounds(LearningRate(one_cycle=dict(max_learning_rate=1.0, total_steps=100)))
    (4e-06, 1.0)
    """
    return kind_row(lr_config).bounds()


Join.model_rebuild()
Product.model_rebuild()
Offset.model_rebuild()
LearningRate.model_rebuild()

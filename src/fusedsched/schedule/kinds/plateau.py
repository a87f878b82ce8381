"""``plateau``: torch's ``ReduceLROnPlateau``, a rate lowered when a metric stops improving, on the device.

Its model beside its formula and its compile rule; the state machine is :mod:`fusedsched.schedule.plateau_state`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pydantic

from ..fields import ConfigModel, Count, Rate
from ..plateau_state import Plateau
from ..program import Segment, Shape
from ._row import Kind, Range, span

__all__ = ["ReduceOnPlateau"]


class ReduceOnPlateau(ConfigModel, Kind):
    """torch's ``ReduceLROnPlateau``: ``learning_rate`` until a metric given to ``step()`` has not
    improved for more than ``patience`` steps, then ``max(lr * factor, min_learning_rate)``.

    Each step that gives a metric ``m`` (torch's ``float(metrics)``, compared in float64)::

        better = m < best * (1 - threshold)   (mode min, threshold_mode rel; min abs: m < best - threshold;
                 m > best * (threshold + 1)    max rel;  max abs: m > best + threshold)
        better: best = m, bad = 0;  else bad += 1
        in cooldown: cooldown_left -= 1, bad = 0
        bad > patience: new = max(lr * factor, min_learning_rate); lr = new if lr - new > eps;
                        cooldown_left = cooldown, bad = 0

    A step without a metric leaves all of it alone. The state lives on the device and the op
    updates it (:mod:`fusedsched.schedule.plateau_state`); ``formula()`` (``compute_lr``) is the rate no metric has
    lowered, ``learning_rate``. Inside a ``join`` the plateau counts only the steps that reach it
    (a warm-up's metrics are not seen); inside a ``product`` it is a factor starting at
    ``learning_rate`` (e.g. 1.0). Segment: one PLATEAU (``v0 = learning_rate``).
    Bounds: from ``min_learning_rate`` (each reduction is ``max(lr * factor, min_learning_rate)``)
    to ``learning_rate``; ``learning_rate`` alone when ``min_learning_rate`` is not below it (no
    reduction lowers it); a safe bound (how low it goes depends on the metrics).

    >>> ReduceOnPlateau(learning_rate=0.1, patience=2).formula()(1000)
    0.1
    """

    learning_rate: Rate
    mode: Literal["min", "max"] = "min"
    factor: float = 0.1
    patience: Count = 10
    threshold: float = 1e-4
    threshold_mode: Literal["rel", "abs"] = "rel"
    cooldown: Count = 0
    min_learning_rate: Rate = 0.0
    eps: float = 1e-8

    @pydantic.field_validator("factor")
    @classmethod
    def _factor_below_one(cls, factor: float) -> float:
        if not (0.0 <= factor < 1.0):  # also rejects NaN
            raise ValueError(f"factor ({factor!r}) must be in [0, 1): each reduction multiplies the rate by it")
        return factor

    @pydantic.field_validator("threshold", "eps")
    @classmethod
    def _finite_non_negative(cls, value: float, info: pydantic.ValidationInfo) -> float:
        if not (value >= 0.0 and value < float("inf")):
            raise ValueError(f"{info.field_name} ({value!r}) must be finite and >= 0")
        return value

    def settings(self) -> Plateau:
        """The settings of its state (:class:`fusedsched.schedule.plateau_state.Plateau`)."""
        return Plateau(
            initial=self.learning_rate, factor=self.factor, min=self.min_learning_rate, threshold=self.threshold,
            mode=self.mode, threshold_mode=self.threshold_mode, patience=self.patience, cooldown=self.cooldown,
            eps=self.eps,
        )

    def formula(self) -> Callable[[int], float]:
        lr = self.learning_rate
        return lambda s: lr

    def segments(self) -> list[Segment]:
        return [Segment(0, Shape.PLATEAU, self.learning_rate)]

    def bounds(self) -> Range:
        return span(self.learning_rate, min(self.learning_rate, self.min_learning_rate))

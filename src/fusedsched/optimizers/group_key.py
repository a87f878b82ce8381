"""Where a hyperparameter sits in a param group, and the range it must lie in: :class:`GroupKey`.

One type for the graph-safe optimizers' per-step fields, the binding's views and the scheduled
hyperparameters' rows: ``group[key]``, or ``group[key][index]`` in a pair (``betas``).

The ranges are torch's: the betas in ``[0, 1)`` (torch's Adam refuses others: ``1 - beta ** t``
divides its step), every other key in ``[0, inf)``, momentum and dampening included (torch's SGD
accepts any momentum ``>= 0``; one ``>= 1`` makes a divergent step, not an undefined one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "BELOW_ONE_TOP",
    "BETA1",
    "BETA2",
    "DAMPENING",
    "EPS",
    "FINITE_TOP",
    "LR",
    "MOMENTUM",
    "WEIGHT_DECAY",
    "GroupKey",
]

#: The largest float32 a scheduled value of ``[0, 1)`` may be: ``1 - 2**-23``, one float32 step
#: below the largest float32 under 1. The device's float32 is within one step of
#: ``float32(compute_lr)`` (docs/precision.md), so it stays below 1.
BELOW_ONE_TOP = 1 - 2.0**-23
#: The same margin below float32's overflow: the second largest finite float32.
FINITE_TOP = float(torch.finfo(torch.float32).max) - 2.0**104


def _float32(value: float) -> float:
    """``value`` rounded to float32 (to nearest, ties to even; inf beyond its range), as a float."""
    return torch.tensor(value, dtype=torch.float64).to(torch.float32).item()


@dataclass(frozen=True)
class GroupKey:
    """``group[key]`` (``group[key][index]`` with ``index``); its values lie in ``[0, 1)`` when
    ``below_one``, else in ``[0, inf)``."""

    key: str
    index: int | None = None
    below_one: bool = False

    @property
    def label(self) -> str:
        """How messages name it: ``lr``, ``betas[0]``."""
        return self.key if self.index is None else f"{self.key}[{self.index}]"

    @property
    def range(self) -> str:
        """Its range as messages write it: ``[0, 1)`` or ``[0, inf)``."""
        return "[0, 1)" if self.below_one else "[0, inf)"

    def refusal(self, lowest: float, highest: float) -> str | None:
        """Why values from ``lowest`` to ``highest`` (a schedule's float64 bounds over all steps) may
        leave the range, or None when they stay in it.

        ``lowest`` must be ``>= 0``; ``highest``, as the float32 the device stores, at most
        :data:`BELOW_ONE_TOP` (``below_one``) or :data:`FINITE_TOP`: the same rule in both modes,
        so a schedule means one thing whichever runs it. NaN bounds (a value may be NaN) are refused.
        """
        if math.isnan(lowest) or math.isnan(highest):
            return "its values may be NaN"
        if lowest < 0:
            return f"its lowest value is {lowest!r}, below 0"
        if highest == math.inf:
            return "its highest value is inf"
        if self.below_one and highest >= 1:
            return f"its highest value is {highest!r}, not below 1"
        top, shown = (BELOW_ONE_TOP, "1 - 2**-23 = 0.99999988") if self.below_one else (FINITE_TOP, "3.4028233e+38")
        stored = _float32(highest)
        if stored > top:
            return (f"its highest value {highest!r} is {str(np.float32(stored))} in float32, above {shown}, the "
                    f"largest it may be in float32 (the device's float32 may be one step higher)")
        return None

    def in_group(self, group: dict[str, Any]) -> bool:
        """Whether ``group`` has this key (and, for a pair element, holds a pair there)."""
        return self.key in group and (self.index is None or isinstance(group[self.key], (tuple, list)))

    def get(self, group: dict[str, Any]) -> Any:
        value = group[self.key]
        return value if self.index is None else value[self.index]

    def set(self, group: dict[str, Any], value: Any, *, in_place: bool = False) -> None:
        """``group[key] = value`` (a pair is rebuilt as a tuple); ``in_place``: fill a tensor that is there."""
        if in_place:
            old = self.get(group)
            if isinstance(old, torch.Tensor):
                old.fill_(value)
                return
        if self.index is None:
            group[self.key] = value
        else:
            pair = list(group[self.key])
            pair[self.index] = value
            group[self.key] = tuple(pair)


LR = GroupKey("lr")
BETA1 = GroupKey("betas", 0, below_one=True)
BETA2 = GroupKey("betas", 1, below_one=True)
WEIGHT_DECAY = GroupKey("weight_decay")
EPS = GroupKey("eps")
MOMENTUM = GroupKey("momentum")
DAMPENING = GroupKey("dampening")

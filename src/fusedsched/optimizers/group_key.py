"""Where a hyperparameter sits in a param group, and the range it must lie in: :class:`GroupKey`.

One type for the graph-safe optimizers' per-step fields, the binding's views and the scheduled
hyperparameters' rows: ``group[key]``, or ``group[key][index]`` in a pair (``betas``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["BETA1", "BETA2", "DAMPENING", "EPS", "LR", "MOMENTUM", "WEIGHT_DECAY", "GroupKey"]


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

"""What the stack converters' shims share: :class:`StackShim`, an ``LRShim`` built at the source
scheduler's current step, whose subclasses keep the stack's own stepping calls.

A stack's step argument (timm's ``t``, DeepSpeed's ``last_batch_iteration``, Megatron's
``num_steps + increment``) goes straight to that step with ``LRShim``'s protected jump, the one
``step(epoch)`` takes; nothing here touches ``LRShim``'s other private members.
"""

from __future__ import annotations

from typing import Any

import torch

from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate
from ..shim.scheduler import LRShim
from .common import group_names

__all__ = ["StackShim"]


class StackShim(LRShim):
    """A device-mode ``LRShim`` over a stack's scheduler (``TimmShim``, ``DeepSpeedShim``,
    ``MegatronShim``), started at that scheduler's step by :meth:`_start`."""

    @classmethod
    def _start(cls, optimizer: Any, configs: list[LearningRate], step: int, backend: str | None,
               device: torch.device | str | None, hyperparameters: list[dict[str, Any]] | None = None,
               multipliers: list[dict[str, float]] | None = None, spare_segments: int = 0, **attributes: Any) -> Any:
        """A device-mode shim over ``optimizer``'s groups whose current step is ``step``, with one
        ``step()`` call counted (the constructor's, as a fresh scheduler's); ``hyperparameters`` /
        ``multipliers``: per group, in group order (empty dicts for none); ``spare_segments``: the
        table's room for switches (``LRShim``'s); ``attributes``: the subclass's, set before the
        constructor's first step."""
        if not 0 <= step <= MAX_STEP:  # before the groups are bound
            raise ValueError(f"{cls.__name__}: the source scheduler is at step {step}, outside [0, 2**53 - 2]")
        names = group_names(optimizer.param_groups)
        by_name = (lambda per_group: {n: v for n, v in zip(names, per_group) if v} if per_group else None)
        shim = cls.__new__(cls)
        shim.__dict__.update(attributes)
        LRShim.__init__(shim, optimizer, dict(zip(names, configs)), device_schedule=True, backend=backend,
                        device=device, hyperparameters=by_name(hyperparameters), multipliers=by_name(multipliers),
                        spare_segments=spare_segments)
        if step:
            shim._jump(step, "the source scheduler's step", counted=False)
        return shim

"""What the stack converters' shims share: an ``LRShim`` that goes straight to a step, and its
constructor at the source scheduler's current step."""

from __future__ import annotations

from typing import Any

import torch

from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate
from ..shim.scheduler import LRShim
from .common import group_names


class _JumpingShim(LRShim):
    """An ``LRShim`` that can also go straight to a step (the stacks' own ``step`` arguments)."""

    def _go_to(self, step: Any, what: str) -> None:
        """Set every group's rate at ``step``; one more ``step()`` call for ``_step_count``."""
        step = self._check_step(step, what)  # before anything changes
        self._engine.check_groups()
        self._steps += 1
        self._catch_up()
        self._engine.jump(step)

    @classmethod
    def _start(cls, optimizer: Any, configs: list[LearningRate], step: int, backend: str | None,
               device: torch.device | str | None, hyperparameters: list[dict[str, Any]] | None = None,
               multipliers: list[dict[str, float]] | None = None, **attributes: Any) -> Any:
        """A device-mode shim over ``optimizer``'s groups whose current step is ``step``;
        ``hyperparameters`` / ``multipliers``: per group, in group order (empty dicts for none)."""
        if not 0 <= step <= MAX_STEP:  # before the groups are bound
            raise ValueError(f"{cls.__name__}: the source scheduler is at step {step}, outside [0, 2**53 - 2]")
        names = group_names(optimizer.param_groups)
        by_name = (lambda per_group: {n: v for n, v in zip(names, per_group) if v} if per_group else None)
        shim = cls.__new__(cls)
        shim.__dict__.update(attributes)
        LRShim.__init__(shim, optimizer, dict(zip(names, configs)), device_schedule=True, backend=backend,
                        device=device, hyperparameters=by_name(hyperparameters), multipliers=by_name(multipliers))
        if step:
            shim._catch_up()
            shim._engine.jump(step)
        return shim

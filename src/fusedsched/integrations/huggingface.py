"""Hugging Face's ``Trainer`` with its learning-rate schedule on the device, selected by name.

``DeviceScheduleTrainer`` is ``transformers.Trainer`` with one change: the scheduler it creates
for ``TrainingArguments(lr_scheduler_type=..., lr_scheduler_kwargs=...)`` is Hugging Face's own
(``transformers.get_scheduler``, with the warm-up and step count the ``Trainer`` computes),
converted by :func:`fusedsched.from_torch` into a device-mode ``LRShim``: every step is one op
launch, the rates are the stock scheduler's (float32), and the ``Trainer``'s checkpoints save and
resume it (``scheduler.pt``, ``resume_from_checkpoint``) as they do the stock one. The learning
rate it logs is read with ``LRShim.get_recent_lr`` (no host sync; on CUDA possibly one step stale).

``DeviceScheduleMixin`` is the same change for any ``Trainer`` subclass:
``class MyTrainer(DeviceScheduleMixin, SFTTrainer)``. A scheduler passed in
``Trainer(optimizers=(optimizer, scheduler))`` is used as given (pass ``from_torch(scheduler)``).

Types: ``SCHEDULE_TYPES``; any other (``greedy``, whose rates follow a metric by its own rule)
raises ``ValueError`` naming it when the scheduler is created, before one is built.
``reduce_lr_on_plateau`` becomes a ``plateau`` schedule: as in the stock ``Trainer``, each evaluation
feeds it ``metric_for_best_model`` (``step(metrics=..., amount=0)``: the plateau counts
evaluations, the shim's counter training steps, which the stock ``ReduceLROnPlateau`` does not count).
"""

from __future__ import annotations

from typing import Any

import torch
import transformers

from ..convert.torch import from_torch
from ..shim.scheduler import LRShim

__all__ = ["SCHEDULE_TYPES", "DeviceScheduleMixin", "DeviceScheduleTrainer", "check_schedule_type"]

#: The ``lr_scheduler_type`` values whose schedules fusedsched evaluates on the device.
SCHEDULE_TYPES = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "inverse_sqrt", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay",
    "reduce_lr_on_plateau",
)


def check_schedule_type(lr_scheduler_type: Any) -> str:
    """The type's name (``"cosine"``) when fusedsched evaluates it on the device; else ``ValueError``."""
    name = getattr(lr_scheduler_type, "value", lr_scheduler_type)
    if name not in SCHEDULE_TYPES:
        raise ValueError(
            f"lr_scheduler_type={name!r} has no device schedule in fusedsched (its rates do not follow the step "
            f"count alone, or fusedsched does not know it); supported: {', '.join(SCHEDULE_TYPES)}. Use "
            f"transformers.Trainer for it"
        )
    return name


class DeviceScheduleMixin:
    """Put before a ``transformers.Trainer`` class: its created scheduler becomes a device-mode ``LRShim``."""

    lr_scheduler: Any
    args: Any

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> Any:
        """Hugging Face's scheduler for ``args.lr_scheduler_type``, converted by ``from_torch``."""
        if self.lr_scheduler is not None:
            return self.lr_scheduler
        check_schedule_type(self.args.lr_scheduler_type)
        stock = super().create_scheduler(num_training_steps, optimizer)  # type: ignore[misc]
        try:
            self.lr_scheduler = from_torch(stock)
        except (TypeError, ValueError):
            self.lr_scheduler = None
            self._created_lr_scheduler = False
            raise
        return self.lr_scheduler

    def _evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        # The stock Trainer steps a ReduceLROnPlateau here with the evaluation's metric; an LRShim that
        # holds a plateau takes it the same way, without advancing its step (training steps advance it).
        metrics = super()._evaluate(*args, **kwargs)  # type: ignore[misc]
        skip = kwargs.get("skip_scheduler", args[2] if len(args) > 2 else False)
        if isinstance(self.lr_scheduler, LRShim) and self.lr_scheduler.has_plateau and not skip:
            key = self.args.metric_for_best_model
            key = key if key.startswith("eval_") else f"eval_{key}"
            if key not in metrics:
                raise KeyError(f"metric_for_best_model={self.args.metric_for_best_model!r}: {key!r} is not among the "
                               f"evaluation metrics {sorted(metrics)}; the plateau schedule needs it")
            self.lr_scheduler.step(metrics=metrics[key], amount=0)
        return metrics

    def _get_learning_rate(self) -> float:
        # The Trainer reads the rate every step for its logs: no host sync for a device-mode LRShim.
        if isinstance(self.lr_scheduler, LRShim) and not getattr(self, "is_deepspeed_enabled", False):
            return self.lr_scheduler.get_recent_lr()[0]
        return super()._get_learning_rate()  # type: ignore[misc]


class DeviceScheduleTrainer(DeviceScheduleMixin, transformers.Trainer):
    """``transformers.Trainer`` with ``lr_scheduler_type`` evaluated on the device (see the module)."""

"""What ``LRShim`` checks before anything changes, and the warnings it gives as torch's ``LRScheduler`` does.

:func:`check_arguments` reads the constructor's arguments into :class:`Arguments` (every check done,
nothing on the optimizer changed yet); :func:`step_arguments` sorts ``step()``'s positional
argument into ``metrics`` or ``epoch``; :func:`warn_if_optimizer_step_skipped` is torch's warning,
word for word.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ..schedule.kinds import LearningRate
from .binding import GroupBinding
from .checkpoint import check_step, validate_lr_dict
from .device_engine import buffer_device
from .hyperparameters import Rows, check_optimizer_reads, rows, validate_hyperparameters, validate_multipliers
from .skipping import SkipSignal

__all__ = ["Arguments", "check_arguments", "step_arguments", "warn_if_optimizer_step_skipped"]

_OPTIMIZER_STEP_OVERRIDDEN = (  # torch's LRScheduler.step() warnings, word for word
    "Seems like `optimizer.step()` has been overridden after learning rate scheduler initialization. Please, "
    "make sure to call `optimizer.step()` before `lr_scheduler.step()`. See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate")
_STEP_BEFORE_OPTIMIZER = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. In PyTorch 1.1.0 and later, you should "
    "call them in the opposite order: `optimizer.step()` before `lr_scheduler.step()`.  Failure to do this will "
    "result in PyTorch skipping the first value of the learning rate schedule. See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate")


def warn_if_optimizer_step_skipped(optimizer: Any) -> None:
    """torch's warning when ``optimizer.step()`` was replaced or not called before ``scheduler.step()``."""
    if not hasattr(optimizer.step, "_wrapped_by_lr_sched"):
        warnings.warn(_OPTIMIZER_STEP_OVERRIDDEN, UserWarning, stacklevel=3)
    elif not getattr(optimizer, "_opt_called", False):
        warnings.warn(_STEP_BEFORE_OPTIMIZER, UserWarning, stacklevel=3)


@dataclass(frozen=True)
class Arguments:
    """``LRShim``'s arguments, checked."""

    binding: GroupBinding
    lr_dict: dict[str, LearningRate]  #: in group order
    hyperparameters: dict[str, dict[str, LearningRate]]
    multipliers: dict[str, dict[str, float]]
    rows: Rows
    last_epoch: int
    device_schedule: bool
    spare_segments: int = 0


def check_arguments(
    optimizer: Any,
    lr_dict: Any,
    last_epoch: Any,
    device_schedule: Any,
    device: Any,
    skip_steps_on: Any,
    hyperparameters: Any,
    multipliers: Any,
    spare_segments: Any = 0,
) -> Arguments:
    """Every check of ``LRShim(...)``, before anything changes; ``TypeError`` / ``ValueError`` /
    ``KeyError`` / ``OverflowError`` naming the argument and the value."""
    configs = validate_lr_dict(lr_dict)
    binding = GroupBinding(optimizer, list(configs))
    hyper = validate_hyperparameters(hyperparameters, binding.names)
    mults = validate_multipliers(multipliers, binding.names, hyper)
    last_epoch = check_step(last_epoch, "last_epoch", minimum=-1)
    spare_segments = check_step(spare_segments, "spare_segments")  # an int >= 0: the room a switch may use
    groups = binding.groups()
    if last_epoch >= 0:
        missing = [binding.names[i] for i, g in enumerate(groups) if "initial_lr" not in g]
        if missing:
            raise KeyError(
                f"param 'initial_lr' is not specified in param groups {missing} when resuming with "
                f"last_epoch={last_epoch}: load the optimizer's state first, or start with last_epoch=-1"
            )
    if device_schedule is None:
        device_schedule = all(isinstance(g["lr"], torch.Tensor) for g in groups)
    elif not isinstance(device_schedule, bool):
        raise TypeError(f"device_schedule must be None, True or False, got {device_schedule!r}")
    table_rows = rows(binding.names, configs, hyper, mults)
    check_optimizer_reads(table_rows.hyper, groups, binding.group_owners(), binding.names, device_schedule)
    if skip_steps_on is not None:
        SkipSignal.check(skip_steps_on, buffer_device(binding, device) if device_schedule else None)
    return Arguments(binding, {name: configs[name] for name in binding.names}, hyper, mults, table_rows,
                     last_epoch, device_schedule, spare_segments)


def step_arguments(args: tuple, epoch: Any, metrics: Any, holds_plateau: bool) -> tuple[Any, Any]:
    """``(epoch, metrics)`` of ``step(*args, epoch=..., metrics=...)``: a positional argument is
    ``metrics`` when a schedule holds a plateau (``ReduceLROnPlateau.step(metrics)``), else ``epoch``
    (``LRScheduler.step(epoch)``); the keywords mean what they say. ``TypeError`` / ``ValueError``."""
    if args:
        if len(args) > 1:
            raise TypeError(f"step() takes at most one positional argument, got {len(args)}")
        name = "metrics" if holds_plateau else "epoch"
        if (metrics if holds_plateau else epoch) is not None:
            raise TypeError(f"step() got {name} both as the positional argument and as a keyword")
        epoch, metrics = (epoch, args[0]) if holds_plateau else (args[0], metrics)
    if metrics is not None:
        if not holds_plateau:
            raise ValueError(f"step() got metrics={metrics!r:.100} but no schedule of this LRShim holds a "
                             f"plateau (the kind that reads a metric)")
        if epoch is not None:
            raise TypeError(f"step() takes metrics or epoch, not both; got epoch={epoch!r}")
    return epoch, metrics

"""The inputs of ``fusedsched::advance_``, in the op's order, and their checks.

:class:`OpInputs` is the schema as Python sees it: every backend's launch takes these arguments in
this order (``tests/ops/test_launcher.py`` holds each launch's signature to it), the op's
declaration (:mod:`.backends`) and its fake take them with the backend's name after ``increment``,
and csrc/advance.cpp declares the same list for C++. An engine never spells it: it binds the
tensors it owns once (:func:`fusedsched.ops.bind`) and passes what changes per step by keyword.

The rule the op applies (docs/op.md): the counter ``step`` moves by ``0`` on a skipped step, else
by ``increment * amount`` (``amount`` 1 when absent); a step is skipped when ``skip`` (a flag) is
nonzero, or, with ``previous_scale``, when the scale ``skip`` is below it (which then takes its
value); a ``metric`` updates the ``plateau`` state only on a step that advances (``increment`` 1,
not skipped); every group is then evaluated at the new step into ``lrs``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ..schedule.plateau_state import NUM_PLATEAU_COLUMNS
from ..schedule.program import NUM_COLUMNS

#: the dtypes a skip flag may have (GradScaler's ``found_inf`` is float32)
SKIP_DTYPES = (torch.float32, torch.bool)
#: the dtypes a metric may have (read as float64: torch's ``float(metrics)``)
METRIC_DTYPES = (torch.float32, torch.float64)


class OpInputs(NamedTuple):
    """One launch's arguments, in the op's order."""

    step: torch.Tensor  #: the int64 counter (mutated)
    table: torch.Tensor  #: float64 ``[segments, NUM_COLUMNS, groups]``
    lrs: torch.Tensor  #: float32, one per group (mutated)
    increment: int  #: 0 (evaluate in place) or 1
    amount: torch.Tensor | None = None  #: int64, how far one increment moves (1 when absent)
    skip: torch.Tensor | None = None  #: a skip flag, or a GradScaler's scale with ``previous_scale``
    plateau: torch.Tensor | None = None  #: float64 ``[NUM_PLATEAU_COLUMNS, groups]`` (mutated)
    metric: torch.Tensor | None = None  #: float32 or float64, a plateau's metric
    previous_scale: torch.Tensor | None = None  #: float32, the scale of the previous step (mutated)


def check_inputs(inputs: OpInputs) -> None:
    """Raise ``ValueError`` naming the argument unless ``inputs`` fit the op's contract."""
    step, table, lrs, increment, amount, skip, plateau, metric, previous_scale = inputs
    if step.dtype != torch.int64 or step.numel() != 1:
        raise ValueError(f"step must be a one-element int64 tensor, got {step.dtype} of shape {tuple(step.shape)}")
    if table.dtype != torch.float64 or table.dim() != 3 or table.shape[1] != NUM_COLUMNS:
        raise ValueError(
            f"table must be float64 of shape [segments, {NUM_COLUMNS}, groups], "
            f"got {table.dtype} of shape {tuple(table.shape)}"
        )
    if not table.is_contiguous():
        raise ValueError("table must be contiguous")
    if lrs.dtype != torch.float32 or lrs.dim() != 1 or lrs.shape[0] != table.shape[2] or not lrs.is_contiguous():
        raise ValueError(
            f"lrs must be a contiguous float32 vector of {table.shape[2]} elements (one per group), "
            f"got {lrs.dtype} of shape {tuple(lrs.shape)}"
        )
    if not (step.device == table.device == lrs.device):
        raise ValueError(f"step, table and lrs must share a device, got {step.device}, {table.device}, {lrs.device}")
    if increment not in (0, 1):
        raise ValueError(f"increment must be 0 or 1, got {increment!r}")
    if amount is not None:
        check_amount_tensor(amount, step.device)
    if skip is not None:
        check_skip_tensor(skip, step.device)
    if plateau is not None:
        check_plateau_tensor(plateau, table)
    if metric is not None:
        check_metric_tensor(metric, step.device)
    if previous_scale is not None:
        check_previous_scale(previous_scale, skip, step.device)


def check_advance_args(*inputs: Any, **named: Any) -> None:
    """:func:`check_inputs` with the inputs given one by one, as to :func:`fusedsched.ops.advance_`
    (``OpInputs``' arguments, positionally or by name)."""
    check_inputs(OpInputs(*inputs, **named))


def _got(value: object) -> str:
    return f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else repr(value)


def check_amount_tensor(amount: object, device: torch.device, name: str = "amount") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``amount`` is a one-element int64 tensor on ``device``."""
    if not isinstance(amount, torch.Tensor) or amount.dtype != torch.int64 or amount.numel() != 1:
        raise ValueError(f"{name} must be a one-element int64 tensor, got {_got(amount)}")
    if amount.device != device:
        raise ValueError(f"{name} must be on the counter's device {device}, got {amount.device}")


def check_skip_tensor(skip: object, device: torch.device, name: str = "skip") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``skip`` is a one-element float32 or bool tensor on ``device``."""
    if not isinstance(skip, torch.Tensor) or skip.dtype not in SKIP_DTYPES or skip.numel() != 1:
        raise ValueError(f"{name} must be a one-element float32 or bool tensor (nonzero: skip), got {_got(skip)}")
    if skip.device != device:
        raise ValueError(f"{name} must be on the counter's device {device}, got {skip.device}")


def check_previous_scale(previous_scale: object, skip: object, device: torch.device,
                         name: str = "previous_scale") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``previous_scale`` is a one-element float32 tensor on
    ``device`` beside a float32 ``skip`` (a GradScaler's scale, compared with it)."""
    if (not isinstance(previous_scale, torch.Tensor) or previous_scale.dtype != torch.float32
            or previous_scale.numel() != 1):
        raise ValueError(f"{name} must be a one-element float32 tensor, got {_got(previous_scale)}")
    if previous_scale.device != device:
        raise ValueError(f"{name} must be on the counter's device {device}, got {previous_scale.device}")
    if not isinstance(skip, torch.Tensor) or skip.dtype != torch.float32:
        raise ValueError(f"{name} needs skip, a float32 scale to compare it with, got {skip!r:.60}")


def check_plateau_tensor(plateau: object, table: torch.Tensor, name: str = "plateau") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``plateau`` is a contiguous float64
    ``[NUM_PLATEAU_COLUMNS, G]`` tensor on ``table``'s device (``G = table.shape[2]``)."""
    groups = table.shape[2]
    if (not isinstance(plateau, torch.Tensor) or plateau.dtype != torch.float64
            or tuple(plateau.shape) != (NUM_PLATEAU_COLUMNS, groups)):
        raise ValueError(f"{name} must be a float64 tensor of shape [{NUM_PLATEAU_COLUMNS}, {groups}] "
                         f"(one column per group), got {_got(plateau)}")
    if not plateau.is_contiguous():
        raise ValueError(f"{name} must be contiguous")
    if plateau.device != table.device:
        raise ValueError(f"{name} must be on the table's device {table.device}, got {plateau.device}")


def check_metric_tensor(metric: object, device: torch.device, name: str = "metric") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``metric`` is a one-element float32 or float64 tensor
    on ``device``."""
    if not isinstance(metric, torch.Tensor) or metric.dtype not in METRIC_DTYPES or metric.numel() != 1:
        raise ValueError(f"{name} must be a one-element float32 or float64 tensor, got {_got(metric)}")
    if metric.device != device:
        raise ValueError(f"{name} must be on the counter's device {device}, got {metric.device}")

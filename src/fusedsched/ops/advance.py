"""The op ``fusedsched::advance_``: advance the device step counter and evaluate every group.

``advance_(step, table, lrs, increment, backend, amount=None, skip=None, plateau=None, metric=None)``
reads the int64 counter ``step``, adds ``skip != 0 ? 0 : increment * amount`` (``increment`` 0 or 1;
``amount`` an int64 one-element tensor, 1 when absent; ``skip`` a one-element float32 or bool
tensor, never when absent); on a step that advances (``increment`` 1, not skipped) with a
``metric`` (one float32 or float64 element, read as float64), updates the ``plateau`` state
(:mod:`fusedsched.schedule.plateau_state`, float64 ``[NUM_PLATEAU_COLUMNS, G]``) of every group whose active
segment at the new step is a ``PLATEAU``; evaluates every group's schedule from ``table`` in
float64 at the new step (a ``PLATEAU`` segment's value is its group's ``VALUE`` in ``plateau``, its
``V0`` without one), writes float32 into ``lrs`` (one element per group) and writes the counter
back. ``backend`` is a concrete backend name (see :mod:`fusedsched.ops.dispatch`); the op mutates
``step``, ``lrs`` and ``plateau`` and returns nothing, so it traces under
``torch.compile(fullgraph=True)`` and replays in CUDA graphs.

:func:`launcher` is what a scheduler calls every step (the C++ op itself for ``native``);
:func:`host_evaluator` evaluates on the CPU in float64 for host mode, through the native kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..schedule.plateau_state import NUM_PLATEAU_COLUMNS
from ..schedule.program import NUM_COLUMNS
from . import _native, _reference
from .dispatch import BackendUnavailable, resolve_backend, unavailable_reason

#: ``launch(step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None)``: one call
#: of ``advance_`` on one backend.
Launch = Callable[..., None]
#: the dtypes a skip flag may have (GradScaler's ``found_inf`` is float32)
SKIP_DTYPES = (torch.float32, torch.bool)
#: the dtypes a metric may have (read as float64: torch's ``float(metrics)``)
METRIC_DTYPES = (torch.float32, torch.float64)


def _launch_triton(step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None,
                   previous_scale=None):
    from . import _triton  # imported on first use so TRITON_INTERPRET can be set before it

    _triton.launch(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale)


_LAUNCHERS = {"reference": _reference.launch, "triton": _launch_triton, "native": _native.launch}


@torch.library.custom_op("fusedsched::advance_", mutates_args=("step", "lrs", "plateau", "previous_scale"))
def advance_op(
    step: torch.Tensor,
    table: torch.Tensor,
    lrs: torch.Tensor,
    increment: int,
    backend: str,
    amount: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
    plateau: torch.Tensor | None = None,
    metric: torch.Tensor | None = None,
    previous_scale: torch.Tensor | None = None,
) -> None:
    _LAUNCHERS[backend](step, table, lrs, increment, amount, skip, plateau, metric, previous_scale)


@advance_op.register_fake
def _(step, table, lrs, increment, backend, amount=None, skip=None, plateau=None, metric=None, previous_scale=None):
    return None


def check_advance_args(
    step: torch.Tensor,
    table: torch.Tensor,
    lrs: torch.Tensor,
    increment: int,
    amount: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
    plateau: torch.Tensor | None = None,
    metric: torch.Tensor | None = None,
    previous_scale: torch.Tensor | None = None,
) -> None:
    """Raise ``ValueError`` naming the argument unless the tensors fit the op's contract."""
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


def check_amount_tensor(amount: object, device: torch.device, name: str = "amount") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``amount`` is a one-element int64 tensor on ``device``."""
    if not isinstance(amount, torch.Tensor) or amount.dtype != torch.int64 or amount.numel() != 1:
        got = f"{amount.dtype} of shape {tuple(amount.shape)}" if isinstance(amount, torch.Tensor) else repr(amount)
        raise ValueError(f"{name} must be a one-element int64 tensor, got {got}")
    if amount.device != device:
        raise ValueError(f"{name} must be on the counter's device {device}, got {amount.device}")


def check_skip_tensor(skip: object, device: torch.device, name: str = "skip") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``skip`` is a one-element float32 or bool tensor on ``device``."""
    if not isinstance(skip, torch.Tensor) or skip.dtype not in SKIP_DTYPES or skip.numel() != 1:
        got = f"{skip.dtype} of shape {tuple(skip.shape)}" if isinstance(skip, torch.Tensor) else repr(skip)
        raise ValueError(f"{name} must be a one-element float32 or bool tensor (nonzero: skip), got {got}")
    if skip.device != device:
        raise ValueError(f"{name} must be on the counter's device {device}, got {skip.device}")


def check_previous_scale(previous_scale: object, skip: object, device: torch.device,
                         name: str = "previous_scale") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``previous_scale`` is a one-element float32 tensor on
    ``device`` beside a float32 ``skip`` (a GradScaler's scale, compared with it)."""
    if (not isinstance(previous_scale, torch.Tensor) or previous_scale.dtype != torch.float32
            or previous_scale.numel() != 1):
        got = (f"{previous_scale.dtype} of shape {tuple(previous_scale.shape)}"
               if isinstance(previous_scale, torch.Tensor) else repr(previous_scale))
        raise ValueError(f"{name} must be a one-element float32 tensor, got {got}")
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
        got = f"{plateau.dtype} of shape {tuple(plateau.shape)}" if isinstance(plateau, torch.Tensor) else repr(plateau)
        raise ValueError(f"{name} must be a float64 tensor of shape [{NUM_PLATEAU_COLUMNS}, {groups}] "
                         f"(one column per group), got {got}")
    if not plateau.is_contiguous():
        raise ValueError(f"{name} must be contiguous")
    if plateau.device != table.device:
        raise ValueError(f"{name} must be on the table's device {table.device}, got {plateau.device}")


def check_metric_tensor(metric: object, device: torch.device, name: str = "metric") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``metric`` is a one-element float32 or float64 tensor
    on ``device``."""
    if not isinstance(metric, torch.Tensor) or metric.dtype not in METRIC_DTYPES or metric.numel() != 1:
        got = f"{metric.dtype} of shape {tuple(metric.shape)}" if isinstance(metric, torch.Tensor) else repr(metric)
        raise ValueError(f"{name} must be a one-element float32 or float64 tensor, got {got}")
    if metric.device != device:
        raise ValueError(f"{name} must be on the counter's device {device}, got {metric.device}")


def advance_(
    step: torch.Tensor,
    table: torch.Tensor,
    lrs: torch.Tensor,
    increment: int = 1,
    backend: str | None = None,
    amount: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
    plateau: torch.Tensor | None = None,
    metric: torch.Tensor | None = None,
    previous_scale: torch.Tensor | None = None,
) -> str:
    """Check the arguments, resolve ``backend`` for their device, run the op; returns the backend used.

    The counter moves by ``0 if skipped else increment * amount`` (``amount`` 1 when absent), where
    skipped is ``skip != 0``, or with ``previous_scale`` ``skip < previous_scale`` (``skip`` a
    GradScaler's scale; ``previous_scale`` then takes its value); on a step that moves it by
    ``increment`` 1, ``metric`` updates ``plateau``'s active rows first."""
    check_advance_args(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale)
    name = resolve_backend(step.device, backend)
    advance_op(step, table, lrs, increment, name, amount, skip, plateau, metric, previous_scale)
    return name


def launcher(backend: str, eager: bool = False) -> Launch:
    """``launch(step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None,
    previous_scale=None)`` (positional: the amount, the skip flag, the plateau state, the metric and
    the previous scale optional) for the
    concrete ``backend``, unchecked (check once with :func:`check_advance_args`): for ``native``,
    the op's overloads through ``torch.ops`` (``eager``: ``fusedsched._C.launch``, the same through
    the C++ dispatcher without torch.ops' Python layer, the cheapest call, for code that
    ``torch.compile`` does not trace); for ``reference``, its numpy evaluation directly on CPU in
    eager mode (the op's dispatch alone costs about 20 us), else the op; for ``triton``, the op
    ``advance_``. All replay in CUDA graphs; all but native's ``eager`` one trace under ``torch.compile``."""
    if backend == "native":  # one function for both overloads: absent optional arguments cost nothing there
        return _native.launch if eager else _native.traceable_launch
    if backend == "reference":
        return _reference.eager_launcher()  # numpy directly on CPU in eager mode, else the op

    def launch(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, increment: int,
               amount: torch.Tensor | None = None, skip: torch.Tensor | None = None,
               plateau: torch.Tensor | None = None, metric: torch.Tensor | None = None,
               previous_scale: torch.Tensor | None = None) -> None:
        advance_op(step, table, lrs, increment, backend, amount, skip, plateau, metric, previous_scale)

    return launch


def host_evaluator(table: torch.Tensor) -> Callable[[int], list[float]]:
    """``evaluate(step) -> list[float]``: every group's rate at ``step`` in float64 (not rounded to float32).

    One call of the native CPU kernel over a CPU ``table``, for steps up to ``MAX_STEP`` (2**53 - 2,
    exact in float64). Raises :class:`BackendUnavailable` where the native op has no CPU kernel
    (``unavailable_reason("native", "cpu")`` says so beforehand).
    """
    reason = unavailable_reason("native", "cpu")
    if reason is not None:
        raise BackendUnavailable(f"the host evaluator needs the native CPU op: {reason}")
    return _native.host_evaluator(table)

"""The op ``fusedsched::advance_``: advance the device step counter and evaluate every group.

``advance_(step, table, lrs, increment, backend, amount=None, skip=None)`` reads the int64 counter
``step``, adds ``skip != 0 ? 0 : increment * amount`` (``increment`` 0 or 1; ``amount`` an int64
one-element tensor, 1 when absent; ``skip`` a one-element float32 or bool tensor, never when
absent), evaluates every group's schedule from ``table`` in float64 at the new step, writes float32
into ``lrs`` (one element per group) and writes the counter back. ``backend`` is a
concrete backend name (see :mod:`fusedsched.ops.dispatch`); the op mutates ``step`` and ``lrs`` and
returns nothing, so it traces under ``torch.compile(fullgraph=True)`` and replays in CUDA graphs.

:func:`launcher` is what a scheduler calls every step (the C++ op itself for ``native``);
:func:`host_evaluator` evaluates on the CPU in float64 for host mode, through the native kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..program import NUM_COLUMNS
from . import _native, _reference
from .dispatch import BackendUnavailable, resolve_backend, unavailable_reason

#: ``launch(step, table, lrs, increment, amount=None, skip=None)``: one call of ``advance_`` on one backend.
Launch = Callable[..., None]
#: the dtypes a skip flag may have (GradScaler's ``found_inf`` is float32)
SKIP_DTYPES = (torch.float32, torch.bool)


def _launch_triton(step, table, lrs, increment, amount=None, skip=None):
    from . import _triton  # imported on first use so TRITON_INTERPRET can be set before it

    _triton.launch(step, table, lrs, increment, amount, skip)


_LAUNCHERS = {"reference": _reference.launch, "triton": _launch_triton, "native": _native.launch}


@torch.library.custom_op("fusedsched::advance_", mutates_args=("step", "lrs"))
def advance_op(
    step: torch.Tensor,
    table: torch.Tensor,
    lrs: torch.Tensor,
    increment: int,
    backend: str,
    amount: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
) -> None:
    _LAUNCHERS[backend](step, table, lrs, increment, amount, skip)


@advance_op.register_fake
def _(step, table, lrs, increment, backend, amount=None, skip=None):
    return None


def check_advance_args(
    step: torch.Tensor,
    table: torch.Tensor,
    lrs: torch.Tensor,
    increment: int,
    amount: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
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


def advance_(
    step: torch.Tensor,
    table: torch.Tensor,
    lrs: torch.Tensor,
    increment: int = 1,
    backend: str | None = None,
    amount: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
) -> str:
    """Check the arguments, resolve ``backend`` for their device, run the op; returns the backend used.

    The counter moves by ``0 if skip != 0 else increment * amount`` (``amount`` 1 when absent)."""
    check_advance_args(step, table, lrs, increment, amount, skip)
    name = resolve_backend(step.device, backend)
    advance_op(step, table, lrs, increment, name, amount, skip)
    return name


def launcher(backend: str, clock: bool = False) -> Launch:
    """``launch(step, table, lrs, increment)`` for the concrete ``backend`` (``clock``: ``launch(step,
    table, lrs, increment, amount, skip)``, the optional amount and skip flag), unchecked (check once with
    :func:`check_advance_args`): the C++ op itself for ``native`` (the cheapest call); for
    ``reference``, its numpy evaluation directly on CPU in eager mode (the op's dispatch alone costs
    about 20 us), else the op; for ``triton``, the op ``advance_``. Both trace under ``torch.compile`` and replay in CUDA graphs."""
    if backend == "native":  # the clock's own overload keeps the plain call as cheap as it was
        return _native.clock_overload() if clock else _native.overload()
    if backend == "reference":
        return _reference.eager_launcher()  # numpy directly on CPU in eager mode, else the op

    def launch(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, increment: int,
               amount: torch.Tensor | None = None, skip: torch.Tensor | None = None) -> None:
        advance_op(step, table, lrs, increment, backend, amount, skip)

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

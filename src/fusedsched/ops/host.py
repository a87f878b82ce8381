"""Float64 evaluation on the host through the native CPU kernel: every group at a step (host mode's
:func:`host_evaluator`), or one schedule at many steps (:func:`compute_lr_array`).

The native CPU kernel writes float64 when its output is float64, not rounded to float32: the
results are ``compute_lr``'s bit for bit (the kinds' formulas, docs/precision.md). This is the one
module of ``ops`` that knows a schedule's config (it compiles one for :func:`compute_lr_array`);
the op itself evaluates tables, whatever kinds compiled them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch

from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate, compile_schedule
from ..schedule.program import Segment, evaluate_program, program_over_steps
from ..schedule.reference import prepare_lr
from . import _native
from .backends import BackendUnavailable

__all__ = ["compute_lr_array", "evaluate_program_at", "host_evaluator"]

#: ``compute_lr_array`` evaluates at most about this many (segment, step) pairs per launch.
_PAIRS_PER_LAUNCH = 1 << 16


def _native_reason() -> str | None:
    return _native.unavailable_reason(torch.device("cpu"))


def host_evaluator(table: torch.Tensor) -> Callable[[int], list[float]]:
    """``evaluate(step) -> list[float]``: every group's rate at ``step`` in float64 (not rounded to float32).

    One call of the native CPU kernel over a CPU ``table``, for steps up to ``MAX_STEP`` (2**53 - 2,
    exact in float64); the step and the rates go through numpy views of two preallocated tensors, so
    a call allocates only the list. Raises :class:`BackendUnavailable` where the native op has no CPU
    kernel (``unavailable_reason("native", "cpu")`` says so beforehand).
    """
    reason = _native_reason()
    if reason is not None:
        raise BackendUnavailable(f"the host evaluator needs the native CPU op: {reason}")
    step = torch.zeros((), dtype=torch.int64)
    lrs = torch.zeros(table.shape[2], dtype=torch.float64)
    step_np, lrs_np = step.numpy(), lrs.numpy()
    launch = _native.launch

    def evaluate(s: int) -> list[float]:
        step_np[()] = s
        launch(step, table, lrs, 0)
        return lrs_np.tolist()

    return evaluate


def evaluate_program_at(program: tuple[Segment, ...], steps: np.ndarray) -> np.ndarray:
    """``program``'s float64 rates at ``steps`` (int64, each ``<= MAX_STEP``): the native CPU kernel
    over :func:`~fusedsched.schedule.program.program_over_steps`, a vector of steps per launch; without
    it, the torch ``reference`` math (whose ``cos``, ``pow``, ``sqrt``, ``log`` may differ from the C
    library's in the last bits)."""
    native = _native_reason() is None
    chunk = max(1, _PAIRS_PER_LAUNCH // len(program))
    out = torch.empty(steps.size, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.int64)
    for first in range(0, steps.size, chunk):
        part = torch.from_numpy(steps[first:first + chunk])
        if native:
            _native.launch(zero, program_over_steps(program, part), out[first:first + chunk], 0)
        else:
            out[first:first + chunk] = evaluate_program(program, part)
    return out.numpy()


def compute_lr_array(lr_config: LearningRate, steps: npt.ArrayLike) -> np.ndarray:
    """``compute_lr`` over an integer array of steps: a float64 array of the same shape.

    Evaluates the compiled program, what the kernels compute, a whole vector of steps per launch
    (:func:`evaluate_program_at`): with the native CPU op, ``compute_lr``'s values bit for bit.
    Steps beyond ``MAX_STEP`` (2**53 - 2, inexact in float64) take ``compute_lr``'s formula, as the
    scheduler's host mode does.

    Raises:
        TypeError: ``lr_config`` is not a ``LearningRate``; ``steps`` does not have an integer
            dtype (bools included).
        ValueError: a step is negative or does not fit in int64.
    """
    formula = prepare_lr(lr_config)  # checks lr_config
    arr = np.asarray(steps)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"steps must have an integer dtype, got {arr.dtype}")
    if arr.size:
        if arr.dtype.kind == "i" and arr.min() < 0:
            first = np.flatnonzero(arr.reshape(-1) < 0)[0]
            raise ValueError(f"steps must be >= 0, got {arr.reshape(-1)[first]} at flat index {first}")
        if arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"steps must fit in int64, got {arr.max()}")
    flat = arr.astype(np.int64).reshape(-1)
    out = np.empty(flat.shape, dtype=np.float64)
    exact = flat <= MAX_STEP
    if not exact.all():
        out[~exact] = [formula(int(s)) for s in flat[~exact]]
    out[exact] = evaluate_program_at(compile_schedule(lr_config), flat[exact])
    return out.reshape(arr.shape)

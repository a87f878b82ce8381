r"""The float64 reference: each schedule kind's formula, evaluated directly; the tests' oracle.

With ``s`` the integer step (``s >= 0``, torch's ``last_epoch``):

.. math::

   \text{constant:}\quad & lr(s) = c \\
   \text{piecewise\_constant:}\quad & lr(s) = v[\mathrm{bisect\_right}(b, s)] \\
   \text{linear\_ramp\_to\_constant:}\quad & lr(s) = \min(L, (L / R) \cdot s) \\
   \text{linear\_ramp\_to\_cosine:}\quad & lr(s) = \begin{cases}
       (L / R) \cdot s & s < R \\
       F + (L - F) \cdot 0.5 \cdot (1 + \cos(\pi (s - R) / (T - R))) & R \le s \le T \\
       F & s > T
   \end{cases}

and every other kind's formula in its model's docstring (:mod:`fusedsched.schedule.kinds`, where each
formula is written). Every expression is evaluated in exactly the order written
(docs/semantics.md), in float64, with ``s`` kept an exact integer until it meets a float. Other
backends are judged against ``float32(compute_lr(cfg, s))`` (docs/precision.md).

>>> from fusedsched.tml.config import LearningRate
>>> cfg = LearningRate(linear_ramp_to_cosine=dict(
...     learning_rate=1.0, final_learning_rate=0.25, num_ramp_steps=4, final_num_steps=12))
>>> [compute_lr(cfg, s) for s in (0, 2, 4, 8, 12, 13)]
[0.0, 0.5, 1.0, 0.625, 0.25, 0.25]
>>> schedule_marks(cfg)
[4, 12]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch

from .fields import MAX_STEP
from .kinds import LearningRate, compile_schedule, kind_row
from ..ops import _native
from .program import Segment, evaluate_program, program_over_steps

__all__ = ["check_step", "compute_lr", "compute_lr_array", "prepare_lr", "schedule_marks"]


def check_step(step: object) -> int:
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step must be an integer, got {step!r} ({type(step).__name__})")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return int(step)


def _check_lr_config(lr_config: object) -> LearningRate:
    if not isinstance(lr_config, LearningRate):
        raise TypeError(f"lr_config must be a LearningRate, got {type(lr_config).__name__}")
    return lr_config


def prepare_lr(lr_config: LearningRate) -> Callable[[int], float]:
    """``lr_config``'s formula with its constants bound once: ``prepare_lr(cfg)(s) == compute_lr(cfg, s)``.

    The returned function does no checking (``s`` must be a Python int ``>= 0``); it is what host
    mode calls every step, and ``compute_lr`` is this plus the checks. Each kind's formula lives
    beside its model in :mod:`fusedsched.schedule.kinds`.

    >>> f = prepare_lr(LearningRate(piecewise_constant=dict(
    ...     learning_rate_boundaries=[2], learning_rate_values=[1.0, 0.5])))
    >>> [f(s) for s in (0, 1, 2, 3)]
    [1.0, 1.0, 0.5, 0.5]
    """
    return kind_row(_check_lr_config(lr_config)).formula()


def compute_lr(lr_config: LearningRate, step: int) -> float:
    """The learning rate of ``lr_config`` at ``step``, in float64 (see the module docstring).

    Args:
        lr_config: a validated ``LearningRate``.
        step: a Python or numpy integer ``>= 0``; any size (``2**40``, ``10**10``) is exact.

    Raises:
        TypeError: ``lr_config`` is not a ``LearningRate``; ``step`` is a bool, a float or not a number.
        ValueError: ``step`` is negative.

    >>> ramp = LearningRate(linear_ramp_to_constant=dict(learning_rate=0.5, num_ramp_steps=4))
    >>> [compute_lr(ramp, s) for s in (0, 1, 4, 10**10)]
    [0.0, 0.125, 0.5, 0.5]
    """
    formula = prepare_lr(lr_config)
    return formula(check_step(step))


#: ``compute_lr_array`` evaluates at most about this many (segment, step) pairs per launch.
_PAIRS_PER_LAUNCH = 1 << 16


def compute_lr_array(lr_config: LearningRate, steps: npt.ArrayLike) -> np.ndarray:
    """``compute_lr`` over an integer array of steps: a float64 array of the same shape.

    Evaluates the compiled program, what the kernels compute, a whole vector of steps per launch
    (:func:`fusedsched.schedule.program.program_over_steps`): with the native CPU op, whose float64 results
    are ``compute_lr``'s bit for bit; without the native extension, with the torch ``reference``
    math, whose ``cos``, ``pow``, ``sqrt`` and ``log`` may differ from the C library's in the last
    bits. Steps beyond ``MAX_STEP`` (2**53 - 2, inexact in float64) take ``compute_lr``'s formula,
    as the scheduler's host mode does.

    Raises:
        TypeError: ``lr_config`` is not a ``LearningRate``; ``steps`` does not have an integer
            dtype (bools included).
        ValueError: a step is negative or does not fit in int64.
    """
    _check_lr_config(lr_config)
    arr = np.asarray(steps)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"steps must have an integer dtype, got {arr.dtype}")
    if arr.size:
        if arr.dtype.kind == "i" and arr.min() < 0:
            first = np.flatnonzero(arr.reshape(-1) < 0)[0]
            raise ValueError(
                f"steps must be >= 0, got {arr.reshape(-1)[first]} at flat index {first}"
            )
        if arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"steps must fit in int64, got {arr.max()}")
    flat = arr.astype(np.int64).reshape(-1)
    out = np.empty(flat.shape, dtype=np.float64)
    exact = flat <= MAX_STEP
    if not exact.all():
        formula = prepare_lr(lr_config)
        out[~exact] = [formula(int(s)) for s in flat[~exact]]
    out[exact] = _evaluate_program(compile_schedule(lr_config), flat[exact])
    return out.reshape(arr.shape)


def _evaluate_program(program: tuple[Segment, ...], steps: np.ndarray) -> np.ndarray:
    """``program``'s float64 rates at ``steps`` (int64, each ``<= MAX_STEP``), natively when possible."""
    native = _native.unavailable_reason(torch.device("cpu")) is None
    chunk = max(1, _PAIRS_PER_LAUNCH // len(program))
    out = torch.empty(steps.size, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.int64)
    for first in range(0, steps.size, chunk):
        part = torch.from_numpy(steps[first:first + chunk])
        if native:
            torch.ops.fusedsched.advance_native_.default(zero, program_over_steps(program, part), out[first:first + chunk], 0)
        else:
            out[first:first + chunk] = evaluate_program(program, part)
    return out.numpy()


def schedule_marks(lr_config: LearningRate) -> list[int]:
    """The steps where the schedule changes shape, worth marking on a plot, ascending.

    Piecewise boundaries; ramp ends; decay starts and ends; the first restarts of a periodic
    schedule; a join's boundaries. A constant has none.
    """
    return kind_row(_check_lr_config(lr_config)).marks()

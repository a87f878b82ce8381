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

from .kinds import LearningRate, kind_row

__all__ = ["check_step", "compute_lr", "prepare_lr", "schedule_marks"]


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


def schedule_marks(lr_config: LearningRate) -> list[int]:
    """The steps where the schedule changes shape, worth marking on a plot, ascending.

    Piecewise boundaries; ramp ends; decay starts and ends; the first restarts of a periodic
    schedule; a join's boundaries. A constant has none.
    """
    return kind_row(_check_lr_config(lr_config)).marks()

"""``advance_`` bound to one engine's tensors: the engine passes only what changes per step.

An engine owns a counter, a table, a buffer of rates and, where it needs them, a plateau state and
a copy of a GradScaler's previous scale. :func:`bind` checks them once against the op's contract
and gives a :class:`Launcher`:

- ``launcher.advance(increment=1, *, amount=None, skip=None, scale=None, metric=None)``: one eager
  launch. ``skip`` is a flag (nonzero: skipped); ``scale`` a GradScaler's scale, compared with the
  bound previous scale (the op takes the pair as ``skip`` and ``previous_scale``);
- ``launcher.traced(...)``: the same, through the call ``torch.compile`` traces;
- ``launcher.fixed(...)``: a launch with those inputs frozen, taking no argument: the cheapest
  call for a step that repeats (the plain step: ``fixed()``; a ``found_inf`` flag: ``fixed(skip=flag)``).

Which launch each of these makes is the backend record's (:data:`fusedsched.ops.backends.BACKENDS`).
:func:`advance_` is the one-shot, checked call with every input spelled out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from .backends import BACKENDS, Launch, advance_op, resolve_backend
from .schema import OpInputs, check_inputs


def _keywords(launch: Launch, step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor,
              plateau: torch.Tensor | None, previous_scale: torch.Tensor | None) -> Callable[..., None]:
    """``launch`` with the bound tensors filled in: ``call(increment=1, *, amount, skip, scale, metric)``."""

    def call(increment: int = 1, *, amount: torch.Tensor | None = None, skip: torch.Tensor | None = None,
             scale: torch.Tensor | None = None, metric: torch.Tensor | None = None) -> None:
        if scale is None:
            launch(step, table, lrs, increment, amount, skip, plateau, metric)
        else:
            launch(step, table, lrs, increment, amount, scale, plateau, metric, previous_scale)

    return call


class Launcher:
    """``advance_`` on one backend, bound to an engine's tensors (see the module docstring).

    Attributes:
        backend: the concrete backend's name.
        advance: ``advance(increment=1, *, amount=None, skip=None, scale=None, metric=None)``, eager.
        traced: the same inputs, through the launch ``torch.compile`` traces.
    """

    def __init__(self, backend: str, step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor,
                 plateau: torch.Tensor | None, previous_scale: torch.Tensor | None) -> None:
        record = BACKENDS[backend]
        self.backend = backend
        self._bound = (step, table, lrs, plateau, previous_scale)
        self._eager = record.eager()
        self.advance = _keywords(self._eager, *self._bound)
        self.traced = _keywords(record.traceable, *self._bound)

    def fixed(self, increment: int = 1, *, amount: torch.Tensor | None = None, skip: torch.Tensor | None = None,
              scale: torch.Tensor | None = None, metric: torch.Tensor | None = None) -> Callable[[], None]:
        """A launch of these inputs that takes no argument (a ``functools.partial`` of the eager launch);
        ``scale`` (a GradScaler's, in place of ``skip``) is compared with the bound ``previous_scale``."""
        step, table, lrs, plateau, previous_scale = self._bound
        if scale is not None:
            skip = scale
        else:
            previous_scale = None
        inputs = list(OpInputs(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale))
        while inputs[-1] is None:  # the shortest call: a native launch without optional inputs is the plain op
            inputs.pop()
        return functools.partial(self._eager, *inputs)


def bind(backend: str, step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, *,
         plateau: torch.Tensor | None = None, previous_scale: torch.Tensor | None = None) -> Launcher:
    """A :class:`Launcher` of the concrete ``backend`` over these tensors, checked once here
    (``ValueError`` naming the argument); ``previous_scale``: a one-element float32 tensor on the
    counter's device, where a GradScaler's scale is kept between steps."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    scale = None  # a stand-in scale for the check of previous_scale
    if isinstance(previous_scale, torch.Tensor):
        scale = torch.zeros((), dtype=torch.float32, device=previous_scale.device)
    check_inputs(OpInputs(step, table, lrs, 1, None, scale, plateau, None, previous_scale))
    return Launcher(backend, step, table, lrs, plateau, previous_scale)


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
    """Check the inputs, resolve ``backend`` for their device, run the op once; returns the backend used.

    The counter moves by ``0 if skipped else increment * amount`` (``amount`` 1 when absent), where
    skipped is ``skip != 0``, or with ``previous_scale`` ``skip < previous_scale`` (``skip`` a
    GradScaler's scale; ``previous_scale`` then takes its value); on a step that moves it by
    ``increment`` 1, ``metric`` updates ``plateau``'s active rows first (docs/op.md)."""
    inputs = OpInputs(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale)
    check_inputs(inputs)
    name = resolve_backend(step.device, backend)
    advance_op(*inputs, backend=name)
    return name

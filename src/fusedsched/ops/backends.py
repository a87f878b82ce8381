"""The backends of ``fusedsched::advance_``, one record each, and which one serves a device.

:data:`BACKENDS` holds a :class:`Backend` per name: why it cannot serve a device, the launch an
engine calls in eager mode, the one ``torch.compile`` traces, and the op's body. Everything else
(the op's declaration below, :func:`fusedsched.ops.bind`, the tools) looks a backend up there.
A launch takes :class:`~fusedsched.ops.schema.OpInputs`' arguments, positionally, in their order.

``auto`` walks ``AUTO_ORDER[device.type]`` and takes the first available backend:

- CUDA: ``triton``, then ``native``, then ``reference``;
- CPU: ``native``, then ``reference`` (the Triton interpreter is a test tool, never picked by
  ``auto``; ask for ``backend="triton"`` explicitly under ``TRITON_INTERPRET=1``).

``FUSEDSCHED_BACKEND=<name>`` in the environment replaces ``auto`` as the default, and
``AUTO_ORDER`` may be edited in place. An explicit choice that cannot be met raises
:class:`BackendUnavailable` listing every backend's reason.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import _native, _reference

#: ``launch(step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None,
#: previous_scale=None)``: one call of the op (:class:`~fusedsched.ops.schema.OpInputs`' order)
Launch = Callable[..., None]

AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cuda": ("triton", "native", "reference"),
    "cpu": ("native", "reference"),
}
DEFAULT_ORDER = ("reference",)
BACKEND_ENV = "FUSEDSCHED_BACKEND"


class BackendUnavailable(RuntimeError):
    """An explicitly requested backend cannot serve the device."""


@dataclass(frozen=True)
class Backend:
    """What fusedsched knows of one backend."""

    name: str
    unavailable: Callable[[torch.device], str | None]  #: None where it serves the device, else why not
    eager: Callable[[], Launch]  #: a launch for one engine's eager steps (it may keep that engine's caches)
    traceable: Launch  #: the launch ``torch.compile`` traces (and a CUDA graph captures)
    run: Launch  #: the body of the op ``fusedsched::advance_`` on this backend


@torch.library.custom_op("fusedsched::advance_", mutates_args=("step", "lrs", "plateau", "previous_scale"))
def advance_op(
    step: torch.Tensor,
    table: torch.Tensor,
    lrs: torch.Tensor,
    increment: int,
    amount: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
    plateau: torch.Tensor | None = None,
    metric: torch.Tensor | None = None,
    previous_scale: torch.Tensor | None = None,
    *,
    backend: str,
) -> None:
    BACKENDS[backend].run(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale)


@advance_op.register_fake
def _(step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None, previous_scale=None, *, backend):
    return None


def _through_the_op(backend: str) -> Launch:
    """The op ``advance_`` on ``backend``: traced by ``torch.compile``, seen by dispatch modes."""
    return functools.partial(advance_op, backend=backend)


def _triton_reason(device: torch.device) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton)"
    if device.type == "cuda":
        return None
    if device.type == "cpu":
        from . import _triton

        if _triton.INTERPRETED:
            return None
        return (
            "CPU tensors need the Triton interpreter: set TRITON_INTERPRET=1 before "
            "fusedsched.ops._triton is first imported"
        )
    return f"triton does not run on {device.type} tensors"


def _run_triton(*inputs: object) -> None:
    from . import _triton  # imported on first use, so that TRITON_INTERPRET can be set before it

    _triton.launch(*inputs)


BACKENDS: dict[str, Backend] = {
    # the C++/CUDA op, eagerly through fusedsched._C.launch (no torch.ops Python layer)
    "native": Backend("native", lambda device: _native.unavailable_reason(device), lambda: _native.launch,
                      _native.traceable_launch, _native.launch),
    "triton": Backend("triton", _triton_reason, lambda: _through_the_op("triton"), _through_the_op("triton"),
                      _run_triton),
    # numpy on CPU in eager mode (the op's own dispatch costs about 20 us), torch ops elsewhere
    "reference": Backend("reference", lambda device: None, _reference.eager_launcher, _through_the_op("reference"),
                         _reference.launch),
}


def unavailable_reason(backend: str, device: torch.device | str) -> str | None:
    """None when ``backend`` can run ``advance_`` on ``device``, else the reason it cannot."""
    record = BACKENDS.get(backend)
    if record is None:
        raise ValueError(f"backend must be one of 'auto', {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    return record.unavailable(torch.device(device))


def explain(device: torch.device | str) -> dict[str, str]:
    """Each backend's status on ``device``: ``"available"`` or the reason it is not."""
    return {b: unavailable_reason(b, device) or "available" for b in BACKENDS}


def resolve_backend(device: torch.device | str, backend: str | None = None) -> str:
    """The concrete backend for ``device``; ``None`` means ``$FUSEDSCHED_BACKEND`` or ``auto``."""
    device = torch.device(device)
    if backend is None:
        backend = os.environ.get(BACKEND_ENV, "auto")
    if backend == "auto":
        for candidate in AUTO_ORDER.get(device.type, DEFAULT_ORDER):
            if unavailable_reason(candidate, device) is None:
                return candidate
        return "reference"
    reason = unavailable_reason(backend, device)
    if reason is not None:
        details = "; ".join(f"{b}: {r}" for b, r in explain(device).items())
        raise BackendUnavailable(f"backend {backend!r} cannot run on {device}: {reason} ({details})")
    return backend

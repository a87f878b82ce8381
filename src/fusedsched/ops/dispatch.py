"""Which backend runs ``advance_`` on which device, and why the others do not.

``auto`` walks ``AUTO_ORDER[device.type]`` and takes the first available backend:

- CUDA: ``triton``, then ``native``, then ``reference``;
- CPU: ``native``, then ``reference`` (the Triton interpreter is a test tool, never picked by
  ``auto``; ask for ``backend="triton"`` explicitly under ``TRITON_INTERPRET=1``).

``FUSEDSCHED_BACKEND=<name>`` in the environment replaces ``auto`` as the default, and
``AUTO_ORDER`` may be edited in place. An explicit choice that cannot be met raises
:class:`BackendUnavailable` listing every backend's reason.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from . import _native

BACKENDS = ("native", "triton", "reference")
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cuda": ("triton", "native", "reference"),
    "cpu": ("native", "reference"),
}
DEFAULT_ORDER = ("reference",)
BACKEND_ENV = "FUSEDSCHED_BACKEND"


class BackendUnavailable(RuntimeError):
    """An explicitly requested backend cannot serve the device."""


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


def unavailable_reason(backend: str, device: torch.device | str) -> str | None:
    """None when ``backend`` can run ``advance_`` on ``device``, else the reason it cannot."""
    device = torch.device(device)
    if backend == "reference":
        return None
    if backend == "triton":
        return _triton_reason(device)
    if backend == "native":
        return _native.unavailable_reason(device)
    raise ValueError(f"backend must be one of 'auto', {', '.join(map(repr, BACKENDS))}; got {backend!r}")


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

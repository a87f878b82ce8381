"""The ``native`` backend: guarded load of the extension ``fusedsched._C`` (C++ on CPU, CUDA where built).

``fusedsched._C`` (csrc/, built by setup.py) registers ``fusedsched::advance_native_(step, table,
lrs, increment)`` and its overload ``advance_native_.clock`` with the op's other inputs
(:class:`~fusedsched.ops.schema.OpInputs`) with a CPU kernel and, in CUDA builds, a CUDA kernel;
this module gives both a fake (meta) implementation so they trace under ``torch.compile`` and pass
``torch.library.opcheck``. Eager code launches both overloads through :data:`launch`
(``fusedsched._C.launch``), traced code through :func:`traceable_launch`.

Importing fusedsched never fails because of it: without the extension the ``native`` backend is
unavailable, ``REASON`` says why, and one warning says so at import. ``FUSEDSCHED_DISABLE_NATIVE=1``
skips the load without a warning.
"""

import os
import warnings

import torch

SKIP_ENV = "FUSEDSCHED_DISABLE_NATIVE"
OP_NAME = "fusedsched::advance_native_"
CLOCK_OP_NAME = "fusedsched::advance_native_.clock"

_C = None
REASON: str | None = None

if os.environ.get(SKIP_ENV, "0") == "1":
    REASON = f"disabled by {SKIP_ENV}=1"
else:
    try:
        from .. import _C  # noqa: F811  (registers torch.ops.fusedsched.advance_native_)
    except ImportError as exc:
        REASON = f"the extension fusedsched._C is not built or failed to load ({exc})"
        warnings.warn(
            f"fusedsched: the native backend is unavailable: {REASON}. fusedsched falls back to "
            f"the other backends (see fusedsched.ops.explain(device)); to build it, reinstall with "
            f"FUSEDSCHED_BUILD_NATIVE=1 pip install --no-build-isolation -e . ; to silence this "
            f"warning, set {SKIP_ENV}=1.",
            RuntimeWarning,
            stacklevel=2,
        )


def _not_built(*args: object) -> None:
    raise RuntimeError(f"the native backend is unavailable: {REASON}")


#: The op's inputs, positionally (:class:`~fusedsched.ops.schema.OpInputs`): ``advance_native_``
#: (``.clock`` when any input after ``increment`` is given) through ``fusedsched._C.launch``, a C
#: function that calls the op through the C++ dispatcher (the same kernels, checks and dispatch as
#: ``torch.ops``, without the Python layer that parses the schema: about 0.4 us a call instead of
#: 1.5 us on CPU). ``torch.compile`` cannot trace it: traced code calls :func:`traceable_launch`.
launch = _not_built

if _C is not None:
    launch = _C.launch

    @torch.library.register_fake(OP_NAME)
    def _(step, table, lrs, increment):
        return None

    @torch.library.register_fake(CLOCK_OP_NAME)
    def _(step, table, lrs, increment, amount, skip, plateau=None, metric=None, previous_scale=None):
        return None


def unavailable_reason(device: torch.device) -> str | None:
    """None when the native op can run on ``device``, else why not."""
    if _C is None:
        return REASON
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device.type)
    if key is None or not torch._C._dispatch_has_kernel_for_dispatch_key(OP_NAME, key):
        return f"fusedsched._C has no {device.type} kernel (built without it)"
    return None


def traceable_launch(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, increment: int,
                     amount: torch.Tensor | None = None, skip: torch.Tensor | None = None,
                     plateau: torch.Tensor | None = None, metric: torch.Tensor | None = None,
                     previous_scale: torch.Tensor | None = None) -> None:
    """:data:`launch` through ``torch.ops``, which ``torch.compile`` traces (the same inputs)."""
    if amount is None and skip is None and plateau is None and metric is None and previous_scale is None:
        torch.ops.fusedsched.advance_native_.default(step, table, lrs, increment)
    else:
        torch.ops.fusedsched.advance_native_.clock(step, table, lrs, increment, amount, skip, plateau, metric,
                                                   previous_scale)

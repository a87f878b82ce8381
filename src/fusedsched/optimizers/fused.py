"""The fused graph-safe steps: the ops ``fusedsched::graphsafe_adam_`` and ``fusedsched::graphsafe_sgd_``,
which parameters they take, and why a parameter takes the foreach step instead.

``fusedsched._C`` (csrc/, built by setup.py) declares both ops with a CPU kernel
(csrc/graphsafe_adam.cpp, csrc/graphsafe_sgd.cpp) and, in CUDA builds, a CUDA kernel
(csrc/cuda/graphsafe.cu); the per-element math of both is csrc/graphsafe_math.h, the CPU kernel
being the CUDA kernel's twin. One call steps every parameter of one (device, dtype) bucket, every
group's, each group's hyperparameters read from their one-element tensors when the kernel runs
(docs/optimizers.md, "The fused step"). This module loads them on first use
(``FUSEDSCHED_DISABLE_NATIVE=1`` skips the load), registers their fake implementations (so they
trace under ``torch.compile``) and says, for a parameter, whether the fused step can take it.
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["ADAM_OP", "SGD_OP", "DTYPES", "load", "op", "reason_not_fused"]

ADAM_OP = "fusedsched::graphsafe_adam_"
SGD_OP = "fusedsched::graphsafe_sgd_"
#: The parameters' dtypes the kernels take (complex ones as pairs of reals: their real dtypes).
DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
#: The devices with a kernel, by dispatch key.
_KEYS = {"cpu": "CPU", "cuda": "CUDA"}

_loaded: dict[str, Any] = {}  # "reason": why fusedsched._C did not load (None when it did), filled on first use
_device_reasons: dict[tuple[str, str], str | None] = {}  # (op, device type) -> device_reason's answer, by load()
_FAKES: list[bool] = []  # [True] once the fakes are registered


def load() -> str | None:
    """Load ``fusedsched._C`` once, register the ops' fakes and note which devices have kernels;
    None when loaded, else why not.

    Called by the optimizers' constructors, so a step compiled before any eager one finds it all
    done (the loading itself does not trace).
    """
    if "reason" not in _loaded:
        reason = None
        if os.environ.get("FUSEDSCHED_DISABLE_NATIVE", "0") == "1":
            reason = "disabled by FUSEDSCHED_DISABLE_NATIVE=1"
        else:
            try:
                from .. import _C  # noqa: F401  (registers torch.ops.fusedsched.*)
            except ImportError as exc:
                reason = f"the extension fusedsched._C is not built or failed to load ({exc})"
        if reason is None:
            for name in (ADAM_OP, SGD_OP):
                if not torch._C._dispatch_has_kernel_for_dispatch_key(name, "CPU"):
                    reason = f"fusedsched._C has no {name} (built before it)"
                    break
                if not _FAKES:  # once per process: a second registration is an error
                    torch.library.register_fake(name)(_no_output)
            _FAKES.append(True)
        _loaded["reason"] = reason
        for name in (ADAM_OP, SGD_OP):
            for device, key in _KEYS.items():
                if reason is None and not torch._C._dispatch_has_kernel_for_dispatch_key(name, key):
                    _device_reasons[(name, device)] = (f"fusedsched._C has no {device.upper()} kernel for {name} "
                                                       "(built without it)")
                else:
                    _device_reasons[(name, device)] = reason
    return _loaded["reason"]


def _no_output(*args: Any) -> None:
    """The ops' fake: they return nothing and mutate their inputs in place (the schema says which)."""
    return None


def op(name: str) -> Any:
    """``torch.ops.fusedsched.graphsafe_adam_.default`` (``ADAM_OP``) or ``graphsafe_sgd_`` (``SGD_OP``)."""
    if load() is not None:
        raise RuntimeError(f"the fused graph-safe step is unavailable: {load()}")
    return getattr(torch.ops.fusedsched, name.split("::")[1]).default


def device_reason(name: str, device: torch.device) -> str | None:
    """None when the op ``name`` has a kernel for ``device``, else why not."""
    load()
    if device.type not in _KEYS:
        return f"no fused kernel for {device.type} tensors (CPU and CUDA only)"
    return _device_reasons[(name, device.type)]


def reason_not_fused(name: str, tensors: list[torch.Tensor]) -> str | None:
    """None when the op ``name`` can step a parameter whose tensors (the parameter first, then its
    state, possibly its gradient) are ``tensors``, else why not."""
    p = tensors[0]
    reason = device_reason(name, p.device)
    if reason is not None:
        return reason
    dtype = p.dtype.to_real() if p.is_complex() else p.dtype
    if dtype not in DTYPES:
        return f"{p.dtype} parameters (the fused kernels take float32, float64, bfloat16, float16 and complex ones)"
    for t in tensors:
        if t.dtype != p.dtype or t.device != p.device or t.shape != p.shape:
            return (f"a {t.dtype} state or gradient of shape {tuple(t.shape)} on {t.device} beside a {p.dtype} "
                    f"parameter of shape {tuple(p.shape)} on {p.device}")
        if not t.is_contiguous():
            return "a non-contiguous parameter, state or gradient"
    return None

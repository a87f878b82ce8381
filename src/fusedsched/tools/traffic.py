"""Bytes per parameter element an optimizer step moves, counted from the ops it dispatches.

An optimizer step over a large model is bound by memory bandwidth, so the bytes it moves per
parameter element are its cost on every device. :class:`Traffic` records, under a
``TorchDispatchMode``, every op a step dispatches and, of each op, the tensors as large as a
parameter (``numel`` equal to the parameter's): each read once, each written once. For an op:

- **read**: every tensor argument, except a mutated one that the op only overwrites (``copy_``,
  ``fill_``, ``zero_`` and their foreach forms, and ``out=`` arguments);
- **written**: every mutated argument (its schema's ``Tensor(a!)``; torch's fused optimizers'
  ``grads`` only with a ``grad_scale``, as their kernels store them) and every returned tensor that
  is not a view of an argument.

A view (``view``, ``detach``, ``view_as_real``, ...) moves nothing. The count is exact for what a
step dispatches and is the same on every device: a fused kernel's count is its op's arguments (what
its schema says it reads and writes), a foreach step's the sum over its ops. It counts what the
ops promise, not what a kernel's caches may save; that is the measure torch's fused kernels set
(AdamW: read p, g, m, v and write p, m, v: 7 elements).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["Traffic", "step_traffic"]

#: Ops that overwrite their mutated argument without reading it.
_OVERWRITE = {"copy_", "fill_", "zero_", "_foreach_copy_", "_foreach_zero_", "_foreach_fill_"}
#: Mutated arguments a kernel writes only when another argument is given: torch's fused optimizers
#: store the unscaled gradient back only with a ``grad_scale`` (their schemas mark ``grads`` written).
_WRITTEN_ONLY_WITH = {(op, "grads"): "grad_scale" for op in ("_fused_adam_", "_fused_adamw_", "_fused_sgd_")}


@dataclass
class Traffic(TorchDispatchMode):
    """Parameter-sized bytes read and written by the ops dispatched while active (see the module docstring).

    ``numel``: a parameter's element count; a tensor of that many elements is counted (so give the
    parameters a size nothing else in the step has). ``elements``: how many parameter elements the
    step covers (``per_element`` divides by it). ``ops``: per op, how many calls moved such a tensor.
    """

    numel: int
    elements: int = 0
    read: int = 0
    written: int = 0
    ops: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()
        self.elements = self.elements or self.numel

    def _bytes(self, values) -> int:
        tensors = [t for t in tree_leaves(values) if isinstance(t, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors if t.numel() == self.numel)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        schema = func._schema
        values = dict(zip((a.name for a in schema.arguments), args)) | kwargs
        mutates = [a for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
        returns = schema.returns
        if not mutates and returns and all(r.alias_info is not None for r in returns):
            return out  # a view: moves nothing
        name = schema.name.split("::")[-1]
        overwrites = name in _OVERWRITE
        read = written = 0
        for arg in schema.arguments:
            value = values.get(arg.name)
            if value is None:
                continue
            given = _WRITTEN_ONLY_WITH.get((name, arg.name))
            if arg in mutates and (given is None or values.get(given) is not None):
                written += self._bytes(value)
            if not (arg in mutates and (overwrites or arg.is_out)):
                read += self._bytes(value)
        if len(returns) == 1 and isinstance(out, (list, tuple)):  # one Tensor[] return
            fresh = [] if returns[0].alias_info else list(out)
        else:
            outs = out if isinstance(out, (list, tuple)) else [out]
            fresh = [o for o, r in zip(outs, returns) if r.alias_info is None]
        written += self._bytes(fresh)
        if read or written:
            self.read += read
            self.written += written
            self.ops[str(func)] = self.ops.get(str(func), 0) + 1
        return out

    @property
    def per_element(self) -> float:
        """Bytes read and written per parameter element."""
        return (self.read + self.written) / self.elements


def step_traffic(make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer], *, numel: int = 4099,
                 params: int = 2, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                 warmup: int = 2, amp: bool = False) -> Traffic:
    """The :class:`Traffic` of one ``step()`` of ``make(params)`` over ``params`` parameters of ``numel``
    elements each (random gradients), after ``warmup`` steps (which create the state); with ``amp``,
    every step given a GradScaler's ``grad_scale`` and ``found_inf`` (0: not skipped) as GradScaler
    hands them to an optimizer that unscales in its step."""
    gen = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(numel, generator=gen).to(device=device, dtype=dtype)) for _ in range(params)]
    for p in ps:
        p.grad = (torch.randn(numel, generator=gen) * 1e-2).to(device=device, dtype=dtype)
    optimizer = make(ps)
    if amp:
        if not getattr(optimizer, "_step_supports_amp_scaling", False):
            raise ValueError(f"amp=True: {type(optimizer).__name__} does not take grad_scale and found_inf in its step")
        optimizer.grad_scale = torch.full((), 1024.0, device=device)
        optimizer.found_inf = torch.zeros((), device=device)
    for _ in range(warmup):
        optimizer.step()
    with Traffic(numel, elements=numel * params) as traffic:
        optimizer.step()
    return traffic

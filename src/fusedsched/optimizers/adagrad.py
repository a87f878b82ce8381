r"""``FusedAdagrad``: ``torch.optim.Adagrad`` on torch's fused kernel, graph-safe on every supported torch.

Per parameter, with lr :math:`\gamma`, lr decay :math:`\eta`, weight decay :math:`\lambda` and step
:math:`t` (counted on the device):

.. math::

   g \leftarrow \pm\nabla f + \lambda\theta, \quad s \leftarrow s + g^2, \quad
   \theta \leftarrow \theta - \frac{\gamma}{1 + (t - 1)\eta} \cdot \frac{g}{\sqrt{s} + \epsilon}

The class ``torch.optim.Adagrad`` refuses ``fused=True`` on CUDA before torch 2.13 (though the
kernel ``torch._fused_adagrad_`` exists), and its foreach path keeps the step count on the CPU, so
neither can live in a CUDA graph. ``FusedAdagrad`` always runs the fused kernel with the step count
on the parameters' device and the lr as given (a float, or a tensor such as an ``LRShim`` view).
Its ``step()`` is the graph-safe optimizers' skeleton (``graphsafe.GraphSafeStep``: the closure,
GradScaler's ``grad_scale`` / ``found_inf``, the groups with gradients, a sparse gradient refused
with ``SparseGradientError``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer

from .graphsafe import GraphSafeStep

__all__ = ["FusedAdagrad"]

_NOT_OPTIONS = ("fused", "foreach", "differentiable")


# Not traced by torch.compile, like torch's own fused optimizer functions: aten::_fused_adagrad_
# has no fake (meta) kernel. torch._disable_dynamo imports torch._dynamo on the first call, not
# when this module is imported.
@torch._disable_dynamo
def _fused_adagrad(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state_sums: list[torch.Tensor],
    state_steps: list[torch.Tensor],
    *,
    lr: float | torch.Tensor,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
) -> None:
    """torch's ``_fused_adagrad`` (torch/optim/adagrad.py), per device and dtype, complex as real pairs."""
    params = [torch.view_as_real(p) if p.is_complex() else p for p in params]
    grads = [torch.view_as_real(g) if g.is_complex() else g for g in grads]
    state_sums = [torch.view_as_real(s) if s.is_complex() else s for s in state_sums]
    grouped = Optimizer._group_tensors_by_device_and_dtype([params, grads, state_sums, state_steps])
    for (device, _), ((device_params, device_grads, device_sums, device_steps), _) in grouped.items():
        device_lr = lr.to(device, non_blocking=True) if isinstance(lr, torch.Tensor) and lr.device != device else lr
        scale = grad_scale.to(device, non_blocking=True) if grad_scale is not None else None
        inf = found_inf.to(device, non_blocking=True) if found_inf is not None else None
        torch._foreach_add_(device_steps, 1)
        torch._fused_adagrad_(
            device_params,
            device_grads,
            device_sums,
            device_steps,
            lr=device_lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            eps=eps,
            maximize=maximize,
            grad_scale=scale,
            found_inf=inf,
        )
        if inf is not None:  # a skipped step does not count (as torch does)
            torch._foreach_sub_(device_steps, [inf] * len(device_steps))


class FusedAdagrad(GraphSafeStep, torch.optim.Adagrad):
    """``torch.optim.Adagrad`` that always runs the fused kernel with a device step count.

    Same arguments and math as ``torch.optim.Adagrad`` (``lr`` float or tensor, ``lr_decay``,
    ``weight_decay``, ``initial_accumulator_value``, ``eps``, ``maximize``), the same state
    (``"sum"`` and ``"step"`` per parameter; checkpoints load both ways), ``add_param_group``,
    ``share_memory`` and ``torch.amp.GradScaler`` (it takes ``grad_scale`` / ``found_inf`` like
    torch's fused optimizers). Complex parameters are updated as pairs of reals, as torch does.
    ``fused``, ``foreach`` and ``differentiable`` are not options (it is always fused, never
    differentiable); sparse gradients are refused with ``SparseGradientError`` (use
    ``torch.optim.Adagrad`` for those).
    """

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        for key, value in (("fused", fused), ("foreach", foreach), ("differentiable", differentiable)):
            if value:
                raise ValueError(f"FusedAdagrad is always fused; {key}=True is not an option")
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            foreach=False,
            maximize=maximize,
        )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """As ``Optimizer.add_param_group``; the new parameters get their state at once."""
        if isinstance(param_group, dict):
            for key in _NOT_OPTIONS:
                if param_group.get(key):
                    raise ValueError(f"FusedAdagrad is always fused; {key}=True is not an option (param_group)")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._make_fused(group)
        for p in group["params"]:
            self._init_state(p)

    @staticmethod
    def _make_fused(group: dict[str, Any]) -> None:
        # "fused" also tells Optimizer.load_state_dict to keep "step" a float32 on the param's device.
        group["fused"], group["foreach"], group["differentiable"] = True, False, False

    def _init_state(self, p: torch.Tensor) -> None:
        state = self.state[p]
        if "step" not in state or not isinstance(state["step"], torch.Tensor):
            step = float(state.get("step", 0.0))
            state["step"] = torch.full((), step, dtype=torch.float32, device=p.device)
        elif state["step"].device != p.device or state["step"].dtype != torch.float32:
            state["step"] = state["step"].to(device=p.device, dtype=torch.float32)
        if "sum" not in state:
            init = self.defaults["initial_accumulator_value"]  # torch uses the default for every group
            value = complex(init, init) if p.is_complex() else init
            state["sum"] = torch.full_like(p, value, memory_format=torch.preserve_format)

    def _repair(self) -> None:
        for group in self.param_groups:
            self._make_fused(group)
            for p in group["params"]:
                if self.state.get(p):
                    self._init_state(p)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict`` (torch Adagrad checkpoints too); steps move to the params' device."""
        super().load_state_dict(state_dict)
        self._repair()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._repair()

    def _step_groups(self, groups, grad_scale, found_inf) -> None:
        """One Adagrad step of each group's parameters with a gradient (see the module docstring)."""
        for _, group, params in groups:
            for p in params:
                if "sum" not in self.state[p]:
                    self._init_state(p)
            states = [self.state[p] for p in params]
            _fused_adagrad(
                params,
                [p.grad for p in params],
                [s["sum"] for s in states],
                [s["step"] for s in states],
                lr=group["lr"],
                lr_decay=group["lr_decay"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
                grad_scale=grad_scale,
                found_inf=found_inf,
            )

r"""``GraphSafeSGD``: SGD whose lr, momentum, dampening and weight decay may be device tensors.

Per parameter, with lr :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau` and weight
decay :math:`\lambda`:

.. math::

   g \leftarrow \pm\nabla f + \lambda\theta, \quad
   b \leftarrow \begin{cases} g & \text{first step} \\ \mu b + (1 - \tau) g & \text{after} \end{cases}, \quad
   g \leftarrow g + \mu b \text{ (nesterov) or } b, \quad \theta \leftarrow \theta - \gamma g

``lr``, ``momentum``, ``dampening`` and ``weight_decay`` may each be a float or a 0-dim
floating-point tensor (see ``fusedsched.optimizers.graphsafe``). The operations are those of torch's
``_multi_tensor_sgd`` (torch/optim/sgd.py, torch 2.13); where torch takes a Python number as
``alpha=``, a tensor goes through ``addcmul`` by the 0-dim tensor, which torch's CPU kernels
compute as ``add(..., alpha=)`` does. So on the CPU float32, float64 and complex parameters are
bit-identical to ``torch.optim.SGD(foreach=True)`` given the same values (a hyperparameter tensor
in the parameters' precision or wider: ``1 - dampening`` is computed in the tensor's dtype).
bfloat16 is not: both round the weight to bfloat16, but ``addcmul`` rounds the product before the
sum where ``add(alpha=)`` fuses them, so about 2 elements in 10,000 differ by one bfloat16 ulp per
operation (tested: within 2**-4 of the largest parameter after 25 steps).

The momentum buffer is created on the first step, as torch creates it (a copy of the gradient).
With a tensor ``momentum`` every step keeps a buffer (no branch on its value): where the value is
0 this gives torch's step except that dampening still scales the gradient. Under
``torch.compile`` the first step (which creates the buffers) compiles its own graph; later steps
reuse one graph whatever the tensor values. A step skipped by ``found_inf`` before the buffers
exist leaves them at zero (torch would create them on the next step), which changes nothing
unless ``dampening`` is nonzero.

torch's own kernels cannot read these tensors per step: ``torch._fused_sgd_`` takes ``momentum``,
``dampening`` and ``weight_decay`` as Python floats, and the foreach path passes them (and ``lr``,
by ``.item()``) as Python scalars.
"""

from __future__ import annotations

from typing import Any

import torch

from .group_key import DAMPENING, LR, MOMENTUM, WEIGHT_DECAY
from .graphsafe import GraphSafeOptimizer, is_tensor, on_device, restore_where, scaled_add

__all__ = ["GraphSafeSGD"]


def sgd_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor | None],
    *,
    lr: float | torch.Tensor,
    momentum: float | torch.Tensor,
    dampening: float | torch.Tensor,
    weight_decay: float | torch.Tensor,
    nesterov: bool,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """One SGD step of torch's foreach algorithm; ``momentum_buffers`` gets the new buffers in place of None."""
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        buckets.setdefault((p.device, p.dtype), []).append(i)
    with_momentum = is_tensor(momentum) or momentum != 0
    for (device, _), idx in buckets.items():
        P = [params[i] for i in idx]
        G = [grads[i] for i in idx]
        lr_, mu, damp, wd = (on_device(v, device) for v in (lr, momentum, dampening, weight_decay))
        scale, inf = on_device(grad_scale, device), on_device(found_inf, device)
        old = [momentum_buffers[i] for i in idx]
        old_bufs = [b for b in old if b is not None]
        saved = [t.clone() for t in P + old_bufs] if inf is not None else []

        own = False  # whether G holds fresh tensors (not the parameters' .grad)
        if scale is not None:
            G, own = torch._foreach_div(G, scale), True
        if maximize:
            if own:
                torch._foreach_neg_(G)
            else:
                G, own = torch._foreach_neg(G), True
        if is_tensor(wd) or weight_decay != 0:
            G, own = scaled_add(G, P, wd, inplace=own), True

        if with_momentum:
            keep = 1 - damp
            bufs = []
            if old_bufs and len(old_bufs) == len(idx):
                torch._foreach_mul_(old_bufs, mu)
                bufs = scaled_add(old_bufs, G, keep, inplace=True)
            else:
                k = 0
                for j, i in enumerate(idx):
                    if old[j] is None:
                        grad = G[j].detach()
                        buf = torch.where(inf != 0, 0, grad) if inf is not None else grad.clone()
                        momentum_buffers[i] = buf
                        bufs.append(buf)
                    else:
                        buf = old_bufs[k]
                        k += 1
                        buf.mul_(mu)
                        scaled_add([buf], [G[j]], keep, inplace=True)
                        bufs.append(buf)
            G = scaled_add(G, bufs, mu, inplace=own) if nesterov else bufs

        neg_lr = torch.neg(lr_) if is_tensor(lr_) else -lr_
        scaled_add(P, G, neg_lr, inplace=True)

        if inf is not None:  # a skipped step changes nothing (as torch's fused SGD)
            restore_where(inf, P + old_bufs, saved)


class GraphSafeSGD(GraphSafeOptimizer):
    """``torch.optim.SGD`` whose ``lr``, ``momentum``, ``dampening`` and ``weight_decay`` may be device tensors.

    The same arguments and defaults as ``torch.optim.SGD`` (see the module docstring for the math
    and how it compares with torch's); each hyperparameter a float or a 0-dim floating tensor on the
    parameters' device or the CPU. ``foreach`` is accepted and has no effect (it is always foreach);
    ``fused=True`` and ``differentiable=True`` are refused, as are sparse gradients. Checkpoints load
    both ways with ``torch.optim.SGD`` (``fusedsched.optimizers.graphsafe``).
    """

    FIELDS = (LR, MOMENTUM, DAMPENING, WEIGHT_DECAY)
    TORCH_OPTIONS = {"foreach": None, "differentiable": False, "fused": None}

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        momentum: float | torch.Tensor = 0,
        dampening: float | torch.Tensor = 0,
        weight_decay: float | torch.Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        if group["nesterov"] and (self._value(group["momentum"]) <= 0 or self._value(group["dampening"]) != 0):
            raise ValueError(
                f"GraphSafeSGD: nesterov=True needs momentum > 0 and dampening 0, got momentum "
                f"{group['momentum']!r} and dampening {group['dampening']!r} ({where})"
            )

    @torch.no_grad()
    def step(self, closure=None):
        """One SGD step for every parameter with a gradient (see the module docstring)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad_scale, found_inf = self._amp()
        for group, params in self._groups_to_step():
            bufs = [self.state[p].get("momentum_buffer") for p in params]
            sgd_step(
                params,
                [p.grad for p in params],
                bufs,
                lr=group["lr"],
                momentum=group["momentum"],
                dampening=group["dampening"],
                weight_decay=group["weight_decay"],
                nesterov=group["nesterov"],
                maximize=group["maximize"],
                grad_scale=grad_scale,
                found_inf=found_inf,
            )
            if is_tensor(group["momentum"]) or group["momentum"] != 0:
                for p, buf in zip(params, bufs):
                    self.state[p]["momentum_buffer"] = buf
        return loss

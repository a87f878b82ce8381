r"""``GraphSafeAdam`` and ``GraphSafeAdamW``: Adam whose every hyperparameter may be a device tensor.

Per parameter, with lr :math:`\gamma`, betas :math:`\beta_1, \beta_2`, weight decay
:math:`\lambda`, eps :math:`\epsilon` and step :math:`t` (counted on the device):

.. math::

   g \leftarrow \pm\nabla f \;(+\lambda\theta \text{ for Adam}), \quad
   \theta \leftarrow \theta(1 - \gamma\lambda) \text{ for AdamW}, \\
   m \leftarrow \operatorname{lerp}(m, g, 1 - \beta_1), \quad v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
   \hat v = \max(\hat v, v) \text{ with amsgrad}, \\
   \theta \leftarrow \theta + m \Big/ \frac{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}{-\gamma / (1 - \beta_1^t)}

``lr``, ``betas[0]``, ``betas[1]``, ``weight_decay`` and ``eps`` may each be a float or a 0-dim
floating-point tensor (see ``fusedsched.graphsafe``). The operations are those of torch's
``_multi_tensor_adam`` with ``capturable=True`` (torch/optim/adam.py, torch 2.13), so on the CPU
the parameters are bit-identical to ``torch.optim.Adam(foreach=True, capturable=True)`` given the
same values, tensor or float. A tensor hyperparameter where torch takes a Python number uses the
tensor op torch's CPU kernels compute identically (``addcmul`` by a 0-dim tensor for ``add(...,
alpha=)``, a list of 0-dim weights for ``lerp``). Against torch's default (non-capturable) foreach
Adam, whose bias corrections and AdamW's ``1 - lr * weight_decay`` are Python float64 numbers, the
bias corrections here are float32 tensors (as torch computes them when capturable): the
parameters agree to a relative 1e-5 per step (tested over 30 steps of changing hyperparameters).

torch's own kernels cannot read these tensors per step: ``torch._fused_adam(w)_`` take ``beta1``,
``beta2``, ``weight_decay`` and ``eps`` as Python floats (torch calls ``.item()`` on tensor
betas), and the foreach path passes ``weight_decay`` and ``eps`` as Python scalars, which a CUDA
graph freezes at capture and ``torch.compile`` bakes in (a recompile per new value).

The state (``"step"``, ``"exp_avg"``, ``"exp_avg_sq"``, ``"max_exp_avg_sq"`` with amsgrad) is
torch's and is created when a group is added, so the first compiled step already sees it.
``grad_scale`` / ``found_inf`` (``torch.amp.GradScaler``) are handled on the device; with
``found_inf`` the step keeps a copy of each updated tensor until it knows whether to keep the update.
"""

from __future__ import annotations

from typing import Any

import torch

from .graphsafe import Field, GraphSafeOptimizer, is_tensor, lerp_, on_device, real_views, restore_where, scaled_add

__all__ = ["GraphSafeAdam", "GraphSafeAdamW"]


def _buckets(params: list[torch.Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    """The parameters' indices by device and dtype (one run of foreach ops each)."""
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        buckets.setdefault((p.device, p.dtype), []).append(i)
    return buckets


def adam_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    max_exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    *,
    lr: float | torch.Tensor,
    beta1: float | torch.Tensor,
    beta2: float | torch.Tensor,
    weight_decay: float | torch.Tensor,
    eps: float | torch.Tensor,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """One Adam(W) step of torch's capturable foreach algorithm with float-or-tensor hyperparameters."""
    for (device, _), idx in _buckets(params).items():
        P = real_views([params[i] for i in idx])
        G = real_views([grads[i] for i in idx])
        M = real_views([exp_avgs[i] for i in idx])
        V = real_views([exp_avg_sqs[i] for i in idx])
        Vmax = real_views([max_exp_avg_sqs[i] for i in idx]) if amsgrad else []
        S = [steps[i] for i in idx]
        n = len(P)
        lr_, b1, b2, wd, ep = (on_device(v, device) for v in (lr, beta1, beta2, weight_decay, eps))
        scale, inf = on_device(grad_scale, device), on_device(found_inf, device)
        saved = [t.clone() for t in P + M + V + Vmax] if inf is not None else []

        own = False  # whether G holds fresh tensors (not the parameters' .grad)
        if scale is not None:
            G, own = torch._foreach_div(G, scale), True
        if maximize:
            if own:
                torch._foreach_neg_(G)
            else:
                G, own = torch._foreach_neg(G), True
        torch._foreach_add_(S, 1)

        if is_tensor(wd) or weight_decay != 0:
            if decoupled_weight_decay:
                torch._foreach_mul_(P, 1 - lr_ * wd)
            else:
                G, own = scaled_add(G, P, wd, inplace=own), True

        lerp_(M, G, 1 - b1)
        torch._foreach_mul_(V, b2)
        if is_tensor(b2):
            torch._foreach_addcmul_(V, torch._foreach_mul(G, 1 - b2), G, 1.0)
        else:
            torch._foreach_addcmul_(V, G, G, 1 - b2)
        del G

        # step_size = lr / (beta1^t - 1), bias_correction2_sqrt = sqrt(1 - beta2^t)
        step_size = torch._foreach_pow([b1] * n if is_tensor(b1) else b1, S)
        bias2 = torch._foreach_pow([b2] * n if is_tensor(b2) else b2, S)
        torch._foreach_sub_(step_size, 1)
        torch._foreach_sub_(bias2, 1)
        torch._foreach_neg_(bias2)
        torch._foreach_div_(step_size, lr_)
        torch._foreach_reciprocal_(step_size)
        torch._foreach_sqrt_(bias2)

        if amsgrad:
            torch._foreach_maximum_(Vmax, V)
            denom = torch._foreach_sqrt(Vmax)
        else:
            denom = torch._foreach_sqrt(V)
        torch._foreach_div_(denom, bias2)
        torch._foreach_add_(denom, [ep] * n if is_tensor(ep) else ep)
        torch._foreach_div_(denom, step_size)
        torch._foreach_addcdiv_(P, M, denom)

        if inf is not None:  # a skipped step changes nothing and does not count (as torch's fused Adam)
            restore_where(inf, P + M + V + Vmax, saved)
            torch._foreach_sub_(S, [inf] * n)


class GraphSafeAdam(GraphSafeOptimizer):
    """``torch.optim.Adam`` whose ``lr``, ``betas``, ``weight_decay`` and ``eps`` may be device tensors.

    The same arguments and defaults as ``torch.optim.Adam`` (see the module docstring for the math
    and how it compares with torch's); each hyperparameter a float or a 0-dim floating tensor on the
    parameters' device or the CPU (a CPU tensor is copied to the device each step; inside a CUDA
    graph put it on the device). ``foreach`` and ``capturable`` are accepted and have no effect (it
    is always both); ``fused=True`` and ``differentiable=True`` are refused, as are sparse
    gradients. Checkpoints load both ways with ``torch.optim.Adam`` (``fusedsched.graphsafe``).
    """

    DECOUPLED = False
    FIELDS = (
        Field("lr"),
        Field("betas", 0, below_one=True),
        Field("betas", 1, below_one=True),
        Field("weight_decay"),
        Field("eps"),
    )
    TORCH_OPTIONS = {
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "fused": None,
        "decoupled_weight_decay": False,
    }

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float | torch.Tensor = 1e-8,
        weight_decay: float | torch.Tensor = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        self._device_step(state, p)
        for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ()):
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure=None):
        """One Adam step for every parameter with a gradient (see the module docstring)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad_scale, found_inf = self._amp()
        for gi, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            self._refuse_sparse(type(self).__name__, gi, params)
            for p in params:
                if "exp_avg" not in self.state[p] or (group["amsgrad"] and "max_exp_avg_sq" not in self.state[p]):
                    self._init_state(p, group)
            states = [self.state[p] for p in params]
            beta1, beta2 = group["betas"]
            adam_step(
                params,
                [p.grad for p in params],
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
                [s["step"] for s in states],
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                amsgrad=group["amsgrad"],
                maximize=group["maximize"],
                decoupled_weight_decay=self.DECOUPLED,
                grad_scale=grad_scale,
                found_inf=found_inf,
            )
        return loss


class GraphSafeAdamW(GraphSafeAdam):
    """``torch.optim.AdamW`` (decoupled weight decay, default 1e-2) with float-or-tensor hyperparameters.

    Everything as ``GraphSafeAdam``; checkpoints load both ways with ``torch.optim.AdamW``.
    """

    DECOUPLED = True
    TORCH_OPTIONS = {**GraphSafeAdam.TORCH_OPTIONS, "decoupled_weight_decay": True}

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float | torch.Tensor = 1e-8,
        weight_decay: float | torch.Tensor = 1e-2,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
        )

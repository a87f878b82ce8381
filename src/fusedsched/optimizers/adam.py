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
floating-point tensor (see ``fusedsched.optimizers.graphsafe``). The operations are those of torch's
``_multi_tensor_adam`` with ``capturable=True`` (torch/optim/adam.py, torch 2.13), and each number
is the one torch's kernels make of a Python float: ``1 - beta1``, ``1 - beta2`` and AdamW's ``1 -
lr * weight_decay`` are computed in float64 (as Python computes them), then cast, with ``beta2``,
``weight_decay`` and ``eps``, to the type the kernels use a Python number in beside the parameters
(``graphsafe.opmath``); the bias corrections are float32, as the step counts, from float32 betas
and lr. A tensor hyperparameter where torch takes a Python number uses the tensor op torch's CPU
kernels compute identically (``addcmul`` by a 0-dim tensor for ``add(..., alpha=)``, a list of
0-dim weights for ``lerp``). So on the CPU float32, float64 and complex parameters are
bit-identical to ``torch.optim.Adam(foreach=True, capturable=True)`` given the same values as
Python floats, whatever the tensors' dtype (tested with float32 and float64 tensors, every
hyperparameter over its whole range). torch's capturable AdamW given a float32 tensor ``lr``
computes ``1 - lr * weight_decay`` in float32, rounded twice, where this and torch from floats
round it once. Against torch's default (non-capturable) foreach Adam, whose bias corrections are
Python float64 numbers, the parameters agree to a relative 1e-5 (tested over 30 steps of changing
hyperparameters). bfloat16 parameters: a tensor weight of ``addcmul`` rounds the product before
the sum where ``add(alpha=)`` fuses them, so they stay within 2**-4 of the largest parameter after
30 steps (tested), not equal.

torch's own kernels cannot read these tensors per step: ``torch._fused_adam(w)_`` take ``beta1``,
``beta2``, ``weight_decay`` and ``eps`` as Python floats (torch calls ``.item()`` on tensor
betas), and the foreach path passes ``weight_decay`` and ``eps`` as Python scalars, which a CUDA
graph freezes at capture and ``torch.compile`` bakes in (a recompile per new value).

The fused step (``fusedsched.optimizers.fused``): the op ``fusedsched::graphsafe_adam_`` steps
every parameter of a (device, dtype, flags) bucket, every group's, in one call: one pass over each
parameter (read p, g, m, v, and max_v with amsgrad; write p, m, v, max_v), each group's
hyperparameters read from their tensors when the kernel runs, the same operations in the same
order on the same numbers (csrc/graphsafe_math.h). On CUDA (csrc/cuda/graphsafe.cu) it is the
default where it is built; on the CPU its twin (csrc/graphsafe_adam.cpp) is the default for
contiguous real float32 and float64 parameters, and takes bfloat16, float16 and complex ones with
``fused=True`` (the half types computed in float32, as torch's fused kernels do). It rounds each
operation once where torch's vectorized kernels may fuse a multiply-add, and its float32
``sqrt(1 - beta2**t)`` is correctly rounded where torch's CPU ``sqrt`` may be one float32 ulp off,
so it is not bit-identical to the foreach step: within ``rtol=1e-5, atol=1e-7`` of it (tested over
30 steps, and with every hyperparameter over its whole range). ``fused=False`` keeps the foreach
step (bit-identical to torch's capturable Adam on the CPU); ``explain()`` says which path each group
takes and why.

The state (``"step"``, ``"exp_avg"``, ``"exp_avg_sq"``, ``"max_exp_avg_sq"`` with amsgrad) is
torch's and is created when a group is added, so the first compiled step already sees it.
``grad_scale`` / ``found_inf`` (``torch.amp.GradScaler``) are handled on the device: with
``found_inf`` the foreach step keeps a copy of each updated tensor until it knows whether to keep
the update; the fused kernels read ``found_inf`` first and change nothing, the step counts neither.
"""

from __future__ import annotations

from typing import Any

import torch

from . import fused as fused_ops
from .graphsafe import (
    GraphSafeOptimizer,
    is_tensor,
    lerp_,
    on_device,
    one_minus,
    opmath,
    real_views,
    restore_where,
    scaled_add,
    wide,
)
from .group_key import BETA1, BETA2, EPS, LR, WEIGHT_DECAY

__all__ = ["GraphSafeAdam", "GraphSafeAdamW", "adam_step"]


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
    """One Adam(W) step of torch's capturable foreach algorithm with float-or-tensor hyperparameters
    (the foreach step; the fused one is the op ``fusedsched::graphsafe_adam_``, which
    ``GraphSafeAdam`` calls)."""
    for (device, _), idx in _buckets(params).items():
        P = real_views([params[i] for i in idx])
        G = real_views([grads[i] for i in idx])
        M = real_views([exp_avgs[i] for i in idx])
        V = real_views([exp_avg_sqs[i] for i in idx])
        Vmax = real_views([max_exp_avg_sqs[i] for i in idx]) if amsgrad else []
        S = [steps[i] for i in idx]
        n = len(P)
        # Each number as torch's kernels make it of a Python float (see the module docstring): the
        # bias corrections in float32 (the step counts'), from float32 betas and lr; the moments'
        # weights and AdamW's factor computed in float64, then cast with the others to the kernels'
        # type for these tensors.
        kernel = opmath(P[0].dtype)
        here = {k: on_device(v, device) for k, v in (("lr", lr), ("beta1", beta1), ("beta2", beta2),
                                                     ("weight_decay", weight_decay))}
        pow1, pow2, lr_ = (on_device(here[k], device, torch.float32) for k in ("beta1", "beta2", "lr"))
        b2, wd, ep = (on_device(v, device, kernel) for v in (here["beta2"], here["weight_decay"], eps))
        w1, w2 = (on_device(one_minus(here[k]), device, kernel) for k in ("beta1", "beta2"))
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
                decay = 1 - wide(here["lr"]) * wide(here["weight_decay"])
                torch._foreach_mul_(P, on_device(decay, device, kernel))
            else:
                G, own = scaled_add(G, P, wd, inplace=own), True

        lerp_(M, G, w1)
        torch._foreach_mul_(V, b2)
        if is_tensor(w2):
            torch._foreach_addcmul_(V, torch._foreach_mul(G, w2), G, 1.0)
        else:
            torch._foreach_addcmul_(V, G, G, w2)
        del G

        # step_size = lr / (beta1^t - 1), bias_correction2_sqrt = sqrt(1 - beta2^t)
        step_size = torch._foreach_pow([pow1] * n if is_tensor(pow1) else pow1, S)
        bias2 = torch._foreach_pow([pow2] * n if is_tensor(pow2) else pow2, S)
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
    is always capturable); ``fused``: None (the default) takes the fused step on CUDA where it is
    built and on the CPU for contiguous float32 / float64 parameters, True requires it for every
    parameter, False never takes it (``explain()`` says which path each group takes and why);
    ``differentiable=True`` is refused, as are sparse gradients. ``decoupled_weight_decay=True``
    makes it AdamW, as in torch. ``native`` (not one of torch's arguments) is the older name of
    ``fused``. Checkpoints load both ways with ``torch.optim.Adam``, its fused one's too
    (``fusedsched.optimizers.graphsafe``).
    """

    DECOUPLED = False
    FIELDS = (
        LR,
        BETA1,
        BETA2,
        WEIGHT_DECAY,
        EPS,
    )
    TORCH_OPTIONS = {"foreach": None, "capturable": False, "differentiable": False, "fused": None}
    FUSED_OP = fused_ops.ADAM_OP
    ROLES = 6  # params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps

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
        decoupled_weight_decay: bool = False,
        native: bool | None = None,
    ) -> None:
        name = type(self).__name__
        if native is not None and fused is not None and native != fused:
            raise ValueError(f"{name}: native={native!r} and fused={fused!r} disagree (native is the older name of fused)")
        fused = fused if fused is not None else native
        if fused and fused_ops.load() is not None:  # loaded here, outside any compiled step
            raise ValueError(f"{name}: fused=True, but the fused step is unavailable: {fused_ops.load()}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay or self.DECOUPLED,
        )
        super().__init__(params, defaults, fused=fused)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        self._device_step(state, p)
        for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ()):
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)

    # -- the step's pieces (GraphSafeOptimizer._step_groups) ---------------------------------

    def _fused_by_default(self, p: torch.Tensor) -> bool:
        """On CUDA; on the CPU for real float32 and float64 parameters (the half types and complex
        ones take the foreach step there unless ``fused=True``)."""
        return p.device.type != "cpu" or p.dtype in (torch.float32, torch.float64)

    def _state_tensors(self, p: torch.Tensor, group: dict[str, Any]) -> list[torch.Tensor]:
        state = self.state.get(p, {})
        keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
        return [state[k] for k in keys if k in state]

    def _prepare(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        needed = "max_exp_avg_sq" if group["amsgrad"] else "exp_avg"
        for p in params:
            if needed not in self.state[p]:  # a parameter set in the group by hand, or an old checkpoint
                self._init_state(p, group)

    def _decoupled(self, group: dict[str, Any]) -> bool:
        return group.get("decoupled_weight_decay", self.DECOUPLED)

    def _fused_flags(self, group: dict[str, Any]) -> tuple:
        return (group["amsgrad"], group["maximize"], self._decoupled(group))

    def _fused_tensors(self, p: torch.Tensor, group: dict[str, Any]) -> list[torch.Tensor]:
        state = self.state[p]
        vmax = real_views([state["max_exp_avg_sq"]]) if group["amsgrad"] else [None]
        return [*real_views([p, p.grad, state["exp_avg"], state["exp_avg_sq"]]), *vmax, state["step"]]

    def _fused_call(self, lists, hyper, group, flags, grad_scale, found_inf) -> None:
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = lists
        amsgrad, maximize, decoupled = flags
        fused_ops.op(fused_ops.ADAM_OP)(
            params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else [], steps, *hyper, group,
            amsgrad, maximize, decoupled, grad_scale, found_inf)

    def _foreach_step(self, group, params, grad_scale, found_inf) -> None:
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
            decoupled_weight_decay=self._decoupled(group),
            grad_scale=grad_scale,
            found_inf=found_inf,
        )


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
        native: bool | None = None,
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
            native=native,
        )

r"""``GraphSafeSGD``: SGD whose lr, momentum, dampening and weight decay may be device tensors.

Per parameter, with lr :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau` and weight
decay :math:`\lambda`:

.. math::

   g \leftarrow \pm\nabla f + \lambda\theta, \quad
   b \leftarrow \begin{cases} b & \mu = 0 \\ g & \text{the first step with } \mu \neq 0 \\
   \mu b + (1 - \tau) g & \text{after} \end{cases}, \quad
   g \leftarrow \begin{cases} g & \mu = 0 \\ g + \mu b & \text{nesterov} \\ b & \text{else} \end{cases}, \quad
   \theta \leftarrow \theta - \gamma g

``lr``, ``momentum``, ``dampening`` and ``weight_decay`` may each be a float or a 0-dim
floating-point tensor (see ``fusedsched.optimizers.graphsafe``). The operations are those of torch's
``_multi_tensor_sgd`` (torch/optim/sgd.py, torch 2.13); where torch takes a Python number as
``alpha=``, a tensor goes through ``addcmul`` by the 0-dim tensor, which torch's CPU kernels
compute as ``add(..., alpha=)`` does, and each number is the one those kernels make of a Python
float: ``1 - dampening`` computed in float64, then every number cast to the type they use a Python
number in beside the parameters (``graphsafe.opmath``). So on the CPU float32, float64 and complex
parameters are bit-identical to ``torch.optim.SGD(foreach=True)`` given the same values as Python
floats, whatever the tensors' dtype (tested with float32 and float64 tensors over the whole
ranges). bfloat16 is not: both round the weight to bfloat16, but ``addcmul`` rounds the product before the
sum where ``add(alpha=)`` fuses them, so about 2 elements in 10,000 differ by one bfloat16 ulp per
operation (tested: within 2**-4 of the largest parameter after 25 steps).

The momentum buffer starts where torch's does, decided on the device: torch holds no buffer while
``momentum == 0`` and sets it to the gradient at a parameter's first step with ``momentum != 0``
(``b = g`` above); then a step with momentum 0 leaves it as it is. Here every parameter of a group
with a tensor or nonzero momentum has a buffer of zeros from the start and a 0-dim bool flag on its
device, ``state["momentum_started"]``; a step selects, with ``torch.where``, ``momentum * b + (1 -
dampening) * g`` where the flag is set, ``g`` where it is not, and the old buffer (and the plain
gradient as the direction) where the momentum is 0; then sets the flag where the momentum is not
0. No host read, no branch on a value: eager steps, replays of a captured graph and one compiled
graph (the state exists before the first step) follow a momentum that starts at 0, returns to 0,
or a step that a ``GradScaler`` skips (which puts the flags back too). ``state_dict()`` is
torch's: a parameter has a ``momentum_buffer`` only where its flag is set (one host read of the
flags at save time), so torch's optimizer starts the others as it would; a loaded buffer (torch's
or ours) has started.

torch's own kernels cannot read these tensors per step: ``torch._fused_sgd_`` takes ``momentum``,
``dampening`` and ``weight_decay`` as Python floats, and the foreach path passes them (and ``lr``,
by ``.item()``) as Python scalars.

The fused step (``fusedsched.optimizers.fused``): the op ``fusedsched::graphsafe_sgd_`` steps
every parameter of a (device, dtype, flags) bucket, every group's, in one call: one pass over each
parameter (read p, g and the buffer; write p and the buffer), each group's hyperparameters read from
their tensors when the kernel runs, the same operations in the same order on the same numbers
(csrc/graphsafe_math.h), the buffers' start decided per parameter as above (the flags are set after
the pass; a skipped step sets none). On CUDA (csrc/cuda/graphsafe.cu) it is the default where it
is built; on the CPU its twin (csrc/graphsafe_sgd.cpp) runs with ``fused=True`` (the default there
is the foreach step, bit-identical to torch's), within ``rtol=1e-5, atol=1e-7`` of the foreach step
(torch's CPU ``add(alpha=)`` may fuse a multiply-add, the twin never does; tested).
"""

from __future__ import annotations

from typing import Any

import torch

from . import fused as fused_ops
from .graphsafe import (
    GraphSafeOptimizer,
    is_tensor,
    on_device,
    one_minus,
    opmath,
    real_views,
    restore_where,
    scaled_add,
)
from .group_key import DAMPENING, LR, MOMENTUM, WEIGHT_DECAY

__all__ = ["GraphSafeSGD", "sgd_step"]


#: the state key of a parameter's 0-dim bool flag: whether its momentum buffer has started
STARTED = "momentum_started"


def sgd_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor],
    momentum_started: list[torch.Tensor],
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
    """One SGD step of torch's foreach algorithm, each buffer's start decided on the device.

    ``momentum_buffers`` and ``momentum_started`` hold one buffer and one 0-dim bool flag per
    parameter (unused, and may be empty, with a float momentum of 0). A buffer whose flag is False
    has not started (torch holds none): the first step with a nonzero momentum sets it to the
    gradient and the flag to True; a step with momentum 0 leaves both as they are.
    """
    with_momentum = is_tensor(momentum) or momentum != 0
    if with_momentum and not len(momentum_buffers) == len(momentum_started) == len(params):
        raise ValueError(
            f"sgd_step: momentum {momentum!r} needs one buffer and one started flag per parameter, got "
            f"{len(momentum_buffers)} buffers and {len(momentum_started)} flags for {len(params)} parameters"
        )
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        buckets.setdefault((p.device, p.dtype), []).append(i)
    for (device, _), idx in buckets.items():
        P = [params[i] for i in idx]
        G = [grads[i] for i in idx]
        B = [momentum_buffers[i] for i in idx] if with_momentum else []
        F = [momentum_started[i] for i in idx] if with_momentum else []
        # Each number as torch's kernels make it of a Python float: cast to their type for these
        # tensors, 1 - dampening computed in float64 first.
        kernel = opmath(P[0].dtype)
        lr_, mu, wd = (on_device(v, device, kernel) for v in (lr, momentum, weight_decay))
        keep = on_device(one_minus(on_device(dampening, device)), device, kernel)
        nonzero = on_device(momentum, device) != 0 if is_tensor(momentum) else None
        scale, inf = on_device(grad_scale, device), on_device(found_inf, device)
        saved = [t.clone() for t in P + B + F] if inf is not None else []

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
            G = _momentum(B, F, G, mu, keep, nonzero, nesterov=nesterov, own=own)

        neg_lr = torch.neg(lr_) if is_tensor(lr_) else -lr_
        scaled_add(P, G, neg_lr, inplace=True)

        if inf is not None:  # a skipped step changes nothing (as torch's optimizer behind its scaler)
            restore_where(inf, P + B + F, saved)


def _momentum(
    bufs: list[torch.Tensor],
    started: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum: float | torch.Tensor,
    keep: float | torch.Tensor,
    nonzero: torch.Tensor | None,
    *,
    nesterov: bool,
    own: bool,
) -> list[torch.Tensor]:
    """Update the buffers as torch does and return the step's direction (``grads`` may be reused).

    Where a buffer has started: ``b = momentum * b + keep * g`` (torch's ``mul_`` then ``add_``);
    where it has not: ``b = g``. Where ``nonzero`` (a tensor momentum's ``momentum != 0``, decided
    on the device) is False, buffers and flags stay and the step goes along ``g``, as torch's
    momentum 0; None: a float momentum, not 0.
    """
    if nonzero is not None:
        fresh = torch._foreach_mul(bufs, momentum)
        scaled_add(fresh, grads, keep, inplace=True)
        for buf, new, grad, flag in zip(bufs, fresh, grads, started):
            torch.where(flag, new, grad, out=new)
            torch.where(nonzero, new, buf, out=buf)
            flag.logical_or_(nonzero)
        del fresh
        if nesterov:
            ahead = scaled_add(grads, bufs, momentum, inplace=False)
            return [torch.where(nonzero, a, g, out=a) for a, g in zip(ahead, grads)]
        return [torch.where(nonzero, b, g) for b, g in zip(bufs, grads)]
    torch._foreach_mul_(bufs, momentum)
    scaled_add(bufs, grads, keep, inplace=True)
    for buf, grad, flag in zip(bufs, grads, started):
        torch.where(flag, buf, grad, out=buf)
        flag.fill_(True)
    return scaled_add(grads, bufs, momentum, inplace=own) if nesterov else bufs


class GraphSafeSGD(GraphSafeOptimizer):
    """``torch.optim.SGD`` whose ``lr``, ``momentum``, ``dampening`` and ``weight_decay`` may be device tensors.

    The same arguments and defaults as ``torch.optim.SGD`` (see the module docstring for the math
    and how it compares with torch's); each hyperparameter a float or a 0-dim floating tensor on the
    parameters' device or the CPU. ``foreach`` is accepted and has no effect; ``fused``: None (the
    default) takes the fused step on CUDA where it is built and the foreach step on the CPU, True
    requires the fused step for every parameter, False never takes it (``explain()`` says which
    path each group takes and why); ``differentiable=True`` is refused, as are sparse gradients.
    Checkpoints load both ways with ``torch.optim.SGD``, its fused one's too
    (``fusedsched.optimizers.graphsafe``); the state dict holds a ``momentum_buffer`` where torch's
    would.
    """

    FIELDS = (LR, MOMENTUM, DAMPENING, WEIGHT_DECAY)
    TORCH_OPTIONS = {"foreach": None, "differentiable": False, "fused": None}
    FUSED_OP = fused_ops.SGD_OP
    ROLES = 4  # params, grads, momentum_buffers, momentum_started

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
        if fused and fused_ops.load() is not None:  # loaded here, outside any compiled step
            raise ValueError(f"GraphSafeSGD: fused=True, but the fused step is unavailable: {fused_ops.load()}")
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
        super().__init__(params, defaults, fused=fused)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        if group["nesterov"] and (self._value(group["momentum"]) <= 0 or self._value(group["dampening"]) != 0):
            raise ValueError(
                f"GraphSafeSGD: nesterov=True needs momentum > 0 and dampening 0, got momentum "
                f"{group['momentum']!r} and dampening {group['dampening']!r} ({where})"
            )

    @staticmethod
    def _with_momentum(group: dict[str, Any]) -> bool:
        """Whether a step of ``group`` may use buffers: a tensor momentum, or a nonzero float."""
        return is_tensor(group["momentum"]) or group["momentum"] != 0

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """A buffer of zeros that has not started, where the group has a momentum; a loaded buffer
        (torch's, or from ``state_dict()``) has started. A group with a float momentum of 0 gets no state."""
        state = self.state.get(p)
        if state is not None and "momentum_buffer" in state:
            if STARTED not in state:
                state[STARTED] = torch.ones((), dtype=torch.bool, device=p.device)
            return
        if state is not None:
            state.pop(STARTED, None)
        if self._with_momentum(group):
            state = self.state[p]
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state[STARTED] = torch.zeros((), dtype=torch.bool, device=p.device)

    def state_dict(self) -> dict[str, Any]:
        """torch's SGD state dict: a parameter has a ``momentum_buffer`` where its buffer has started
        (one host read of the flags per device), and no started flag."""
        saved = super().state_dict()
        states = {index: dict(state) for index, state in saved["state"].items()}
        flags = [(index, state.pop(STARTED)) for index, state in states.items() if STARTED in state]
        for (index, _), started in zip(flags, _host_bools([flag for _, flag in flags])):
            if not started:
                del states[index]["momentum_buffer"]
        return {**saved, "state": {index: state for index, state in states.items() if state}}

    # -- the step's pieces (GraphSafeOptimizer._step_groups) ---------------------------------

    def _state_tensors(self, p: torch.Tensor, group: dict[str, Any]) -> list[torch.Tensor]:
        buffer = self.state.get(p, {}).get("momentum_buffer") if self._with_momentum(group) else None
        return [] if buffer is None else [buffer]

    def _prepare(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        if self._with_momentum(group):
            for p in params:
                if "momentum_buffer" not in self.state.get(p, {}):  # the momentum was a float 0
                    self._init_state(p, group)

    def _fused_flags(self, group: dict[str, Any]) -> tuple:
        return (self._with_momentum(group), group["nesterov"], group["maximize"])

    def _fused_tensors(self, p: torch.Tensor, group: dict[str, Any]) -> list[torch.Tensor]:
        if not self._with_momentum(group):
            return [*real_views([p, p.grad]), None, None]
        state = self.state[p]
        return [*real_views([p, p.grad, state["momentum_buffer"]]), state[STARTED]]

    def _fused_call(self, lists, hyper, group, flags, grad_scale, found_inf) -> None:
        params, grads, buffers, started = lists
        with_momentum, nesterov, maximize = flags
        fused_ops.op(fused_ops.SGD_OP)(
            params, grads, buffers if with_momentum else [], started if with_momentum else [], *hyper, group,
            nesterov, maximize, grad_scale, found_inf)

    def _foreach_step(self, group, params, grad_scale, found_inf) -> None:
        with_momentum = self._with_momentum(group)
        sgd_step(
            params,
            [p.grad for p in params],
            [self.state[p]["momentum_buffer"] for p in params] if with_momentum else [],
            [self.state[p][STARTED] for p in params] if with_momentum else [],
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
            found_inf=found_inf,
        )


def _host_bools(flags: list[torch.Tensor]) -> list[bool]:
    """The values of 0-dim bool tensors, read with one copy to the host per device."""
    values: dict[int, bool] = {}
    by_device: dict[torch.device, list[int]] = {}
    for i, flag in enumerate(flags):
        by_device.setdefault(flag.device, []).append(i)
    for idx in by_device.values():
        for i, value in zip(idx, torch.stack([flags[i] for i in idx]).tolist()):
            values[i] = bool(value)
    return [values[i] for i in range(len(flags))]

"""What the graph-safe optimizers share: hyperparameters that are floats or 0-dim tensors.

A group's per-step hyperparameters (``lr``, ``betas[0]``, ``weight_decay``, ...) may each be a
Python float or a 0-dim floating-point tensor on the parameters' device or the CPU. A step reads
the tensors with tensor ops only (no ``.item()``, no branch on a value), so a tensor written in
place between steps (a view of a device schedule buffer) is read by every eager step, every replay
of a captured CUDA graph and every call of a compiled step without a recompile.

``GraphSafeOptimizer`` holds what does not depend on the algorithm:

- **Checks** when a group is added or loaded, before anything changes: each field's type (a
  float, or a 0-dim floating tensor on the CPU or the parameters' device) and range, named with
  its value (``GraphSafeAdam: betas[0] must be in [0, 1), got 1.0``). Tensor values are read on
  the host for this check only (construction, ``add_param_group``, ``load_state_dict``).
- **Checkpoints** interchangeable with torch's optimizer of the same name: ``state_dict()`` saves
  every tensor hyperparameter as a float (one host read each) and torch's option keys as torch's
  defaults, so it loads into torch's optimizer with any options and with
  ``torch.load(weights_only=True)``; ``load_state_dict`` writes a loaded value into a group's live
  hyperparameter tensor in place (its memory, which a captured graph or a schedule's view points
  at, stays), and step counts move to the parameters' device as float32. A loaded group's option
  keys become ours (torch's fused checkpoints load; the group runs the graph-safe step).
- **AMP**: ``_step_supports_amp_scaling``; ``torch.amp.GradScaler`` sets ``grad_scale`` and
  ``found_inf`` before ``step()``, which divides the gradients by ``grad_scale`` and, where
  ``found_inf`` is 1, restores every updated tensor with ``torch.where`` (no sync) and takes the
  step count back, so the step is skipped as torch's fused optimizers skip it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer

from .group_key import GroupKey

__all__ = [
    "GraphSafeOptimizer",
    "is_tensor",
    "lerp_",
    "on_device",
    "one_minus",
    "opmath",
    "real_views",
    "restore_where",
    "scaled_add",
    "wide",
]

#: torch's options that a graph-safe optimizer is not: it always runs its own foreach step.
_REFUSED = ("fused", "differentiable")


def is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def on_device(value: Any, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """A tensor hyperparameter on ``device``, in ``dtype`` where given (an asynchronous copy when it
    lives elsewhere); a float as is."""
    if is_tensor(value) and (value.device != device or (dtype is not None and value.dtype != dtype)):
        return value.to(device=device, dtype=dtype or value.dtype, non_blocking=True)
    return value


def wide(value: Any) -> Any:
    """A tensor hyperparameter in float64, the precision of a Python float; a float as is."""
    return value.to(torch.float64) if is_tensor(value) else value


def one_minus(value: Any) -> Any:
    """``1 - value`` as Python computes it from a float: in float64 (a 0-dim tensor for a tensor)."""
    return 1 - wide(value)


def opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which torch's CPU kernels use a Python number beside tensors of ``dtype`` (their
    opmath type): float64 for float64, float32 for float32, bfloat16 and float16 (complex: their real
    part's). A tensor hyperparameter cast to it is the number those kernels use."""
    real = dtype.to_real() if dtype.is_complex else dtype
    return torch.float64 if real == torch.float64 else torch.float32


def real_views(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Complex tensors as pairs of reals (``torch.view_as_real``), as torch's optimizers update them."""
    return [torch.view_as_real(t) if t.is_complex() else t for t in tensors]


_REDUCED = (torch.bfloat16, torch.float16)


def scaled_add(out: list[torch.Tensor], other: list[torch.Tensor], weight: Any, *, inplace: bool) -> list[torch.Tensor]:
    """``out + weight * other``: ``add(alpha=weight)`` for a float; ``addcmul`` by a 0-dim tensor for a tensor.

    torch's CPU kernels compute ``addcmul(a, b, w)`` as ``add(a, b, alpha=w)``: for float32 and
    float64 bit for bit; for bfloat16 and float16 both round the weight to the operands' dtype.
    """
    if not is_tensor(weight):
        if inplace:
            torch._foreach_add_(out, other, alpha=weight)
            return out
        return torch._foreach_add(out, other, alpha=weight)
    weights = [weight] * len(out)
    if inplace:
        torch._foreach_addcmul_(out, other, weights)
        return out
    return torch._foreach_addcmul(out, other, weights)


def lerp_(out: list[torch.Tensor], end: list[torch.Tensor], weight: Any) -> None:
    """``out += weight * (end - out)`` in place (``torch.lerp``), the weight a float or a 0-dim tensor.

    A tensor weight is a list of 0-dim weights (``_foreach_lerp_``'s scalar overload would read it
    with ``.item()``), cast to the operands' dtype (``opmath``: torch's kernel casts a scalar weight
    so). A ternary op rounds a 0-dim weight to the operands' dtype where torch keeps a scalar weight
    in float32, so bfloat16 and float16 operands are widened to float32 for it and rounded back once
    (as torch's kernel does).
    """
    if not is_tensor(weight):
        torch._foreach_lerp_(out, end, weight)
    elif out and out[0].dtype in _REDUCED:
        widened = [t.float() for t in out]
        torch._foreach_lerp_(widened, [t.float() for t in end], [weight.float()] * len(out))
        torch._foreach_copy_(out, widened)
    elif out:
        torch._foreach_lerp_(out, end, [weight.to(out[0].dtype)] * len(out))


def restore_where(found_inf: torch.Tensor, updated: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    """Where ``found_inf`` is 1, every updated tensor gets its saved value back (on the device, no sync)."""
    skip = found_inf != 0
    for new, old in zip(updated, saved):
        new.copy_(torch.where(skip, old, new))


def _tensors(params: Any) -> list[torch.Tensor]:
    """The tensors of an optimizer's ``params`` argument (tensors, ``(name, tensor)`` pairs or groups)."""
    found = []
    for item in params if isinstance(params, (list, tuple, set)) else [params]:
        if isinstance(item, dict):
            found += _tensors(item.get("params", []))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor):
            found.append(item[1])
        elif isinstance(item, torch.Tensor):
            found.append(item)
    return found


def _shown(value: Any) -> str:
    if is_tensor(value):
        return f"tensor({value.item()!r}, dtype={value.dtype}, device={value.device})"
    return repr(value)


class GraphSafeOptimizer(Optimizer):
    """The checks, checkpoints and AMP hooks of the graph-safe optimizers (see the module docstring).

    A subclass sets ``FIELDS`` (its per-step hyperparameters), ``TORCH_OPTIONS`` (the option keys of
    torch's optimizer of the same name with torch's defaults, saved in checkpoints), optionally
    ``_check_group`` (checks that involve more than one field) and ``_init_state`` (a parameter's
    state, created when its group is added or loaded).
    """

    FIELDS: ClassVar[tuple[GroupKey, ...]] = ()
    TORCH_OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        for key in _REFUSED:
            if defaults.get(key):
                raise ValueError(f"{type(self).__name__} runs its own step; {key}=True is not an option")
        defaults = {**defaults, **self.TORCH_OPTIONS}
        params = [params] if isinstance(params, torch.Tensor) else list(params)  # an iterator: read once, here
        self._check(defaults, _tensors(params), "defaults")
        super().__init__(params, defaults)
        self._step_supports_amp_scaling = True  # GradScaler hands grad_scale / found_inf to step()

    # -- checks ------------------------------------------------------------------------------

    def _check(self, group: dict[str, Any], params: list[torch.Tensor], where: str, *, loaded: bool = False) -> None:
        """Raise ``ValueError`` naming the field and the value of the first bad hyperparameter.

        ``loaded``: a checkpoint's group, whose ``fused`` / ``differentiable`` say how torch ran its
        step (they are replaced by ours after the load), not an option asked of this one.
        """
        name = type(self).__name__
        for key in () if loaded else _REFUSED:
            if group.get(key):
                raise ValueError(f"{name} runs its own step; {key}=True is not an option ({where})")
        if "betas" in group and (not isinstance(group["betas"], (list, tuple)) or len(group["betas"]) != 2):
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {group['betas']!r} ({where})")
        devices = {p.device for p in params}
        for field in self.FIELDS:
            value = field.get(group)
            if is_tensor(value):
                if value.dim() != 0 or not value.is_floating_point():
                    raise ValueError(
                        f"{name}: {field.label} must be a float or a 0-dim floating-point tensor, got a "
                        f"{value.dtype} tensor of shape {tuple(value.shape)} ({where})"
                    )
                if value.device.type != "cpu" and any(d != value.device for d in devices):
                    raise ValueError(
                        f"{name}: {field.label} is a tensor on {value.device} and the parameters are on "
                        f"{sorted(map(str, devices))}; put it on their device or on the CPU ({where})"
                    )
                number = value.item()
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                number = float(value)
            else:
                raise ValueError(
                    f"{name}: {field.label} must be a float or a 0-dim floating-point tensor, got {value!r} ({where})"
                )
            ok = 0.0 <= number < 1.0 if field.below_one else 0.0 <= number < math.inf
            if not ok:
                allowed = "in [0, 1)" if field.below_one else "finite and >= 0"
                raise ValueError(f"{name}: {field.label} must be {allowed}, got {_shown(value)} ({where})")
        self._check_group(group, where)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        """Checks across fields (a subclass's); the fields themselves have passed."""

    @staticmethod
    def _value(value: Any) -> float:
        return value.item() if is_tensor(value) else float(value)

    # -- groups and state --------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """As ``Optimizer.add_param_group``, after the checks; the new parameters get their state at once."""
        if isinstance(param_group, dict):
            params = param_group.get("params")
            if isinstance(params, torch.Tensor):
                params = [params]
            elif not isinstance(params, (list, tuple, set)):  # an iterator: read once, here
                params = list(params)
            param_group = {**param_group, "params": params}
            self._check({**self.defaults, **param_group}, _tensors(params), f"param group {len(self.param_groups)}")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.update(self.TORCH_OPTIONS)
        for p in group["params"]:
            self._init_state(p, group)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """Create (or repair after a load) the state of one parameter; a subclass's."""

    @staticmethod
    def _device_step(state: dict[str, Any], p: torch.Tensor) -> None:
        """``state["step"]`` as a float32 0-dim tensor on the parameter's device (torch's capturable layout)."""
        step = state.get("step", 0.0)
        if not is_tensor(step):
            state["step"] = torch.full((), float(step), dtype=torch.float32, device=p.device)
        elif step.device != p.device or step.dtype != torch.float32:
            state["step"] = step.to(device=p.device, dtype=torch.float32).reshape(())

    def _repair(self) -> None:
        for group in self.param_groups:
            group.update(self.TORCH_OPTIONS)
            for p in group["params"]:
                self._init_state(p, group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._step_supports_amp_scaling = True  # not in torch's pickled state
        self._keep_live_tensors()
        self._repair()

    # -- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """As ``Optimizer.state_dict``, with every tensor hyperparameter saved as a float (one host read each)."""
        saved = super().state_dict()
        groups = []
        for group in saved["param_groups"]:
            group = dict(group)
            for field in self.FIELDS:
                value = field.get(group)
                if is_tensor(value):
                    field.set(group, value.item())
            group.update(self.TORCH_OPTIONS)
            groups.append(group)
        return {**saved, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict`` (torch's checkpoints too), keeping live hyperparameter tensors.

        Where a group holds a tensor hyperparameter, the loaded value is written into that tensor in
        place and the tensor stays in the group; floats are replaced by the loaded values. torch's
        option keys are ours after the load (``TORCH_OPTIONS``): a checkpoint of torch's fused
        optimizer (``fused=True``) loads, and the group runs the graph-safe step. Every loaded group
        is checked first, so a bad checkpoint changes nothing.
        """
        saved_groups = state_dict.get("param_groups", []) if isinstance(state_dict, dict) else []
        for i, (live, saved) in enumerate(zip(self.param_groups, saved_groups)):
            self._check({**live, **saved}, list(live["params"]), f"loaded param group {i}", loaded=True)
        self._live_tensors = [
            [(field, field.get(group)) for field in self.FIELDS if is_tensor(field.get(group))]
            for group in self.param_groups
        ]
        try:
            super().load_state_dict(state_dict)  # its __setstate__ puts the live tensors back
        finally:
            self._live_tensors = None

    def _keep_live_tensors(self) -> None:
        """After a load, before torch's post-load hooks (an ``LRShim`` binds its views there)."""
        live, self._live_tensors = getattr(self, "_live_tensors", None), None
        with torch.no_grad():
            for group, tensors in zip(self.param_groups, live or []):
                for field, tensor in tensors:
                    loaded = field.get(group)
                    if is_tensor(loaded):
                        tensor.copy_(loaded)
                    else:
                        tensor.fill_(loaded)
                    field.set(group, tensor)

    # -- AMP ---------------------------------------------------------------------------------

    def _amp(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """GradScaler's ``grad_scale`` and ``found_inf`` for this step (None without a scaler)."""
        return getattr(self, "grad_scale", None), getattr(self, "found_inf", None)

    def _groups_to_step(self) -> Iterator[tuple[dict[str, Any], list[torch.Tensor]]]:
        """Each param group that has parameters with a gradient, with those parameters; a sparse
        gradient is refused, naming the group and the parameter's shape."""
        for gi, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients (param group {gi}, a parameter "
                        f"of shape {tuple(p.shape)}); use torch.optim.SparseAdam or torch.optim.SGD for sparse "
                        "gradients"
                    )
            yield group, params

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
- **One step skeleton** (:class:`GraphSafeStep`, which ``FusedAdagrad`` shares): the closure,
  GradScaler's ``grad_scale`` and ``found_inf`` (``_step_supports_amp_scaling``), the groups with
  gradients, and a sparse gradient refused with :class:`SparseGradientError` before anything
  changes.
- **Two paths** per parameter: the fused step (``fusedsched.optimizers.fused``: one call of the
  fused op per (device, dtype, flags) bucket, every group's parameters together, each hyperparameter
  read from a tensor when the kernel runs; a Python float goes into a float64 tensor on the
  parameters' device that the optimizer owns and fills when the float changes, without a sync) or
  the foreach step (torch's foreach algorithm on tensor operands). ``fused=None`` (the default) takes
  the fused step on CUDA where it is built (on the CPU where a subclass says so), ``True`` requires it
  for every parameter, ``False`` never takes it; :meth:`GraphSafeOptimizer.explain` says which path
  each group takes and why. GradScaler's ``found_inf`` skips a step on the device: the fused kernels
  read it first and change nothing; the foreach step restores every updated tensor with
  ``torch.where`` and takes the step count back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer

from . import fused as fused_ops
from .group_key import GroupKey

__all__ = [
    "GraphSafeOptimizer",
    "GraphSafeStep",
    "SparseGradientError",
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

#: torch's option that a graph-safe optimizer is not: it runs its own step, never differentiable.
_REFUSED = ("differentiable",)


class SparseGradientError(RuntimeError, ValueError):
    """A graph-safe optimizer (or ``FusedAdagrad``) was given a sparse gradient: the one type they raise
    for it (a ``RuntimeError`` as torch's optimizers raise, and the ``ValueError`` ``FusedAdagrad`` raised)."""


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


class GraphSafeStep:
    """The step skeleton of the graph-safe optimizers and ``FusedAdagrad``: ``step(closure)`` runs the
    closure, takes GradScaler's ``grad_scale`` / ``found_inf``, refuses a sparse gradient (naming the
    group and the parameter's shape) before anything changes, and hands the groups with gradients,
    as ``(index, group, params)``, to the subclass's ``_step_groups``."""

    _step_supports_amp_scaling = True  # GradScaler hands grad_scale / found_inf to step()

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient; the closure's loss, or None."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = list(self._groups_to_step())
        if groups:
            grad_scale, found_inf = self._amp()
            self._step_groups(groups, grad_scale, found_inf)
        return loss

    def _step_groups(self, groups: list[tuple[int, dict[str, Any], list[torch.Tensor]]],
                     grad_scale: torch.Tensor | None, found_inf: torch.Tensor | None) -> None:
        raise NotImplementedError

    def _amp(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """GradScaler's ``grad_scale`` and ``found_inf`` for this step (None without a scaler)."""
        return getattr(self, "grad_scale", None), getattr(self, "found_inf", None)

    def _groups_to_step(self) -> Iterator[tuple[int, dict[str, Any], list[torch.Tensor]]]:
        """Each param group that has parameters with a gradient, with its index and those parameters."""
        found = []
        for gi, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise SparseGradientError(
                        f"{type(self).__name__} does not support sparse gradients (param group {gi}, a parameter "
                        f"of shape {tuple(p.shape)}); use torch.optim.SparseAdam, torch.optim.SGD or "
                        "torch.optim.Adagrad for sparse gradients"
                    )
            if params:
                found.append((gi, group, params))
        return iter(found)


class _Bucket:
    """One call of a fused op: the parameters of one (device, dtype, flags) bucket, every group's;
    per role (the op's tensor lists in order) a list, each group's hyperparameter tensors once."""

    def __init__(self, roles: int) -> None:
        self.lists: list[list[torch.Tensor]] = [[] for _ in range(roles)]
        self.hyper: list[list[torch.Tensor]] = []  # per group in this bucket: its tensors, in FIELDS order
        self.group: list[int] = []  # per parameter: its group's index in ``hyper``
        self.slots: dict[int, int] = {}  # param group index -> index in ``hyper``


class GraphSafeOptimizer(GraphSafeStep, Optimizer):
    """The checks, checkpoints, paths and AMP hooks of the graph-safe optimizers (see the module docstring).

    A subclass sets ``FIELDS`` (its per-step hyperparameters, in the order its fused op takes them),
    ``TORCH_OPTIONS`` (the option keys of torch's optimizer of the same name with torch's defaults,
    saved in checkpoints), ``FUSED_OP`` (its fused op), optionally ``_check_group`` (checks that
    involve more than one field) and ``_init_state`` (a parameter's state, created when its group is
    added or loaded), and the step's pieces: ``_prepare`` (state a step needs), ``_state_tensors``
    (a parameter's state as the fused op takes it), ``_fused_flags`` (a group's flags: one fused
    call per distinct flags), ``_fused_tensors`` / ``_fused_call`` (its part of the call, the call)
    and ``_foreach_step`` (the foreach step of one group's parameters).
    """

    FIELDS: ClassVar[tuple[GroupKey, ...]] = ()
    TORCH_OPTIONS: ClassVar[dict[str, Any]] = {}
    FUSED_OP: ClassVar[str] = ""
    ROLES: ClassVar[int] = 0  # how many tensor lists the fused op takes before the hyperparameters

    def __init__(self, params: Any, defaults: dict[str, Any], *, fused: bool | None = None) -> None:
        name = type(self).__name__
        for key in _REFUSED:
            if defaults.get(key):
                raise ValueError(f"{name} runs its own step; {key}=True is not an option")
        if fused not in (None, True, False):
            raise ValueError(f"{name}: fused must be None, True or False, got {fused!r}")
        self.fused = fused
        fused_ops.load()  # here, outside any compiled step
        defaults = {**defaults, **self.TORCH_OPTIONS}
        params = [params] if isinstance(params, torch.Tensor) else list(params)  # an iterator: read once, here
        self._check(defaults, _tensors(params), "defaults")
        super().__init__(params, defaults)

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
        fused = getattr(self, "fused", None)
        if not loaded and group.get("fused") not in (None, fused):
            raise ValueError(
                f"{name}: fused is chosen for the whole optimizer when it is built (fused={fused!r}); a param group "
                f"cannot ask for fused={group['fused']!r} ({where})"
            )
        if not loaded and fused:
            self._check_fused(params, where)
        if "betas" in group and (not isinstance(group["betas"], (list, tuple)) or len(group["betas"]) != 2):
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {group['betas']!r} ({where})")
        devices = {p.device for p in params}
        for field in self.FIELDS:
            value = field.get(group)
            if is_tensor(value):
                if value.dim() != 0 or value.dtype not in fused_ops.DTYPES:
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

    def _check_fused(self, params: list[torch.Tensor], where: str) -> None:
        """With ``fused=True``: every parameter must be one the fused op takes (its state, created
        with the parameter's layout, then is too)."""
        for p in params:
            reason = fused_ops.reason_not_fused(self.FUSED_OP, [p])
            if reason is not None:
                raise ValueError(
                    f"{type(self).__name__}: fused=True, but a parameter of shape {tuple(p.shape)} ({p.dtype} on "
                    f"{p.device}) cannot take the fused step: {reason} ({where})"
                )

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

    def __getstate__(self) -> dict[str, Any]:
        """torch's state and the ``fused`` choice (a pickle or a deep copy keeps the path)."""
        return {**super().__getstate__(), "fused": getattr(self, "fused", None)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "native" in state:  # a pickle of 0.1 (Adam's): native is fused's older name
            state.setdefault("fused", state.pop("native"))
        super().__setstate__(state)
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

    # -- paths -----------------------------------------------------------------------------

    def _fused_by_default(self, p: torch.Tensor) -> bool:
        """Whether ``fused=None`` takes the fused step for ``p`` where the op can take it: on CUDA;
        on the CPU where a subclass says so (never, here: the foreach step is torch's, bit for bit)."""
        return p.device.type != "cpu"

    def _state_tensors(self, p: torch.Tensor, group: dict[str, Any]) -> list[torch.Tensor]:
        """``p``'s state tensors that the fused op reads and writes beside it (a subclass's)."""
        return []

    def _path(self, p: torch.Tensor, group: dict[str, Any], grad: torch.Tensor | None = None) -> tuple[bool, str]:
        """Whether ``p`` takes the fused step (with ``grad``, when given), and why (or why not)."""
        fused = getattr(self, "fused", None)
        if fused is False:
            return False, "the foreach step: fused=False"
        tensors = [p, *self._state_tensors(p, group)] + ([grad] if grad is not None else [])
        reason = fused_ops.reason_not_fused(self.FUSED_OP, tensors)
        if reason is not None:
            return False, f"the foreach step: {reason}"
        if fused is None and not self._fused_by_default(p):
            return False, (f"the foreach step, the default for {p.dtype} parameters on the CPU; fused=True takes "
                           "the fused CPU kernel")
        kernel = "CUDA kernel" if p.device.type == "cuda" else "CPU kernel (the CUDA kernel's twin)"
        return True, f"the fused {kernel} {self.FUSED_OP}: one pass over each parameter"

    def explain(self) -> list[dict[str, str]]:
        """Per param group, the path its parameters' steps take and why: ``{"path": "fused" |
        "foreach" | "fused and foreach", "reason": ...}`` (with several reasons, each with how many
        parameters it concerns). A step also checks the gradients: a non-contiguous one takes the
        foreach step."""
        out = []
        for group in self.param_groups:
            reasons: dict[tuple[bool, str], int] = {}
            for p in group["params"]:
                path = self._path(p, group)
                reasons[path] = reasons.get(path, 0) + 1
            paths = {fused for fused, _ in reasons}
            name = "fused and foreach" if len(paths) > 1 else ("fused" if True in paths else "foreach")
            if len(reasons) == 1:
                reason = next(iter(reasons))[1]
            else:
                reason = "; ".join(f"{n} parameter{'s' if n > 1 else ''}: {why}" for (_, why), n in reasons.items())
            out.append({"path": name if reasons else "foreach", "reason": reason if reasons else "no parameters"})
        return out

    # -- the step ----------------------------------------------------------------------------

    def _prepare(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        """Create the state a step of ``params`` needs where it is missing (a subclass's)."""

    def _fused_flags(self, group: dict[str, Any]) -> tuple:
        """The fused op's flags for ``group`` (a subclass's): one call per distinct flags."""
        return ()

    def _fused_tensors(self, p: torch.Tensor, group: dict[str, Any]) -> list[torch.Tensor]:
        """``p``'s entry in each of the fused op's ``ROLES`` tensor lists (a subclass's)."""
        raise NotImplementedError

    def _fused_call(self, lists: list[list[torch.Tensor]], hyper: list[list[torch.Tensor]], group: list[int],
                    flags: tuple, grad_scale: torch.Tensor | None, found_inf: torch.Tensor | None) -> None:
        """One call of the fused op (a subclass's): its tensor lists, a list per field of ``FIELDS``
        with one tensor per group, each parameter's group, the flags and the AMP tensors."""
        raise NotImplementedError

    def _foreach_step(self, group: dict[str, Any], params: list[torch.Tensor], grad_scale: torch.Tensor | None,
                      found_inf: torch.Tensor | None) -> None:
        """The foreach step of ``params``, all of ``group`` (a subclass's)."""
        raise NotImplementedError

    def _hyper_tensor(self, index: int, field: GroupKey, group: dict[str, Any], device: torch.device) -> torch.Tensor:
        """Param group ``index``'s ``field`` as a tensor on ``device`` for the fused op: a tensor as
        it is (copied there from the CPU), a float in a float64 tensor the optimizer owns, filled
        again (one launch, no sync) when the float changes."""
        value = field.get(group)
        if is_tensor(value):
            return on_device(value, device)
        owned = getattr(self, "_owned", None)
        if owned is None:
            owned = self._owned = {}
        key = (index, field.label, device)
        entry = owned.get(key)
        if entry is None:
            entry = owned[key] = [torch.full((), float(value), dtype=torch.float64, device=device), value]
        elif entry[1] != value:
            entry[0].fill_(float(value))
            entry[1] = value
        return entry[0]

    def _step_groups(self, groups: list[tuple[int, dict[str, Any], list[torch.Tensor]]],
                     grad_scale: torch.Tensor | None, found_inf: torch.Tensor | None) -> None:
        """Every group's parameters that take the fused step in one fused call per (device, dtype,
        flags), the others in their group's foreach step; with ``fused=True`` a parameter that
        cannot take the fused step (a non-contiguous gradient) is refused before anything changes."""
        name, fused = type(self).__name__, getattr(self, "fused", None)
        plan = []
        for index, group, params in groups:
            self._prepare(group, params)
            taken, left = [], []
            for p in params:
                take, reason = self._path(p, group, p.grad)
                if not take and fused:
                    raise ValueError(f"{name}: fused=True, but a parameter of shape {tuple(p.shape)} in param group "
                                     f"{index} cannot take the fused step: {reason}")
                (taken if take else left).append(p)
            plan.append((index, group, taken, left))
        buckets: dict[tuple, _Bucket] = {}
        for index, group, taken, left in plan:
            if left:
                self._foreach_step(group, left, grad_scale, found_inf)
            for p in taken:
                key = (p.device, p.dtype, self._fused_flags(group))
                bucket = buckets.get(key)
                if bucket is None:
                    bucket = buckets[key] = _Bucket(self.ROLES)
                slot = bucket.slots.get(index)
                if slot is None:
                    slot = bucket.slots[index] = len(bucket.hyper)
                    bucket.hyper.append([self._hyper_tensor(index, field, group, p.device) for field in self.FIELDS])
                for tensors, t in zip(bucket.lists, self._fused_tensors(p, group)):
                    tensors.append(t)
                bucket.group.append(slot)
        for (device, _, flags), bucket in buckets.items():
            hyper = [list(field) for field in zip(*bucket.hyper)]
            self._fused_call(bucket.lists, hyper, bucket.group, flags, on_device(grad_scale, device),
                             on_device(found_inf, device))

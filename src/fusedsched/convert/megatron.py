"""``from_megatron``: Megatron-core's ``OptimizerParamScheduler`` as an ``LRShim`` in device mode,
a :class:`MegatronShim`.

It takes the scheduler a training script already builds and returns a shim whose groups follow
its own rates (and, where a group's weight decay rises, its weight decays), from its current
``num_steps`` on; each group's schedule is a ``LearningRate`` (kinds joined with ``join``, shifted
with ``offset``). :class:`MegatronShim` keeps Megatron's stepping call: ``step(increment)`` adds
``increment`` to ``num_steps`` (the shim's step), and its ``load_state_dict`` resumes the schedules
Megatron's ``override_opt_param_scheduler`` / ``use_checkpoint_opt_param_scheduler`` choose
(:func:`megatron_resume_policy`). Megatron's numbers are the spec, quirks included;
a setting no kind represents is refused with a ``ValueError`` naming it (an unsupported class with
a ``TypeError``) before the optimizer is touched. Source of truth: Megatron-core 0.16.1's
``megatron.core.optimizer_param_scheduler`` (docs/stacks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..schedule.kinds import LearningRate
from .builders import Config, constant, join_pieces, line, offset
from .common import as_float, learning_rate, whole_number
from .stack_shim import StackShim

__all__ = ["MegatronShim", "from_megatron", "megatron_learning_rates", "megatron_resume_policy"]

MEGATRON_STYLES = ("constant", "linear", "cosine", "inverse-square-root", "WSD")
MEGATRON_WSD_STYLES = {"linear": "linear", "cosine": "cosine", "exponential": "exponential", "minus_sqrt": "1-sqrt"}


def megatron_resume_policy(scheduler: Any) -> tuple[str, bool]:
    """``(schedules, strict)`` of ``LRShim.load_state_dict`` that do what Megatron's ``load_state_dict``
    does with its flags: ``override_opt_param_scheduler`` (its own values win): the configured
    schedules; ``use_checkpoint_opt_param_scheduler`` (the default; the checkpoint's values win): the
    checkpoint's; neither (Megatron asserts that they match): the configured ones, a difference an error.
    Megatron refuses both flags at once (an assertion in its constructor); so does this."""
    override = bool(getattr(scheduler, "override_opt_param_scheduler", False))
    use_checkpoint = bool(getattr(scheduler, "use_checkpoint_opt_param_scheduler", True))
    if override and use_checkpoint:
        raise ValueError("from_megatron: OptimizerParamScheduler(override_opt_param_scheduler=True, "
                         "use_checkpoint_opt_param_scheduler=True): both set, which Megatron refuses")
    if override:
        return "configured", False
    return ("checkpoint", False) if use_checkpoint else ("configured", True)


class MegatronShim(StackShim):
    """The device-mode ``LRShim`` :func:`from_megatron` returns: ``step(increment)`` adds
    ``increment`` to ``num_steps`` (the shim's step), as Megatron's ``OptimizerParamScheduler`` does;
    ``load_state_dict`` resumes by default the schedules Megatron's flags choose
    (:attr:`resume_schedules`, :attr:`resume_strict`: :func:`megatron_resume_policy`)."""

    resume_schedules = "configured"  #: ``load_state_dict``'s default ``schedules``
    resume_strict = False  #: ``load_state_dict``'s default ``strict``

    def step(self, increment: int | None = None) -> None:
        if increment is None or (type(increment) is int and increment == 1):
            super().step()
        else:
            if isinstance(increment, bool) or not isinstance(increment, int) or increment < 0:
                raise ValueError(f"increment must be an int >= 0, got {increment!r}")
            self._jump(self.last_epoch + increment, "num_steps + increment")

    @property
    def num_steps(self) -> int:
        return self.last_epoch

    def load_state_dict(self, state_dict: Any, strict: bool | None = None, schedules: str | None = None) -> None:
        """``LRShim.load_state_dict``, ``strict`` and ``schedules`` by default as Megatron's flags say."""
        super().load_state_dict(state_dict, self.resume_strict if strict is None else strict,
                                self.resume_schedules if schedules is None else schedules)


def _megatron_optimizer(scheduler: Any) -> Any:
    """The torch optimizer behind Megatron's (its ``optimizer`` attribute, or itself)."""
    optimizer = scheduler.optimizer
    if isinstance(optimizer, torch.optim.Optimizer) or hasattr(optimizer, "_optims"):
        return optimizer
    chained = getattr(optimizer, "chained_optimizers", None)
    if chained is not None and len(chained) != 1:
        raise TypeError(f"from_megatron: a {type(optimizer).__name__} of {len(chained)} optimizers is not converted "
                        "(one scheduler over several optimizers' groups); only one optimizer behind the scheduler")
    inner = getattr(optimizer, "optimizer", None)
    if isinstance(inner, torch.optim.Optimizer):
        return inner
    raise TypeError(f"from_megatron: the scheduler's optimizer {type(optimizer).__name__} has no torch optimizer "
                    "(an 'optimizer' attribute) whose param groups the shim can drive")


def _megatron_inverse_sqrt_end(scheduler: Any, group: Mapping[str, Any], B: int) -> int:
    """The first step from ``B`` on at which Megatron's inverse square root is floored at ``min_lr``
    (or ``lr_decay_steps + 1``), found with Megatron's own ``get_lr`` (its ``num_steps`` restored)."""
    min_lr, D = group.get("min_lr", scheduler.min_lr), scheduler.lr_decay_steps
    saved = scheduler.num_steps

    def floored(n: int) -> bool:
        scheduler.num_steps = n
        return scheduler.get_lr(group) == min_lr

    try:
        if not floored(D):
            return D + 1
        lo, hi = B, D  # floored(hi); the first floored step is in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if floored(mid) else (mid + 1, hi)
        return lo
    finally:
        scheduler.num_steps = saved


def _megatron_config(scheduler: Any, group: Mapping[str, Any]) -> Config:
    s = scheduler
    hi, lo, init = float(group.get("max_lr", s.max_lr)), float(group.get("min_lr", s.min_lr)), float(s.init_lr)
    W = whole_number(s.lr_warmup_steps, "from_megatron: OptimizerParamScheduler(lr_warmup_steps")
    D, style = whole_number(s.lr_decay_steps, "from_megatron: OptimizerParamScheduler(lr_decay_steps"), s.lr_decay_style
    if style not in MEGATRON_STYLES:
        raise ValueError(f"from_megatron: lr_decay_style={style!r}; supported: {MEGATRON_STYLES}")
    warmup = [(0, line(init, hi, W))] if W > 0 else []
    if style == "constant":
        return join_pieces([*warmup, (W, constant(hi))])
    if style == "inverse-square-root":  # max(min_lr, max_lr * sqrt(max(W, 1)) / sqrt(max(n, 1)))
        B = max(W, 1)
        first = warmup or [(0, constant(hi))]
        end = _megatron_inverse_sqrt_end(s, group, B)
        return join_pieces([*first, (B, {"inverse_sqrt": {"learning_rate": hi, "num_ramp_steps": 0, "timescale": B}}),
                            (max(end, B), constant(lo))])
    if style == "linear":
        return join_pieces([*warmup, (W, {"polynomial_decay": {"learning_rate": hi, "end_learning_rate": lo,
                                                                "final_num_steps": D - W}})])
    if style == "cosine":
        return join_pieces([*warmup, (W, {"cosine_annealing": {"learning_rate": hi, "final_learning_rate": lo,
                                                                "num_steps": D - W}}), (D + 1, constant(lo))])
    Dw = whole_number(s.wsd_decay_steps, "from_megatron: OptimizerParamScheduler(wsd_decay_steps")
    if Dw <= 0:  # the anneal would start after lr_decay_steps, where min_lr takes over: no anneal
        return join_pieces([*warmup, (W, constant(hi)), (D + 1, constant(lo))])
    shape = MEGATRON_WSD_STYLES.get(s.lr_wsd_decay_style)
    if shape is None:
        raise ValueError(f"from_megatron: OptimizerParamScheduler(lr_wsd_decay_style={s.lr_wsd_decay_style!r}); "
                         f"supported: {sorted(MEGATRON_WSD_STYLES)}")
    A = D - Dw  # the anneal's step r * Dw is num_steps - A
    wsd = {"warmup_stable_decay": {"learning_rate": hi, "final_learning_rate": lo, "num_ramp_steps": 0,
                                   "num_stable_steps": max(A - W, 0), "num_decay_steps": Dw, "decay_shape": shape}}
    if A >= W:
        return join_pieces([*warmup, (W, wsd)])
    if W == 0:  # no warm-up (Megatron's needs lr_warmup_steps > 0): already -A steps into the anneal at 0
        return offset(wsd, -A)
    # the anneal starts inside the warm-up: step W is still the warm-up's, the anneal goes on from W + 1
    last = init + ((hi - init) * float(W) / float(W))
    return join_pieces([*warmup, (W, constant(last)), (W + 1, offset(wsd, W + 1 - A))])


def _check_megatron(scheduler: Any) -> None:
    cls = type(scheduler)
    if cls.__name__ != "OptimizerParamScheduler" or not cls.__module__.startswith("megatron.core."):
        raise TypeError(f"from_megatron cannot convert {cls.__name__}; supported: "
                        "megatron.core.optimizer_param_scheduler.OptimizerParamScheduler")


def megatron_learning_rates(scheduler: Any) -> list[LearningRate]:
    """One ``LearningRate`` per param group of Megatron's ``OptimizerParamScheduler``, over its
    ``num_steps``, from each group's ``max_lr`` / ``min_lr`` (the scheduler's own where a group has
    none): Megatron-core 0.16 puts a group's overrides there; the scheduler reads no ``lr_mult``.

    Raises:
        TypeError: not Megatron-core's ``OptimizerParamScheduler``.
        ValueError: settings no kind represents (an unknown ``lr_decay_style`` or
            ``lr_wsd_decay_style``, non-whole step counts).
    """
    _check_megatron(scheduler)
    groups = _megatron_optimizer(scheduler).param_groups
    return [learning_rate(_megatron_config(scheduler, group), f"from_megatron: OptimizerParamScheduler (param group {g})")
            for g, group in enumerate(groups)]


def megatron_weight_decays(scheduler: Any) -> list[LearningRate | None]:
    """Each param group's weight-decay increment under Megatron's ``OptimizerParamScheduler``, over
    its ``num_steps`` (None where ``start_wd == end_wd``: Megatron writes a constant, already in the
    group). Megatron's ``get_wd``: ``start + coeff * (end - start)`` up to ``wd_incr_steps`` W, with
    ``coeff = n / W`` (linear) or ``0.5 * (cos(pi * (1 - n / W)) + 1)`` (cosine), then ``end``; as a
    line (``warmup_stable_decay``'s ramp) or a ``cosine_annealing`` from start to end over W, then
    ``end``: the same values to float64 rounding (not Megatron's operation order). The group's
    ``wd_mult`` multiplies it (see :func:`from_megatron`).

    Raises:
        TypeError: not Megatron-core's ``OptimizerParamScheduler``.
        ValueError: an increment over ``wd_incr_steps`` < 1, or a ``wd_incr_style`` other than
            ``linear`` and ``cosine``.
    """
    _check_megatron(scheduler)
    out: list[LearningRate | None] = []
    for g, group in enumerate(_megatron_optimizer(scheduler).param_groups):
        start, end = (as_float(group.get(k, getattr(scheduler, k))) for k in ("start_wd", "end_wd"))
        if start == end:
            out.append(None)
            continue
        W, style = scheduler.wd_incr_steps, scheduler.wd_incr_style
        if isinstance(W, bool) or not isinstance(W, int) or W < 1:
            raise ValueError(f"from_megatron: param group {g} increments its weight decay over wd_incr_steps={W!r}; "
                             "it must be an integer >= 1")
        if style == "linear":
            rise: Config = line(start, end, W)
        elif style == "cosine":
            rise = {"cosine_annealing": {"learning_rate": start, "final_learning_rate": end, "num_steps": W}}
        else:
            raise ValueError(f"from_megatron: param group {g} increments its weight decay from start_wd={start!r} to "
                             f"end_wd={end!r} with wd_incr_style={style!r}; supported: 'linear', 'cosine'")
        out.append(learning_rate(join_pieces([(0, rise), (W, constant(end))]),
                                 f"from_megatron: OptimizerParamScheduler weight decay (param group {g})"))
    return out


def from_megatron(scheduler: Any, *, backend: str | None = None, device: torch.device | str | None = None,
                  spare_segments: int = 0) -> MegatronShim:
    """Megatron's ``OptimizerParamScheduler`` rates, evaluated on the device, from its current
    ``num_steps`` on: a :class:`MegatronShim` (call its ``step(increment)`` instead). A group whose
    weight decay rises (``start_wd != end_wd``) gets a ``weight_decay`` schedule
    (:func:`megatron_weight_decays`) times its ``wd_mult``, as Megatron's ``step`` writes it: its
    optimizer must read a tensor weight decay (``GraphSafeAdam`` / ``GraphSafeAdamW`` /
    ``GraphSafeSGD``). Its ``load_state_dict`` follows ``override_opt_param_scheduler`` and
    ``use_checkpoint_opt_param_scheduler`` (:func:`megatron_resume_policy`); ``spare_segments``: the
    room of its table for ``switch`` (a cooldown from any checkpoint: docs/switching.md).

    Raises:
        TypeError / ValueError: see :func:`megatron_learning_rates`, :func:`megatron_weight_decays` and
            :func:`megatron_resume_policy`, and ``LRShim``'s refusal of an optimizer that reads the weight
            decay by value; nothing is touched.
    """
    configs, decays = megatron_learning_rates(scheduler), megatron_weight_decays(scheduler)
    schedules, strict = megatron_resume_policy(scheduler)
    step = whole_number(scheduler.num_steps, "num_steps")
    optimizer = _megatron_optimizer(scheduler)
    hyperparameters = [{"weight_decay": d} if d is not None else {} for d in decays]
    multipliers = [{"weight_decay": as_float(group.get("wd_mult", 1.0))} if d is not None else {}
                   for d, group in zip(decays, optimizer.param_groups)]
    return MegatronShim._start(optimizer, configs, step, backend, device, hyperparameters, multipliers,
                               spare_segments=spare_segments, resume_schedules=schedules, resume_strict=strict)

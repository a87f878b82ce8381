"""``from_torch``: a constructed torch or Hugging Face scheduler, as an ``LRShim`` in device mode.

Each param group's schedule becomes a ``LearningRate`` (a kind, or a ``join`` / ``product`` of
kinds) whose learning rates are the stock scheduler's, step for step, from its current
``last_epoch`` on. The stock scheduler's numbers are the spec, quirks included:

- torch's chainable schedulers compute each rate from the previous one; the kinds use the closed
  form (torch's own ``_get_closed_form_lr`` where it has one), equal up to float64 rounding;
- ``CosineAnnealingLR`` is periodic past ``T_max`` (``cosine_annealing``);
- in a ``SequentialLR`` each later scheduler restarts at its milestone from its closed form
  (``join``); the one running at step 0 starts as a fresh scheduler does;
- a ``ChainedScheduler`` multiplies its schedulers' factors (``product``); a
  ``CosineAnnealingLR`` in it drops the other factors at each restart (step ``T_max + 1``):
  converted when they no longer change by then, refused otherwise;
- ``OneCycleLR`` gives one more (extrapolated) rate at ``total_steps``, then raises; the shim
  gives that rate there and then holds the schedule's last value; where the extrapolation is
  negative (``anneal_strategy="linear"``) the shim holds the last value from ``total_steps - 1``
  on instead, with a ``ConversionWarning`` naming both rates;
- ``OneCycleLR`` / ``CyclicLR`` with ``cycle_momentum=True`` (torch's default), on their own: the
  momentum cycle becomes a ``beta1`` (Adam, AdamW: ``betas[0]``) or ``momentum`` (SGD) schedule
  beside the rates, torch's sequence exactly (``one_cycle`` peaking at base_momentum from and to
  max_momentum; ``cyclic`` from max_momentum to base_momentum). The shim binds it as a device
  tensor, so the optimizer must be fusedsched's ``GraphSafeAdam`` / ``GraphSafeAdamW`` /
  ``GraphSafeSGD``; a torch optimizer is refused, naming the one to use;
- Hugging Face's schedule functions are recognized from their ``functools.partial`` keywords;
  ``cosine_warmup_with_min_lr`` needs ``num_warmup_steps >= 2`` (or 1 with no ``warmup_lr_rate``):
  its cosine starts one step early, before step 0 otherwise. So is torchtitan's
  ``linear_warmup_stable_decay`` (``LRSchedulersContainer``'s ``LambdaLR``s); past torchtitan's last
  step its linear and sqrt decays go on below ``min_lr_factor``, where the shim holds the floor,
  with a ``ConversionWarning``.

Anything else is refused with a ``TypeError`` (an unsupported scheduler or function) or a
``ValueError`` (a supported one with settings no kind represents, e.g. ``CyclicLR`` with a custom
``scale_fn``), before the optimizer is touched. So is a scheduler whose next rate torch computes from
the group's current one (the chainable schedulers) while that rate is not the schedule's at the
current step (e.g. constructed with ``last_epoch=12`` over groups whose ``lr`` is still the base
rate): torch's rates would go on from the group's rate, the shim's from the closed form.
"""

from __future__ import annotations

import math
import warnings
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler as tls

from ..optimizers import GRAPH_SAFE
from ..optimizers.graphsafe import GraphSafeOptimizer
from ..schedule.kinds import LearningRate
from ..schedule.reference import compute_lr
from ..shim.scheduler import LRShim
from .builders import Config, constant, join, product
from .common import ConversionWarning, as_float, float32_ulps, group_names, learning_rate
from .functions import HF_FUNCTIONS, hf_config, hf_function, torchtitan_config, torchtitan_keywords

__all__ = ["SUPPORTED", "ConversionWarning", "from_torch", "learning_rates_from_torch"]

SUPPORTED = (
    "StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, ConstantLR, PolynomialLR, "
    "CosineAnnealingWarmRestarts, ReduceLROnPlateau (on its own; its state carries over), OneCycleLR and CyclicLR (CyclicLR without a custom scale_fn; cycle_momentum=True "
    "on their own, over fusedsched's GraphSafeAdam, GraphSafeAdamW or GraphSafeSGD), SequentialLR and ChainedScheduler "
    "of these, fusedsched.LRShim, and LambdaLR over transformers.optimization's "
    + ", ".join(dict.fromkeys(HF_FUNCTIONS.values()))
    + " (MultiplicativeLR over get_constant_schedule's), and LambdaLR over torchtitan's linear_warmup_stable_decay"
)


def _name(scheduler: Any) -> str:
    return type(scheduler).__name__


def _unsupported(scheduler: Any, why: str = "") -> TypeError:
    return TypeError(f"from_torch cannot convert {_name(scheduler)}{': ' + why if why else ''}; supported: {SUPPORTED}")


def _is_constant_multiplier(scheduler: Any, g: int) -> bool:
    """A MultiplicativeLR whose function is get_constant_schedule's (1): it changes nothing."""
    found = hf_function(scheduler.lr_lambdas[g])
    return found is not None and found[0] == "_get_constant_lambda"


def _lambda_config(scheduler: Any, g: int, base: float) -> Config:
    fn = scheduler.lr_lambdas[g]
    if isinstance(scheduler, tls.MultiplicativeLR):
        if not _is_constant_multiplier(scheduler, g):
            raise _unsupported(scheduler, f"its function {getattr(fn, '__qualname__', fn)!r} is applied to the running "
                                          "rate every step; only get_constant_schedule's (1) has a closed form")
        return constant(base)
    found = hf_function(fn)
    if found is None:
        titan = torchtitan_keywords(fn)
        if titan is not None:
            return torchtitan_config(titan, base, g)
        raise _unsupported(scheduler, f"its function {getattr(fn, '__qualname__', repr(fn))!r} is not one of "
                                      "transformers.optimization's schedule functions or torchtitan's")
    name, kw = found
    return hf_config(name, kw, base)


# --- torch schedulers ------------------------------------------------------------------------------


def _base(scheduler: Any, g: int) -> float:
    return as_float(scheduler.base_lrs[g])


def _one_cycle(scheduler: tls.OneCycleLR, g: int, momentum: bool = False, alone: bool = False) -> Config:
    """OneCycleLR keeps only the phases' float end steps and each group's three rates: a ``one_cycle``
    with those rates as they are (``initial_learning_rate``, ``max_learning_rate``,
    ``final_learning_rate``) and the ``pct_start`` that reproduces the end steps exactly.

    ``momentum``: the momentum cycle instead (``cycle_momentum=True``): max_momentum -> base_momentum
    -> max_momentum (three-phase: -> max_momentum), the same anneal function, which is the
    ``one_cycle`` kind peaking at base_momentum with ``initial = minimum = max_momentum``.
    ``alone``: the scheduler is ``from_torch``'s own (its momentum cycle is converted beside it).
    """
    if scheduler.cycle_momentum and not alone:
        raise ValueError(
            "from_torch: OneCycleLR(cycle_momentum=True) also schedules the optimizer's momentum, which "
            "from_torch converts only for a OneCycleLR on its own (not inside SequentialLR or ChainedScheduler); "
            "construct it with cycle_momentum=False")
    group, T, phases = scheduler.optimizer.param_groups[g], scheduler.total_steps, scheduler._schedule_phases
    if momentum:
        peak, initial, minimum = (float(group[k]) for k in ("base_momentum", "max_momentum", "max_momentum"))
        start_key, end_key, what = "start_momentum", "end_momentum", "momentum"
    else:
        peak, initial, minimum = (float(group[k]) for k in ("max_lr", "initial_lr", "min_lr"))
        start_key, end_key, what = "start_lr", "end_lr", "rate"
    strategy = getattr(scheduler, "_anneal_func_type", None)
    three = len(phases) == 3
    ends = [p["end_step"] for p in phases]

    def reproduces_ends(p: float) -> bool:
        return float(p * T) - 1 == ends[0] and (not three or float(2 * p * T) - 2 == ends[1])

    pct = _nearby((ends[0] + 1) / T, reproduces_ends, smallest=0.0)
    if pct is None or strategy not in ("cos", "linear"):
        raise ValueError(f"from_torch: OneCycleLR group {g} {what} (phases ending at {ends}, anneal strategy "
                         f"{strategy!r}) is not a one_cycle schedule: no pct_start gives those end steps")
    kind = {"one_cycle": {"max_learning_rate": peak, "initial_learning_rate": initial, "final_learning_rate": minimum,
                          "total_steps": T, "pct_start": min(max(pct, 0.0), 1.0), "anneal_strategy": strategy,
                          "three_phase": three}}
    # torch gives one more value at step total_steps (its last phase extrapolated), then raises
    start, end = ends[-2], ends[-1]
    if end == start:
        return kind
    extra = scheduler._anneal_func(group[phases[-1][start_key]], group[phases[-1][end_key]], (T - start) / (end - start))
    held = compute_lr(learning_rate(kind, f"from_torch: OneCycleLR (param group {g})"), T - 1)
    if math.isfinite(extra) and extra >= 0:
        return join([kind, constant(extra), constant(held)], [T, T + 1])
    warnings.warn(ConversionWarning(  # a negative value is not reproduced
        f"from_torch: OneCycleLR (param group {g} {what}, anneal_strategy={strategy!r}) extrapolates its last phase "
        f"to {extra!r} at step total_steps={T}; the shim gives the schedule's last value {held!r} there (and after)"),
        stacklevel=2)
    return kind


def _cyclic(scheduler: tls.CyclicLR, g: int, base: float, momentum: bool = False, alone: bool = False) -> Config:
    """CyclicLR keeps ``total_size`` and ``step_ratio`` (floats): the whole step sizes that give them.

    ``momentum``: the momentum cycle instead (``cycle_momentum=True``), torch's
    ``max_m - ((max_m - base_m) * f) * scale``: the ``cyclic`` kind from max_m to base_m, bit for bit.
    ``alone``: as for :func:`_one_cycle`.
    """
    if scheduler._scale_fn_custom is not None:
        raise ValueError("from_torch: CyclicLR with a custom scale_fn (a Python function of the cycle or the step) "
                         "has no schedule kind; use mode 'triangular', 'triangular2' or 'exp_range'")
    if scheduler.cycle_momentum and not alone:
        raise ValueError(
            "from_torch: CyclicLR(cycle_momentum=True) also schedules the optimizer's momentum, which "
            "from_torch converts only for a CyclicLR on its own (not inside SequentialLR or ChainedScheduler); "
            "construct it with cycle_momentum=False")
    total, ratio = scheduler.total_size, scheduler.step_ratio
    up = round(ratio * total) if math.isfinite(ratio * total) else 0
    down = total - up
    if not (up >= 1 and down >= 1 and float(down).is_integer() and up / total == ratio):
        raise ValueError(f"from_torch: CyclicLR with step_size_up + step_size_down = {total!r} and step ratio "
                         f"{ratio!r}: the step sizes must be whole numbers of steps, at least 1")
    mode = scheduler.mode
    low, high = (float(scheduler.max_momentums[g]), float(scheduler.base_momentums[g])) if momentum else (
        base, float(scheduler.max_lrs[g]))
    return {"cyclic": {"base_learning_rate": low, "max_learning_rate": high,
                       "step_size_up": up, "step_size_down": int(down), "mode": mode,
                       "gamma": float(scheduler.gamma) if mode == "exp_range" else 1.0}}


def _nearby(guess: float, ok: Callable[[float], bool], ulps: int = 64, smallest: float = math.ulp(0.0)) -> float | None:
    """The float ``>= smallest`` within ``ulps`` of ``guess``, closest to it, for which ``ok`` holds."""
    if not math.isfinite(guess) or guess < smallest:
        return None
    down = up = guess
    for _ in range(ulps + 1):
        for candidate in (down, up):
            if candidate >= smallest and ok(candidate):
                return candidate
        down, up = math.nextafter(down, -math.inf), math.nextafter(up, math.inf)
    return None


FACTORS = (tls.StepLR, tls.MultiStepLR, tls.ExponentialLR, tls.ConstantLR, tls.LinearLR, tls.PolynomialLR,
           tls.CosineAnnealingLR)


def _factor(scheduler: Any, base: float, at_milestone: bool) -> Config:
    """The kind for one of torch's chainable schedulers over base rate ``base``.

    ``at_milestone``: entered by ``SequentialLR`` at a milestone (closed form at step 0) rather than
    built fresh (its initial step), which differs for ``total_iters = 0``.
    """
    if isinstance(scheduler, tls.StepLR):
        gamma, k = scheduler.gamma, scheduler.step_size
        if k < 1:
            raise ValueError(f"from_torch: StepLR(step_size={k}) never steps (torch divides by it)")
        if gamma == 0:
            return {"piecewise_constant": {"learning_rate_boundaries": [k], "learning_rate_values": [base, 0.0]}}
        return {"exponential_decay": {"learning_rate": base, "decay_rate": gamma, "decay_steps": k, "staircase": True}}
    if isinstance(scheduler, tls.MultiStepLR):
        milestones = sorted(m for m in scheduler.milestones.elements() if m >= 0)
        bounds = sorted(set(milestones))
        values = [base * scheduler.gamma ** bisect_right(milestones, b) for b in [-1] + bounds]
        return {"piecewise_constant": {"learning_rate_boundaries": bounds, "learning_rate_values": values}}
    if isinstance(scheduler, tls.ExponentialLR):
        if scheduler.gamma == 0:
            return {"piecewise_constant": {"learning_rate_boundaries": [1], "learning_rate_values": [base, 0.0]}}
        return {"exponential_decay": {"learning_rate": base, "decay_rate": scheduler.gamma, "decay_steps": 1}}
    if isinstance(scheduler, tls.ConstantLR):
        factor, T = scheduler.factor, scheduler.total_iters
        if T == 0:  # fresh: multiplied at step 0 and never undone; at a milestone: the closed form
            return constant(base * (factor + (1 - factor)) if at_milestone else base * factor)
        return {"piecewise_constant": {"learning_rate_boundaries": [T],
                                       "learning_rate_values": [base * (factor + 0.0), base * (factor + (1 - factor))]}}
    if isinstance(scheduler, tls.LinearLR):
        start, end, T = scheduler.start_factor, scheduler.end_factor, scheduler.total_iters
        if T == 0:
            return constant(base * start)
        return {"polynomial_decay": {"learning_rate": base * start, "end_learning_rate": base * end, "final_num_steps": T}}
    if isinstance(scheduler, tls.PolynomialLR):
        if scheduler.total_iters == 0 or scheduler.power == 0:
            return constant(base)
        return {"polynomial_decay": {"learning_rate": base, "final_num_steps": scheduler.total_iters, "power": scheduler.power}}
    if isinstance(scheduler, tls.CosineAnnealingLR):
        return {"cosine_annealing": {"learning_rate": base, "final_learning_rate": scheduler.eta_min, "num_steps": scheduler.T_max}}
    raise AssertionError(scheduler)


def _last_change(scheduler: Any) -> float:
    """The last step at which a chainable scheduler changes its factor (inf: it never stops)."""
    if isinstance(scheduler, (tls.StepLR, tls.ExponentialLR)):
        return 0 if scheduler.gamma == 1 else math.inf
    if isinstance(scheduler, tls.MultiStepLR):
        return max(scheduler.milestones, default=0)
    if isinstance(scheduler, tls.MultiplicativeLR):
        return 0
    return scheduler.total_iters  # ConstantLR, LinearLR, PolynomialLR


def _exact(scheduler: Any, classes: tuple[type, ...]) -> bool:
    """A supported class itself: a subclass may compute its rates differently."""
    return type(scheduler) in classes


OVERRIDES = (tls.LambdaLR, tls.CosineAnnealingWarmRestarts, tls.OneCycleLR)


def _chained(chain: tls.ChainedScheduler, g: int, base: float) -> Config:
    members = _flatten(chain)
    for i, member in enumerate(members):
        if not _exact(member, FACTORS + OVERRIDES + (tls.MultiplicativeLR,)):
            raise _unsupported(chain, f"its scheduler {i} is a {_name(member)}")
    last = members[-1]
    if _exact(last, OVERRIDES):  # it sets the rate from scratch every step: the others do not count
        return _config(last, g, base)
    for i, member in enumerate(members):
        if _exact(member, OVERRIDES):
            raise ValueError(
                f"from_torch: ChainedScheduler with {_name(member)} (scheduler {i}) before chainable schedulers: "
                "those multiply its rate by their step-to-step ratio, which no schedule kind represents")
    for i, member in enumerate(members):
        if _exact(member, (tls.MultiplicativeLR,)) and not _is_constant_multiplier(member, g):
            raise _unsupported(chain, f"its scheduler {i} is a MultiplicativeLR over a function other than "
                                      "get_constant_schedule's")
    members = [m for m in members if not _exact(m, (tls.MultiplicativeLR,))]  # a factor of 1
    cosines = [m for m in members if _exact(m, (tls.CosineAnnealingLR,))]
    others = [m for m in members if not _exact(m, (tls.CosineAnnealingLR,))]
    if not cosines:
        if not others:
            return constant(base)
        factors = [_factor(m, base if i == 0 else 1.0, False) for i, m in enumerate(others)]
        return product(*factors)
    if len(cosines) > 1:
        raise ValueError("from_torch: ChainedScheduler with more than one CosineAnnealingLR (each restart drops the "
                         "others' factors)")
    cosine = cosines[0]
    if not others:
        return _factor(cosine, base, False)
    T, base = cosine.T_max, _base(cosine, g)  # from T_max + 1 on, the cosine's own base rate
    if cosine.eta_min != 0:
        raise ValueError(f"from_torch: ChainedScheduler of CosineAnnealingLR(eta_min={cosine.eta_min}) and other "
                         "schedulers: with eta_min != 0 the cosine does not multiply the others' factors")
    late = [m for m in others if _last_change(m) > T]
    if late:
        raise ValueError(
            f"from_torch: ChainedScheduler of CosineAnnealingLR(T_max={T}) and {_name(late[0])}, which still changes "
            f"after step {T}: at step T_max + 1 the cosine restarts from its base rate, dropping the other factors, "
            "and the running ones would restart with it; no schedule kind represents that")
    others_product = [_factor(m, 1.0, False) for m in others]
    return product(join([product(*others_product), constant(1.0)], [T + 1]), _factor(cosine, base, False))


def _flatten(chain: tls.ChainedScheduler) -> list[Any]:
    out = []
    for member in chain._schedulers:
        out.extend(_flatten(member) if _exact(member, (tls.ChainedScheduler,)) else [member])
    return out


def _initial_lr(scheduler: Any, g: int) -> float:
    return as_float(scheduler.optimizer.param_groups[g]["initial_lr"])


def _sequential(sequential: tls.SequentialLR, g: int) -> Config:
    milestones = list(sequential._milestones)
    if any(b < 0 for b in milestones) or any(b >= c for b, c in zip(milestones, milestones[1:])):
        raise ValueError(f"from_torch: SequentialLR milestones must be increasing integers >= 0, got {milestones}")
    first = bisect_right(milestones, 0)  # the scheduler that runs at step 0 starts fresh; the others at a milestone
    children = []
    for i, child in enumerate(sequential._schedulers):
        if _exact(child, (tls.SequentialLR, tls.ChainedScheduler, tls.MultiplicativeLR)) or isinstance(child, LRShim):
            raise _unsupported(sequential, f"its scheduler {i} is a {_name(child)}, which SequentialLR cannot restart "
                                           "at a milestone")
        # a chainable scheduler running at step 0 starts from the rate SequentialLR resets to
        # (initial_lr, which a OneCycleLR among the others may have set); the others from their own
        child_base = _initial_lr(sequential, g) if i == first and _exact(child, FACTORS) else _base(child, g)
        children.append(_config(child, g, child_base, at_milestone=i > first))
    return join(children, milestones)


def _plateau_min_lrs(scheduler: tls.ReduceLROnPlateau) -> list[float]:
    """One ``min_lr`` per param group, as torch's next reduction takes them: its ``min_lrs``, or,
    for groups added after construction, its one ``min_lr`` for every group; a per-group list that
    misses a group (torch raises at its next reduction) is refused, naming ``min_lr``."""
    groups, min_lrs = len(scheduler.optimizer.param_groups), list(scheduler.min_lrs)
    if len(min_lrs) == groups:
        return min_lrs
    default = getattr(scheduler, "default_min_lr", None)
    if default is not None:
        return [default] * groups
    raise ValueError(
        f"from_torch: ReduceLROnPlateau(min_lr={min_lrs!r}) has {len(min_lrs)} values for the optimizer's {groups} "
        "param groups (a group added or removed after the scheduler was built; torch raises at its next "
        "reduction): set scheduler.min_lrs to one value per group, or build it with one min_lr for all")


def _plateau(scheduler: tls.ReduceLROnPlateau, g: int, min_lr: float) -> Config:
    """Group ``g`` under ``ReduceLROnPlateau``: a ``plateau`` from the group's current rate, down to
    ``min_lr`` (its state carries over apart, :func:`_plateau_states`)."""
    return {"plateau": {"learning_rate": as_float(scheduler.optimizer.param_groups[g]["lr"]),
                        "mode": scheduler.mode, "factor": scheduler.factor, "patience": scheduler.patience,
                        "threshold": scheduler.threshold, "threshold_mode": scheduler.threshold_mode,
                        "cooldown": scheduler.cooldown, "min_learning_rate": min_lr, "eps": scheduler.eps}}


def _plateau_states(scheduler: tls.ReduceLROnPlateau, configs: list[LearningRate]) -> list[list[float]]:
    """Every group's plateau state ``[value, best, bad_epochs, cooldown_left]`` as torch holds it."""
    return [[c.plateau.learning_rate, float(scheduler.best), float(scheduler.num_bad_epochs),
             float(scheduler.cooldown_counter)] for c in configs]


def _config(scheduler: Any, g: int, base: float, at_milestone: bool = False) -> Config:
    """Group ``g``'s schedule under ``scheduler``, for base rate ``base``, as kind data."""
    if _exact(scheduler, FACTORS):
        return _factor(scheduler, base, at_milestone)
    if _exact(scheduler, (tls.CosineAnnealingWarmRestarts,)):
        return {"cosine_with_restarts": {"learning_rate": base, "final_learning_rate": scheduler.eta_min,
                                         "cycle_steps": scheduler.T_0, "cycle_mult": scheduler.T_mult}}
    if _exact(scheduler, (tls.OneCycleLR,)):
        return _one_cycle(scheduler, g)
    if _exact(scheduler, (tls.CyclicLR,)):
        return _cyclic(scheduler, g, base)
    if _exact(scheduler, (tls.LambdaLR, tls.MultiplicativeLR)):
        return _lambda_config(scheduler, g, base)
    if _exact(scheduler, (tls.SequentialLR,)):
        return _sequential(scheduler, g)
    if _exact(scheduler, (tls.ChainedScheduler,)):
        return _chained(scheduler, g, base)
    raise _unsupported(scheduler)


def _current_step(scheduler: Any) -> int:
    if isinstance(scheduler, tls.ChainedScheduler):
        steps = {m.last_epoch for m in _flatten(scheduler)}
        if len(steps) != 1:
            raise ValueError(f"from_torch: ChainedScheduler whose schedulers are at different steps {sorted(steps)}")
        return steps.pop()
    return int(scheduler.last_epoch)


def learning_rates_from_torch(scheduler: Any) -> list[LearningRate]:
    """One ``LearningRate`` per param group of ``scheduler``'s optimizer, giving its learning rates.

    Raises:
        TypeError: ``scheduler`` (or one inside it) is not supported (see ``SUPPORTED``).
        ValueError: it is supported, but with settings no schedule kind represents.
    """
    return _learning_rates(scheduler, cycle_momentum=False)


def _learning_rates(scheduler: Any, cycle_momentum: bool) -> list[LearningRate]:
    """:func:`learning_rates_from_torch`; ``cycle_momentum``: a top-level OneCycleLR / CyclicLR may
    cycle momentum (converted apart, by :func:`_cycled_momentum`)."""
    if isinstance(scheduler, LRShim):
        return list(scheduler.lr_dict.values())
    if not isinstance(scheduler, tls.LRScheduler):
        raise TypeError(f"from_torch: scheduler must be a torch.optim.lr_scheduler.LRScheduler, got "
                        f"{type(scheduler).__name__}; supported: {SUPPORTED}")
    if isinstance(scheduler, tls.ReduceLROnPlateau):
        if not _exact(scheduler, (tls.ReduceLROnPlateau,)):
            raise _unsupported(scheduler, "a subclass of ReduceLROnPlateau may decide differently")
        return [learning_rate(_plateau(scheduler, g, min_lr), f"from_torch: ReduceLROnPlateau (param group {g})")
                for g, min_lr in enumerate(_plateau_min_lrs(scheduler))]
    owner = scheduler  # the scheduler holding base_lrs (the composites keep none of their own)
    while not hasattr(owner, "base_lrs") and getattr(owner, "_schedulers", None):
        owner = owner._schedulers[0]
    def top(g: int, base: float) -> Config:
        if cycle_momentum and _exact(scheduler, (tls.OneCycleLR,)):
            return _one_cycle(scheduler, g, alone=True)
        if cycle_momentum and _exact(scheduler, (tls.CyclicLR,)):
            return _cyclic(scheduler, g, base, alone=True)
        return _config(scheduler, g, base)

    return [learning_rate(top(g, _base(owner, g) if hasattr(owner, "base_lrs") else 0.0),
                          f"from_torch: {_name(scheduler)} (param group {g})")
            for g in range(len(scheduler.optimizer.param_groups))]


def _reads_current_rate(scheduler: Any, step: int) -> bool:
    """Whether torch computes the rate after ``step`` from the group's current one (a chainable
    scheduler runs then), rather than from the base rate alone (``LambdaLR``, ``OneCycleLR``...)."""
    if _exact(scheduler, FACTORS + (tls.MultiplicativeLR,)):
        return True
    if _exact(scheduler, (tls.ChainedScheduler,)):
        return not _exact(_flatten(scheduler)[-1], OVERRIDES)
    if _exact(scheduler, (tls.SequentialLR,)):
        return _reads_current_rate(scheduler._schedulers[bisect_right(list(scheduler._milestones), step)], step)
    return False


def _check_current_rates(scheduler: Any, configs: list[LearningRate], step: int) -> None:
    """Refuse when a group's rate is not the converted schedule's at ``step`` (1 float32 ulp
    allowed: torch's chained products round differently) and torch goes on from the group's rate."""
    if isinstance(scheduler, LRShim) or not _reads_current_rate(scheduler, step):
        return
    for g, (group, config) in enumerate(zip(scheduler.optimizer.param_groups, configs)):
        have, want = float(group["lr"]), compute_lr(config, step)
        if not math.isfinite(have) or float32_ulps(have, want) > 1:
            named = f" ({group['name']!r})" if "name" in group else ""
            raise ValueError(
                f"from_torch: param group {g}{named} has lr {have!r}, but {_name(scheduler)}'s schedule gives {want!r} "
                f"at its step {step} (from initial_lr {_initial_lr(scheduler, g)!r}); torch computes each next rate from the "
                "group's current one, so the converted rates would differ from torch's from here on. Construct the "
                "scheduler with last_epoch=-1 (and step it, or load its state_dict), or load the optimizer's state "
                "(optimizer.load_state_dict) before constructing the scheduler, so that the group's lr is the "
                "schedule's at that step")


def _cycled_momentum(scheduler: Any) -> tuple[str, list[LearningRate]] | None:
    """A top-level ``OneCycleLR`` / ``CyclicLR(cycle_momentum=True)``'s momentum cycle: ``(key, one
    schedule per group)``, ``key`` ``beta1`` (Adam's ``betas[0]``) or ``momentum``; None without one.

    Device mode binds it as a tensor, which only the graph-safe optimizers read without a sync: a
    torch optimizer is refused, naming the class to use instead, before anything changes.
    """
    if not (_exact(scheduler, (tls.OneCycleLR, tls.CyclicLR)) and scheduler.cycle_momentum):
        return None
    name, optimizer = _name(scheduler), scheduler.optimizer
    if not isinstance(optimizer, GraphSafeOptimizer):
        cls = type(optimizer).__name__
        instead = GRAPH_SAFE.get(type(optimizer))
        names = [c.__name__ for c in GRAPH_SAFE.values()]
        use = f"fusedsched.{instead.__name__}" if instead else f"fusedsched.{', '.join(names[:-1])} or {names[-1]}"
        raise ValueError(
            f"from_torch: {name}(cycle_momentum=True) also cycles the optimizer's momentum, which the shim "
            f"schedules as a device tensor; {cls} reads it by value (torch's kernels take it as a float). Build "
            f"the optimizer as {use} (same arguments), or construct the scheduler with cycle_momentum=False")
    key = "beta1" if scheduler.use_beta1 else "momentum"
    groups = range(len(optimizer.param_groups))
    if _exact(scheduler, (tls.OneCycleLR,)):
        configs = [_one_cycle(scheduler, g, momentum=True, alone=True) for g in groups]
    else:
        configs = [_cyclic(scheduler, g, 0.0, momentum=True, alone=True) for g in groups]
    return key, [learning_rate(c, f"from_torch: {name} momentum (param group {g})") for g, c in zip(groups, configs)]


def from_torch(scheduler: Any, *, backend: str | None = None, device: torch.device | str | None = None) -> LRShim:
    """``scheduler``'s learning rates, evaluated on the device: an ``LRShim`` in device mode.

    Takes a constructed torch scheduler (or Hugging Face's ``LambdaLR``, or an ``LRShim``) at its
    current ``last_epoch``, rebinds its optimizer's param groups to the shim's device buffer and
    returns the shim; each later ``shim.step()`` gives the rates the stock scheduler's ``step()``
    would have (do not step the stock scheduler any more). Per-group base rates and per-group
    hyperparameters (``OneCycleLR(max_lr=[...])``) carry over.

    Args:
        scheduler: one of ``SUPPORTED``.
        backend, device: as for ``LRShim`` (default: ``$FUSEDSCHED_BACKEND`` or ``auto``, and the
            device of the groups' lr tensors or params).

    Raises:
        TypeError: an unsupported scheduler or schedule function (a custom lambda, a
            ``ReduceLROnPlateau`` inside ``SequentialLR``...), naming it and what is supported; the optimizer is left untouched.
        ValueError: a supported scheduler with settings no kind represents, or a chainable one
            whose group rate is not its schedule's at the current step (torch would go on from
            that rate); nothing is touched.

    Warns:
        ConversionWarning: ``OneCycleLR(anneal_strategy="linear")`` whose extrapolated rate at
            ``total_steps`` is negative: the shim gives the schedule's last value there instead.

    Example::

        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
        >>> shim = from_torch(torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5))
        >>> [round(shim.get_last_lr()[0], 4) for _ in range(4) if shim.step() is None]
        [0.1, 0.05, 0.05, 0.025]
    """
    momentum = _cycled_momentum(scheduler)  # raises before anything changes
    configs = _learning_rates(scheduler, cycle_momentum=momentum is not None)
    optimizer = scheduler.optimizer
    step = _current_step(scheduler)
    _check_current_rates(scheduler, configs, step)
    names = list(scheduler.lr_dict) if isinstance(scheduler, LRShim) else group_names(optimizer.param_groups)
    hyperparameters = None
    if isinstance(scheduler, LRShim):
        hyperparameters = scheduler.hyperparameters
    elif momentum is not None:
        hyperparameters = {name: {momentum[0]: cfg} for name, cfg in zip(names, momentum[1])}
    states = _plateau_states(scheduler, configs) if isinstance(scheduler, tls.ReduceLROnPlateau) else None
    # ReduceLROnPlateau keeps no initial_lr: its plateaus start from the current rates at step 0,
    # and the counter is set to torch's step after (a plateau's rate does not depend on it)
    start = -1 if states is not None else step - 1
    shim = LRShim(optimizer, dict(zip(names, configs)), last_epoch=start, device_schedule=True,
                  backend=backend, device=device, hyperparameters=hyperparameters,
                  multipliers=scheduler.multipliers if isinstance(scheduler, LRShim) else None)
    if isinstance(scheduler, LRShim):
        shim.load_plateau_states(scheduler.plateau_states())
    elif states is not None:  # best, bad epochs and cooldown go on from torch's
        shim.last_epoch = step
        shim.load_plateau_states({(name, "lr"): state for name, state in zip(names, states)})
    return shim

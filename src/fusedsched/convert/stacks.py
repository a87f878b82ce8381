"""Converters for the schedulers of other training stacks: timm, DeepSpeed and Megatron-core.

Like :func:`fusedsched.from_torch`, each takes the scheduler a training script already builds and
returns an ``LRShim`` in device mode whose groups follow that scheduler's own rates, from its current
step on; each group's schedule is a ``LearningRate`` (kinds joined with ``join``, shifted with
``offset``, scaled with ``product``). The source object's numbers are the spec, quirks included;
a setting no kind represents is refused with a ``ValueError`` naming it (an unsupported class with a
``TypeError``) before the optimizer is touched. The returned shims keep the source's stepping calls:

- :func:`from_timm` -> :class:`TimmShim`: ``step(epoch)`` and ``step_update(num_updates)`` set the
  rate at that ``t`` (whichever ``t_in_epochs`` selects; the other is a no-op, as in timm);
- :func:`from_deepspeed` -> :class:`DeepSpeedShim`: ``step()`` / ``step(last_batch_iteration)``;
  the shim's step is ``last_batch_iteration + 1`` (DeepSpeed starts at -1);
- :func:`from_megatron` -> :class:`MegatronShim`: ``step(increment)`` adds ``increment`` to
  ``num_steps`` (the shim's step).

:func:`deepspeed_config_to_schedules` and :func:`deepspeed_config_to_hyperparameters` turn
DeepSpeed's JSON ``"scheduler"`` block into the same schedules without building DeepSpeed's object;
:func:`from_deepspeed_config` builds the shim from the block over an optimizer. Sources of truth:
timm 1.0.31's ``timm.scheduler``, DeepSpeed 0.19.8's ``deepspeed.runtime.lr_schedules``,
Megatron-core 0.16.1's ``megatron.core.optimizer_param_scheduler`` (docs/stacks.md).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..schedule.fields import MAX_STEP
from .common import float32_ulps, group_names, learning_rate
from ..schedule.kinds import LearningRate
from ..shim.scheduler import LRShim
from ..schedule.reference import compute_lr

__all__ = [
    "DeepSpeedShim",
    "MegatronShim",
    "TimmShim",
    "deepspeed_config_to_hyperparameters",
    "deepspeed_config_to_schedules",
    "from_deepspeed",
    "from_deepspeed_config",
    "from_megatron",
    "from_timm",
    "megatron_learning_rates",
    "timm_learning_rates",
]

Config = dict[str, Any]


# --- shared pieces ---------------------------------------------------------------------------------


def _line(v0: float, v1: float, steps: int) -> Config:
    """``v0 + ((v1 - v0) / steps) * s`` for ``s < steps`` (then v0: cut it with a ``join``)."""
    return {"warmup_stable_decay": {"learning_rate": v1, "final_learning_rate": v0, "num_ramp_steps": steps,
                                    "num_stable_steps": 0, "num_decay_steps": 0}}


def _join(pieces: Sequence[tuple[int, Config]]) -> Config:
    """``(start, schedule)`` pieces, the first at 0, as one schedule (a join when more than one);
    a piece that starts where the next does is dropped."""
    kept = [(b, c) for i, (b, c) in enumerate(pieces) if i + 1 == len(pieces) or pieces[i + 1][0] > b]
    if len(kept) == 1:
        return kept[0][1]
    return {"join": {"schedules": [c for _, c in kept], "boundaries": [b for b, _ in kept[1:]]}}


def _offset(schedule: Config, steps: int) -> Config:
    return schedule if steps == 0 else {"offset": {"schedule": schedule, "steps": steps}}


def _float(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def _int(value: Any, what: str) -> int:
    """``value`` as an int when it is a whole number (timm and DeepSpeed take floats), else a ValueError.
    ``what`` names the setting: ``"Class(setting"`` reads ``Class(setting=value)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != value // 1:
        raise ValueError(f"{what}={value!r}{')' if '(' in what else ''}: only a whole number of steps is converted")
    return int(value)


class _JumpingShim(LRShim):
    """An ``LRShim`` that can also go straight to a step (the stacks' own ``step`` arguments)."""

    def _go_to(self, step: Any, what: str) -> None:
        """Set every group's rate at ``step``; one more ``step()`` call for ``_step_count``."""
        step = self._check_step(step, what)  # before anything changes
        self._engine.check_groups()
        self._steps += 1
        self._catch_up()
        self._engine.jump(step)

    @classmethod
    def _start(cls, optimizer: Any, configs: list[LearningRate], step: int, backend: str | None,
               device: torch.device | str | None, hyperparameters: list[dict[str, Any]] | None = None,
               multipliers: list[dict[str, float]] | None = None, **attributes: Any) -> Any:
        """A device-mode shim over ``optimizer``'s groups whose current step is ``step``;
        ``hyperparameters`` / ``multipliers``: per group, in group order (empty dicts for none)."""
        if not 0 <= step <= MAX_STEP:  # before the groups are bound
            raise ValueError(f"{cls.__name__}: the source scheduler is at step {step}, outside [0, 2**53 - 2]")
        names = group_names(optimizer.param_groups)
        by_name = (lambda per_group: {n: v for n, v in zip(names, per_group) if v} if per_group else None)
        shim = cls.__new__(cls)
        shim.__dict__.update(attributes)
        LRShim.__init__(shim, optimizer, dict(zip(names, configs)), device_schedule=True, backend=backend,
                        device=device, hyperparameters=by_name(hyperparameters), multipliers=by_name(multipliers))
        if step:
            shim._catch_up()
            shim._engine.jump(step)
        return shim


# --- timm -----------------------------------------------------------------------------------------

TIMM_SUPPORTED = ("timm.scheduler's CosineLRScheduler (a whole cycle_mul), StepLRScheduler, MultiStepLRScheduler, "
                  "PolyLRScheduler, TanhLRScheduler, WSDLRScheduler (stable_fn='constant', decay_fn linear, 1-sqrt "
                  "or cosine) and PlateauLRScheduler (its state carried over), without noise")
_TIMM_CLASSES = ("CosineLRScheduler", "StepLRScheduler", "MultiStepLRScheduler", "PolyLRScheduler", "TanhLRScheduler",
                 "WSDLRScheduler", "PlateauLRScheduler")
_MAX_CYCLES = 64  # cycles checked against timm (and, one piece each, joined: poly, tanh, a k-decay cosine)


class TimmShim(_JumpingShim):
    """The device-mode ``LRShim`` :func:`from_timm` returns: timm's stepping calls, timm's rates.

    ``step(epoch)`` sets the rates at ``t = epoch`` when ``t_in_epochs``, ``step_update(num_updates)``
    at ``t = num_updates`` otherwise; the other call does nothing (timm's ``metric`` is ignored, as
    timm's non-plateau schedulers do). ``step()`` without an argument advances one ``t``.
    ``PlateauLRScheduler``'s: ``step(epoch, metric)`` past the warm-up (``epoch > warmup_t``) feeds
    ``metric`` to the plateau on the device, as timm steps torch's ``ReduceLROnPlateau``.
    """

    t_in_epochs: bool
    plateau_after: int | None = None  #: PlateauLRScheduler's warmup_t: a metric feeds the plateau past it

    def step(self, epoch: int | None = None, metric: Any = None) -> None:
        if epoch is None:
            super().step()
        elif self.plateau_after is not None and metric is not None and epoch > self.plateau_after:
            step = self._check_step(epoch, "epoch")  # both checked before anything changes
            value = self._engine.metric_arg(metric)
            self._engine.check_groups()
            self._catch_up()
            self._engine.move(step - 1)
            self._step_by(1, value)
        elif self.t_in_epochs:
            self._go_to(epoch, "epoch")

    def step_update(self, num_updates: int, metric: Any = None) -> None:
        if not self.t_in_epochs:
            self._go_to(num_updates, "num_updates")


def _timm_class(scheduler: Any) -> str | None:
    """The timm scheduler class name of ``scheduler`` (its exact class), or None."""
    cls = type(scheduler)
    if not cls.__module__.startswith("timm.scheduler."):
        return None
    return cls.__name__


def _timm_cycles(scheduler: Any, name: str) -> tuple[int, int, int]:
    """``(t_initial, cycle_mul, cycle_limit)`` as ints, checked."""
    T0 = _int(scheduler.t_initial, f"{name}(t_initial")
    mul = scheduler.cycle_mul
    if isinstance(mul, bool) or not isinstance(mul, (int, float)) or mul < 1 or mul != mul // 1:
        raise ValueError(f"from_timm: {name}(cycle_mul={mul!r}): only a whole cycle_mul >= 1 is converted "
                         "(cycle lengths t_initial * cycle_mul**i must be whole numbers of steps)")
    return T0, int(mul), int(scheduler.cycle_limit)


def _cycle_start(T0: int, mul: int, n: int) -> int:
    return T0 * n if mul == 1 else T0 * (mul**n - 1) // (mul - 1)


def _timm_main(scheduler: Any, name: str, base: float) -> Config:
    """The schedule after the warm-up, seen from ``t = 0`` (timm's ``t`` after ``warmup_prefix``)."""
    if name in ("StepLRScheduler", "MultiStepLRScheduler"):
        rate = scheduler.decay_rate
        if name == "StepLRScheduler":
            k = _int(scheduler.decay_t, "StepLRScheduler(decay_t")
            if k < 1:
                raise ValueError(f"from_timm: StepLRScheduler(decay_t={scheduler.decay_t!r}) must be >= 1")
            if rate == 1:
                return {"constant": base}
            if rate > 0:
                return {"exponential_decay": {"learning_rate": base, "decay_rate": rate, "decay_steps": k,
                                              "staircase": True}}
            bounds = [k]
            values = [base, base * rate**1]
        else:
            marks = [_int(m, "MultiStepLRScheduler(decay_t") for m in scheduler.decay_t]
            if marks != sorted(marks):
                raise ValueError(f"from_timm: MultiStepLRScheduler(decay_t={scheduler.decay_t!r}) must be sorted "
                                 "(timm bisects it)")
            bounds = sorted({m - 1 for m in marks if m >= 1})  # timm counts the marks <= t + 1
            values = [base * rate ** bisect.bisect_right(marks, b + 1) for b in [-1, *bounds]]
        if not bounds:
            return {"constant": values[0]}
        return {"piecewise_constant": {"learning_rate_boundaries": bounds, "learning_rate_values": values}}
    if name == "WSDLRScheduler":  # stable max(lr, lr_min); from t_initial - decay_t on, down to lr_min
        if scheduler.stable_fn != "constant":
            raise ValueError(f"from_timm: WSDLRScheduler(stable_fn={scheduler.stable_fn!r}): its decaying stable phase "
                             "has no schedule kind; only stable_fn='constant' is converted")
        shape = {"linear": "linear", "1-sqrt": "1-sqrt", "cosine": "cosine"}.get(
            scheduler.decay_fn if isinstance(scheduler.decay_fn, str) else None)
        if shape is None:
            raise ValueError(f"from_timm: WSDLRScheduler(decay_fn={scheduler.decay_fn!r}): only 'linear', '1-sqrt' and "
                             "'cosine' have a schedule kind")
        T, Dt = _int(scheduler.t_initial, "WSDLRScheduler(t_initial"), _int(scheduler.decay_t, "WSDLRScheduler(decay_t")
        return {"warmup_stable_decay": {"learning_rate": max(base, scheduler.lr_min), "final_learning_rate": scheduler.lr_min,
                                        "num_ramp_steps": 0, "num_stable_steps": T - Dt, "num_decay_steps": Dt,
                                        "decay_shape": shape}}
    T0, mul, limit = _timm_cycles(scheduler, name)
    lr_min, decay, k = scheduler.lr_min, scheduler.cycle_decay, getattr(scheduler, "k_decay", 1)
    if limit <= 0:
        return {"constant": lr_min}
    end = _cycle_start(T0, mul, limit) if limit <= _MAX_CYCLES or mul == 1 else math.inf
    if name == "CosineLRScheduler" and k == 1:
        cycles = {"cosine_with_restarts": {"learning_rate": base, "final_learning_rate": lr_min, "cycle_steps": T0,
                                           "cycle_mult": mul, "cycle_decay": decay}}
        return _join([(0, cycles), (end, {"constant": lr_min})]) if end <= MAX_STEP else cycles
    if limit > _MAX_CYCLES:
        raise ValueError(f"from_timm: {name}(cycle_limit={limit}): at most {_MAX_CYCLES} cycles are converted"
                         f"{' with k_decay != 1' if name == 'CosineLRScheduler' else ''} (each is one piece of a join)")
    k_decay = {} if k == 1 else {"k_decay": k}  # timm's t_curr ** k / t_i ** k

    def cycle(i: int) -> Config:
        """Cycle i: its peak base * cycle_decay**i (timm's gamma), its length t_initial * cycle_mul**i."""
        peak, length = base * decay**i, T0 * mul**i
        if name == "CosineLRScheduler":
            return {"cosine_annealing": {"learning_rate": peak, "final_learning_rate": lr_min, "num_steps": length,
                                         **k_decay}}
        if name == "PolyLRScheduler":
            return {"polynomial_decay": {"learning_rate": peak, "end_learning_rate": lr_min, "final_num_steps": length,
                                         "power": scheduler.power, **k_decay}}
        return {"tanh_decay": {"learning_rate": peak, "final_learning_rate": lr_min, "num_steps": length,
                               "lower_bound": scheduler.lb, "upper_bound": scheduler.ub}}

    return _join([*((_cycle_start(T0, mul, i), cycle(i)) for i in range(limit)), (end, {"constant": lr_min})])


def _timm_config(scheduler: Any, name: str, g: int, base: float) -> Config:
    W, init = _int(scheduler.warmup_t, f"{name}(warmup_t"), scheduler.warmup_lr_init
    main = _timm_main(scheduler, name, base)
    if W > 0:  # WSDLRScheduler's warm-up is always a prefix
        prefix = getattr(scheduler, "warmup_prefix", True)
        # TanhLRScheduler warms up to its own rate at warmup_t when that is not a prefix, the others to base
        target = scheduler._get_lr(W)[g] if name == "TanhLRScheduler" and not prefix else base
        main = _join([(0, _line(init, target, W)), (W, main if prefix else _offset(main, W))])
    scale = scheduler.optimizer.param_groups[g].get("lr_scale")
    if scale is not None and scale != 1:
        return {"product": {"schedules": [main, {"constant": scale}]}}  # timm: value * lr_scale
    return main


def _timm_marks(scheduler: Any, name: str) -> list[int]:
    """Steps around each place the schedule changes piece (where a mapping error would show)."""
    W = int(scheduler.warmup_t)
    offset = W if getattr(scheduler, "warmup_prefix", True) else 0
    marks = {0, W}
    if name == "WSDLRScheduler":
        marks.update((W + scheduler.t_initial - scheduler.decay_t, W + scheduler.t_initial))
    elif name in ("CosineLRScheduler", "PolyLRScheduler", "TanhLRScheduler"):
        T0, mul, limit = int(scheduler.t_initial), int(scheduler.cycle_mul), int(scheduler.cycle_limit)
        for n in range(1, min(max(limit, 0), _MAX_CYCLES) + 1):
            start = _cycle_start(T0, mul, n) + offset
            if start > MAX_STEP // 2:
                break
            marks.update((start, start + T0 // 2))
    elif name == "StepLRScheduler":
        marks.update(offset + int(scheduler.decay_t) * n for n in (1, 2, 3))
    else:
        marks.update(offset + int(m) - 1 for m in scheduler.decay_t)
    return sorted(s for m in marks for s in (m - 1, m, m + 1) if 0 <= s <= MAX_STEP)


def _timm_check(scheduler: Any, configs: list[LearningRate], name: str, t: int) -> None:
    """Refuse when the conversion and timm's own ``_get_lr`` differ by more than one float32 ulp at
    a step around a change of piece (timm finds the cycle with a float ``log``, which can miss a
    restart by a step), or when the groups' rates are not timm's at ``t``."""
    scales = [group.get("lr_scale") for group in scheduler.optimizer.param_groups]
    for s in _timm_marks(scheduler, name):
        for g, (value, config) in enumerate(zip(scheduler._get_lr(s), configs)):
            have = value if scales[g] is None else value * scales[g]  # timm's update_groups
            want = compute_lr(config, s)
            if float32_ulps(have, want) > 1:
                raise ValueError(f"from_timm: {name} gives {have!r} at t={s} (param group {g}), its conversion "
                                 f"{want!r}: timm's cycle arithmetic is not one schedule kind's here")
    for g, (group, config) in enumerate(zip(scheduler.optimizer.param_groups, configs)):
        have, want = _float(group["lr"]), compute_lr(config, t)
        if not math.isfinite(have) or float32_ulps(have, want) > 1:
            if t == 0 and not scheduler.warmup_t and have == _float(group[scheduler._initial_param_group_field]) * (
                    scales[g] if scales[g] is not None else 1.0):
                raise ValueError(
                    f"from_timm: param group {g} has its base lr {have!r}, which timm sets at construction, but {name} "
                    f"gives {want!r} at t=0 (lr_min above the base lr); timm's first step() / step_update() call sets "
                    "it: call scheduler.step(0) (t_in_epochs) or scheduler.step_update(0) before converting")
            raise ValueError(
                f"from_timm: param group {g} has lr {have!r}, but {name} gives {want!r} at t={t}; timm keeps no "
                "step count: pass t= the last epoch (t_in_epochs) or update count given to step() / step_update()")


def _timm_plateau(scheduler: Any, g: int, base: float) -> Config:
    """``PlateauLRScheduler``'s group ``g``: timm's warm-up ``init + t * ((base - init) / W)`` for
    ``t <= W`` (times ``lr_scale``), then a ``plateau`` from that last rate with timm's torch
    ``ReduceLROnPlateau``'s settings (its ``min_lr`` applies to the scaled rate, as torch's does).
    Without a warm-up the plateau starts from ``base * lr_scale``, which timm's constructor sets
    (its ``step(0)``, which would set ``warmup_lr_init``, is not reproduced)."""
    inner = scheduler.lr_scheduler
    if type(inner) is not torch.optim.lr_scheduler.ReduceLROnPlateau:
        raise ValueError(f"from_timm: PlateauLRScheduler over a {type(inner).__name__}, not torch's ReduceLROnPlateau")
    W, init = _int(scheduler.warmup_t, "PlateauLRScheduler(warmup_t"), scheduler.warmup_lr_init
    settings = {"mode": inner.mode, "factor": inner.factor, "patience": inner.patience, "threshold": inner.threshold,
                "threshold_mode": inner.threshold_mode, "cooldown": inner.cooldown,
                "min_learning_rate": inner.min_lrs[g], "eps": inner.eps}
    scale = scheduler.optimizer.param_groups[g].get("lr_scale")
    if W <= 0:
        return {"plateau": {"learning_rate": base if scale is None else base * scale, **settings}}
    end = init + W * scheduler.warmup_steps[g]  # the rate timm's step(W) sets, before lr_scale
    pieces = [(0, _line(init, base, W)), (W, {"constant": end})]
    if scale is not None and scale != 1:
        pieces = [(b, {"product": {"schedules": [c, {"constant": scale}]}}) for b, c in pieces]
        end = end * scale
    return _join([*pieces, (W + 1, {"plateau": {"learning_rate": end, **settings}})])


def timm_learning_rates(scheduler: Any) -> list[LearningRate]:
    """One ``LearningRate`` per param group: the group's rate at timm's ``t`` (``lr_scale`` included).

    Raises:
        TypeError: not one of ``TIMM_SUPPORTED``.
        ValueError: a supported class with settings no kind represents (noise, a fractional
            ``cycle_mul`` or ``decay_t``, more than 64 cycles where each is a piece...).
    """
    name = _timm_class(scheduler)
    if name not in _TIMM_CLASSES:
        raise TypeError(f"from_timm cannot convert {type(scheduler).__name__}; supported: {TIMM_SUPPORTED}")
    if scheduler.param_group_field != "lr":
        raise ValueError(f"from_timm: {name} schedules {scheduler.param_group_field!r}, not 'lr'")
    if scheduler.noise_range_t is not None:
        raise ValueError(f"from_timm: {name}(noise_range_t={scheduler.noise_range_t!r}) adds seeded random noise "
                         "to the rate, which no schedule kind represents; construct it with noise_range_t=None")
    make = _timm_plateau if name == "PlateauLRScheduler" else (lambda s, g, b: _timm_config(s, name, g, b))
    return [learning_rate(make(scheduler, g, float(base)), f"from_timm: {name} (param group {g})")
            for g, base in enumerate(scheduler.base_values)]


def from_timm(scheduler: Any, *, t: int = 0, backend: str | None = None,
              device: torch.device | str | None = None) -> TimmShim:
    """timm ``scheduler``'s rates, evaluated on the device: a :class:`TimmShim`.

    timm keeps no step count: ``t`` is the last ``epoch`` / ``num_updates`` given to its
    ``step()`` / ``step_update()`` (0, a fresh scheduler, by default); the groups' rates must be
    timm's at ``t``. The training loop goes on calling ``step(epoch)`` and
    ``step_update(num_updates)`` on the returned shim (do not step timm's any more).

    Raises:
        TypeError / ValueError: see :func:`timm_learning_rates`; also a ``ValueError`` when timm's
            rates at a change of piece, or the groups' rates at ``t``, are not the conversion's.
            Nothing is touched.
    """
    configs = timm_learning_rates(scheduler)
    name = _timm_class(scheduler)
    step = _int(t, "from_timm: t")
    if not 0 <= step <= MAX_STEP:
        raise ValueError(f"from_timm: t={t!r} must be in [0, 2**53 - 2]")
    if name == "PlateauLRScheduler":
        return _from_timm_plateau(scheduler, configs, step, backend, device)
    _timm_check(scheduler, configs, name, step)
    return TimmShim._start(scheduler.optimizer, configs, step, backend, device, t_in_epochs=bool(scheduler.t_in_epochs))


def _from_timm_plateau(scheduler: Any, configs: list[LearningRate], t: int, backend: str | None,
                       device: torch.device | str | None) -> TimmShim:
    """``PlateauLRScheduler`` at ``t``: within the warm-up the groups hold its rates; past it the
    plateau goes on from the groups' rates and torch's ``best``, ``num_bad_epochs`` and cooldown."""
    W = int(scheduler.warmup_t)
    inner = scheduler.lr_scheduler
    groups = scheduler.optimizer.param_groups
    if t <= W:
        for g, (group, config) in enumerate(zip(groups, configs)):
            have, want = _float(group["lr"]), compute_lr(config, t)
            if float32_ulps(have, want) > 1:
                raise ValueError(f"from_timm: param group {g} has lr {have!r}, but PlateauLRScheduler gives {want!r} "
                                 f"at t={t}; pass t= the last epoch given to its step()")
    states = [[_float(group["lr"]), float(inner.best), float(inner.num_bad_epochs), float(inner.cooldown_counter)]
              for group in groups] if t > W else None
    shim = TimmShim._start(scheduler.optimizer, configs, t, backend, device, t_in_epochs=True, plateau_after=W)
    if states is not None:
        names = shim.group_names
        shim.load_plateau_states({(name, "lr"): state for name, state in zip(names, states)})
    return shim


# --- DeepSpeed ------------------------------------------------------------------------------------

DEEPSPEED_SUPPORTED = ("deepspeed.runtime.lr_schedules' WarmupLR, WarmupDecayLR and WarmupCosineLR "
                       "(warmup_type 'log' or 'linear'), LRRangeTest (not its staircase), and OneCycle (its "
                       "stairs; its post-cycle lr decay where decay_step_size / decay_lr_rate is a whole number; "
                       "its momentum cycling and decay over a graph-safe optimizer)")

#: Each scheduler's parameters and their defaults in DeepSpeed 0.19.8 (``...``: required).
DEEPSPEED_PARAMS: dict[str, dict[str, Any]] = {
    "WarmupLR": {"warmup_min_lr": 0.0, "warmup_max_lr": None, "warmup_num_steps": 1000, "warmup_type": "log",
                 "last_batch_iteration": -1},
    "WarmupDecayLR": {"total_num_steps": ..., "warmup_min_lr": 0.0, "warmup_max_lr": 0.001,
                      "warmup_num_steps": 1000, "warmup_type": "log", "last_batch_iteration": -1},
    "WarmupCosineLR": {"total_num_steps": ..., "warmup_min_ratio": 0.0, "warmup_num_steps": 1000,
                       "cos_min_ratio": 0.0001, "warmup_type": "log", "last_batch_iteration": -1},
    "OneCycle": {"cycle_min_lr": ..., "cycle_max_lr": ..., "decay_lr_rate": 0.0, "cycle_first_step_size": 2000,
                 "cycle_second_step_size": None, "cycle_first_stair_count": 0, "cycle_second_stair_count": None,
                 "decay_step_size": 0, "cycle_momentum": True, "cycle_min_mom": 0.8, "cycle_max_mom": 0.9,
                 "decay_mom_rate": 0.0, "last_batch_iteration": -1},
    "LRRangeTest": {"lr_range_test_min_lr": 1e-3, "lr_range_test_step_size": 2000, "lr_range_test_step_rate": 1.0,
                    "lr_range_test_staircase": False, "last_batch_iteration": -1},
}


class DeepSpeedShim(_JumpingShim):
    """The device-mode ``LRShim`` :func:`from_deepspeed` returns. Its step is DeepSpeed's
    ``last_batch_iteration + 1`` (DeepSpeed starts at -1); ``step(k)`` goes to iteration ``k``."""

    def step(self, last_batch_iteration: int | None = None) -> None:
        if last_batch_iteration is None:
            super().step()
        else:
            self._go_to(_int(last_batch_iteration, "last_batch_iteration") + 1, "last_batch_iteration + 1")

    @property
    def last_batch_iteration(self) -> int:
        return self.last_epoch - 1


def _per_group(value: Any, count: int, what: str) -> list[float]:
    """DeepSpeed's ``_format_param``: a scalar for every group, or one value per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"DeepSpeed {what}: expected {count} values (one per param group), got {len(value)}")
        return [_float(v) for v in value]
    return [_float(value)] * count


def _check_warmup_type(kind: str, warmup_type: Any) -> None:
    if warmup_type not in ("log", "linear"):
        raise ValueError(f"DeepSpeed {kind}(warmup_type={warmup_type!r}): only 'log' (the default) and 'linear' "
                         "are converted (DeepSpeed itself would warn and use 'log')")


def _ds_ramp(warmup_type: str, lo: float, hi: float, W: int) -> Config:
    """DeepSpeed's warm-up over its ``n < W``: ``lo + (hi - lo) * gamma``, ``gamma`` being
    ``(1.0 / log(W)) * log(n + 1)`` ('log', exactly: ``log_warmup``) or ``n / W`` ('linear')."""
    if warmup_type == "log":
        return {"log_warmup": {"learning_rate": hi, "initial_learning_rate": lo, "num_steps": W}}
    return _line(lo, hi, W)


def _ds_warmup(kind: str, mins: list[float], maxs: list[float], W: int, warmup_type: Any,
               total: int | None) -> list[Config]:
    """WarmupLR (``total`` None) and WarmupDecayLR, over the shim's step ``n + 1``."""
    _check_warmup_type(kind, warmup_type)
    out = []
    for lo, hi in zip(mins, maxs):
        delta = hi - lo
        if total is None:
            after: Config = {"constant": lo + delta * 1.0}
        elif total - W >= 1:  # lo + delta * ((total - n) / (total - W)), then lo
            after = {"polynomial_decay": {"learning_rate": hi, "end_learning_rate": lo, "final_num_steps": total - W}}
        else:
            after = {"constant": lo + delta * 0.0}
        out.append(_join([(0, {"constant": lo}), (1, _ds_ramp(warmup_type, lo, hi, W)), (1 + W, after)]))
    return out


def _ds_cosine(orgs: list[float], W: int, total: int, warmup_min_ratio: float, cos_min_ratio: float,
               warmup_type: Any) -> list[Config]:
    """WarmupCosineLR: ``org_lr * ratio(n)``, 0.0 before the first step."""
    _check_warmup_type("WarmupCosineLR", warmup_type)
    N = max(1, total - W)
    cosine = {"cosine_annealing": {"learning_rate": 1.0, "final_learning_rate": cos_min_ratio, "num_steps": N}}
    ratio = _join([(0, _ds_ramp(warmup_type, warmup_min_ratio, 1.0, W)), (W, _offset(cosine, 1)),  # its step: n - W + 1
                   (W + N - 1, {"constant": cos_min_ratio})])
    return [_join([(0, {"constant": 0.0}), (1, {"product": {"schedules": [{"constant": org}, ratio]}})])
            for org in orgs]


_MAX_STAIRS = 1024  # OneCycle stairs per half cycle (each a table segment)

#: OneCycle's post-cycle decay settings: (rate, decay_step_size), None where DeepSpeed skips it.
Decay = tuple[float, float] | None


def _ds_one_cycle(mins: list[float], maxs: list[float], first: Any, second: Any, stairs: tuple[Any, Any],
                  lr_decay: Decay, momentum: tuple[list[Any], list[Any], Decay] | None,
                  ) -> tuple[list[Config], list[dict[str, Config]] | None]:
    """OneCycle over the shim's step ``b = n + 1`` (DeepSpeed's ``batch_iteration``): min -> max
    over ``first`` steps, max -> min over ``second`` (stairs when the half's count is > 0), min at
    ``b = first + second``, then the post-cycle decay (or min). ``momentum``: the ``(min_moms,
    max_moms, decay)`` of its momentum cycling, or None. Returns the lr configs and, with momentum,
    each group's ``beta1`` / ``beta2`` (:func:`_ds_momentum`)."""
    U, D = _int(first, "DeepSpeed OneCycle(cycle_first_step_size"), _int(
        second, "DeepSpeed OneCycle(cycle_second_step_size")
    if U <= 0 or D < 0:
        raise ValueError(f"DeepSpeed OneCycle(cycle_first_step_size={first!r}, cycle_second_step_size={second!r}): "
                         "the first must be positive, the second non-negative")
    counts = tuple(_int(c, f"DeepSpeed OneCycle(cycle_{half}_stair_count")
                   for c, half in zip(stairs, ("first", "second")))
    shape = _ds_cycle_shape(U, D, counts)
    decay = _ds_lr_decay(lr_decay)
    lrs = [_ds_cycle(shape, U, D, lo, hi, lambda x, lo=lo, hi=hi: lo + (hi - lo) * x, decay(lo))
           for lo, hi in zip(mins, maxs)]
    return lrs, None if momentum is None else _ds_momentum(shape, U, D, *momentum)


def _ds_scale(b: int, U: int, D: int, stairs: tuple[int, int]) -> float:
    """DeepSpeed's ``OneCycle._get_scale_factor`` at ``batch_iteration`` b, in its float operations
    (the half's stair count, when > 0, quantises it to ``floor(position) / count``)."""
    first, second = float(U), float(D)
    total = first + second
    ratio = first / total
    cycle = math.floor(1 + b / total)
    x = 1. + b / total - cycle
    if x <= ratio:
        scale, count = x / ratio, stairs[0]
    else:
        scale, count = (x - 1) / (ratio - 1), stairs[1]
    if count > 0:
        at = b % total
        position = at * count / first if at <= first else (total - at) * count / second
        scale = math.floor(position) / count
    return scale


def _ds_cycle_shape(U: int, D: int, stairs: tuple[int, int]) -> list[tuple[int, str | float]]:
    """OneCycle's scale over ``b`` in ``[0, U + D)``: ``(start, piece)`` with piece ``"up"`` (a line
    0 -> 1 over U), ``"down"`` (1 -> 0 over D, one step in when it starts at U + 1) or a scale held
    (a stair, DeepSpeed's own value at its first step; constant over it, as ``floor`` is)."""
    k1, k2 = stairs
    if k1 <= 0 and k2 <= 0:
        return [(0, "up"), (U, "down")] if D else [(0, "up")]
    total = U + D
    for k, size, half in ((k1, U, "first"), (k2, D, "second")):
        if k > 0 and min(k, size) > _MAX_STAIRS:
            raise ValueError(f"DeepSpeed OneCycle(cycle_{half}_stair_count={k}) over {size} steps: more than "
                             f"{_MAX_STAIRS} stairs (one table segment each) are not converted")
    if k1 > 0:  # position b * k1 / U: stair j from ceil(j * U / k1)
        starts = range(U) if k1 >= U else sorted({-(-j * U // k1) for j in range(k1)})
        pieces: list[tuple[int, str | float]] = [(b, _ds_scale(b, U, D, stairs)) for b in starts]
    else:
        pieces = [(0, "up")]
    pieces.append((U, _ds_scale(U, U, D, stairs)))  # the turn (min again when D is 0)
    if D >= 2:  # b in [U + 1, U + D): position (U + D - b) * k2 / D, stair j from U + D + 1 - ceil(j * D / k2)
        if k2 > 0:
            drops = (total + 1 - -(-j * D // k2) for j in range(1, k2 + 1))
            starts = range(U + 1, total) if k2 >= D else sorted({U + 1, *(b for b in drops if U + 1 < b < total)})
            pieces += [(b, _ds_scale(b, U, D, stairs)) for b in starts]
        else:
            pieces.append((U + 1, "down"))
    return pieces


def _ds_cycle(shape: list[tuple[int, str | float]], U: int, D: int, start: float, turn: float, value: Any,
              after: Config | None) -> Config:
    """One group's OneCycle over the shim's step: ``shape`` (:func:`_ds_cycle_shape`) from ``start``
    (scale 0) to ``turn`` (scale 1), ``value(scale)`` DeepSpeed's formula at a stair; ``start``
    again at ``U + D`` (DeepSpeed's scale is 0 there), then ``after`` from ``U + D + 1`` (or
    ``start``)."""
    pieces: list[tuple[int, Config]] = []
    for b, piece in shape:
        if piece == "up":
            pieces.append((b, _line(start, turn, U)))
        elif piece == "down":
            pieces.append((b, _offset(_line(turn, start, D), b - U)))
        else:
            pieces.append((b, {"constant": value(piece)}))
    tail = [(U + D, {"constant": start})] + ([(U + D + 1, after)] if after is not None else [])
    return _join([*pieces, *tail])


def _ds_decay_timescale(decay: tuple[float, float]) -> int:
    """``decay_step_size / decay_lr_rate`` as a whole number of steps ts >= 1 (``rate * (k / size)``
    is ``k / ts``), else a ValueError naming both."""
    rate, size = decay
    ts = size / rate
    whole = round(ts) if math.isfinite(ts) else 0
    if whole < 1 or abs(ts - whole) > 4 * math.ulp(whole):
        raise ValueError(f"DeepSpeed OneCycle(decay_lr_rate={rate!r}, decay_step_size={size!r}): the post-cycle decay "
                         "min_lr / (1 + rate * k / size) converts (as min_lr / (1 + k / ts), a product of two "
                         "inverse_sqrt) only when decay_step_size / decay_lr_rate is a whole number of steps >= 1, "
                         f"here {ts!r}: no schedule kind has a fractional or negative timescale")
    return whole


def _ds_lr_decay(decay: Decay) -> Any:
    """``min_lr -> the post-cycle lr decay`` over the steps ``k = 1, 2, ...`` after the cycle:
    DeepSpeed's ``min_lr / (1 + rate * (k / size))`` as ``min_lr * (1 / sqrt(y)) * (1 / sqrt(y))``,
    ``y = (k + ts) / ts`` (two ``inverse_sqrt`` factors, an ``offset`` of 1); None where skipped."""
    if decay is None:
        return lambda lo: None
    ts = _ds_decay_timescale(decay)

    def factor(L: float) -> Config:
        return {"inverse_sqrt": {"learning_rate": L, "num_ramp_steps": 0, "timescale": ts}}
    return lambda lo: _offset({"product": {"schedules": [factor(lo), factor(1.0)]}}, 1) if lo else {"constant": lo}


def _ds_rise(v0: float, rate: float, size: float, steps: int) -> Config:
    """DeepSpeed's ``v0 * (1 + rate * (k / size))`` for ``k < steps`` (rising without end: ``steps``
    reaches the last step), a line from v0 to its value at ``steps``."""
    return _line(v0, v0 * (1 + rate * (steps / size)), steps)


def _ds_range_test(mins: list[float], size: Any, rate: Any, staircase: Any) -> list[Config]:
    """LRRangeTest over the shim's step ``b``: ``min_lr * (1 + rate * (b / size))``, a line rising
    without end (:func:`_ds_rise`, DeepSpeed's own value at the last step)."""
    if staircase:
        raise ValueError(f"DeepSpeed LRRangeTest(lr_range_test_staircase={staircase!r}): the staircase "
                         "min_lr * (1 + rate * floor(b / size)) rises by a stair every size steps without end: no "
                         "schedule kind has it (only the continuous rise is converted)")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"DeepSpeed LRRangeTest(lr_range_test_step_size={size!r}): must be a positive integer")
    rate = _float(rate)
    if rate < 0:
        raise ValueError(f"DeepSpeed LRRangeTest(lr_range_test_step_rate={rate!r}): the rate falls below 0 (a "
                         "schedule is >= 0); only a rate >= 0 is converted")
    return [_join([(0, _ds_rise(lo, rate, size, MAX_STEP)), (MAX_STEP, {"constant": lo * (1 + rate * (MAX_STEP / size))})])
            for lo in mins]


def _ds_momentum(shape: list[tuple[int, str | float]], U: int, D: int, min_moms: list[Any], max_moms: list[Any],
                 decay: Decay) -> list[dict[str, Config]]:
    """OneCycle's momentum cycling, per group: ``betas = (max_mom - (max_mom - min_mom) * scale,
    0.99)`` during the cycle, then ``(max_mom * (1 + rate * (k / size)), 0.99)`` (the post-cycle
    momentum decay, a line rising with k: ``_line`` to the last step) or ``(max_mom, 0.99)``:
    ``beta1`` on the lr's shape from max_mom to min_mom, and ``beta2`` the constant 0.99 that
    DeepSpeed writes with it. Before the first step DeepSpeed's constructor sets ``(min_mom, 0.99)``
    (its formula would give max_mom there): so does step 0 here, also when ``step(-1)`` goes back
    to it (where DeepSpeed's formula gives max_mom)."""
    out = []
    for lo, hi in zip(min_moms, max_moms):
        low, high = _float(lo[0]), _float(hi[0])
        after = None
        if decay is not None:  # beta0 * (1 + rate * (k / size)) at k = 1, 2, ...: a line from k = 0
            rate, size = decay
            if rate / size < 0:
                raise ValueError(f"DeepSpeed OneCycle(decay_mom_rate={rate!r}, decay_step_size={size!r}): the "
                                 "post-cycle momentum max_mom * (1 + rate * k / size) falls below 0 (a schedule "
                                 "is >= 0); only a rising one (rate / size > 0) is converted")
            after = _offset(_ds_rise(high, rate, size, MAX_STEP - (U + D) + 1), 1)  # k = n - U - D <= its steps
        cycle = _ds_cycle(shape, U, D, high, low, lambda x, low=low, high=high: high - (high - low) * x, after)
        out.append({"beta1": _join([(0, {"constant": low}), (1, _offset(cycle, 1))]),
                    "beta2": {"constant": _float(lo[1])}})
    return out


def _deepspeed_from_params(kind: str, params: Mapping[str, Any], base_lrs: Sequence[float], betas: bool,
                           ) -> tuple[list[Config], list[dict[str, Config]] | None]:
    """The block's lr configs and, for ``OneCycle`` with ``cycle_momentum`` over an optimizer with
    ``betas`` (DeepSpeed's own condition), its ``beta1`` / ``beta2`` configs (else None)."""
    defaults = DEEPSPEED_PARAMS.get(kind)
    if defaults is None:
        raise TypeError(f"deepspeed: cannot convert scheduler type {kind!r}; supported: {DEEPSPEED_SUPPORTED}")
    unknown = sorted(set(params) - set(defaults))
    missing = sorted(k for k, v in defaults.items() if v is ... and k not in params)
    if unknown or missing:
        raise ValueError(f"deepspeed {kind} params {sorted(params)}: "
                         f"{'unknown ' + str(unknown) if unknown else 'missing ' + str(missing)}")
    p = {**defaults, **params}
    count = len(base_lrs)
    if kind == "OneCycle":  # DeepSpeed's _initialize_cycle / _initialize_lr / _initialize_momentum
        first = _float(p["cycle_first_step_size"])
        second = first if p["cycle_second_step_size"] is None else _float(p["cycle_second_step_size"])
        stairs2 = p["cycle_first_stair_count"] if p["cycle_second_stair_count"] is None else p["cycle_second_stair_count"]
        size = p["decay_step_size"]

        def decay(rate: Any) -> Decay:
            return None if math.isclose(size, 0) or math.isclose(rate, 0) else (rate, size)
        momentum = None
        if p["cycle_momentum"] and betas:
            momentum = ([(m, 0.99) for m in _per_group(p["cycle_min_mom"], count, "cycle_min_mom")],
                        [(m, 0.99) for m in _per_group(p["cycle_max_mom"], count, "cycle_max_mom")],
                        decay(p["decay_mom_rate"]))
        return _ds_one_cycle(_per_group(p["cycle_min_lr"], count, "cycle_min_lr"),
                             _per_group(p["cycle_max_lr"], count, "cycle_max_lr"), first, second,
                             (p["cycle_first_stair_count"], stairs2), decay(p["decay_lr_rate"]), momentum)
    if kind == "LRRangeTest":
        return _ds_range_test(_per_group(p["lr_range_test_min_lr"], count, "lr_range_test_min_lr"),
                              p["lr_range_test_step_size"], p["lr_range_test_step_rate"],
                              p["lr_range_test_staircase"]), None
    W = p["warmup_num_steps"]
    if isinstance(W, bool) or not isinstance(W, int) or W <= 0:
        raise ValueError(f"deepspeed {kind}: warmup_num_steps must be a positive integer, got {W!r}")
    W = max(2, W)
    if kind == "WarmupCosineLR":
        return _ds_cosine([float(b) for b in base_lrs], W, _int(p["total_num_steps"], f"DeepSpeed {kind}(total_num_steps"),
                          _float(p["warmup_min_ratio"]), _float(p["cos_min_ratio"]), p["warmup_type"]), None
    maxs = list(base_lrs) if p["warmup_max_lr"] is None else p["warmup_max_lr"]
    total = _int(p["total_num_steps"], f"DeepSpeed {kind}(total_num_steps") if kind == "WarmupDecayLR" else None
    return _ds_warmup(kind, _per_group(p["warmup_min_lr"], count, "warmup_min_lr"),
                      _per_group(maxs, count, "warmup_max_lr"), W, p["warmup_type"], total), None


def _deepspeed_block(config: Mapping[str, Any], base_lrs: Sequence[float], betas: bool,
                     ) -> tuple[list[LearningRate], list[dict[str, LearningRate]] | None]:
    if not isinstance(config, Mapping) or "type" not in config:
        raise ValueError(f"deepspeed scheduler config must be a mapping with 'type' and 'params', got {config!r}")
    unknown = sorted(set(config) - {"type", "params"})
    if unknown:
        raise ValueError(f"deepspeed scheduler config has unknown keys {unknown} (expected 'type' and 'params')")
    kind = config["type"]
    lrs, momentum = _deepspeed_from_params(kind, config.get("params") or {}, [float(b) for b in base_lrs], betas)
    return ([learning_rate(c, f"deepspeed {kind} (param group {g})") for g, c in enumerate(lrs)],
            None if momentum is None else [{k: learning_rate(c, f"deepspeed {kind} {k} (param group {g})")
                                            for k, c in m.items()} for g, m in enumerate(momentum)])


def deepspeed_config_to_schedules(config: Mapping[str, Any], base_lrs: Sequence[float]) -> list[LearningRate]:
    """DeepSpeed's JSON ``"scheduler"`` block (``{"type": ..., "params": {...}}``) as one
    ``LearningRate`` per param group, over DeepSpeed's ``last_batch_iteration + 1``.

    ``base_lrs``: each group's ``lr`` before the scheduler (``WarmupLR`` without
    ``warmup_max_lr`` warms up to it, ``WarmupCosineLR`` scales it). Parameters and defaults are
    DeepSpeed 0.19.8's (:data:`DEEPSPEED_PARAMS`). ``OneCycle``'s momentum cycling
    (``cycle_momentum``, true by default, which DeepSpeed keeps for an optimizer with betas) is not
    in these: :func:`deepspeed_config_to_hyperparameters` gives it, :func:`from_deepspeed_config`
    both.

    Raises:
        TypeError: a type other than those of ``DEEPSPEED_SUPPORTED``.
        ValueError: unknown or missing params, or settings no kind represents.
    """
    return _deepspeed_block(config, base_lrs, betas=False)[0]


def deepspeed_config_to_hyperparameters(config: Mapping[str, Any], num_groups: int) -> list[dict[str, LearningRate]]:
    """The hyperparameter schedules of DeepSpeed's JSON ``"scheduler"`` block, per param group, over
    ``last_batch_iteration + 1``: ``OneCycle``'s momentum cycling (``cycle_momentum``, its default)
    as ``{"beta1": ..., "beta2": ...}`` (DeepSpeed writes ``betas = (momentum, 0.99)``), for an
    optimizer with betas (DeepSpeed turns the cycling off for one without); empty dicts otherwise.
    They need ``GraphSafeAdam`` / ``GraphSafeAdamW`` (``LRShim(..., hyperparameters=...)``).

    Raises:
        TypeError / ValueError: as :func:`deepspeed_config_to_schedules`.
    """
    _, momentum = _deepspeed_block(config, [0.0] * num_groups, betas=True)
    return momentum or [{} for _ in range(num_groups)]


def from_deepspeed_config(config: Mapping[str, Any], optimizer: Any, *, backend: str | None = None,
                          device: torch.device | str | None = None) -> DeepSpeedShim:
    """The scheduler DeepSpeed would build from its JSON ``"scheduler"`` block over ``optimizer``,
    evaluated on the device, without DeepSpeed: a :class:`DeepSpeedShim` at the block's
    ``last_batch_iteration`` (-1 by default). Each group's ``lr`` is its base lr; ``OneCycle``
    cycles the betas when the block says ``cycle_momentum`` and ``optimizer.defaults`` has
    ``betas`` (DeepSpeed's condition), which needs ``GraphSafeAdam`` / ``GraphSafeAdamW``.

    Raises:
        TypeError / ValueError: as :func:`deepspeed_config_to_schedules`, and an optimizer that
            reads the cycled betas by value. Nothing is touched.
    """
    base_lrs = [_float(group["lr"]) for group in optimizer.param_groups]
    configs, momentum = _deepspeed_block(config, base_lrs, betas="betas" in getattr(optimizer, "defaults", {}))
    last = (config.get("params") or {}).get("last_batch_iteration", -1)
    step = _int(last, "DeepSpeed scheduler params(last_batch_iteration") + 1
    if step < 0:
        raise ValueError(f"from_deepspeed_config: last_batch_iteration={last!r} must be >= -1")
    return DeepSpeedShim._start(optimizer, configs, step, backend, device, hyperparameters=momentum)


def _deepspeed_parts(scheduler: Any) -> tuple[list[Config], list[dict[str, Config]] | None]:
    """The object's lr configs and, for ``OneCycle`` cycling momentum, its beta configs."""
    kind = type(scheduler).__name__
    if type(scheduler).__module__ != "deepspeed.runtime.lr_schedules" or kind not in DEEPSPEED_PARAMS:
        raise TypeError(f"from_deepspeed cannot convert {kind}; supported: {DEEPSPEED_SUPPORTED}")
    s = scheduler
    if kind == "OneCycle":  # cycle_momentum is False when DeepSpeed found no betas in the optimizer
        momentum = None
        if s.cycle_momentum:
            momentum = (s.min_moms, s.max_moms, None if s.skip_mom_decay else (s.decay_mom_rate, s.decay_step_size))
        return _ds_one_cycle([_float(v) for v in s.min_lrs], [_float(v) for v in s.max_lrs], s.first_step_size,
                             s.second_step_size, (s.first_stair_count, s.second_stair_count),
                             None if s.skip_lr_decay else (s.decay_lr_rate, s.decay_step_size), momentum)
    if kind == "LRRangeTest":
        return _ds_range_test([_float(v) for v in s.min_lr], s.step_size, s.step_rate, s.staircase), None
    if kind == "WarmupCosineLR":
        return _ds_cosine([_float(v) for v in s.org_lrs], s.warmup_num_steps,
                          _int(s.total_num_steps, f"DeepSpeed {kind}(total_num_steps"),
                          _float(s.warmup_min_ratio), _float(s.cos_min_ratio), s.warmup_type), None
    total = _int(s.total_num_steps, f"DeepSpeed {kind}(total_num_steps") if kind == "WarmupDecayLR" else None
    return _ds_warmup(kind, [_float(v) for v in s.min_lrs], [_float(v) for v in s.max_lrs], s.warmup_num_steps,
                      s.warmup_type, total), None


def from_deepspeed(scheduler: Any, *, backend: str | None = None,
                   device: torch.device | str | None = None) -> DeepSpeedShim:
    """DeepSpeed ``scheduler``'s rates (one of ``DEEPSPEED_SUPPORTED``), evaluated on the device,
    from its current ``last_batch_iteration`` on: a :class:`DeepSpeedShim` (step it instead).

    ``OneCycle``'s momentum cycling (``cycle_momentum=True``, its default, over an optimizer with
    betas) becomes ``beta1`` and ``beta2`` schedules, which need ``GraphSafeAdam`` /
    ``GraphSafeAdamW`` (the shim refuses an optimizer that reads betas by value).

    Raises:
        TypeError: an unsupported scheduler (not one of ``DEEPSPEED_SUPPORTED``).
        ValueError: settings no kind represents (``OneCycle``'s post-cycle lr decay over a fractional
            ``decay_step_size / decay_lr_rate``...), or an optimizer that reads the cycled betas by
            value. Nothing is touched.
    """
    lrs, momentum = _deepspeed_parts(scheduler)
    configs = [learning_rate(c, f"from_deepspeed: {type(scheduler).__name__} (param group {g})")
               for g, c in enumerate(lrs)]
    step = _int(scheduler.last_batch_iteration, "last_batch_iteration") + 1
    if step < 0:
        raise ValueError(f"from_deepspeed: last_batch_iteration={scheduler.last_batch_iteration!r} must be >= -1")
    return DeepSpeedShim._start(scheduler.optimizer, configs, step, backend, device, hyperparameters=momentum)


# --- Megatron-core --------------------------------------------------------------------------------

MEGATRON_STYLES = ("constant", "linear", "cosine", "inverse-square-root", "WSD")
MEGATRON_WSD_STYLES = {"linear": "linear", "cosine": "cosine", "exponential": "exponential", "minus_sqrt": "1-sqrt"}


class MegatronShim(_JumpingShim):
    """The device-mode ``LRShim`` :func:`from_megatron` returns: ``step(increment)`` adds
    ``increment`` to ``num_steps`` (the shim's step), as Megatron's ``OptimizerParamScheduler`` does."""

    def step(self, increment: int | None = None) -> None:
        if increment is None or (type(increment) is int and increment == 1):
            super().step()
        else:
            if isinstance(increment, bool) or not isinstance(increment, int) or increment < 0:
                raise ValueError(f"increment must be an int >= 0, got {increment!r}")
            self._go_to(self.last_epoch + increment, "num_steps + increment")

    @property
    def num_steps(self) -> int:
        return self.last_epoch


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
    W = _int(s.lr_warmup_steps, "from_megatron: OptimizerParamScheduler(lr_warmup_steps")
    D, style = _int(s.lr_decay_steps, "from_megatron: OptimizerParamScheduler(lr_decay_steps"), s.lr_decay_style
    if style not in MEGATRON_STYLES:
        raise ValueError(f"from_megatron: lr_decay_style={style!r}; supported: {MEGATRON_STYLES}")
    warmup = [(0, _line(init, hi, W))] if W > 0 else []
    if style == "constant":
        return _join([*warmup, (W, {"constant": hi})])
    if style == "inverse-square-root":  # max(min_lr, max_lr * sqrt(max(W, 1)) / sqrt(max(n, 1)))
        B = max(W, 1)
        first = warmup or [(0, {"constant": hi})]
        end = _megatron_inverse_sqrt_end(s, group, B)
        return _join([*first, (B, {"inverse_sqrt": {"learning_rate": hi, "num_ramp_steps": 0, "timescale": B}}),
                      (max(end, B), {"constant": lo})])
    if style == "linear":
        return _join([*warmup, (W, {"polynomial_decay": {"learning_rate": hi, "end_learning_rate": lo,
                                                          "final_num_steps": D - W}})])
    if style == "cosine":
        return _join([*warmup, (W, {"cosine_annealing": {"learning_rate": hi, "final_learning_rate": lo,
                                                          "num_steps": D - W}}), (D + 1, {"constant": lo})])
    Dw = _int(s.wsd_decay_steps, "from_megatron: OptimizerParamScheduler(wsd_decay_steps")
    if Dw <= 0:  # the anneal would start after lr_decay_steps, where min_lr takes over: no anneal
        return _join([*warmup, (W, {"constant": hi}), (D + 1, {"constant": lo})])
    shape = MEGATRON_WSD_STYLES.get(s.lr_wsd_decay_style)
    if shape is None:
        raise ValueError(f"from_megatron: OptimizerParamScheduler(lr_wsd_decay_style={s.lr_wsd_decay_style!r}); "
                         f"supported: {sorted(MEGATRON_WSD_STYLES)}")
    A = D - Dw  # the anneal's step r * Dw is num_steps - A
    wsd = {"warmup_stable_decay": {"learning_rate": hi, "final_learning_rate": lo, "num_ramp_steps": 0,
                                   "num_stable_steps": max(A - W, 0), "num_decay_steps": Dw, "decay_shape": shape}}
    if A >= W:
        return _join([*warmup, (W, wsd)])
    if W == 0:  # no warm-up (Megatron's needs lr_warmup_steps > 0): already -A steps into the anneal at 0
        return _offset(wsd, -A)
    # the anneal starts inside the warm-up: step W is still the warm-up's, the anneal goes on from W + 1
    last = init + ((hi - init) * float(W) / float(W))
    return _join([*warmup, (W, {"constant": last}), (W + 1, _offset(wsd, W + 1 - A))])


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
        start, end = (_float(group.get(k, getattr(scheduler, k))) for k in ("start_wd", "end_wd"))
        if start == end:
            out.append(None)
            continue
        W, style = scheduler.wd_incr_steps, scheduler.wd_incr_style
        if isinstance(W, bool) or not isinstance(W, int) or W < 1:
            raise ValueError(f"from_megatron: param group {g} increments its weight decay over wd_incr_steps={W!r}; "
                             "it must be an integer >= 1")
        if style == "linear":
            rise: Config = _line(start, end, W)
        elif style == "cosine":
            rise = {"cosine_annealing": {"learning_rate": start, "final_learning_rate": end, "num_steps": W}}
        else:
            raise ValueError(f"from_megatron: param group {g} increments its weight decay from start_wd={start!r} to "
                             f"end_wd={end!r} with wd_incr_style={style!r}; supported: 'linear', 'cosine'")
        out.append(learning_rate(_join([(0, rise), (W, {"constant": end})]),
                                 f"from_megatron: OptimizerParamScheduler weight decay (param group {g})"))
    return out


def from_megatron(scheduler: Any, *, backend: str | None = None,
                  device: torch.device | str | None = None) -> MegatronShim:
    """Megatron's ``OptimizerParamScheduler`` rates, evaluated on the device, from its current
    ``num_steps`` on: a :class:`MegatronShim` (call its ``step(increment)`` instead). A group whose
    weight decay rises (``start_wd != end_wd``) gets a ``weight_decay`` schedule
    (:func:`megatron_weight_decays`) times its ``wd_mult``, as Megatron's ``step`` writes it: its
    optimizer must read a tensor weight decay (``GraphSafeAdam`` / ``GraphSafeAdamW`` /
    ``GraphSafeSGD``).

    Raises:
        TypeError / ValueError: see :func:`megatron_learning_rates` and :func:`megatron_weight_decays`,
            and ``LRShim``'s refusal of an optimizer that reads the weight decay by value; nothing is
            touched.
    """
    configs, decays = megatron_learning_rates(scheduler), megatron_weight_decays(scheduler)
    step = _int(scheduler.num_steps, "num_steps")
    optimizer = _megatron_optimizer(scheduler)
    hyperparameters = [{"weight_decay": d} if d is not None else {} for d in decays]
    multipliers = [{"weight_decay": _float(group.get("wd_mult", 1.0))} if d is not None else {}
                   for d, group in zip(decays, optimizer.param_groups)]
    return MegatronShim._start(optimizer, configs, step, backend, device, hyperparameters, multipliers)

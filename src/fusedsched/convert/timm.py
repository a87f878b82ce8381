"""``from_timm``: a timm scheduler as an ``LRShim`` in device mode, a :class:`TimmShim`.

Like :func:`fusedsched.from_torch`, it takes the scheduler a training script already builds and
returns a shim whose groups follow that scheduler's own rates, from its current ``t`` on; each
group's schedule is a ``LearningRate`` (kinds joined with ``join``, shifted with ``offset``, scaled
with ``product``). timm's numbers are the spec, quirks included; a setting no kind represents is
refused with a ``ValueError`` naming it (an unsupported class with a ``TypeError``) before the
optimizer is touched. :class:`TimmShim` keeps timm's stepping calls: ``step(epoch)`` and
``step_update(num_updates)`` set the rate at that ``t`` (whichever ``t_in_epochs`` selects; the
other is a no-op, as in timm). Source of truth: timm 1.0.31's ``timm.scheduler`` (docs/stacks.md).
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import torch

from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate
from ..schedule.reference import compute_lr
from .builders import Config, constant, join, join_pieces, line, offset, product
from .common import as_float, float32_ulps, learning_rate, whole_number
from .stack_shim import StackShim

__all__ = ["TimmShim", "from_timm", "timm_learning_rates"]

TIMM_SUPPORTED = ("timm.scheduler's CosineLRScheduler, StepLRScheduler, MultiStepLRScheduler, "
                  "PolyLRScheduler, TanhLRScheduler, WSDLRScheduler (stable_fn='constant', decay_fn linear, 1-sqrt "
                  "or cosine) and PlateauLRScheduler (its state carried over), without noise")
_TIMM_CLASSES = ("CosineLRScheduler", "StepLRScheduler", "MultiStepLRScheduler", "PolyLRScheduler", "TanhLRScheduler",
                 "WSDLRScheduler", "PlateauLRScheduler")
_MAX_CYCLES = 64  # cycles checked against timm (and, one piece each, joined: poly, tanh, a k-decay cosine)


class TimmShim(StackShim):
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
            self._jump(epoch, "epoch", metric)  # the plateaus read the metric at epoch
        elif self.t_in_epochs:
            self._jump(epoch, "epoch")

    def step_update(self, num_updates: int, metric: Any = None) -> None:
        if not self.t_in_epochs:
            self._jump(num_updates, "num_updates")


def _timm_class(scheduler: Any) -> str | None:
    """The timm scheduler class name of ``scheduler`` (its exact class), or None."""
    cls = type(scheduler)
    if not cls.__module__.startswith("timm.scheduler."):
        return None
    return cls.__name__


def _timm_cycles(scheduler: Any, name: str) -> tuple[int, int | float, int]:
    """``(t_initial, cycle_mul, cycle_limit)``, checked: ``cycle_mul`` an int when it is a whole
    number >= 1, else the float timm computes with."""
    T0 = whole_number(scheduler.t_initial, f"{name}(t_initial")
    mul = scheduler.cycle_mul
    if isinstance(mul, bool) or not isinstance(mul, (int, float)) or not math.isfinite(mul) or mul <= 0:
        raise ValueError(f"from_timm: {name}(cycle_mul={mul!r}): must be a number > 0 (timm takes logarithms "
                         "in base cycle_mul)")
    return T0, int(mul) if mul >= 1 and mul == mul // 1 else float(mul), int(scheduler.cycle_limit)


def _cycle_start(T0: int, mul: int, n: int) -> int:
    """Where cycle ``n`` starts, for a whole ``cycle_mul`` (exact integers)."""
    return T0 * n if mul == 1 else T0 * (mul**n - 1) // (mul - 1)


def _fractional_cycles(T0: int, mul: float, limit: int, name: str,
                       shape: str | None) -> tuple[list[tuple[int, float]], float]:
    """timm's cycles for a fractional ``cycle_mul`` m, in its float64 arithmetic: cycle i starts at
    ``(1 - m**i) / (1 - m) * t_initial`` and is ``m**i * t_initial`` long. Returns the cycles
    ``i < cycle_limit`` that start by ``MAX_STEP`` as ``(start, length)``, and the first step of timm's
    ``lr_min`` after them (the start of cycle ``cycle_limit``, rounded up; inf past ``MAX_STEP``).

    Refused, naming the cycle: a cycle that starts between two steps (no kind restarts there); a
    length that is not a whole number of steps when ``shape`` (the kind of each cycle) needs one.
    """
    cycles: list[tuple[int, float]] = []
    for i in range(limit + 1):
        try:
            power = mul**i
        except OverflowError:  # its start is far past MAX_STEP
            return cycles, math.inf
        start = (1 - power) / (1 - mul) * T0
        if start > MAX_STEP:
            return cycles, math.inf
        if i == limit:
            return cycles, float(math.ceil(start))
        setting = f"from_timm: {name}(t_initial={T0}, cycle_mul={mul!r})"
        if not start.is_integer():
            raise ValueError(f"{setting}: cycle {i} starts at t={start!r} (timm's (1 - cycle_mul**i) / (1 - cycle_mul) "
                             f"* t_initial), between two steps, where no schedule kind restarts; a cycle_limit <= {i} "
                             "converts")
        if len(cycles) == _MAX_CYCLES:
            raise ValueError(f"{setting}, cycle_limit={limit}: at most {_MAX_CYCLES} cycles are converted with a "
                             "fractional cycle_mul (each is one piece of a join)")
        length = power * T0
        if shape is not None and not length.is_integer():
            raise ValueError(f"{setting}: cycle {i} is {length!r} steps long (timm's cycle_mul**i * t_initial), and a "
                             f"{shape} spans a whole number of steps; a cycle_limit <= {i} converts")
        cycles.append((int(start), length))
    raise AssertionError("unreachable: the loop returns at i == cycle_limit")


def _cosine_steps(length: float) -> dict[str, Any]:
    """``cosine_annealing``'s ``num_steps`` N and ``num_cycles`` c for timm's ``pi * u / length``: with
    the least j for which ``N = length * 2**j`` is whole and ``c = 2**j / 2``, the kind's
    ``(pi * c * 2.0) * u / N`` is timm's angle bit for bit (both operands scaled by ``2**j``)."""
    j = 0
    while not (length * 2**j).is_integer():
        j += 1
    return {"num_steps": int(length * 2**j), **({"num_cycles": 2.0**j / 2} if j else {})}


def _timm_main(scheduler: Any, name: str, base: float) -> Config:
    """The schedule after the warm-up, seen from ``t = 0`` (timm's ``t`` after ``warmup_prefix``)."""
    if name in ("StepLRScheduler", "MultiStepLRScheduler"):
        rate = scheduler.decay_rate
        if name == "StepLRScheduler":
            k = whole_number(scheduler.decay_t, "StepLRScheduler(decay_t")
            if k < 1:
                raise ValueError(f"from_timm: StepLRScheduler(decay_t={scheduler.decay_t!r}) must be >= 1")
            if rate == 1:
                return constant(base)
            if rate > 0:
                return {"exponential_decay": {"learning_rate": base, "decay_rate": rate, "decay_steps": k,
                                              "staircase": True}}
            bounds = [k]
            values = [base, base * rate**1]
        else:
            marks = [whole_number(m, "MultiStepLRScheduler(decay_t") for m in scheduler.decay_t]
            if marks != sorted(marks):
                raise ValueError(f"from_timm: MultiStepLRScheduler(decay_t={scheduler.decay_t!r}) must be sorted "
                                 "(timm bisects it)")
            bounds = sorted({m - 1 for m in marks if m >= 1})  # timm counts the marks <= t + 1
            values = [base * rate ** bisect.bisect_right(marks, b + 1) for b in [-1, *bounds]]
        if not bounds:
            return constant(values[0])
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
        T = whole_number(scheduler.t_initial, "WSDLRScheduler(t_initial")
        Dt = whole_number(scheduler.decay_t, "WSDLRScheduler(decay_t")
        return {"warmup_stable_decay": {"learning_rate": max(base, scheduler.lr_min), "final_learning_rate": scheduler.lr_min,
                                        "num_ramp_steps": 0, "num_stable_steps": T - Dt, "num_decay_steps": Dt,
                                        "decay_shape": shape}}
    T0, mul, limit = _timm_cycles(scheduler, name)
    lr_min, decay, k = scheduler.lr_min, scheduler.cycle_decay, getattr(scheduler, "k_decay", 1)
    if limit <= 0:
        return constant(lr_min)
    plain_cosine = name == "CosineLRScheduler" and k == 1
    if isinstance(mul, int):
        end: float = _cycle_start(T0, mul, limit) if limit <= _MAX_CYCLES or mul == 1 else math.inf
        if plain_cosine:
            cycles = {"cosine_with_restarts": {"learning_rate": base, "final_learning_rate": lr_min, "cycle_steps": T0,
                                               "cycle_mult": mul, "cycle_decay": decay}}
            return join_pieces([(0, cycles), (end, constant(lr_min))]) if end <= MAX_STEP else cycles
        if limit > _MAX_CYCLES:
            raise ValueError(f"from_timm: {name}(cycle_limit={limit}): at most {_MAX_CYCLES} cycles are converted"
                             f"{' with k_decay != 1' if name == 'CosineLRScheduler' else ''} (each is one piece of a join)")
        spans = [(_cycle_start(T0, mul, i), float(T0 * mul**i)) for i in range(limit)]
    else:  # one piece per cycle, as timm computes its start and length
        shape = None if plain_cosine else {"CosineLRScheduler": "cosine_annealing with k_decay",
                                           "PolyLRScheduler": "polynomial_decay"}.get(name, "tanh_decay")
        spans, end = _fractional_cycles(T0, mul, limit, name, shape)
    k_decay = {} if k == 1 else {"k_decay": k}  # timm's t_curr ** k / t_i ** k

    def cycle(i: int, length: float) -> Config:
        """Cycle i: its peak base * cycle_decay**i (timm's gamma), its length timm's t_i (whole but a
        plain cosine's)."""
        peak = base * decay**i
        if name == "CosineLRScheduler":
            steps = _cosine_steps(length) if plain_cosine else {"num_steps": int(length)}
            return {"cosine_annealing": {"learning_rate": peak, "final_learning_rate": lr_min, **steps, **k_decay}}
        if name == "PolyLRScheduler":
            return {"polynomial_decay": {"learning_rate": peak, "end_learning_rate": lr_min,
                                         "final_num_steps": int(length), "power": scheduler.power, **k_decay}}
        return {"tanh_decay": {"learning_rate": peak, "final_learning_rate": lr_min, "num_steps": int(length),
                               "lower_bound": scheduler.lb, "upper_bound": scheduler.ub}}

    pieces = [(start, cycle(i, length)) for i, (start, length) in enumerate(spans)]
    return join_pieces([*pieces, *([(int(end), constant(lr_min))] if end <= MAX_STEP else [])])


def _timm_config(scheduler: Any, name: str, g: int, base: float) -> Config:
    W, init = whole_number(scheduler.warmup_t, f"{name}(warmup_t"), scheduler.warmup_lr_init
    main = _timm_main(scheduler, name, base)
    if W > 0:  # WSDLRScheduler's warm-up is always a prefix
        prefix = getattr(scheduler, "warmup_prefix", True)
        # TanhLRScheduler warms up to its own rate at warmup_t when that is not a prefix, the others to base
        target = scheduler._get_lr(W)[g] if name == "TanhLRScheduler" and not prefix else base
        main = join_pieces([(0, line(init, target, W)), (W, main if prefix else offset(main, W))])
    scale = scheduler.optimizer.param_groups[g].get("lr_scale")
    if scale is not None and scale != 1:
        return product(main, constant(scale))  # timm: value * lr_scale
    return main


def _timm_marks(scheduler: Any, name: str) -> list[int]:
    """Steps around each place the schedule changes piece (where a mapping error would show)."""
    W = int(scheduler.warmup_t)
    offset = W if getattr(scheduler, "warmup_prefix", True) else 0
    marks = {0, W}
    timm_has_a_value = lambda s: True  # noqa: E731
    if name == "WSDLRScheduler":
        marks.update((W + scheduler.t_initial - scheduler.decay_t, W + scheduler.t_initial))
    elif name in ("CosineLRScheduler", "PolyLRScheduler", "TanhLRScheduler"):
        T0, mul, limit = _timm_cycles(scheduler, name)
        if isinstance(mul, int):
            starts = [_cycle_start(T0, mul, n) for n in range(1, min(max(limit, 0), _MAX_CYCLES) + 1)]
        else:
            spans, end = _fractional_cycles(T0, mul, max(limit, 0), name, None)
            starts = [start for start, _ in spans[1:]] + ([int(end)] if end <= MAX_STEP else [])
            if mul < 1:  # timm's log raises where 1 - t / t_initial * (1 - cycle_mul) <= 0 (the cycles shrink)
                timm_has_a_value = lambda s: s < W or 1 - (s - offset) / T0 * (1 - mul) > 0  # noqa: E731
        for start in starts:
            start += offset
            if start > MAX_STEP // 2:
                break
            marks.update((start, start + T0 // 2))
    elif name == "StepLRScheduler":
        marks.update(offset + int(scheduler.decay_t) * n for n in (1, 2, 3))
    else:
        marks.update(offset + int(m) - 1 for m in scheduler.decay_t)
    return sorted(s for m in marks for s in (m - 1, m, m + 1) if 0 <= s <= MAX_STEP and timm_has_a_value(s))


def _timm_scaled(value: float, group: dict[str, Any]) -> float:
    """``value`` as timm's ``update_groups`` writes it into ``group``: times its ``lr_scale``, if any."""
    return value * group["lr_scale"] if "lr_scale" in group else value


def _timm_check(scheduler: Any, configs: list[Config], name: str) -> None:
    """Refuse when the conversion and timm's own ``_get_lr`` differ by more than one float32 ulp at
    a step around a change of piece (timm finds the cycle with a float ``log``, which can miss a
    restart by a step)."""
    groups = scheduler.optimizer.param_groups
    schedules = [learning_rate(c, f"from_timm: {name} (param group {g})") for g, c in enumerate(configs)]
    for s in _timm_marks(scheduler, name):
        for g, (value, config) in enumerate(zip(scheduler._get_lr(s), schedules)):
            have, want = _timm_scaled(value, groups[g]), compute_lr(config, s)
            if float32_ulps(have, want) > 1:
                raise ValueError(f"from_timm: {name} gives {have!r} at t={s} (param group {g}), its conversion "
                                 f"{want!r}: timm's cycle arithmetic is not one schedule kind's here")


def _timm_at(scheduler: Any, configs: list[Config], name: str, t: int) -> list[LearningRate]:
    """The groups' schedules from timm's ``t``, checked against the rates the groups hold there.

    Before timm's first ``step()`` / ``step_update()`` a scheduler without a warm-up has left each
    group at the rate its constructor set (the base lr, times ``lr_scale``), which is not
    ``_get_lr(0)`` where the schedule does not start at its base rate (tanh's starts just below it,
    WSD's at ``max(lr, lr_min)``): at ``t = 0`` such a group's schedule is that rate, then timm's
    from ``t = 1`` on. Any other group whose rate is not timm's at ``t`` is refused.
    """
    out = []
    for g, (group, config) in enumerate(zip(scheduler.optimizer.param_groups, configs)):
        what = f"from_timm: {name} (param group {g})"
        have, want = as_float(group["lr"]), compute_lr(learning_rate(config, what), t)
        constructed = _timm_scaled(as_float(group[scheduler._initial_param_group_field]), group)
        if t == 0 and not scheduler.warmup_t and have == constructed and float32_ulps(have, want):
            config = join([constant(have), offset(config, 1)], [1])
        elif not math.isfinite(have) or float32_ulps(have, want) > 1:
            raise ValueError(
                f"from_timm: param group {g} has lr {have!r}, but {name} gives {want!r} at t={t}; timm keeps no "
                "step count: pass t= the last epoch (t_in_epochs) or update count given to step() / step_update()")
        out.append(learning_rate(config, what))
    return out


def _timm_plateau(scheduler: Any, g: int, base: float) -> Config:
    """``PlateauLRScheduler``'s group ``g``: timm's warm-up ``init + t * ((base - init) / W)`` for
    ``t <= W`` (times ``lr_scale``), then a ``plateau`` from that last rate with timm's torch
    ``ReduceLROnPlateau``'s settings (its ``min_lr`` applies to the scaled rate, as torch's does).
    Without a warm-up the plateau starts from ``base * lr_scale``, which timm's constructor sets
    (its ``step(0)``, which would set ``warmup_lr_init``, is not reproduced)."""
    inner = scheduler.lr_scheduler
    if type(inner) is not torch.optim.lr_scheduler.ReduceLROnPlateau:
        raise ValueError(f"from_timm: PlateauLRScheduler over a {type(inner).__name__}, not torch's ReduceLROnPlateau")
    W, init = whole_number(scheduler.warmup_t, "PlateauLRScheduler(warmup_t"), scheduler.warmup_lr_init
    settings = {"mode": inner.mode, "factor": inner.factor, "patience": inner.patience, "threshold": inner.threshold,
                "threshold_mode": inner.threshold_mode, "cooldown": inner.cooldown,
                "min_learning_rate": inner.min_lrs[g], "eps": inner.eps}
    scale = scheduler.optimizer.param_groups[g].get("lr_scale")
    if W <= 0:
        return {"plateau": {"learning_rate": base if scale is None else base * scale, **settings}}
    end = init + W * scheduler.warmup_steps[g]  # the rate timm's step(W) sets, before lr_scale
    pieces = [(0, line(init, base, W)), (W, constant(end))]
    if scale is not None and scale != 1:
        pieces = [(b, product(c, constant(scale))) for b, c in pieces]
        end = end * scale
    return join_pieces([*pieces, (W + 1, {"plateau": {"learning_rate": end, **settings}})])


def timm_learning_rates(scheduler: Any) -> list[LearningRate]:
    """One ``LearningRate`` per param group: the group's rate at timm's ``t`` (``lr_scale`` included).

    Raises:
        TypeError: not one of ``TIMM_SUPPORTED``.
        ValueError: a supported class with settings no kind represents (noise, a fractional
            ``decay_t``, a fractional ``cycle_mul`` whose cycle starts between two steps, more
            than 64 cycles where each is a piece...).
    """
    name, configs = _timm_configs(scheduler)
    return [learning_rate(c, f"from_timm: {name} (param group {g})") for g, c in enumerate(configs)]


def _timm_configs(scheduler: Any) -> tuple[str, list[Config]]:
    """:func:`timm_learning_rates`' class name and configs, as dicts."""
    name = _timm_class(scheduler)
    if name not in _TIMM_CLASSES:
        raise TypeError(f"from_timm cannot convert {type(scheduler).__name__}; supported: {TIMM_SUPPORTED}")
    if scheduler.param_group_field != "lr":
        raise ValueError(f"from_timm: {name} schedules {scheduler.param_group_field!r}, not 'lr'")
    if scheduler.noise_range_t is not None:
        raise ValueError(f"from_timm: {name}(noise_range_t={scheduler.noise_range_t!r}) adds seeded random noise "
                         "to the rate, which no schedule kind represents; construct it with noise_range_t=None")
    make = _timm_plateau if name == "PlateauLRScheduler" else (lambda s, g, b: _timm_config(s, name, g, b))
    return name, [make(scheduler, g, float(base)) for g, base in enumerate(scheduler.base_values)]


def from_timm(scheduler: Any, *, t: int = 0, backend: str | None = None,
              device: torch.device | str | None = None) -> TimmShim:
    """timm ``scheduler``'s rates, evaluated on the device: a :class:`TimmShim`.

    timm keeps no step count: ``t`` is the last ``epoch`` / ``num_updates`` given to its
    ``step()`` / ``step_update()`` (0, a fresh scheduler, by default); the groups' rates must be
    timm's at ``t``, or at ``t = 0`` without a warm-up the rates timm's constructor set, which the
    shim then gives at ``t = 0`` (:func:`_timm_at`). The training loop goes on calling ``step(epoch)`` and
    ``step_update(num_updates)`` on the returned shim (do not step timm's any more).

    Raises:
        TypeError / ValueError: see :func:`timm_learning_rates`; also a ``ValueError`` when timm's
            rates at a change of piece, or the groups' rates at ``t``, are not the conversion's.
            Nothing is touched.
    """
    name, configs = _timm_configs(scheduler)
    step = whole_number(t, "from_timm: t")
    if not 0 <= step <= MAX_STEP:
        raise ValueError(f"from_timm: t={t!r} must be in [0, 2**53 - 2]")
    if name == "PlateauLRScheduler":
        schedules = [learning_rate(c, f"from_timm: {name} (param group {g})") for g, c in enumerate(configs)]
        return _from_timm_plateau(scheduler, schedules, step, backend, device)
    _timm_check(scheduler, configs, name)
    schedules = _timm_at(scheduler, configs, name, step)
    return TimmShim._start(scheduler.optimizer, schedules, step, backend, device,
                           t_in_epochs=bool(scheduler.t_in_epochs))


def _from_timm_plateau(scheduler: Any, configs: list[LearningRate], t: int, backend: str | None,
                       device: torch.device | str | None) -> TimmShim:
    """``PlateauLRScheduler`` at ``t``: within the warm-up the groups hold its rates; past it the
    plateau goes on from the groups' rates and torch's ``best``, ``num_bad_epochs`` and cooldown."""
    W = int(scheduler.warmup_t)
    inner = scheduler.lr_scheduler
    groups = scheduler.optimizer.param_groups
    if t <= W:
        for g, (group, config) in enumerate(zip(groups, configs)):
            have, want = as_float(group["lr"]), compute_lr(config, t)
            if float32_ulps(have, want) > 1:
                raise ValueError(f"from_timm: param group {g} has lr {have!r}, but PlateauLRScheduler gives {want!r} "
                                 f"at t={t}; pass t= the last epoch given to its step()")
    states = [[as_float(group["lr"]), float(inner.best), float(inner.num_bad_epochs), float(inner.cooldown_counter)]
              for group in groups] if t > W else None
    shim = TimmShim._start(scheduler.optimizer, configs, t, backend, device, t_in_epochs=True, plateau_after=W)
    if states is not None:
        names = shim.group_names
        shim.load_plateau_states({(name, "lr"): state for name, state in zip(names, states)})
    return shim

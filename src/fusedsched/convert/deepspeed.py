"""``from_deepspeed``: a DeepSpeed scheduler, or its JSON ``"scheduler"`` block, as an ``LRShim``
in device mode, a :class:`DeepSpeedShim`.

:func:`from_deepspeed` takes the scheduler object a training script already builds and returns a
shim whose groups follow its own rates, from its current step on; each group's schedule is a
``LearningRate`` (kinds joined with ``join``, shifted with ``offset``, scaled with ``product``).
:class:`DeepSpeedShim` keeps DeepSpeed's stepping calls, ``step()`` / ``step(last_batch_iteration)``;
the shim's step is ``last_batch_iteration + 1`` (DeepSpeed starts at -1).
:func:`deepspeed_config_to_schedules` and :func:`deepspeed_config_to_hyperparameters` turn the JSON
block into the same schedules without building DeepSpeed's object; :func:`from_deepspeed_config`
builds the shim from the block over an optimizer. DeepSpeed's numbers are the spec, quirks
included; a setting no kind represents is refused with a ``ValueError`` naming it (an unsupported
class with a ``TypeError``) before the optimizer is touched. Source of truth: DeepSpeed 0.19.8's
``deepspeed.runtime.lr_schedules`` (docs/stacks.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate
from .builders import Config, constant, join_pieces, line, offset, product
from .common import as_float, learning_rate, whole_number
from .stack_shim import StackShim

__all__ = [
    "DeepSpeedShim",
    "deepspeed_config_to_hyperparameters",
    "deepspeed_config_to_schedules",
    "from_deepspeed",
    "from_deepspeed_config",
]

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


class DeepSpeedShim(StackShim):
    """The device-mode ``LRShim`` :func:`from_deepspeed` returns. Its step is DeepSpeed's
    ``last_batch_iteration + 1`` (DeepSpeed starts at -1); ``step(k)`` goes to iteration ``k``."""

    def step(self, last_batch_iteration: int | None = None) -> None:
        if last_batch_iteration is None:
            super().step()
        else:
            self._jump(whole_number(last_batch_iteration, "last_batch_iteration") + 1, "last_batch_iteration + 1")

    @property
    def last_batch_iteration(self) -> int:
        return self.last_epoch - 1


def _per_group(value: Any, count: int, what: str) -> list[float]:
    """DeepSpeed's ``_format_param``: a scalar for every group, or one value per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"DeepSpeed {what}: expected {count} values (one per param group), got {len(value)}")
        return [as_float(v) for v in value]
    return [as_float(value)] * count


def _check_warmup_type(kind: str, warmup_type: Any) -> None:
    if warmup_type not in ("log", "linear"):
        raise ValueError(f"DeepSpeed {kind}(warmup_type={warmup_type!r}): only 'log' (the default) and 'linear' "
                         "are converted (DeepSpeed itself would warn and use 'log')")


def _ds_ramp(warmup_type: str, lo: float, hi: float, W: int) -> Config:
    """DeepSpeed's warm-up over its ``n < W``: ``lo + (hi - lo) * gamma``, ``gamma`` being
    ``(1.0 / log(W)) * log(n + 1)`` ('log', exactly: ``log_warmup``) or ``n / W`` ('linear')."""
    if warmup_type == "log":
        return {"log_warmup": {"learning_rate": hi, "initial_learning_rate": lo, "num_steps": W}}
    return line(lo, hi, W)


def _ds_warmup(kind: str, mins: list[float], maxs: list[float], W: int, warmup_type: Any,
               total: int | None) -> list[Config]:
    """WarmupLR (``total`` None) and WarmupDecayLR, over the shim's step ``n + 1``."""
    _check_warmup_type(kind, warmup_type)
    out = []
    for lo, hi in zip(mins, maxs):
        delta = hi - lo
        if total is None:
            after: Config = constant(lo + delta * 1.0)
        elif total - W >= 1:  # lo + delta * ((total - n) / (total - W)), then lo
            after = {"polynomial_decay": {"learning_rate": hi, "end_learning_rate": lo, "final_num_steps": total - W}}
        else:
            after = constant(lo + delta * 0.0)
        out.append(join_pieces([(0, constant(lo)), (1, _ds_ramp(warmup_type, lo, hi, W)), (1 + W, after)]))
    return out


def _ds_cosine(orgs: list[float], W: int, total: int, warmup_min_ratio: float, cos_min_ratio: float,
               warmup_type: Any) -> list[Config]:
    """WarmupCosineLR: ``org_lr * ratio(n)``, 0.0 before the first step."""
    _check_warmup_type("WarmupCosineLR", warmup_type)
    N = max(1, total - W)
    cosine = {"cosine_annealing": {"learning_rate": 1.0, "final_learning_rate": cos_min_ratio, "num_steps": N}}
    ratio = join_pieces([(0, _ds_ramp(warmup_type, warmup_min_ratio, 1.0, W)), (W, offset(cosine, 1)),  # its step: n - W + 1
                         (W + N - 1, constant(cos_min_ratio))])
    return [join_pieces([(0, constant(0.0)), (1, product(constant(org), ratio))])
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
    U, D = whole_number(first, "DeepSpeed OneCycle(cycle_first_step_size"), whole_number(
        second, "DeepSpeed OneCycle(cycle_second_step_size")
    if U <= 0 or D < 0:
        raise ValueError(f"DeepSpeed OneCycle(cycle_first_step_size={first!r}, cycle_second_step_size={second!r}): "
                         "the first must be positive, the second non-negative")
    counts = tuple(whole_number(c, f"DeepSpeed OneCycle(cycle_{half}_stair_count")
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
            pieces.append((b, line(start, turn, U)))
        elif piece == "down":
            pieces.append((b, offset(line(turn, start, D), b - U)))
        else:
            pieces.append((b, constant(value(piece))))
    tail = [(U + D, constant(start))] + ([(U + D + 1, after)] if after is not None else [])
    return join_pieces([*pieces, *tail])


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
    return lambda lo: offset(product(factor(lo), factor(1.0)), 1) if lo else constant(lo)


def _ds_rise(v0: float, rate: float, size: float, steps: int) -> Config:
    """DeepSpeed's ``v0 * (1 + rate * (k / size))`` for ``k < steps`` (rising without end: ``steps``
    reaches the last step), a line from v0 to its value at ``steps``."""
    return line(v0, v0 * (1 + rate * (steps / size)), steps)


def _ds_range_test(mins: list[float], size: Any, rate: Any, staircase: Any) -> list[Config]:
    """LRRangeTest over the shim's step ``b``: ``min_lr * (1 + rate * (b / size))``, a line rising
    without end (:func:`_ds_rise`, DeepSpeed's own value at the last step)."""
    if staircase:
        raise ValueError(f"DeepSpeed LRRangeTest(lr_range_test_staircase={staircase!r}): the staircase "
                         "min_lr * (1 + rate * floor(b / size)) rises by a stair every size steps without end: no "
                         "schedule kind has it (only the continuous rise is converted)")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"DeepSpeed LRRangeTest(lr_range_test_step_size={size!r}): must be a positive integer")
    rate = as_float(rate)
    if rate < 0:
        raise ValueError(f"DeepSpeed LRRangeTest(lr_range_test_step_rate={rate!r}): the rate falls below 0 (a "
                         "schedule is >= 0); only a rate >= 0 is converted")
    return [join_pieces([(0, _ds_rise(lo, rate, size, MAX_STEP)),
                         (MAX_STEP, constant(lo * (1 + rate * (MAX_STEP / size))))]) for lo in mins]


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
        low, high = as_float(lo[0]), as_float(hi[0])
        after = None
        if decay is not None:  # beta0 * (1 + rate * (k / size)) at k = 1, 2, ...: a line from k = 0
            rate, size = decay
            if rate / size < 0:
                raise ValueError(f"DeepSpeed OneCycle(decay_mom_rate={rate!r}, decay_step_size={size!r}): the "
                                 "post-cycle momentum max_mom * (1 + rate * k / size) falls below 0 (a schedule "
                                 "is >= 0); only a rising one (rate / size > 0) is converted")
            after = offset(_ds_rise(high, rate, size, MAX_STEP - (U + D) + 1), 1)  # k = n - U - D <= its steps
        cycle = _ds_cycle(shape, U, D, high, low, lambda x, low=low, high=high: high - (high - low) * x, after)
        out.append({"beta1": join_pieces([(0, constant(low)), (1, offset(cycle, 1))]),
                    "beta2": constant(as_float(lo[1]))})
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
        first = as_float(p["cycle_first_step_size"])
        second = first if p["cycle_second_step_size"] is None else as_float(p["cycle_second_step_size"])
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
        return _ds_cosine([float(b) for b in base_lrs], W,
                          whole_number(p["total_num_steps"], f"DeepSpeed {kind}(total_num_steps"),
                          as_float(p["warmup_min_ratio"]), as_float(p["cos_min_ratio"]), p["warmup_type"]), None
    maxs = list(base_lrs) if p["warmup_max_lr"] is None else p["warmup_max_lr"]
    total = whole_number(p["total_num_steps"], f"DeepSpeed {kind}(total_num_steps") if kind == "WarmupDecayLR" else None
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
    base_lrs = [as_float(group["lr"]) for group in optimizer.param_groups]
    configs, momentum = _deepspeed_block(config, base_lrs, betas="betas" in getattr(optimizer, "defaults", {}))
    last = (config.get("params") or {}).get("last_batch_iteration", -1)
    step = whole_number(last, "DeepSpeed scheduler params(last_batch_iteration") + 1
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
        return _ds_one_cycle([as_float(v) for v in s.min_lrs], [as_float(v) for v in s.max_lrs], s.first_step_size,
                             s.second_step_size, (s.first_stair_count, s.second_stair_count),
                             None if s.skip_lr_decay else (s.decay_lr_rate, s.decay_step_size), momentum)
    if kind == "LRRangeTest":
        return _ds_range_test([as_float(v) for v in s.min_lr], s.step_size, s.step_rate, s.staircase), None
    if kind == "WarmupCosineLR":
        return _ds_cosine([as_float(v) for v in s.org_lrs], s.warmup_num_steps,
                          whole_number(s.total_num_steps, f"DeepSpeed {kind}(total_num_steps"),
                          as_float(s.warmup_min_ratio), as_float(s.cos_min_ratio), s.warmup_type), None
    total = whole_number(s.total_num_steps, f"DeepSpeed {kind}(total_num_steps") if kind == "WarmupDecayLR" else None
    return _ds_warmup(kind, [as_float(v) for v in s.min_lrs], [as_float(v) for v in s.max_lrs], s.warmup_num_steps,
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
    step = whole_number(scheduler.last_batch_iteration, "last_batch_iteration") + 1
    if step < 0:
        raise ValueError(f"from_deepspeed: last_batch_iteration={scheduler.last_batch_iteration!r} must be >= -1")
    return DeepSpeedShim._start(scheduler.optimizer, configs, step, backend, device, hyperparameters=momentum)

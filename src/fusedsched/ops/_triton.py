"""The ``triton`` backend: one launch evaluates every group's schedule.

One program (``grid=(1,)``) reads the int64 step counter, adds ``increment`` times the ``amount``
tensor's value (or nothing when the ``skip`` tensor is nonzero, or with ``previous_scale`` when the
scale ``skip`` is below it, which then takes the scale; all optional), walks the groups in
blocks of ``BLOCK``, evaluates each group's program in float64 and stores float32, then writes
the counter back. A single program is what makes the counter update race-free; the work per group
is a few loads and flops, so even 10,000 groups are a handful of loop iterations.

With a plateau state (``HAS_PLATEAU``), a ``PLATEAU`` segment's value is its group's ``VALUE``
there; with a metric too (``HAS_METRIC``, set only with the state), on a step that advances
(``increment`` 1, not skipped), the groups of the block whose active segment is a ``PLATEAU`` get
:mod:`fusedsched.schedule.plateau_state`'s update first, lane by lane with ``tl.where`` (their columns stored back
under a mask; the updated ``VALUE`` kept in registers for the evaluation).

Per block, the kernel picks each group's active segment (the last with ``START <= s``) and
evaluates it; only when some group in the block is a ``product`` (``FACTORS > 1``) does it
multiply the values of every active segment (``START <= s < STOP``) instead. A shape is computed
only when some group of the block needs it. The shapes and their operation order are
:mod:`fusedsched.schedule.program`'s; ``pow`` is ``exp(y * log(x))`` (libdevice's ``pow`` does not run in
the interpreter).

On CPU tensors the kernel runs only under the Triton interpreter, which reads ``TRITON_INTERPRET=1``
when this module is imported (``INTERPRETED`` records it).
"""

import os

import torch
import triton
import triton.language as tl

from ..schedule.plateau_state import PlateauColumn, PlateauMode
from ..schedule.program import NUM_COLUMNS, Column, Shape

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
BLOCK = 1024
NAN = tl.constexpr(tl.PropagateNan.ALL)  # min / max keep a NaN, like torch.minimum and the C++ kernel
# The plateau state's rows and mode codes (fusedsched.schedule.plateau_state), as constexprs the kernel reads.
_VALUE, _BEST, _BAD_EPOCHS, _COOLDOWN_LEFT = (tl.constexpr(int(c)) for c in (
    PlateauColumn.VALUE, PlateauColumn.BEST, PlateauColumn.BAD_EPOCHS, PlateauColumn.COOLDOWN_LEFT))
_FACTOR, _MIN, _THRESHOLD, _MODE, _PATIENCE, _COOLDOWN, _EPS = (tl.constexpr(int(c)) for c in (
    PlateauColumn.FACTOR, PlateauColumn.MIN, PlateauColumn.THRESHOLD, PlateauColumn.MODE, PlateauColumn.PATIENCE,
    PlateauColumn.COOLDOWN, PlateauColumn.EPS))
_MIN_REL, _MIN_ABS, _MAX_REL = (tl.constexpr(int(m)) for m in (PlateauMode.MIN_REL, PlateauMode.MIN_ABS,
                                                                PlateauMode.MAX_REL))


@triton.jit
def _any(mask):
    return tl.max(mask.to(tl.int32), axis=0) > 0


@triton.jit
def _pow(x, y):
    return tl.exp(y * tl.log(x))


@triton.jit
def _tanh(x):
    """``tanh(x)`` as ``1 - 2 / (exp(2 * min(|x|, 20)) + 1)``, signed (no ``tanh`` in the interpreter;
    program.py's torch and numpy form): its last operation is ``1 - d`` with ``d`` close to the exact
    one, so it rounds like the C library's where ``1 - tanh`` is small."""
    t = 1 - 2 / (tl.exp(2 * tl.minimum(tl.abs(x), 20.0, propagate_nan=NAN)) + 1)
    return tl.where(x < 0, -t, t)


@triton.jit
def _int_power(base, exponent):
    """``base ** exponent`` for integer-valued ``0 <= exponent < 64``, by squaring (exact)."""
    result = tl.full(base.shape, 1.0, tl.float64)
    for _ in tl.static_range(6):
        result = tl.where(exponent - 2.0 * tl.floor(exponent * 0.5) > 0.5, result * base, result)
        base = base * base
        exponent = tl.floor(exponent * 0.5)
    return result


@triton.jit
def _restart_cycle(u, span, mult):
    """COSINE_RESTARTS's cycle (n, t, T) holding u: a log estimate, then corrected exactly."""
    n1 = tl.floor(u / span)  # mult == 1
    grows = mult > 1
    m = tl.where(grows, mult, 2.0)  # keeps the unused lanes finite
    n = tl.floor(tl.log(u * (m - 1) / span + 1) / tl.log(m))
    n = tl.where(grows & (n >= 0), n, 0.0)
    power = _int_power(m, n)
    down = span * ((power - 1) / (m - 1)) > u
    n = tl.where(down, n - 1, n)
    power = tl.where(down, power / m, power)
    up = span * ((power * m - 1) / (m - 1)) <= u
    n = tl.where(up, n + 1, n)
    power = tl.where(up, power * m, power)
    t = tl.where(grows, u - span * ((power - 1) / (m - 1)), u - n1 * span)
    return tl.where(grows, n, n1), t, tl.where(grows, span * power, span)


@triton.jit
def _plateau_update(plateau_ptr, g, num_groups, active, metric, value):
    """fusedsched.schedule.plateau_state's rule on the ``active`` lanes' columns (``value``: their ``VALUE``, already
    loaded), in its operation order; stores the state back under ``active`` and returns the new
    ``VALUE`` of every lane (the others' unchanged)."""
    best = tl.load(plateau_ptr + _BEST * num_groups + g, mask=active, other=0.0)
    bad = tl.load(plateau_ptr + _BAD_EPOCHS * num_groups + g, mask=active, other=0.0)
    left = tl.load(plateau_ptr + _COOLDOWN_LEFT * num_groups + g, mask=active, other=0.0)
    threshold = tl.load(plateau_ptr + _THRESHOLD * num_groups + g, mask=active, other=0.0)
    mode = tl.load(plateau_ptr + _MODE * num_groups + g, mask=active, other=0.0)
    better = tl.where(mode == _MIN_REL, metric < best * (1.0 - threshold),
                      tl.where(mode == _MIN_ABS, metric < best - threshold,
                               tl.where(mode == _MAX_REL, metric > best * (threshold + 1.0),
                                        metric > best + threshold)))
    best = tl.where(better, metric, best)
    bad = tl.where(better, 0.0, bad + 1.0)
    cooling = left > 0
    left = tl.where(cooling, left - 1.0, left)
    bad = tl.where(cooling, 0.0, bad)
    reduce = bad > tl.load(plateau_ptr + _PATIENCE * num_groups + g, mask=active, other=0.0)
    x = value * tl.load(plateau_ptr + _FACTOR * num_groups + g, mask=active, other=0.0)
    lowest = tl.load(plateau_ptr + _MIN * num_groups + g, mask=active, other=0.0)
    new = tl.where(lowest > x, lowest, x)  # Python's max(x, MIN), NaN included
    eps = tl.load(plateau_ptr + _EPS * num_groups + g, mask=active, other=0.0)
    value = tl.where(active & reduce & (value - new > eps), new, value)
    left = tl.where(reduce, tl.load(plateau_ptr + _COOLDOWN * num_groups + g, mask=active, other=0.0), left)
    bad = tl.where(reduce, 0.0, bad)
    tl.store(plateau_ptr + _VALUE * num_groups + g, value, mask=active)
    tl.store(plateau_ptr + _BEST * num_groups + g, best, mask=active)
    tl.store(plateau_ptr + _BAD_EPOCHS * num_groups + g, bad, mask=active)
    tl.store(plateau_ptr + _COOLDOWN_LEFT * num_groups + g, left, mask=active)
    return value


@triton.jit
def _segment_value(s, shape, shift, origin, end, v0, v1, p, q, w, plateau_value,
                   LINEAR: tl.constexpr, COSINE: tl.constexpr, EXPONENTIAL: tl.constexpr,
                   POWER: tl.constexpr, INV_SQRT: tl.constexpr, ONE_MINUS_SQRT: tl.constexpr,
                   COSINE_RESTARTS: tl.constexpr, COSINE_CYCLES: tl.constexpr, LOG: tl.constexpr,
                   CYCLIC: tl.constexpr, PLATEAU: tl.constexpr, HAS_PLATEAU: tl.constexpr, TANH: tl.constexpr,
                   EXP_ANNEAL: tl.constexpr):
    """Every lane's value of its segment at ``s`` (program.py's shapes, in their operation order);
    a ``PLATEAU`` lane's is ``plateau_value`` with the state (``HAS_PLATEAU``), else ``v0``.

    Each lane needs at most one ``cos`` and one ``pow``: their arguments are gathered per shape and
    each function is called once (a smaller kernel than a call per shape); timm's k-decay (COSINE and
    POWER with ``w != 0``) takes two ``pow`` more, TANH one ``exp``, each in its own block.
    """
    u = (s - shift) - origin
    span = end - origin
    lr = v0  # CONSTANT, and PLATEAU without the state
    if HAS_PLATEAU:
        if _any(shape == PLATEAU):
            lr = tl.where(shape == PLATEAU, plateau_value, lr)
    cos_arg = tl.zeros(u.shape, tl.float64)
    pow_base = tl.full(u.shape, 1.0, tl.float64)
    pow_exp = tl.zeros(u.shape, tl.float64)
    height = tl.zeros(u.shape, tl.float64)  # CYCLIC's (v1 - v0) * f
    if _any(shape == LINEAR):
        linear = v0 + ((v1 - v0) / span) * u
        linear = tl.minimum(tl.maximum(linear, tl.minimum(v0, v1), propagate_nan=NAN),
                            tl.maximum(v0, v1), propagate_nan=NAN)
        lr = tl.where(shape == LINEAR, linear, lr)
    if _any(shape == INV_SQRT):
        lr = tl.where(shape == INV_SQRT, v0 * (1 / tl.sqrt(u / span)), lr)
    if _any(shape == ONE_MINUS_SQRT):
        lr = tl.where(shape == ONE_MINUS_SQRT, v1 + (v0 - v1) * (1 - tl.sqrt(u / span)), lr)
    if _any(shape == LOG):
        lr = tl.where(shape == LOG, v0 + (v1 - v0) * (p * tl.log(u + 1)), lr)
    if _any(shape == COSINE):
        reduced = tl.where(q > 0, u - q * tl.floor(u / q), u)  # a periodic cosine: u % period
        cos_arg = tl.where(shape == COSINE, p * reduced / span, cos_arg)
    if _any(shape == COSINE_CYCLES):
        x = q * (u / span)
        cos_arg = tl.where(shape == COSINE_CYCLES, p * (x - tl.floor(x)), cos_arg)
    if _any(shape == COSINE_RESTARTS):
        n, t, length = _restart_cycle(u, span, q)
        restarts = shape == COSINE_RESTARTS
        cos_arg = tl.where(restarts, p * t / length, cos_arg)
        pow_base = tl.where(restarts, w, pow_base)
        pow_exp = tl.where(restarts, n, pow_exp)
    if _any(shape == EXPONENTIAL):
        e = u / span
        e = tl.where(q != 0, tl.floor(e), e)
        pow_base = tl.where(shape == EXPONENTIAL, p, pow_base)
        pow_exp = tl.where(shape == EXPONENTIAL, e, pow_exp)
    if _any(shape == CYCLIC):
        x = u / span
        cycle = tl.floor(1 + x)
        t = 1.0 + x - cycle
        cyclic = shape == CYCLIC
        height = tl.where(cyclic, (v1 - v0) * tl.where(t <= p, t / p, (t - 1) / (p - 1)), height)
        pow_base = tl.where(cyclic, w, pow_base)
        pow_exp = tl.where(cyclic, tl.where(q != 0, u, cycle - 1), pow_exp)
    if _any(shape == POWER):
        pow_base = tl.where(shape == POWER, 1 - u / span, pow_base)
        pow_exp = tl.where(shape == POWER, p, pow_exp)
    if _any(shape == EXP_ANNEAL):  # pow(0.5, u / span)
        pow_base = tl.where(shape == EXP_ANNEAL, 0.5, pow_base)
        pow_exp = tl.where(shape == EXP_ANNEAL, u / span, pow_exp)
    k_decay = ((shape == COSINE) | (shape == POWER)) & (w != 0)  # timm's k-decay: pow(u, w) / pow(span, w)
    if _any(k_decay):
        reduced = tl.where((shape == COSINE) & (q > 0), u - q * tl.floor(u / q), u)
        u_k = _pow(reduced, w)
        span_k = _pow(span, w)
        cos_arg = tl.where(k_decay & (shape == COSINE), p * u_k / span_k, cos_arg)
        pow_base = tl.where(k_decay & (shape == POWER), 1 - u_k / span_k, pow_base)
    if _any(shape == TANH):
        x = u / span
        lr = tl.where(shape == TANH, v1 + 0.5 * (v0 - v1) * (1 - _tanh(p * (1.0 - x) + q * x)), lr)
    cosine_family = (shape == COSINE) | (shape == COSINE_CYCLES) | (shape == COSINE_RESTARTS)
    power_family = ((shape == EXPONENTIAL) | (shape == POWER) | (shape == COSINE_RESTARTS) | (shape == CYCLIC)
                    | (shape == EXP_ANNEAL))
    if _any(cosine_family | power_family):
        c = 1 + tl.cos(cos_arg)
        pw = _pow(pow_base, pow_exp)
        lr = tl.where((shape == COSINE) | (shape == COSINE_CYCLES), v1 + (v0 - v1) * 0.5 * c, lr)
        lr = tl.where(shape == COSINE_RESTARTS, v1 + (v0 * pw - v1) * 0.5 * c, lr)
        x = v0 * pw
        bounded = tl.where(p < 1, tl.maximum(x, v1, propagate_nan=NAN), tl.minimum(x, v1, propagate_nan=NAN))
        lr = tl.where(shape == EXPONENTIAL, bounded, lr)
        lr = tl.where(shape == POWER, v1 + (v0 - v1) * pw, lr)
        lr = tl.where(shape == CYCLIC, v0 + height * pw, lr)
        lr = tl.where(shape == EXP_ANNEAL, v1 + ((2.0 * pw) - 1.0) * (v0 - v1), lr)
    return lr


@triton.jit
def _advance_kernel(
    step_ptr,
    table_ptr,
    lrs_ptr,
    increment,
    amount_ptr,  # read only when HAS_AMOUNT
    skip_ptr,  # read only when HAS_SKIP
    plateau_ptr,  # read and written only when HAS_PLATEAU
    metric_ptr,  # read only when HAS_METRIC (a metric and a plateau state)
    previous_scale_ptr,  # read and written only when HAS_PREVIOUS_SCALE (then skip_ptr is a scale)
    num_groups,
    num_segments,
    NUM_COLUMNS: tl.constexpr,
    START: tl.constexpr,
    STOP: tl.constexpr,
    SHAPE: tl.constexpr,
    SHIFT: tl.constexpr,
    ORIGIN: tl.constexpr,
    END: tl.constexpr,
    V0: tl.constexpr,
    V1: tl.constexpr,
    P: tl.constexpr,
    Q: tl.constexpr,
    W: tl.constexpr,
    FACTORS: tl.constexpr,
    LINEAR: tl.constexpr,
    COSINE: tl.constexpr,
    EXPONENTIAL: tl.constexpr,
    POWER: tl.constexpr,
    INV_SQRT: tl.constexpr,
    ONE_MINUS_SQRT: tl.constexpr,
    COSINE_RESTARTS: tl.constexpr,
    COSINE_CYCLES: tl.constexpr,
    LOG: tl.constexpr,
    CYCLIC: tl.constexpr,
    PLATEAU: tl.constexpr,
    TANH: tl.constexpr,
    EXP_ANNEAL: tl.constexpr,
    BLOCK: tl.constexpr,
    HAS_AMOUNT: tl.constexpr,
    HAS_SKIP: tl.constexpr,
    HAS_PLATEAU: tl.constexpr,
    HAS_METRIC: tl.constexpr,
    HAS_PREVIOUS_SCALE: tl.constexpr,
):
    delta = tl.full((), increment, tl.int64)
    advances = delta == 1  # the plateau's update: increment 1 and not skipped (whatever the amount)
    if HAS_AMOUNT:
        delta = delta * tl.load(amount_ptr)
    if HAS_SKIP:
        if HAS_PREVIOUS_SCALE:  # a GradScaler's scale: lowered since the previous step iff skipped
            scale = tl.load(skip_ptr)
            skipped = scale < tl.load(previous_scale_ptr)
            tl.store(previous_scale_ptr, scale)
        else:
            skipped = tl.load(skip_ptr).to(tl.float32) != 0
        delta = tl.where(skipped, 0, delta)
        advances = advances & (skipped == 0)
    if HAS_METRIC:
        metric = tl.load(metric_ptr).to(tl.float64)  # torch's float(metrics)
    step = tl.load(step_ptr) + delta
    s = tl.maximum(step, 0).to(tl.float64)  # a negative step counts as 0
    for block_start in range(0, num_groups, BLOCK):
        g = block_start + tl.arange(0, BLOCK)
        mask = g < num_groups
        shape = tl.zeros([BLOCK], dtype=tl.float64)
        shift = tl.zeros([BLOCK], dtype=tl.float64)
        origin = tl.zeros([BLOCK], dtype=tl.float64)
        end = tl.full([BLOCK], 1.0, dtype=tl.float64)  # masked lanes: no 0 / 0
        v0 = tl.full([BLOCK], 1.0, dtype=tl.float64)
        v1 = tl.zeros([BLOCK], dtype=tl.float64)
        p = tl.zeros([BLOCK], dtype=tl.float64)
        q = tl.zeros([BLOCK], dtype=tl.float64)
        w = tl.zeros([BLOCK], dtype=tl.float64)
        # A plain schedule (FACTORS == 1, read from segment 0) follows its last segment with
        # START <= s (padding has START = +inf): select its columns.
        factors = tl.load(table_ptr + FACTORS * num_groups + g, mask=mask, other=1.0)
        for k in range(0, num_segments):
            row = table_ptr + k * NUM_COLUMNS * num_groups + g
            take = tl.load(row + START * num_groups, mask=mask, other=float("inf")) <= s
            shape = tl.where(take, tl.load(row + SHAPE * num_groups, mask=mask), shape)
            shift = tl.where(take, tl.load(row + SHIFT * num_groups, mask=mask), shift)
            origin = tl.where(take, tl.load(row + ORIGIN * num_groups, mask=mask), origin)
            end = tl.where(take, tl.load(row + END * num_groups, mask=mask), end)
            v0 = tl.where(take, tl.load(row + V0 * num_groups, mask=mask), v0)
            v1 = tl.where(take, tl.load(row + V1 * num_groups, mask=mask), v1)
            p = tl.where(take, tl.load(row + P * num_groups, mask=mask), p)
            q = tl.where(take, tl.load(row + Q * num_groups, mask=mask), q)
            w = tl.where(take, tl.load(row + W * num_groups, mask=mask), w)
        product = tl.max(factors, axis=0) > 1
        plateau_value = v0  # unused without the state
        if HAS_PLATEAU:
            plateau_value = tl.load(plateau_ptr + _VALUE * num_groups + g, mask=mask, other=1.0)
        if HAS_METRIC:
            # The groups whose active segment is a PLATEAU: the selected one (plain), any active one
            # (product); their state moves before the evaluation reads it.
            active = shape == PLATEAU
            if product:
                in_product = tl.zeros([BLOCK], dtype=tl.int1)
                for k in range(0, num_segments):
                    row = table_ptr + k * NUM_COLUMNS * num_groups + g
                    seg_start = tl.load(row + START * num_groups, mask=mask, other=float("inf"))
                    seg_stop = tl.load(row + STOP * num_groups, mask=mask, other=float("inf"))
                    seg_shape = tl.load(row + SHAPE * num_groups, mask=mask, other=0.0)
                    in_product = in_product | ((seg_start <= s) & (s < seg_stop) & (seg_shape == PLATEAU))
                active = tl.where(factors > 1, in_product, active)
            active = active & mask & advances
            plateau_value = _plateau_update(plateau_ptr, g, num_groups, active, metric, plateau_value)
        # Usually one evaluation of the selected segment. When some group of the block is a product,
        # every segment instead, multiplying the active ones in table order (one call site: the
        # shapes are compiled once).
        lr = tl.full([BLOCK], 1.0, dtype=tl.float64)
        for k in range(0, tl.where(product, num_segments, 1)):
            if product:
                row = table_ptr + k * NUM_COLUMNS * num_groups + g
                seg_start = tl.load(row + START * num_groups, mask=mask, other=float("inf"))
                seg_stop = tl.load(row + STOP * num_groups, mask=mask, other=float("inf"))
                take = (seg_start <= s) & (s < seg_stop)
                shape = tl.load(row + SHAPE * num_groups, mask=take, other=0.0)
                shift = tl.load(row + SHIFT * num_groups, mask=take, other=0.0)
                origin = tl.load(row + ORIGIN * num_groups, mask=take, other=0.0)
                end = tl.load(row + END * num_groups, mask=take, other=1.0)
                v0 = tl.load(row + V0 * num_groups, mask=take, other=1.0)
                v1 = tl.load(row + V1 * num_groups, mask=take, other=0.0)
                p = tl.load(row + P * num_groups, mask=take, other=0.0)
                q = tl.load(row + Q * num_groups, mask=take, other=0.0)
                w = tl.load(row + W * num_groups, mask=take, other=0.0)
            else:
                take = mask
            value = _segment_value(s, shape, shift, origin, end, v0, v1, p, q, w, plateau_value, LINEAR, COSINE,
                                   EXPONENTIAL, POWER, INV_SQRT, ONE_MINUS_SQRT, COSINE_RESTARTS, COSINE_CYCLES,
                                   LOG, CYCLIC, PLATEAU, HAS_PLATEAU, TANH, EXP_ANNEAL)
            lr = tl.where(take, lr * value, lr)
        tl.store(lrs_ptr + g, lr.to(tl.float32), mask=mask)
    tl.store(step_ptr, step)


def launch(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, increment: int,
           amount: torch.Tensor | None = None, skip: torch.Tensor | None = None,
           plateau: torch.Tensor | None = None, metric: torch.Tensor | None = None,
           previous_scale: torch.Tensor | None = None) -> None:
    num_segments, _, num_groups = table.shape
    _advance_kernel[(1,)](
        step,
        table,
        lrs,
        increment,
        step if amount is None else amount,  # a placeholder pointer when absent (never read)
        step if skip is None else skip,
        table if plateau is None else plateau,
        step if metric is None else metric,
        step if previous_scale is None else previous_scale,
        num_groups,
        num_segments,
        NUM_COLUMNS=NUM_COLUMNS,
        **{column.name: int(column) for column in Column},
        **{shape.name: int(shape) for shape in Shape if shape != Shape.CONSTANT},
        BLOCK=BLOCK,
        HAS_AMOUNT=amount is not None,
        HAS_SKIP=skip is not None,
        HAS_PLATEAU=plateau is not None,
        HAS_METRIC=plateau is not None and metric is not None,
        HAS_PREVIOUS_SCALE=previous_scale is not None,
        enable_fp_fusion=False,  # no FMA: round like the reference, operation by operation
    )

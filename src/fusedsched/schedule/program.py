r"""Schedule programs: every ``LearningRate`` compiles to a few segments, all groups pack into one table.

This module is the segment format, the table and the torch evaluator; it knows no schedule kind
(each kind's compile rule lives in :mod:`fusedsched.schedule.kinds`, which builds tables with
:func:`fusedsched.schedule.kinds.build_table`).

A segment is active on the steps ``START <= s < STOP``. A group's learning rate at step ``s`` is
the product of its active segments' values, in table order; a plain schedule has exactly one
active segment at every step (its value times 1.0, exact), a ``product`` has one per factor.
``FACTORS`` (the same in every row of a group) is the most segments active at one step: when it
is 1, each segment stops where the next starts, and the kernels find the active one from
``START`` alone.

A segment's value at ``s``, with ``u = (s - SHIFT) - ORIGIN`` and ``span = END - ORIGIN``
(``SHIFT`` is the integer offset a ``join`` adds; ``ORIGIN`` and ``END`` are local, so shifting
never rounds them)::

    CONSTANT         v0
    LINEAR           clamp(v0 + ((v1 - v0) / span) * u, min(v0, v1), max(v0, v1))
    COSINE           v1 + (v0 - v1) * 0.5 * (1 + cos(p * u / span)), with u first reduced to u % q
                     when q > 0 (a periodic cosine's period, a whole number of steps);
                     when w != 0 (timm's k-decay, k = w): p * pow(u, w) / pow(span, w) for p * u / span
    EXPONENTIAL      e = u / span, floored when q != 0;  x = v0 * pow(p, e);
                     max(x, v1) when p < 1, else min(x, v1)
    POWER            v1 + (v0 - v1) * pow(1 - u / span, p); when w != 0 (timm's k-decay, k = w):
                     pow(u, w) / pow(span, w) for u / span
    INV_SQRT         v0 * (1 / sqrt(u / span))
    ONE_MINUS_SQRT   v1 + (v0 - v1) * (1 - sqrt(u / span))
    COSINE_RESTARTS  cycles of length span * q**n (q an integer >= 1) from u = 0: n is the cycle
                     holding u (found in closed form: an estimate from log, corrected exactly),
                     t = u - (start of cycle n), T = span * q**n;
                     v1 + (v0 * w**n - v1) * 0.5 * (1 + cos(p * t / T)), ``w**n`` by squaring
                     (in the reference and the C++ kernel; ``pow`` in torch, numpy and Triton)
    COSINE_CYCLES    x = q * (u / span);  v1 + (v0 - v1) * 0.5 * (1 + cos(p * (x - floor(x))))
    LOG              v0 + (v1 - v0) * (p * log(u + 1)), p computed on the host: 1.0 / log(N) for
                     DeepSpeed's logarithmic warm-up (v0 at u = 0, about v1 at u = N - 1)
    CYCLIC           a triangle wave of period span rising for the fraction p of it (torch's
                     ``CyclicLR``): x = u / span; c = floor(1 + x); t = 1.0 + x - c;
                     f = t / p when t <= p, else (t - 1) / (p - 1);
                     v0 + ((v1 - v0) * f) * pow(w, e), e = u when q != 0, else c - 1
    PLATEAU          no formula of the step: the row's VALUE in the plateau state the op is given
                     (:mod:`fusedsched.schedule.plateau_state`), v0 (its initial value) without one
    TANH             x = u / span;  v1 + 0.5 * (v0 - v1) * (1 - tanh(p * (1.0 - x) + q * x))
                     (timm's ``TanhLRScheduler``: p, q its lb, ub)
    EXP_ANNEAL       x = u / span;  v1 + ((2.0 * pow(0.5, x)) - 1.0) * (v0 - v1)  (Megatron's exponential
                     WSD anneal ``min_lr + coeff * delta_lr``, ``delta_lr = max_lr - min_lr``: v0, v1 its
                     max, min; its last step, x = 1, is exactly v1)

Each shape keeps the operation order of the reference formulas that compile to it (see
:mod:`fusedsched.schedule.kinds`), so the device rounds like ``compute_lr``. ``pow``, ``cos``, ``log`` and
``sqrt`` (and ``tanh``) are the C library's in the native CPU kernel, as in Python (so its float64
results are ``compute_lr``'s bit for bit); Triton computes ``pow(x, y)`` as ``exp(y * log(x))``, and
Triton, torch and numpy ``tanh(x)`` as ``1 - 2 / (exp(2 * min(|x|, 20)) + 1)`` (signed; their own
``tanh`` rounds ``1 - tanh`` coarsely near 1), within the precision goal.

The table is a float64 tensor of shape ``[S, NUM_COLUMNS, G]`` (S = the longest program, G = the
number of groups), so one column of one segment is contiguous over groups. Shorter programs are
padded with ``START = +inf``, which no step reaches. Every value a kernel needs (pi included) lives
in the table, never in a kernel argument: Triton types Python float arguments as float32 on GPU.

The shape and column codes here are the single source of truth; ``csrc/schedule_math.h`` mirrors
them and ``tests/ops/test_codes.py`` fails if the two drift apart.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

INF = math.inf


class Shape(enum.IntEnum):
    CONSTANT = 0
    LINEAR = 1
    COSINE = 2
    EXPONENTIAL = 3
    POWER = 4
    INV_SQRT = 5
    ONE_MINUS_SQRT = 6
    COSINE_RESTARTS = 7
    COSINE_CYCLES = 8
    LOG = 9
    CYCLIC = 10
    PLATEAU = 11
    TANH = 12
    EXP_ANNEAL = 13


class Column(enum.IntEnum):
    START = 0
    STOP = 1
    SHAPE = 2
    SHIFT = 3
    ORIGIN = 4
    END = 5
    V0 = 6
    V1 = 7
    P = 8
    Q = 9
    W = 10
    FACTORS = 11


NUM_COLUMNS = len(Column)


@dataclass(frozen=True)
class Segment:
    """One piece of a program: on ``start <= s < stop`` the group follows ``shape``.

    ``origin`` defaults to ``start`` and ``end`` to ``origin + 1`` (unused by CONSTANT; never 0/0).
    """

    start: float
    shape: Shape
    v0: float
    v1: float = 0.0
    p: float = 0.0
    q: float = 0.0
    w: float = 0.0
    origin: float | None = None
    end: float | None = None
    stop: float = INF
    shift: int = 0

    def __post_init__(self) -> None:
        if self.origin is None:
            object.__setattr__(self, "origin", self.start)
        if self.end is None:
            object.__setattr__(self, "end", self.origin + 1)

    def row(self, factors: int = 1) -> list[float]:
        row = [0.0] * NUM_COLUMNS
        row[Column.FACTORS] = float(factors)
        row[Column.START] = float(self.start)
        row[Column.STOP] = float(self.stop)
        row[Column.SHAPE] = float(self.shape)
        row[Column.SHIFT] = float(self.shift)
        row[Column.ORIGIN] = float(self.origin)
        row[Column.END] = float(self.end)
        row[Column.V0] = float(self.v0)
        row[Column.V1] = float(self.v1)
        row[Column.P] = float(self.p)
        row[Column.Q] = float(self.q)
        row[Column.W] = float(self.w)
        return row


PADDING = Segment(INF, Shape.CONSTANT, 0.0, origin=0.0, end=1.0)


def chain(segments: Sequence[Segment]) -> list[Segment]:
    """One factor's program: each segment runs until the next one starts, the last forever."""
    stops = [seg.start for seg in segments[1:]] + [INF]
    return [dataclasses.replace(seg, stop=stop) for seg, stop in zip(segments, stops)]


def shifted(segments: Sequence[Segment], offset: int, until: float = INF) -> list[Segment]:
    """``segments`` moved ``offset`` steps later and cut at ``until`` (``join``'s rule)."""
    out = []
    for seg in segments:
        start, stop = seg.start + offset, min(seg.stop + offset, until)
        if start < stop:
            out.append(dataclasses.replace(seg, start=start, stop=stop, shift=seg.shift + offset))
    return out


def num_factors(program: Sequence[Segment]) -> int:
    """The most segments active at one step: 1 for a plain schedule, more for a ``product``."""
    return max((sum(seg.start <= s < seg.stop for seg in program) for s in {seg.start for seg in program}), default=1)


def pack_programs(programs: Sequence[Sequence[Segment]], device=None) -> torch.Tensor:
    """Pack programs (one per group) into the float64 ``[S, NUM_COLUMNS, G]`` table on ``device``."""
    if not programs:
        raise ValueError("pack_programs needs at least one program (one per param group), got 0")
    num_segments = max(len(p) for p in programs)
    rows = []
    for prog in programs:
        factors = num_factors(prog)
        rows.append([seg.row(factors) for seg in prog] + [PADDING.row(factors)] * (num_segments - len(prog)))
    table = torch.tensor(rows, dtype=torch.float64)  # [G, S, W]
    return table.permute(1, 2, 0).contiguous().to(device)


@dataclass(frozen=True)
class ScheduleTable:
    """Every group's compiled schedule, packed once into one device tensor."""

    table: torch.Tensor
    programs: tuple[tuple[Segment, ...], ...]

    @classmethod
    def from_programs(cls, programs: Sequence[Sequence[Segment]], device=None) -> ScheduleTable:
        """The table of ``programs`` (one per group, in order) on ``device``; see :func:`pack_programs`."""
        programs = tuple(tuple(p) for p in programs)
        return cls(pack_programs(programs, device), programs)

    @property
    def num_groups(self) -> int:
        return self.table.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.table.device


@dataclass(frozen=True)
class ArrayNamespace:
    """The array functions the shape math calls: torch's (:data:`TORCH`) or numpy's (:data:`NUMPY`).

    The arithmetic and comparison operators are the arrays' own. numpy on CPU: one call on a small
    array costs a fraction of a torch op's dispatch and never starts intra-op threads.
    """

    where: Callable
    minimum: Callable  # NaN-propagating in both
    maximum: Callable
    floor: Callable
    cos: Callable
    pow: Callable
    sqrt: Callable
    log: Callable
    ones_like: Callable
    tanh: Callable


def _torch_tanh(x):
    """``tanh(x)`` as ``1 - 2 / (exp(2 * min(|x|, 20)) + 1)``, signed (Triton's too): ``1 - tanh(x)``
    as the C library rounds it, where torch's and numpy's own ``tanh`` lose it near 1 (at |x| >= 20,
    both are 1.0)."""
    t = 1 - 2 / (torch.exp(2 * x.abs().clamp(max=20.0)) + 1)
    return torch.where(x < 0, -t, t)


def _numpy_tanh(x):
    """:func:`_torch_tanh` with numpy."""
    t = 1 - 2 / (np.exp(2 * np.minimum(np.abs(x), 20.0)) + 1)
    return np.where(x < 0, -t, t)


TORCH = ArrayNamespace(torch.where, torch.minimum, torch.maximum, torch.floor, torch.cos, torch.pow, torch.sqrt,
                       torch.log, torch.ones_like, _torch_tanh)
NUMPY = ArrayNamespace(np.where, np.minimum, np.maximum, np.floor, np.cos, np.power, np.sqrt, np.log, np.ones_like,
                       _numpy_tanh)


def _nan_min(a, b):
    return a if a < b or a != a else b


def _nan_max(a, b):
    return a if a > b or a != a else b


def _floor(x):
    return np.float64(math.floor(x)) if math.isfinite(x) else np.float64(x)


def _cos(x):
    return np.float64(math.cos(x) if math.isfinite(x) else math.nan)


def _sqrt(x):
    return np.float64(math.sqrt(x) if x >= 0 else math.nan)


def _log(x):
    return np.float64(math.log(x) if x > 0 else -math.inf if x == 0 else math.nan)


# One lane as numpy float64 scalars (inf and NaN as numpy arrays give them, under np.errstate), with
# the C library's cos / pow / log / sqrt / tanh: where a handful of lanes cost less one by one.
SCALAR = ArrayNamespace(lambda c, a, b: a if c else b, _nan_min, _nan_max, _floor, _cos,
                        lambda a, b: np.float64(a) ** b, _sqrt, _log, lambda x: np.float64(1.0),
                        lambda x: np.float64(math.tanh(x)))
# One lane as Python floats: the same IEEE operations and C library functions as SCALAR, about four
# times cheaper, but a division by zero, an overflow or a domain error raises (ArithmeticError or
# ValueError) where numpy gives inf or NaN: the caller then evaluates that lane with SCALAR.
PYFLOAT = ArrayNamespace(lambda c, a, b: a if c else b, _nan_min, _nan_max, lambda x: float(math.floor(x)),
                         math.cos, math.pow, math.sqrt, math.log, lambda x: 1.0, math.tanh)


def _int_power(base, exponent, xp: ArrayNamespace = TORCH):
    """``base ** exponent`` for integer-valued ``0 <= exponent < 64``, by squaring: exact in float64."""
    result, e = xp.ones_like(base), exponent
    for _ in range(6):
        result = xp.where(e - 2 * xp.floor(e * 0.5) > 0.5, result * base, result)
        base, e = base * base, xp.floor(e * 0.5)
    return result


def _restart_cycle(u, span, mult, xp: ArrayNamespace = TORCH):
    """COSINE_RESTARTS's cycle lookup: the cycle index n, the step t within it, its length T."""
    n1 = xp.floor(u / span)  # mult == 1
    grows = mult > 1
    m = xp.where(grows, mult, 2.0)  # keeps the unused lanes finite
    n = xp.floor(xp.log(u * (m - 1) / span + 1) / xp.log(m))
    n = xp.where(grows & (n >= 0), n, 0.0)
    power = _int_power(m, n, xp)
    first = span * ((power - 1) / (m - 1))
    down = first > u
    n, power = xp.where(down, n - 1, n), xp.where(down, power / m, power)
    up = span * ((power * m - 1) / (m - 1)) <= u
    n, power = xp.where(up, n + 1, n), xp.where(up, power * m, power)
    first = span * ((power - 1) / (m - 1))
    return (
        xp.where(grows, n, n1),
        xp.where(grows, u - first, u - n1 * span),
        xp.where(grows, span * power, span),
    )


# Each shape's value from u = (s - SHIFT) - ORIGIN, span = END - ORIGIN and the segment's v0, v1, p, q, w:
# the formulas of the module docstring, in the reference formulas' operation order.


def _linear(u, span, v0, v1, p, q, w, xp):
    linear = v0 + ((v1 - v0) / span) * u
    return xp.minimum(xp.maximum(linear, xp.minimum(v0, v1)), xp.maximum(v0, v1))


def _k_decay(u, span, w, xp):
    """``(u, span)``, or ``(pow(u, w), pow(span, w))`` where ``w != 0`` (timm's k-decay, k = w).
    numpy arrays without k-decay skip the two ``pow`` (a host check; torch stays branch-free)."""
    if xp is NUMPY and not w.any():
        return u, span
    k = w != 0
    return xp.where(k, xp.pow(u, w), u), xp.where(k, xp.pow(span, w), span)


def _cosine(u, span, v0, v1, p, q, w, xp):
    periodic = q > 0
    reduced = xp.where(periodic, u - q * xp.floor(u / xp.where(periodic, q, 1.0)), u)  # no 0 / 0 when q == 0
    reduced, span = _k_decay(reduced, span, w, xp)
    return v1 + (v0 - v1) * 0.5 * (1 + xp.cos(p * reduced / span))


def _cosine_without_k(u, span, v0, v1, p, q, w, xp):
    """``_cosine`` where ``w == 0``: a lane's function skips the two unused ``pow``."""
    periodic = q > 0
    reduced = xp.where(periodic, u - q * xp.floor(u / xp.where(periodic, q, 1.0)), u)
    return v1 + (v0 - v1) * 0.5 * (1 + xp.cos(p * reduced / span))


def _exponential(u, span, v0, v1, p, q, w, xp):
    x = u / span
    e = xp.where(q != 0, xp.floor(x), x)
    exponential = v0 * xp.pow(p, e)
    return xp.where(p < 1, xp.maximum(exponential, v1), xp.minimum(exponential, v1))


def _power(u, span, v0, v1, p, q, w, xp):
    u, span = _k_decay(u, span, w, xp)
    return v1 + (v0 - v1) * xp.pow(1 - u / span, p)


def _power_without_k(u, span, v0, v1, p, q, w, xp):
    return v1 + (v0 - v1) * xp.pow(1 - u / span, p)


def _inv_sqrt(u, span, v0, v1, p, q, w, xp):
    return v0 * (1 / xp.sqrt(u / span))


def _one_minus_sqrt(u, span, v0, v1, p, q, w, xp):
    return v1 + (v0 - v1) * (1 - xp.sqrt(u / span))


def _cosine_restarts(u, span, v0, v1, p, q, w, xp):
    n, t, cycle = _restart_cycle(u, span, q, xp)
    return v1 + (v0 * xp.pow(w, n) - v1) * 0.5 * (1 + xp.cos(p * t / cycle))


def _cosine_cycles(u, span, v0, v1, p, q, w, xp):
    c = q * (u / span)
    return v1 + (v0 - v1) * 0.5 * (1 + xp.cos(p * (c - xp.floor(c))))


def _log_ramp(u, span, v0, v1, p, q, w, xp):
    return v0 + (v1 - v0) * (p * xp.log(u + 1))
def _cyclic(u, span, v0, v1, p, q, w, xp):
    x = u / span
    cycle = xp.floor(1 + x)
    t = 1.0 + x - cycle
    factor = xp.where(t <= p, t / p, (t - 1) / (p - 1))  # 0 < p < 1
    return v0 + ((v1 - v0) * factor) * xp.pow(w, xp.where(q != 0, u, cycle - 1))


def _tanh(u, span, v0, v1, p, q, w, xp):
    x = u / span
    return v1 + 0.5 * (v0 - v1) * (1 - xp.tanh(p * (1.0 - x) + q * x))


def _exp_anneal(u, span, v0, v1, p, q, w, xp):
    x = u / span
    return v1 + ((2.0 * xp.pow(0.5, x)) - 1.0) * (v0 - v1)


_FORMULAS = {
    Shape.LINEAR: _linear,
    Shape.COSINE: _cosine,
    Shape.EXPONENTIAL: _exponential,
    Shape.POWER: _power,
    Shape.INV_SQRT: _inv_sqrt,
    Shape.ONE_MINUS_SQRT: _one_minus_sqrt,
    Shape.COSINE_RESTARTS: _cosine_restarts,
    Shape.COSINE_CYCLES: _cosine_cycles,
    Shape.LOG: _log_ramp,
    Shape.CYCLIC: _cyclic,
    Shape.TANH: _tanh,
    Shape.EXP_ANNEAL: _exp_anneal,
}
_WITHOUT_K = {Shape.COSINE: _cosine_without_k, Shape.POWER: _power_without_k}  # lanes with w == 0


_SHIFT, _ORIGIN, _END, _V0, _V1, _P, _Q, _W = (int(c) for c in (
    Column.SHIFT, Column.ORIGIN, Column.END, Column.V0, Column.V1, Column.P, Column.Q, Column.W))


def _arguments(seg, s):
    u = (s - seg[_SHIFT]) - seg[_ORIGIN]
    span = seg[_END] - seg[_ORIGIN]
    return u, span, seg[_V0], seg[_V1], seg[_P], seg[_Q], seg[_W]


def shape_values(shape: Shape, seg, s, xp: ArrayNamespace = TORCH):
    """The float64 value at ``s`` of segments that all have ``shape``: ``seg`` is ``[NUM_COLUMNS, ...]``
    (a tensor; arrays or their rows with ``xp=NUMPY``; one lane's float64 scalars with ``xp=SCALAR``,
    or its Python floats with ``xp=PYFLOAT``),
    the result ``[...]``; ``s`` a float or a 0-dim tensor."""
    if shape == Shape.CONSTANT:
        return seg[_V0]
    return _FORMULAS[shape](*_arguments(seg, s), xp)


def lane_function(shape: Shape, seg: Sequence[float]) -> Callable[[float], float]:
    """One segment's value as a function of the step, over Python floats (:data:`PYFLOAT`): the
    :func:`shape_values` formula with the columns that do not depend on the step read once
    (``span``; ``u = (s - SHIFT) - ORIGIN`` stays per step). ``seg``: its ``NUM_COLUMNS`` floats.
    Raises where a :data:`PYFLOAT` operation does (see there)."""
    if shape == Shape.CONSTANT:
        v0 = seg[_V0]
        return lambda s: v0
    formula = _WITHOUT_K.get(shape, _FORMULAS[shape]) if seg[_W] == 0 else _FORMULAS[shape]
    shift, origin = seg[_SHIFT], seg[_ORIGIN]
    span, v0, v1, p, q, w = seg[_END] - origin, seg[_V0], seg[_V1], seg[_P], seg[_Q], seg[_W]
    return lambda s: formula((s - shift) - origin, span, v0, v1, p, q, w, PYFLOAT)


def segment_values(seg, s, shapes: "set[Shape] | None" = None, xp: ArrayNamespace = TORCH, plateau_values=None):
    """Every segment's float64 value at ``s``: ``seg`` is ``[NUM_COLUMNS, ...]``, the result ``[...]``.

    ``shapes``: the shapes to compute (default: all); segments of any other shape get ``v0``. Every
    shape computed is evaluated on every segment and selected by ``SHAPE`` (no data-dependent shape).
    ``plateau_values``: ``[G]`` (the last dimension), each group's ``PLATEAU`` value (the plateau
    state's ``VALUE`` row); None: a ``PLATEAU`` segment is ``v0``.
    """
    computed = [shape for shape in _FORMULAS if shapes is None or shape in shapes]
    code = seg[Column.SHAPE]
    args = _arguments(seg, s)
    out = args[2]  # v0: CONSTANT, and PLATEAU without its state
    for shape in computed:
        out = xp.where(code == shape, _FORMULAS[shape](*args, xp), out)
    if plateau_values is not None:
        out = xp.where(code == Shape.PLATEAU, plateau_values, out)
    return out


def _last_started(table: torch.Tensor, s: torch.Tensor, plateau_values: torch.Tensor | None = None) -> torch.Tensor:
    """Every group as a plain schedule: the value of its last segment with ``START <= s``, computing
    only the shapes those segments have (reading them is free on CPU)."""
    index = ((table[:, Column.START] <= s).sum(0) - 1).clamp_(min=0)
    seg = table.gather(0, index.view(1, 1, -1).expand(1, NUM_COLUMNS, -1)).squeeze(0)  # [W, G]
    shapes = {Shape(int(c)) for c in seg[Column.SHAPE].unique().tolist() if c in _CODES}
    return segment_values(seg, s, shapes, plateau_values=plateau_values)


_CODES = {float(shape) for shape in Shape}


def _product_of_active(table: torch.Tensor, s: torch.Tensor,
                       plateau_values: torch.Tensor | None = None) -> torch.Tensor:
    """Every group's product of its active segments' values, in table order (right for any program)."""
    seg = table.transpose(0, 1)  # [W, S, G]
    active = (seg[Column.START] <= s) & (s < seg[Column.STOP])  # [S, G]
    values = segment_values(seg, s, plateau_values=plateau_values)
    lr = torch.ones_like(values[0])
    for k in range(table.shape[0]):  # multiply the active segments in table order, like the kernels
        lr = torch.where(active[k], lr * values[k], lr)
    return lr


def evaluate_table(table: torch.Tensor, step: torch.Tensor, plateau_values: torch.Tensor | None = None) -> torch.Tensor:
    """Every group's float64 learning rate at ``step`` (an integer tensor), with torch ops only.

    The ``reference`` backend on CUDA, and the host-side evaluation of compiled programs that the
    tests compare with ``compute_lr`` (on CPU the ``reference`` backend evaluates the same
    :func:`shape_values` with numpy: :mod:`fusedsched.ops._reference`). A negative step (a counter
    at -1 re-evaluated) counts as step 0. On CUDA: no host sync and no data-dependent shape
    (capturable in a CUDA graph), every segment evaluated. On CPU, where reading the table costs
    nothing, plain schedules evaluate only their current segment and products alone take the
    general path. ``plateau_values``: float64 ``[G]``, each group's ``PLATEAU`` value (the plateau
    state's ``VALUE`` row, :mod:`fusedsched.schedule.plateau_state`); None: ``V0``.
    """
    s = step.to(torch.float64).reshape(()).clamp(min=0)
    if table.device.type != "cpu":
        return _product_of_active(table, s, plateau_values)
    lr = _last_started(table, s, plateau_values)
    products = (table[0, Column.FACTORS] > 1).nonzero().squeeze(1)
    if products.numel():
        lr[products] = _product_of_active(table[:, :, products], s,
                                          None if plateau_values is None else plateau_values[products])
    return lr


def active_plateaus(table: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """bool ``[G]``: the groups whose active segment at ``step`` (a negative step counts as 0) is a
    ``PLATEAU``, by the kernels' rule: a plain schedule's last segment with ``START <= s``, any active
    segment (``START <= s < STOP``) of a product. Torch ops, no host sync, no data-dependent shape."""
    s = step.to(torch.float64).reshape(()).clamp(min=0)
    start, plateau = table[:, Column.START], table[:, Column.SHAPE] == Shape.PLATEAU  # [S, G]
    index = ((start <= s).sum(0) - 1).clamp_(min=0)
    last = plateau.gather(0, index.unsqueeze(0)).squeeze(0)
    product = ((start <= s) & (s < table[:, Column.STOP]) & plateau).any(0)
    return torch.where(table[0, Column.FACTORS] > 1, product, last)


def program_over_steps(program: Sequence[Segment], steps: torch.Tensor) -> torch.Tensor:
    """``program``'s table with one group per step, each moved back by its step (``join``'s SHIFT
    rule, as :func:`shifted` with offset ``-s``), so that at step 0 group ``i`` has ``program``'s
    value at ``steps[i]``: one launch of any backend evaluates a whole vector of steps.

    ``steps``: integers in ``[0, 2**53 - 2]``, any shape (flattened). Exact for a program whose
    START, STOP and SHIFT are whole numbers (every compiled schedule's): at step 0 a segment sees
    ``u = (0 - (SHIFT - s)) - ORIGIN``, the same float64 number as ``(s - SHIFT) - ORIGIN``, and
    ``START - s <= 0`` exactly when ``START <= s``.
    """
    s = steps.to(torch.float64).reshape(1, -1)
    table = pack_programs([program]).expand(-1, -1, s.shape[1]).clone()  # [S, NUM_COLUMNS, steps]
    for column in (Column.START, Column.STOP, Column.SHIFT):
        table[:, column] -= s
    return table


def evaluate_program(program: Sequence[Segment], steps: torch.Tensor) -> torch.Tensor:
    """``program``'s float64 learning rate at every step of ``steps`` (see
    :func:`program_over_steps`), with the torch math of :func:`evaluate_table`: a 1-D tensor."""
    table = program_over_steps(program, steps)
    return evaluate_table(table, torch.zeros((), dtype=torch.int64, device=table.device))

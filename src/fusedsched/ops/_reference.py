"""The ``reference`` backend: :mod:`fusedsched.schedule.program`'s shape math in Python, on any device.

It is the fallback when neither the native extension nor Triton can serve a device.

CUDA: :func:`~fusedsched.schedule.program.evaluate_table` with torch ops, every segment evaluated: no host
sync and no allocation that depends on data, so it is capturable in a CUDA graph.

CPU: the same formulas (:func:`~fusedsched.schedule.program.shape_values`) with numpy, on zero-copy views of
the tensors (a numpy call on a small array costs far less than a torch op and never starts
threads). Each group's active segments change only at the steps where one starts or stops (the
table's ``START`` values, and ``STOP`` for products), so between two such marks the selection is
fixed: it is built once per interval, grouped by shape into contiguous columns, and cached with
the table (keyed on the tensor's identity, storage and ``_version``, so changing the table in
place through torch rebuilds it). A step then evaluates only the segments that are not constant,
each shape present on its own lanes (one numpy call per operation; a shape on at most
``SCALAR_LANES`` lanes lane by lane, as Python floats with the C library's functions, cheaper
there, or as numpy float64 scalars where a Python float operation raises: a division by zero, an
overflow or a domain error, where numpy gives inf or NaN); when every active segment is constant it copies cached rates. Products multiply
their active segments in table order, like the kernels. numpy's array ``pow`` and ``log`` may differ
from the C library's in the last float64 bit (within the precision goal, docs/precision.md).

Each engine calls its own :func:`eager_launcher`, which on CPU in eager mode runs the CPU path
without the custom op's dispatch (about 20 us per call by itself), keeping the plan and the tensors'
views between steps. The clock rule (skips, amounts) is :func:`clock`, for both paths. A plain group's lane, when an interval has only such lanes, is written straight
into ``lrs`` as a Python float (rounded to float32 to nearest, as numpy rounds).

With a plateau state (``plateau``, :mod:`fusedsched.schedule.plateau_state`) a launch takes the general path on
either device: :func:`~fusedsched.schedule.program.active_plateaus` picks the groups whose active segment
is a ``PLATEAU``, :func:`~fusedsched.schedule.plateau_state.plateau_step` updates their columns (on a step that
advances with a metric; numpy on CPU, torch ops on CUDA) and
:func:`~fusedsched.schedule.program.evaluate_table` evaluates with their ``VALUE``. Without it, a ``PLATEAU``
segment is the constant ``V0`` and the plan above is unchanged.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable

import numpy as np
import torch

from ..schedule.plateau_state import STATE_COLUMNS, PlateauColumn, plateau_step
from ..schedule.program import (
    NUMPY,
    PYFLOAT,
    SCALAR,
    Column,
    Shape,
    active_plateaus,
    evaluate_table,
    lane_function,
    shape_values,
)

_CODES = {float(shape) for shape in Shape if shape not in (Shape.CONSTANT, Shape.PLATEAU)}  # PLATEAU: V0 here
SCALAR_LANES = 8  # a shape on at most this many lanes is evaluated lane by lane (Python floats): measured
# on the development CPU, numpy costs 5-10 us a shape whatever the lanes, a lane 0.45 us
_START, _STOP, _SHAPE, _V0, _FACTORS = (int(c) for c in (Column.START, Column.STOP, Column.SHAPE, Column.V0, Column.FACTORS))


class _Interval:
    """The selection on ``lo <= s < hi``: constant rates and the non-constant pieces to evaluate.

    ``rates``: float64, one per group, holding every constant value (the other lanes are written each
    step); ``constant``: float32 ``rates`` when nothing else remains. ``plain``: the plain groups'
    :func:`_pieces`, positions into the groups. ``products``: per rank r (each product group's r-th
    active segment in table order), ``(positions, values, pieces)``, positions into ``product_lanes``.
    ``lanes``: when every piece is a plain group's lane, ``plain`` itself (each written straight into
    the output, as a Python float), else None; ``every_lane``: those lanes are every group.
    """

    __slots__ = ("lo", "hi", "rates", "constant", "plain", "products", "lanes", "every_lane")

    def __init__(self, lo, hi, rates, plain, products):
        self.lo, self.hi, self.rates, self.plain, self.products = lo, hi, rates, plain, products
        self.constant = rates.astype(np.float32) if not plain and not products else None
        scalar = plain and not products and all(xp is PYFLOAT for *_, xp in plain)
        self.lanes = [(int(at), shape, cols) for at, shape, cols, _ in plain] if scalar else None
        self.every_lane = scalar and len(plain) == rates.size


def _pieces(seg: np.ndarray) -> list[tuple[np.ndarray | int, Shape, tuple, object]]:
    """``seg`` ``[N, NUM_COLUMNS]``: ``(positions, shape, columns, namespace)`` per non-constant shape
    present (``columns``: the rows of a contiguous ``[NUM_COLUMNS, n]`` array), or per lane when the
    shape has at most ``SCALAR_LANES`` of them (``columns``: the lane's
    :func:`~fusedsched.schedule.program.lane_function` and its numpy scalars, namespace ``PYFLOAT``; see
    :func:`_values`)."""
    codes = seg[:, _SHAPE]
    out = []
    for code in np.unique(codes).tolist():
        if code in _CODES:  # CONSTANT and unknown codes are v0, already in the rates
            at = np.flatnonzero(codes == code)
            shape = Shape(int(code))
            if at.size <= SCALAR_LANES:
                out += [(int(i), shape, (lane_function(shape, seg[i].tolist()), tuple(seg[i])), PYFLOAT) for i in at]
            else:
                out.append((at, shape, tuple(np.ascontiguousarray(seg[at].T)), NUMPY))
    return out


class _TablePlan:
    """What one table's steps need, derived once: the marks, the groups' kinds, the current interval."""

    def __init__(self, table: torch.Tensor):
        self.ref = weakref.ref(table)
        self.key = (table.data_ptr(), table._version)
        t = table.detach().numpy()
        factors = t[0, _FACTORS]
        self.plain_lanes = np.flatnonzero(~(factors > 1))
        self.product_lanes = np.flatnonzero(factors > 1)
        marks = [t[:, _START].ravel(), t[:, _STOP][:, self.product_lanes].ravel()]
        marks = np.unique(np.concatenate(marks))
        self.marks = marks[np.isfinite(marks)].tolist()
        self.interval: _Interval | None = None
        self.io: tuple | None = None  # (step, lrs, their data pointers, their numpy views)

    def interval_at(self, t: np.ndarray, s: float) -> _Interval:
        i = bisect.bisect_right(self.marks, s)
        lo = self.marks[i - 1] if i else -np.inf
        hi = self.marks[i] if i < len(self.marks) else np.inf
        rates = np.ones(t.shape[2])
        plain = []
        if self.plain_lanes.size:
            lanes = self.plain_lanes
            index = np.maximum(np.count_nonzero(t[:, _START][:, lanes] <= s, axis=0) - 1, 0)
            seg = t[index, :, lanes]  # [N, NUM_COLUMNS]
            rates[lanes] = seg[:, _V0]
            plain = [(lanes[at], shape, cols, xp) for at, shape, cols, xp in _pieces(seg)]
        products = []
        if self.product_lanes.size:
            lanes = self.product_lanes
            active = (t[:, _START][:, lanes] <= s) & (s < t[:, _STOP][:, lanes])  # [S, P]
            rank = np.cumsum(active, axis=0)
            for r in range(int(rank[-1].max())):
                positions = np.flatnonzero(rank[-1] > r)
                index = (active & (rank == r + 1))[:, positions].argmax(axis=0)
                seg = t[index, :, lanes[positions]]
                products.append((positions, seg[:, _V0].copy(), _pieces(seg)))
        return _Interval(lo, hi, rates, plain, products)


def _values(shape: Shape, cols: tuple, s: float, xp) -> object:
    """``shape_values``; a lane (``xp`` PYFLOAT, ``cols`` its lane function and its numpy scalars) as
    Python floats, or as numpy float64 scalars where a Python float operation raises (inf, NaN)."""
    if xp is PYFLOAT:
        try:
            return cols[0](s)
        except (ArithmeticError, ValueError):
            xp, cols = SCALAR, cols[1]
    with np.errstate(all="ignore"):  # inf / NaN where the formulas give them, as in torch
        return shape_values(shape, cols, s, xp)


_PLANS: dict[int, _TablePlan] = {}


def _plan(table: torch.Tensor) -> _TablePlan:
    plan = _PLANS.get(id(table))
    if plan is not None and plan.ref() is table and plan.key == (table.data_ptr(), table._version):
        return plan  # a resize in place bumps the version too
    if plan is None or plan.ref() is not table:
        weakref.finalize(table, _PLANS.pop, id(table), None)
    plan = _PLANS[id(table)] = _TablePlan(table)
    return plan


def _evaluate(plan: _TablePlan, interval: _Interval, s: float) -> np.ndarray:
    rates = interval.rates.copy()
    for lanes, shape, cols, xp in interval.plain:
        rates[lanes] = _values(shape, cols, s, xp)
    if interval.products:
        with np.errstate(all="ignore"):  # a product may overflow to inf, as in torch
            rates[plan.product_lanes] = _products(interval, plan.product_lanes.size, s)
    return rates


def _products(interval: _Interval, size: int, s: float) -> np.ndarray:
    """The product groups' rates: their active segments' values multiplied in table order."""
    lr = np.ones(size)
    for positions, values, pieces in interval.products:
        values = values.copy()
        for at, shape, cols, xp in pieces:
            values[at] = _values(shape, cols, s, xp)
        lr[positions] = lr[positions] * values
    return lr


def _advance(plan: _TablePlan, table: torch.Tensor, counter: memoryview, out: np.ndarray, written: memoryview,
             increment: int) -> None:
    """The op's body on CPU: ``counter`` is a memoryview of ``step``; ``out`` is the numpy view of
    ``lrs`` and ``written`` its memoryview (a Python float stored through it is rounded to float32 to
    nearest, as numpy rounds)."""
    new_step = counter[0] + increment
    s = float(new_step) if new_step > 0 else 0.0  # a negative step counts as 0
    interval = plan.interval
    if interval is None or not interval.lo <= s < interval.hi:
        interval = plan.interval = plan.interval_at(table.detach().numpy(), s)
    if interval.constant is not None:
        out[...] = interval.constant
    elif interval.lanes is not None:  # a few lanes: Python floats straight into the output
        if not interval.every_lane:
            out[...] = interval.rates
        for at, shape, cols in interval.lanes:
            try:
                written[at] = cols[0](s)
            except (ArithmeticError, ValueError):
                written[at] = _values(shape, cols, s, PYFLOAT)
    else:
        out[...] = _evaluate(plan, interval, s)
    counter[0] = new_step


def _views(step: torch.Tensor, lrs: torch.Tensor) -> tuple:
    """``(step, lrs, their data pointers, step's memoryview, lrs's numpy view and its memoryview)``: what
    a launch checks and writes through."""
    out = lrs.detach().numpy()
    return step, lrs, step.data_ptr(), lrs.data_ptr(), step.detach().numpy().reshape(-1).data, out, out.data


def _py_where(condition: object, a: object, b: object) -> object:
    return a if condition else b


def clock(increment: int, amount: object, skip: object, previous_scale: object, where: Callable) -> tuple:
    """The op's clock rule (docs/op.md), written once for Python: ``(delta, advances)``.

    The counter moves by ``delta``: 0 on a skipped step, else ``increment * amount`` (``amount`` 1 when
    None); a plateau takes a metric only on a step that ``advances`` (``increment`` 1, not skipped).
    A step is skipped when ``skip`` (a flag) is nonzero or, with ``previous_scale``, when the scale
    ``skip`` is below it; ``previous_scale`` then takes the scale's value. The inputs are numbers,
    numpy views of CPU tensors or tensors on any device (with ``where`` ``numpy.where`` or
    ``torch.where``: no host sync, no data-dependent shape); the kernels do the same in
    csrc/schedule_math.h (``clock_step``) and ops/_triton.py.
    """
    delta = increment if amount is None else increment * amount
    if skip is None:
        return delta, increment == 1
    skipped = skip != 0 if previous_scale is None else skip < previous_scale
    if previous_scale is not None:
        previous_scale[...] = skip
    return where(skipped, 0, delta), where(skipped, False, increment == 1)


def _numpy(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().numpy().reshape(())


def _clock_cpu(increment: int, amount: torch.Tensor | None, skip: torch.Tensor | None,
               previous_scale: torch.Tensor | None) -> tuple[int, bool]:
    """:func:`clock` over CPU tensors, read and written through numpy views (no torch op)."""
    if amount is None and skip is None:
        return increment, increment == 1
    delta, advances = clock(increment, _numpy(amount), _numpy(skip), _numpy(previous_scale), _py_where)
    return int(delta), bool(advances)


def _launch_plateau_cpu(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, delta: int, advances: bool,
                        plateau: torch.Tensor, metric: torch.Tensor | None) -> None:
    """A CPU step with a plateau state: the general path (see the module docstring)."""
    counter = step.detach().numpy().reshape(-1)
    new_step = torch.tensor(int(counter[0]) + delta)
    if metric is not None and advances:
        state = plateau.detach().numpy()
        m = float(metric.detach().numpy().reshape(-1)[0])  # torch's float(metrics)
        with np.errstate(all="ignore"):  # inf and NaN as in Python's float arithmetic
            rows = plateau_step(state, m, active_plateaus(table, new_step).numpy(), np.where)
        for column, row in zip(STATE_COLUMNS, rows):
            state[column] = row
    lrs.copy_(evaluate_table(table, new_step, plateau[PlateauColumn.VALUE]))
    counter[0] = int(new_step)


def _launch_device(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, increment: int,
                   amount: torch.Tensor | None, skip: torch.Tensor | None, plateau: torch.Tensor | None,
                   metric: torch.Tensor | None, previous_scale: torch.Tensor | None) -> None:
    """The op with torch ops on any device: no host sync, fixed shapes (capturable on CUDA)."""
    flat = [None if t is None else t.reshape(()) for t in (amount, skip, previous_scale)]  # views: [1] or []
    delta, advances = clock(increment, *flat, torch.where)
    step.add_(delta)
    if plateau is None:
        lrs.copy_(evaluate_table(table, step))
        return
    if metric is not None and increment == 1:
        active = active_plateaus(table, step) & advances
        rows = plateau_step(plateau, metric.reshape(()).to(torch.float64), active, torch.where)
        for column, row in zip(STATE_COLUMNS, rows):
            plateau[column].copy_(row)
    lrs.copy_(evaluate_table(table, step, plateau[PlateauColumn.VALUE]))


def _dead() -> None:
    return None


def _launcher_cpu() -> Callable[..., None]:
    """A CPU launch that keeps the table's plan and the numpy views of the tensors it was last given
    (finding them again costs about 0.6 us). The plan is taken again when the table changes in place
    (its ``_version``) or is another tensor; the views when ``step`` or ``lrs`` is another tensor or
    moved its storage."""
    seen: list = [_dead, None]  # a weak reference to the table (a freed table's plan goes) and its plan

    def launch(step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None, previous_scale=None):
        delta, advances = _clock_cpu(increment, amount, skip, previous_scale)
        if plateau is not None:
            _launch_plateau_cpu(step, table, lrs, delta, advances, plateau, metric)
            return
        plan = seen[1]
        if table is not seen[0]() or plan.key[1] != table._version or plan.key[0] != table.data_ptr():
            seen[0], seen[1] = weakref.ref(table), _plan(table)
            plan = seen[1]
        io = plan.io
        if io is None or io[0] is not step or io[1] is not lrs or io[2] != step.data_ptr() or io[3] != lrs.data_ptr():
            io = plan.io = _views(step, lrs)
        _advance(plan, table, io[4], io[5], io[6], delta)

    return launch


_launch_cpu = _launcher_cpu()  # the op's body on CPU tensors (engines get one launch each: eager_launcher)


def launch(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, increment: int,
           amount: torch.Tensor | None = None, skip: torch.Tensor | None = None,
           plateau: torch.Tensor | None = None, metric: torch.Tensor | None = None,
           previous_scale: torch.Tensor | None = None) -> None:
    """The body of ``advance_`` on the ``reference`` backend: numpy on CPU tensors, torch ops elsewhere."""
    body = _launch_cpu if table.is_cpu else _launch_device
    body(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale)


def eager_launcher() -> Callable[..., None]:
    """What one engine calls every step: on CPU in eager mode its own CPU launch (the custom op's
    dispatch alone costs about 20 us); else the op ``fusedsched::advance_`` (traced by
    ``torch.compile``, seen by dispatch modes, captured in CUDA graphs)."""
    cpu = _launcher_cpu()
    op = torch.ops.fusedsched.advance_.default

    def launch(step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None, previous_scale=None):
        if not table.is_cpu or torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack():
            op(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale, backend="reference")
        else:
            cpu(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale)

    return launch

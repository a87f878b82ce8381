"""The device-side ReduceLROnPlateau: ``plateau_update`` against torch, and ``advance_`` with a plateau.

:func:`fusedsched.schedule.plateau_state.plateau_update` (Python floats) is checked step by step against torch's
``ReduceLROnPlateau`` itself; it is then the oracle of the op ``advance_`` with a ``plateau`` state
and a ``metric`` on every CPU backend (the Triton kernel under the interpreter): every step's
rates (float32) and the state's columns, exactly. The CUDA tests replay a captured graph under
``torch.cuda.set_sync_debug_mode("error")`` with the metric rewritten between replays.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from _cuda import NoSyncs, capture
from torch._dynamo.testing import CompileCounterWithBackend

from fusedsched.ops import advance_, bind, check_advance_args, unavailable_reason
from fusedsched.schedule.plateau_state import (
    NUM_PLATEAU_COLUMNS,
    Plateau,
    PlateauColumn,
    plateau_tensor,
    plateau_update,
)
from fusedsched.schedule.program import ScheduleTable, Segment, Shape, chain, lane_function, num_factors

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability

C = PlateauColumn
CPU_BACKENDS = [b for b in ("native", "reference", "triton") if unavailable_reason(b, "cpu") is None]
MODES = [("min", "rel"), ("min", "abs"), ("max", "rel"), ("max", "abs")]


def f32(x: float) -> float:
    return float(np.float32(x))


# --- plateau_update against torch's ReduceLROnPlateau ---------------------------------------------


def _metrics(rng: np.random.Generator, column: list[float], mode: str, steps: int) -> list[float]:
    """A metric sequence drawn step by step from the oracle's state: repeats (plateaus), values exactly
    at the threshold boundary and one float64 step past it, improvements, NaN."""
    out: list[float] = []
    col = list(column)
    last = 1.0
    for _ in range(steps):
        best, threshold = col[C.BEST], col[C.THRESHOLD]
        if not math.isfinite(best):
            best = 1.0
        code = int(col[C.MODE])
        boundary = [best * (1.0 - threshold), best - threshold, best * (threshold + 1.0), best + threshold][code]
        toward = -math.inf if mode == "min" else math.inf
        kind = rng.integers(0, 7)
        m = [last, boundary, math.nextafter(boundary, toward), math.nextafter(boundary, -toward), math.nan,
             best + (rng.standard_normal() * 0.3), boundary - (best - boundary) * rng.random()][kind]
        out.append(m)
        plateau_update(col, m)
        last = m
    return out


def _torch_run(settings: Plateau, metrics: list[float]) -> list[tuple[float, float, int, int]]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=settings.initial)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=settings.mode, factor=settings.factor, patience=settings.patience,
        threshold=settings.threshold, threshold_mode=settings.threshold_mode, cooldown=settings.cooldown,
        min_lr=settings.min, eps=settings.eps)
    out = []
    for m in metrics:
        scheduler.step(m)
        out.append((optimizer.param_groups[0]["lr"], scheduler.best, scheduler.num_bad_epochs,
                    scheduler.cooldown_counter))
    return out


def _oracle_run(settings: Plateau, metrics: list[float]) -> list[tuple[float, float, int, int]]:
    column = settings.fresh()
    out = []
    for m in metrics:
        plateau_update(column, m)
        out.append((column[C.VALUE], column[C.BEST], column[C.BAD_EPOCHS], column[C.COOLDOWN_LEFT]))
    return out


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


@pytest.mark.parametrize("mode, threshold_mode", MODES)
def test_plateau_update_follows_torch_step_by_step(mode, threshold_mode):
    rng = np.random.default_rng(sum(map(ord, mode + threshold_mode)))
    steps = 0
    reductions = 0
    for patience in range(4):
        for cooldown in range(3):
            threshold = [1e-4, 0.1, 0.0][(patience + cooldown) % 3]
            settings = Plateau(initial=0.1, factor=0.5, min=1e-3, threshold=threshold, mode=mode,
                               threshold_mode=threshold_mode, patience=patience, cooldown=cooldown)
            metrics = _metrics(rng, settings.fresh(), mode, 250)
            ours, theirs = _oracle_run(settings, metrics), _torch_run(settings, metrics)
            for i, (a, b) in enumerate(zip(ours, theirs)):
                assert a[0] == b[0] and _same(a[1], b[1]) and a[2:] == b[2:], (patience, cooldown, i, metrics[i], a, b)
            reductions += len({r[0] for r in ours}) - 1
            steps += len(metrics)
    assert steps == 3000 and reductions > 24  # every configuration lowered its rate, min_lr reached


@pytest.mark.parametrize(
    "settings",
    [
        Plateau(initial=1e-3, factor=0.5, eps=3e-4, patience=0),  # eps stops the reductions at 2.5e-4
        Plateau(initial=0.1, factor=0.1, min=0.005, patience=1, cooldown=1),  # min_lr reached, then held
        Plateau(initial=0.1, factor=0.9, mode="max", threshold_mode="abs", threshold=0.5, patience=2),
    ],
    ids=["eps", "min_lr", "max_abs"],
)
def test_plateau_update_at_eps_and_min_lr(settings):
    metrics = [1.0, 1.0, math.nan, 2.0, 0.5] * 40
    ours, theirs = _oracle_run(settings, metrics), _torch_run(settings, metrics)
    assert [o[0] for o in ours] == [t[0] for t in theirs]
    assert [o[2:] for o in ours] == [t[2:] for t in theirs]
    assert len({o[0] for o in ours}) > 1


# --- the op: tables, events, the oracle -----------------------------------------------------------


def _active(program: tuple[Segment, ...], s: float) -> list[int]:
    """The kernels' rule: a plain program's last segment with START <= s (the first if none), a
    product's segments with START <= s < STOP."""
    if num_factors(program) == 1:
        started = [k for k, seg in enumerate(program) if seg.start <= s]
        return [started[-1] if started else 0]
    return [k for k, seg in enumerate(program) if seg.start <= s < seg.stop]


class Oracle:
    """The op in Python floats: the counter, the plateau columns (``plateau_update``), the rates."""

    def __init__(self, programs, plateaus, step=-1):
        self.programs = [tuple(p) for p in programs]
        self.columns = [p.fresh() if p is not None else [0.0] * NUM_PLATEAU_COLUMNS for p in plateaus]
        self.step = step

    def advance(self, increment: int, metric: float | None, skipped: bool) -> None:
        new = self.step + (0 if skipped else increment)
        s = float(max(new, 0))
        if metric is not None and increment == 1 and not skipped:
            for g, program in enumerate(self.programs):
                if any(program[k].shape == Shape.PLATEAU for k in _active(program, s)):
                    plateau_update(self.columns[g], metric)
        self.step = new

    def rates(self) -> list[float]:
        s = float(max(self.step, 0))
        out = []
        for g, program in enumerate(self.programs):
            lr = 1.0
            for k in _active(program, s):
                seg = program[k]
                row = seg.row(num_factors(program))
                lr = lr * (self.columns[g][C.VALUE] if seg.shape == Shape.PLATEAU else lane_function(seg.shape, row)(s))
            out.append(f32(lr))
        return out

    def state(self) -> list[list[float]]:
        return [list(row) for row in zip(*self.columns)]  # [NUM_PLATEAU_COLUMNS, G]


def _metric(value: float, dtype: torch.dtype, shape=()) -> torch.Tensor:
    return torch.full(shape, value, dtype=dtype)


def _events(rng: np.random.Generator, steps: int, quiet: float = 0.15):
    """(increment, metric or None, skipped) per step: mostly advancing steps with a metric."""
    last = 1.0
    for _ in range(steps):
        r = rng.random()
        if r < quiet:
            yield (int(rng.integers(0, 2)), None, False)  # no metric
        elif r < 2 * quiet:
            yield (0, float(rng.random()), False)  # a re-evaluation with a metric
        elif r < 3 * quiet:
            yield (1, float(rng.random()), True)  # skipped
        else:
            last = last if rng.random() < 0.4 else float(rng.random() * 2)
            yield (1, math.nan if rng.random() < 0.03 else last, False)


def _check_run(backend, programs, plateaus, steps=60, seed=0, dtype=torch.float64):
    table = ScheduleTable.from_programs(programs).table
    state = plateau_tensor(plateaus)
    oracle = Oracle(programs, plateaus)
    step, lrs = torch.tensor(-1), torch.zeros(len(programs))
    advance_(step, table, lrs, 0, backend, plateau=state)  # the construction's evaluation
    assert lrs.tolist() == oracle.rates()
    moved = 0
    for i, (increment, metric, skipped) in enumerate(_events(np.random.default_rng(seed), steps)):
        before = state.clone()
        m = None if metric is None else _metric(metric, dtype, () if i % 2 else (1,))
        skip = torch.tensor(skipped) if skipped or i % 3 == 0 else None
        advance_(step, table, lrs, increment, backend, skip=skip, plateau=state, metric=m)
        oracle.advance(increment, None if m is None else float(m.reshape(-1)[0]), skipped)
        assert int(step) == oracle.step, i
        assert _nan_equal(state, torch.tensor(oracle.state(), dtype=torch.float64)), (i, state, oracle.state())
        assert lrs.tolist() == oracle.rates(), (i, increment, metric, skipped)
        if metric is None or increment == 0 or skipped:
            assert torch.equal(state, before) or _nan_equal(state, before), i
        moved += not _nan_equal(state, before)
    return oracle, state, moved


def _nan_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(a.nan_to_num(nan=-7.0), b.nan_to_num(nan=-7.0)))


PLAIN = Plateau(initial=0.1, factor=0.5, min=1e-3, patience=1, cooldown=1)
WARMUP_AT = 12


def _steps(backend: str, steps: int) -> int:
    """A run's length: shorter under the Triton interpreter (a launch costs it tens of milliseconds), still
    long enough for each test's reductions, cooldowns and segment ends."""
    return 50 if backend == "triton" else steps


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_plain_plateau(backend):
    _, state, moved = _check_run(backend, [[Segment(0, Shape.PLATEAU, PLAIN.initial)]], [PLAIN], steps=_steps(backend, 80))
    assert moved > 20 and state[C.VALUE, 0] < PLAIN.initial


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_warmup_then_plateau_does_not_move_before_it_starts(backend):
    program = chain([Segment(0, Shape.LINEAR, 0.0, v1=0.1, end=WARMUP_AT), Segment(WARMUP_AT, Shape.PLATEAU, 0.1)])
    table = ScheduleTable.from_programs([program]).table
    state, fresh = plateau_tensor([PLAIN]), plateau_tensor([PLAIN])
    step, lrs = torch.tensor(-1), torch.zeros(1)
    for s in range(WARMUP_AT - 1):  # steps 0 .. WARMUP_AT - 2 with metrics: the plateau is not active
        advance_(step, table, lrs, 1, backend, plateau=state, metric=torch.tensor(5.0 + s))
        assert torch.equal(state, fresh), s
    advance_(step, table, lrs, 1, backend, plateau=state, metric=torch.tensor(5.0))
    assert int(step) == WARMUP_AT - 1 and torch.equal(state, fresh)  # the last warm-up step
    advance_(step, table, lrs, 1, backend, plateau=state, metric=torch.tensor(5.0))
    assert state[C.BEST, 0] == 5.0 and lrs.tolist() == [f32(0.1)]  # the first plateau step takes its metric
    _check_run(backend, [program], [PLAIN], steps=_steps(backend, 60), seed=1)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("other", ["constant", "cosine"])
def test_plateau_as_a_factor_of_a_product(backend, other):
    decay = (Segment(0, Shape.CONSTANT, 0.5, stop=20), Segment(20, Shape.CONSTANT, 0.25)) if other == "constant" else \
        (Segment(0, Shape.COSINE, 1.0, v1=0.1, p=math.pi, end=40, stop=40), Segment(40, Shape.CONSTANT, 0.1))
    program = [Segment(5, Shape.CONSTANT, 1.0, stop=10), Segment(10, Shape.PLATEAU, 0.2), *decay]
    program = [Segment(0, Shape.CONSTANT, 1.0, stop=5), *program]
    assert num_factors(program) == 2
    settings = Plateau(initial=0.2, factor=0.3, patience=0, cooldown=2, mode="max")
    _, state, moved = _check_run(backend, [program], [settings], steps=_steps(backend, 70), seed=2)  # past the decay's end (40)
    assert moved > 10


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_several_groups_with_and_without_plateaus(backend, dtype):
    programs = [
        [Segment(0, Shape.PLATEAU, 0.1)],
        [Segment(0, Shape.COSINE, 0.3, v1=0.0, p=math.pi, end=100)],
        chain([Segment(0, Shape.LINEAR, 0.0, v1=0.05, end=6), Segment(6, Shape.PLATEAU, 0.05)]),
        [Segment(0, Shape.CONSTANT, 0.7)],
        [Segment(0, Shape.PLATEAU, 2.0)],
    ]
    plateaus = [
        Plateau(initial=0.1, factor=0.5, patience=2, threshold=0.01),
        None,
        Plateau(initial=0.05, factor=0.1, min=1e-4, patience=0, cooldown=1, threshold_mode="abs", threshold=0.05),
        None,
        Plateau(initial=2.0, factor=0.7, patience=1, mode="max", threshold=0.2, eps=0.1),
    ]
    oracle, state, moved = _check_run(backend, programs, plateaus, steps=_steps(backend, 70), seed=3, dtype=dtype)
    assert moved > 20
    assert state[:, 1].eq(0).all() and state[:, 3].eq(0).all()  # the groups without a plateau: untouched zeros


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_float32_metric_is_read_as_its_float64_value(backend):
    table = ScheduleTable.from_programs([[Segment(0, Shape.PLATEAU, 0.1)]]).table
    state, step, lrs = plateau_tensor([PLAIN]), torch.tensor(0), torch.zeros(1)
    advance_(step, table, lrs, 1, backend, plateau=state, metric=torch.tensor([0.1], dtype=torch.float32))
    assert state[C.BEST, 0].item() == float(np.float32(0.1)) != 0.1


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_without_the_state_a_plateau_is_its_initial_value(backend):
    table = ScheduleTable.from_programs([[Segment(0, Shape.PLATEAU, 0.125)], [Segment(0, Shape.CONSTANT, 0.5)]]).table
    step, lrs = torch.tensor(3), torch.zeros(2)
    advance_(step, table, lrs, 1, backend, metric=torch.tensor(1.0))  # a metric alone changes nothing
    assert lrs.tolist() == [0.125, 0.5] and int(step) == 4
    state = plateau_tensor([Plateau(initial=0.125)])
    state = torch.cat([state, torch.zeros(NUM_PLATEAU_COLUMNS, 1, dtype=torch.float64)], 1)
    state[C.VALUE, 0] = 0.03125  # a reduced rate: read from the state
    advance_(step, table, lrs, 0, backend, plateau=state)
    assert lrs.tolist() == [0.03125, 0.5]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_the_clock_launcher_takes_the_plateau_and_the_metric(backend):
    table = ScheduleTable.from_programs([[Segment(0, Shape.PLATEAU, 0.1)]]).table
    settings = Plateau(initial=0.1, factor=0.5, patience=0)
    state, step, lrs = plateau_tensor([settings]), torch.tensor(-1), torch.zeros(1)
    launcher = bind(backend, step, table, lrs, plateau=state)
    column = settings.fresh()
    for m in (3.0, 2.0, 2.0, 4.0, 1.0, 1.0):
        launcher.advance(metric=torch.tensor(m))
        plateau_update(column, m)
        assert state[:, 0].tolist() == column and lrs.tolist() == [f32(column[C.VALUE])]
    launcher.advance(amount=torch.tensor(3), skip=torch.tensor(0.0))
    assert int(step) == 8 and state[:, 0].tolist() == column


def test_native_cpu_writes_the_plateau_value_itself_into_float64_rates():
    """Host mode's evaluation: float64 ``lrs`` hold ``VALUE`` (torch's float rate), not its float32."""
    if "native" not in CPU_BACKENDS:
        pytest.skip(unavailable_reason("native", "cpu"))
    programs = [[Segment(0, Shape.PLATEAU, 0.1)],
                [Segment(0, Shape.CONSTANT, 1.0, stop=3), Segment(3, Shape.PLATEAU, 0.3),
                 Segment(0, Shape.CONSTANT, 0.7)]]
    plateaus = [Plateau(initial=0.1, factor=1 / 3, patience=0), Plateau(initial=0.3, factor=0.7, patience=0)]
    table, state = ScheduleTable.from_programs(programs).table, plateau_tensor(plateaus)
    step, lrs = torch.tensor(-1), torch.zeros(2, dtype=torch.float64)
    oracle = Oracle(programs, plateaus)
    for m in [1.0, 2.0, 3.0, 3.0, 0.5, 4.0, 4.0, 4.0]:
        torch.ops.fusedsched.advance_native_.clock(step, table, lrs, 1, None, None, state, torch.tensor(m))
        oracle.advance(1, m, False)
        s = oracle.step
        assert lrs.tolist() == [oracle.columns[0][C.VALUE], (oracle.columns[1][C.VALUE] if s >= 3 else 1.0) * 0.7]
    assert lrs[0].item() != f32(lrs[0].item())


# --- bad arguments --------------------------------------------------------------------------------


def _table():
    return ScheduleTable.from_programs([[Segment(0, Shape.PLATEAU, 0.1)], [Segment(0, Shape.CONSTANT, 0.2)]]).table


@pytest.mark.parametrize(
    "change, message",
    [
        ({"plateau": torch.zeros(NUM_PLATEAU_COLUMNS, 2)},
         r"plateau must be a float64 tensor of shape \[12, 2\] \(one column per group\), got torch.float32"),
        ({"plateau": torch.zeros(NUM_PLATEAU_COLUMNS, 3, dtype=torch.float64)},
         r"plateau must be a float64 tensor of shape \[12, 2\].*of shape \(12, 3\)"),
        ({"plateau": torch.zeros(2, NUM_PLATEAU_COLUMNS, dtype=torch.float64).T}, "plateau must be contiguous"),
        ({"plateau": torch.zeros(NUM_PLATEAU_COLUMNS, 2, dtype=torch.float64, device="meta")},
         "plateau must be on the table's device cpu, got meta"),
        ({"plateau": [0.0] * 24}, r"plateau must be a float64 tensor .*, got \[0.0"),
        ({"metric": torch.tensor(1)}, "metric must be a one-element float32 or float64 tensor, got torch.int64"),
        ({"metric": torch.zeros(2)}, r"metric must be a one-element float32 or float64 tensor, got .* of shape \(2,\)"),
        ({"metric": torch.tensor(1.0, dtype=torch.float16)}, "metric must be a one-element float32 or float64 tensor"),
        ({"metric": torch.tensor(1.0, device="meta")}, "metric must be on the counter's device cpu, got meta"),
        ({"metric": 0.5}, "metric must be a one-element float32 or float64 tensor, got 0.5"),
    ],
)
def test_bad_plateau_and_metric_raise_before_anything_changes(change, message):
    table = _table()
    args = {"plateau": plateau_tensor([PLAIN, None]), "metric": torch.tensor(1.0), **change}
    with pytest.raises(ValueError, match=message):
        check_advance_args(torch.tensor(0), table, torch.zeros(2), 1, **args)
    step, lrs = torch.tensor(0), torch.zeros(2)
    plateau = args["plateau"]
    before = plateau.clone() if isinstance(plateau, torch.Tensor) and plateau.device.type == "cpu" else None
    for backend in CPU_BACKENDS:
        with pytest.raises(ValueError, match=message):
            advance_(step, table, lrs, 1, backend, **args)
        assert int(step) == 0 and lrs.tolist() == [0.0, 0.0]
        if before is not None:
            assert torch.equal(plateau, before)
    on_cpu = all(not isinstance(t, torch.Tensor) or t.device.type == "cpu" for t in args.values())
    tensors = all(isinstance(t, torch.Tensor) for t in args.values())
    if "native" in CPU_BACKENDS and on_cpu and tensors and "contiguous" not in message:
        named = message.split(" tensor")[0].split(" must")[0]
        with pytest.raises(RuntimeError, match=f"advance_native_: {named} must"):
            torch.ops.fusedsched.advance_native_.clock(step, table, lrs, 1, None, None, args["plateau"], args["metric"])
        assert int(step) == 0 and (before is None or torch.equal(plateau, before))


def test_native_refuses_a_non_contiguous_plateau():
    if "native" not in CPU_BACKENDS:
        pytest.skip(unavailable_reason("native", "cpu"))
    plateau = torch.zeros(2, NUM_PLATEAU_COLUMNS, dtype=torch.float64).T
    with pytest.raises(RuntimeError, match="advance_native_: plateau must be contiguous"):
        torch.ops.fusedsched.advance_native_.clock(torch.tensor(0), _table(), torch.zeros(2), 1, None, None, plateau,
                                                   torch.tensor(1.0))


# --- torch.library.opcheck and torch.compile ------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_opcheck_with_plateau_and_metric(backend):
    table = _table()
    state = plateau_tensor([Plateau(initial=0.1, patience=0), None])
    args = (torch.tensor(4), table, torch.zeros(2), 1, None, torch.tensor(0.0), state, torch.tensor(0.5))
    torch.library.opcheck(torch.ops.fusedsched.advance_.default, args, {"backend": backend})
    if backend == "native":
        native = (torch.tensor(4), table, torch.zeros(2), 1, torch.tensor([2]), None, state.clone(),
                  torch.tensor([0.5], dtype=torch.float32))
        torch.library.opcheck(torch.ops.fusedsched.advance_native_.clock, native)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_compiled_step_with_a_metric_does_not_recompile(backend):
    table = _table()
    settings = Plateau(initial=0.1, factor=0.5, patience=0)
    state, step, lrs, metric = plateau_tensor([settings, None]), torch.tensor(-1), torch.zeros(2), torch.zeros(())
    launcher = bind(backend, step, table, lrs, plateau=state)
    compiler = CompileCounterWithBackend("aot_eager")

    @torch.compile(fullgraph=True, backend=compiler)
    def advance(metric):
        launcher.traced(metric=metric)

    column = settings.fresh()
    torch._dynamo.reset()
    with warnings.catch_warnings(), torch._dynamo.config.patch(error_on_recompile=True):
        warnings.simplefilter("ignore", UserWarning)
        for i, m in enumerate([3.0, 2.0, 2.0, 5.0, 1.0, 1.0, 0.5]):
            metric.fill_(m)
            advance(metric if i % 2 else metric.clone())  # the same or a new tensor
            plateau_update(column, m)
            assert state[:, 0].tolist() == column and lrs.tolist() == [f32(column[C.VALUE]), f32(0.2)]
    assert compiler.frame_count == 1 and int(step) == 6
    torch._dynamo.reset()


# --- CUDA: a captured graph, the metric rewritten between replays ---------------------------------


REPLAYS = 1000


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["native", "triton", "reference"])
def test_captured_graph_updates_the_plateau_on_every_replay(backend):
    reason = unavailable_reason(backend, "cuda")
    if reason is not None:
        pytest.skip(reason)
    programs = [
        [Segment(0, Shape.PLATEAU, 0.1)],
        chain([Segment(0, Shape.LINEAR, 0.0, v1=0.05, end=30), Segment(30, Shape.PLATEAU, 0.05)]),
        [Segment(0, Shape.COSINE, 0.3, v1=0.0, p=math.pi, end=2000)],
        [Segment(0, Shape.CONSTANT, 1.0, stop=50), Segment(50, Shape.PLATEAU, 0.2),
         Segment(0, Shape.CONSTANT, 0.5)],
    ]
    plateaus = [Plateau(initial=0.1, factor=0.5, min=1e-6, patience=3, cooldown=2),
                Plateau(initial=0.05, factor=0.8, patience=0, mode="max", threshold_mode="abs", threshold=0.01),
                None,
                Plateau(initial=0.2, factor=0.3, patience=1, eps=1e-4)]
    table = ScheduleTable.from_programs(programs, "cuda").table
    state = plateau_tensor(plateaus, "cuda")
    step = torch.tensor(-1, device="cuda")
    lrs = torch.zeros(len(programs), device="cuda")
    metric = torch.zeros((), dtype=torch.float64, device="cuda")
    launcher = bind(backend, step, table, lrs, plateau=state)
    warm_state = state.clone()

    def run():
        launcher.advance(metric=metric)

    graph = capture(run, warmups=2)
    step.fill_(-1)  # undo the warm-ups
    state.copy_(warm_state)
    oracle = Oracle(programs, plateaus)
    rng = np.random.default_rng(7)
    values = [float(v) for v in rng.choice([1.0, 0.9, 0.95, 1.2, 0.5, math.nan], size=REPLAYS)]
    on_device = torch.tensor(values, dtype=torch.float64, device="cuda")
    seen_rates, seen_states = [], []
    with NoSyncs():
        for i in range(REPLAYS):
            metric.copy_(on_device[i])  # a device-to-device copy into the captured metric: no sync
            graph.replay()
            seen_rates.append(lrs.clone())
            seen_states.append(state.clone())
    torch.cuda.synchronize()
    for i, m in enumerate(values):
        oracle.advance(1, m, False)
        assert seen_rates[i].tolist() == oracle.rates(), i
        assert _nan_equal(seen_states[i].cpu(), torch.tensor(oracle.state(), dtype=torch.float64)), i
    assert int(step) == REPLAYS - 1
    assert len({r[0].item() for r in seen_rates}) > 3  # the plateau moved

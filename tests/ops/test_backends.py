"""The ``advance_`` op on every backend that runs here, against ``float32(compute_lr)``.

The Triton kernel runs through the interpreter (``TRITON_INTERPRET=1``, set by conftest.py) on CPU
tensors: the only way a machine without a GPU can execute it.
"""

import functools

import numpy as np
import pytest
import torch
from _compare import BIG_STEPS, CONFIGS, assert_lrs_match, configs_for, expected_f32

from fusedsched import LearningRate
from fusedsched.ops import BackendUnavailable, advance_, explain, resolve_backend, unavailable_reason
from fusedsched.schedule.kinds import build_table
from fusedsched.schedule.reference import schedule_marks

HOST_BACKENDS = [b for b in ("reference", "triton", "native") if unavailable_reason(b, "cpu") is None]
STOP = 210  # steps 0..209: every config's edges in its first 200 steps
EDGE_GROUPS = (1023, 1024, 1025)  # one lane short of a block of ops._triton.BLOCK, a full block, one lane past it


def _runs(backend: str, num_groups: int) -> tuple[tuple[int, int], ...]:
    """The steps a sweep visits, as consecutive runs ``(first, stop)`` in ``0..STOP - 1``.

    Every step, except under the Triton interpreter (tenths of a second a launch on a CPU): there the
    steps beside each of the configs' marks (where a segment starts or stops) and every 25th step
    (inside each segment); at the block edge, the first three steps.
    """
    if backend != "triton":
        return ((0, STOP),)
    if num_groups in EDGE_GROUPS:
        return ((0, 3),)
    marks = {m for cfg in configs_for(num_groups) for m in schedule_marks(cfg)} | set(range(0, STOP, 25))
    steps = sorted({s for m in marks for s in (m - 1, m, m + 1) if 0 <= s < STOP})
    runs, first = [], steps[0]
    for previous, s in zip(steps, steps[1:] + [None]):
        if s != previous + 1:
            runs.append((first, previous + 1))
            first = s
    return tuple(runs)


@functools.lru_cache(maxsize=None)
def _sweep(backend: str, num_groups: int) -> tuple[list[int], np.ndarray]:
    """The float32 rates of ``configs_for(num_groups)`` after each step of :func:`_runs`: the counter
    starts one below each run and advances one step at a time. Cached: the tests share the sweeps."""
    table = build_table(configs_for(num_groups)).table
    steps, rows = [], []
    for first, stop in _runs(backend, num_groups):
        step = torch.tensor(first - 1, dtype=torch.int64)
        lrs = torch.full((num_groups,), float("nan"), dtype=torch.float32)
        for s in range(first, stop):
            advance_(step, table, lrs, 1, backend)
            assert step.item() == s
            steps.append(s)
            rows.append(lrs.numpy().copy())
    return steps, np.stack(rows)


@functools.lru_cache(maxsize=None)
def _expected(step: int) -> np.ndarray:
    return expected_f32(list(CONFIGS), step)


def _expected_for(num_groups: int, step: int) -> np.ndarray:
    """``expected_f32(configs_for(num_groups), step)``, from one evaluation of ``CONFIGS``."""
    return _expected(step)[np.arange(num_groups) % len(CONFIGS)]


def _run(backend, configs, steps, start=-1):
    """Advance from ``start`` through ``steps`` (consecutive) and check every group after each step."""
    table = build_table(configs).table
    step = torch.tensor(start, dtype=torch.int64)
    lrs = torch.full((len(configs),), float("nan"), dtype=torch.float32)
    off_by_one = 0
    for s in steps:
        advance_(step, table, lrs, 1, backend)
        assert step.item() == s
        off_by_one += assert_lrs_match(lrs, expected_f32(configs, s), f"{backend} step {s}")
    return off_by_one


@pytest.mark.parametrize("backend", HOST_BACKENDS)
@pytest.mark.parametrize("num_groups", [1, 3, 11, len(CONFIGS), *EDGE_GROUPS])
def test_every_group_every_step_matches_reference(backend, num_groups):
    steps, rows = _sweep(backend, num_groups)
    off = sum(assert_lrs_match(row, _expected_for(num_groups, s), f"{backend} step {s}") for s, row in zip(steps, rows))
    assert off <= 1e-4 * num_groups * len(steps), f"{off} values 1 ulp off: more than 0.01%"


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_steps_near_2_pow_40(backend):
    configs = configs_for(27)
    for big in BIG_STEPS:
        _run(backend, configs, range(big, big + 3), start=big - 1)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_increment_zero_re_evaluates_without_advancing(backend):
    configs = configs_for(5)
    table = build_table(configs).table
    step = torch.tensor(41, dtype=torch.int64)
    lrs = torch.zeros(5, dtype=torch.float32)
    advance_(step, table, lrs, 0, backend)
    assert step.item() == 41
    assert_lrs_match(lrs, expected_f32(configs, 41))


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_counter_at_minus_one_re_evaluates_as_step_zero(backend):
    # a fresh counter (-1) re-evaluated with increment 0, e.g. after loading a fresh state
    configs = configs_for(len(CONFIGS))
    table = build_table(configs).table
    step, lrs = torch.tensor(-1), torch.zeros(len(configs), dtype=torch.float32)
    advance_(step, table, lrs, 0, backend)
    assert step.item() == -1
    assert_lrs_match(lrs, expected_f32(configs, 0), f"{backend} at -1")


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_every_kind_beside_its_edges_up_to_max_step(backend):
    """Random configs of every kind in one table, at steps beside their edges, far beyond 2**40."""
    import random

    from test_native import config_pool

    from fusedsched.schedule.reference import schedule_marks
    from fusedsched.tml.config import MAX_STEP

    pool = config_pool(seed=11, size=3 * 13) + list(CONFIGS)
    table = build_table(pool).table
    marks = {m for cfg in pool for m in schedule_marks(cfg)}
    steps = sorted({min(max(m + d, 0), MAX_STEP) for m in marks for d in (-1, 0, 1)} | {2**52 + 1, MAX_STEP})
    off = 0
    sampled = sorted(random.Random(0).sample(steps, 15 if backend == "triton" else 40)) + [MAX_STEP]  # the interpreter: fewer
    for s in sampled:
        step, lrs = torch.tensor(s), torch.zeros(len(pool), dtype=torch.float32)
        advance_(step, table, lrs, 0, backend)
        off += assert_lrs_match(lrs, expected_f32(pool, s), f"{backend} step {s}")
    assert off <= 1e-4 * len(sampled) * len(pool), f"{off} values 1 ulp off"


def test_backends_agree_with_each_other():
    # every config, at the steps every backend's sweep visits
    sweeps = {backend: dict(zip(*_sweep(backend, len(CONFIGS)))) for backend in HOST_BACKENDS}
    common = sorted(set.intersection(*(set(rows) for rows in sweeps.values())))
    assert len(common) >= 60
    first = np.stack([sweeps[HOST_BACKENDS[0]][s] for s in common])
    for backend, rows in sweeps.items():
        values = np.stack([rows[s] for s in common])
        ulps = np.abs(values.view(np.int32).astype(np.int64) - first.view(np.int32).astype(np.int64))
        assert ulps.max() <= 1, f"{backend} vs {HOST_BACKENDS[0]}: {ulps.max()} ulp apart"


INTERPRETER_SHORTCUT = """
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
sys.path[:0] = [sys.argv[1]]
import torch
import triton.language as tl
from triton.runtime import interpreter

import _interpreter
from _compare import CONFIGS
from fusedsched import LearningRate
from fusedsched.ops import advance_
from fusedsched.schedule.kinds import build_table
from fusedsched.schedule.plateau_state import Plateau, plateau_tensor

where = tl.where
configs = list(CONFIGS) + [LearningRate(plateau={"learning_rate": 0.1, "patience": 0})]
table = build_table(configs).table
plateaus = plateau_tensor([None] * len(CONFIGS) + [Plateau(initial=0.1, patience=0)])


def launches():
    step, lrs, state, out = torch.tensor(-1), torch.zeros(len(configs)), plateaus.clone(), []
    for s, metric in zip((0, 7, 2**40), (1.0, 2.0, 0.5)):
        step.fill_(s - 1)
        advance_(step, table, lrs, 1, "triton", plateau=state, metric=torch.tensor(metric))
        out += [step.clone(), lrs.clone(), state.clone()]
    assert tl.where is where, "triton.language was left patched"
    return out


why = _interpreter.keep_the_launch_patches()
if why is not None:
    print("not replaced:", why)
    raise SystemExit(0)
shortcut = launches()  # first: the shortcut patches a fresh interpreter's language modules itself
interpreter.InterpretedFunction.__call__ = _interpreter.stock_call
stock = launches()
print("same" if all(torch.equal(a, b) for a, b in zip(shortcut, stock)) else "different")
"""


def test_the_interpreter_without_re_patching_gives_the_stock_rates():
    """conftest.py's shortcut (tests/_interpreter.py) against the interpreter's own helper calls, in a
    fresh interpreter: the same rates, counter and plateau state, bit for bit, over every kind (a
    product among them) and a plateau, and triton.language left as it was found."""
    import subprocess
    import sys
    from pathlib import Path

    if "triton" not in HOST_BACKENDS:
        pytest.skip(f"the Triton interpreter does not run here: {unavailable_reason('triton', 'cpu')}")
    tests = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, "-c", INTERPRETER_SHORTCUT, str(tests)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if proc.stdout.startswith("not replaced:"):
        pytest.skip(f"conftest.py leaves the interpreter's helper calls as they are: {proc.stdout.strip()}")
    assert proc.stdout.strip() == "same"


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_opcheck(backend):
    configs = configs_for(4)
    table = build_table(configs).table
    args = (torch.tensor(7), table, torch.zeros(4, dtype=torch.float32), 1)
    torch.library.opcheck(torch.ops.fusedsched.advance_.default, args, {"backend": backend})


def test_bad_arguments_name_the_argument():
    table = build_table(configs_for(2)).table
    with pytest.raises(ValueError, match="step must be a one-element int64"):
        advance_(torch.tensor(1.0), table, torch.zeros(2), 1)
    with pytest.raises(ValueError, match="lrs must be a contiguous float32 vector of 2"):
        advance_(torch.tensor(1), table, torch.zeros(3), 1)
    with pytest.raises(ValueError, match="table must be float64"):
        advance_(torch.tensor(1), table.float(), torch.zeros(2), 1)
    with pytest.raises(ValueError, match="increment must be 0 or 1, got 2"):
        advance_(torch.tensor(1), table, torch.zeros(2), 2)


def test_dispatcher_explains_itself():
    status = explain("cpu")
    assert status["reference"] == "available"
    assert resolve_backend("cpu", "reference") == "reference"
    assert resolve_backend("cpu", "auto") in ("native", "reference")  # auto never picks the interpreter
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("cpu", "cudnn")
    with pytest.raises(BackendUnavailable, match="triton"):
        resolve_backend("meta", "triton")


# --- the reference backend's CPU path: what it caches per table --------------------------------


def test_reference_cpu_sees_a_table_changed_in_place():
    # the cache is keyed on the table's identity, storage and _version: copy_ (load_state_dict) is seen
    first, second = configs_for(9), list(reversed(configs_for(9)))
    table = build_table(first).table
    step, lrs = torch.tensor(-1), torch.zeros(9, dtype=torch.float32)
    for _ in range(0, 5):
        advance_(step, table, lrs, 1, "reference")
    assert_lrs_match(lrs, expected_f32(first, 4))
    table.copy_(build_table(second).table)
    advance_(step, table, lrs, 1, "reference")
    assert_lrs_match(lrs, expected_f32(second, 5), "after the table changed in place")


def test_reference_cpu_any_order_of_steps_and_tensors():
    # steps that jump back and forth across the segments' marks, and other step / lrs tensors on the same table
    import random

    configs = configs_for(3 * len(CONFIGS))
    table = build_table(configs).table
    steps = random.Random(3).sample(range(0, 260), 60) + [10**9, 3, 2**40, 0]
    for s in steps:
        step, lrs = torch.tensor(s), torch.zeros(len(configs), dtype=torch.float32)
        advance_(step, table, lrs, 0, "reference")
        assert_lrs_match(lrs, expected_f32(configs, s), f"step {s}")


def test_reference_cpu_forgets_a_freed_table():
    import gc

    from fusedsched.ops import _reference

    table = build_table(configs_for(4)).table
    advance_(torch.tensor(3), table, torch.zeros(4, dtype=torch.float32), 1, "reference")
    key = id(table)
    assert key in _reference._PLANS
    del table
    gc.collect()
    assert key not in _reference._PLANS


@pytest.mark.parametrize("picks", [None, (6,), (0, 6), (6, 18, 1), (12, 21, 24, 26)])
def test_reference_in_eager_shim_equals_the_op(picks):
    # LRShim calls the CPU path directly in eager mode; the op gives the same rates at every step,
    # across every segment boundary. Every config (None): numpy per shape. A few groups: each active
    # lane written into lrs as a Python float, constant lanes from the interval's rates.
    from fusedsched import LRShim

    configs = configs_for(len(CONFIGS)) if picks is None else [CONFIGS[i] for i in picks]
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.0} for _ in configs], lr=0.0)
    shim = LRShim(opt, {f"g{i}": c for i, c in enumerate(configs)}, device_schedule=True, backend="reference")
    table = build_table(configs).table
    step, lrs = torch.tensor(0), torch.zeros(len(configs), dtype=torch.float32)
    advance_(step, table, lrs, 0, "reference")
    for s in range(1, 260):
        shim.step()
        advance_(step, table, lrs, 1, "reference")
        assert torch.equal(shim.lr_tensor, lrs), s
        assert_lrs_match(lrs, expected_f32(configs, s), f"step {s}")


def test_reference_in_eager_shim_a_lane_python_floats_cannot_evaluate():
    # inverse_sqrt with timescale 1 at its first step: 1 / sqrt(0) raises with Python floats; the
    # lane falls back to numpy's inf, as the op and every kernel give
    from fusedsched import LRShim

    cfg = LearningRate(inverse_sqrt={"learning_rate": 0.1, "num_ramp_steps": 0, "timescale": 1})
    shifted = build_table([cfg]).table
    shifted[:, 3] += 2.0  # SHIFT: the lane sees u = (s - 2) + 1, so step 1 divides by zero
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    shim = LRShim(opt, {"g": cfg}, device_schedule=True, backend="reference")
    shim._engine.table.copy_(shifted)
    expected = []
    for s in range(1, 4):
        step, lrs = torch.tensor(s), torch.zeros(1)
        advance_(step, shifted, lrs, 0, "native" if "native" in HOST_BACKENDS else "reference")
        expected.append(lrs.item())
    shim.step()  # 0 -> 1: division by zero
    got = [shim.lr_tensor.item()]
    for _ in range(2):
        shim.step()
        got.append(shim.lr_tensor.item())
    assert got[0] == float("inf") and got == expected


def test_reference_in_eager_shim_follows_its_tensors():
    # the launcher keeps the plan and the tensors' views between steps; a table changed in place and
    # a counter whose storage was replaced are followed
    from fusedsched import LRShim

    first, second = configs_for(3), list(reversed(configs_for(3)))
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.0} for _ in first], lr=0.0)
    shim = LRShim(opt, {f"g{i}": c for i, c in enumerate(first)}, device_schedule=True, backend="reference")
    for _ in range(5):
        shim.step()
    assert_lrs_match(shim.lr_tensor, expected_f32(first, 5))
    engine = shim._engine
    engine.table.copy_(build_table(second).table)
    shim.step()
    assert_lrs_match(shim.lr_tensor, expected_f32(second, 6), "after the table changed in place")
    engine.counter.data = torch.tensor(40)
    shim.step()
    assert engine.counter.item() == 41
    assert_lrs_match(shim.lr_tensor, expected_f32(second, 41), "after the counter's storage was replaced")

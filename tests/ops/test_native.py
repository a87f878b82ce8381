"""The native backend (``fusedsched._C``: csrc/advance.cpp on CPU, csrc/cuda/advance.cu on CUDA).

Judged against the float64 references: ``evaluate_table`` (the segment math) and ``compute_lr``
(the seed formulas), to the precision goal of docs/precision.md: identical float32 on >= 99.99% of
(group, step) pairs and never more than one float32 ulp apart. Skipped with a reason when the
extension is not built; CI builds it with ``FUSEDSCHED_BUILD_NATIVE=1`` and then nothing skips.
"""

import os

import torch

if not torch.cuda.is_available():  # before fusedsched, when this file runs alone (conftest.py does it in a session)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import math
import random
import subprocess
import sys
import textwrap

import pytest
from _compare import BIG_STEPS, CONFIGS, RecordOps, configs_for
from _cuda import capture

from fusedsched.ops import _native, unavailable_reason
from fusedsched.schedule.kinds import build_table, compile_schedule
from fusedsched.schedule.program import evaluate_table
from fusedsched.schedule.reference import compute_lr
from fusedsched.tml.config import LearningRate

# torch.compile / opcheck's inductor path warns about torch.jit internals; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

needs_native = pytest.mark.skipif(
    _native._C is None, reason=f"native extension not available: {_native.REASON}"
)

GROUP_COUNTS = (1, 3, 11, 1023, 1025)
BIG = 2**40
# 0..200 one step at a time, then a jump to just below 2**40 and on across it.
STEP_RUNS = ((0, 201), (BIG - 3, BIG + 4))


def advance_native(step, table, lrs, increment):
    torch.ops.fusedsched.advance_native_.default(step, table, lrs, increment)


# --- configs and references ----------------------------------------------------------------------


def _rate(rng: random.Random) -> float:
    return rng.choice([0.0, 0.1, 1.0, 3e-4, 10 ** rng.uniform(-7, 0.5)])


def _step(rng: random.Random, lo: int = 1, hi: int = 120) -> int:
    return rng.choice([rng.randint(lo, hi), rng.randint(lo, hi), BIG + rng.randint(-3, 3)])


def _tml_kind(kind: str, rng: random.Random) -> dict:
    if kind == "constant":
        return {"constant": _rate(rng)}
    if kind == "piecewise_constant":
        bounds = sorted(rng.sample(range(0, 220), rng.randint(0, 5)))
        if rng.random() < 0.25:
            bounds.append(BIG + rng.randint(-2, 2))
        values = [_rate(rng) for _ in range(len(bounds) + 1)]
        return {"piecewise_constant": dict(learning_rate_boundaries=bounds, learning_rate_values=values)}
    if kind == "linear_ramp_to_constant":
        ramp = rng.choice([1, 7, rng.randint(1, 250), BIG + 1])
        return {"linear_ramp_to_constant": dict(learning_rate=_rate(rng), num_ramp_steps=ramp)}
    if rng.random() < 0.25:  # the cosine decay still running at 2**40
        ramp, final = rng.randint(1, 100), BIG + rng.randint(-1, 5)
    else:
        ramp = rng.randint(1, 120)
        final = ramp + rng.randint(1, 120)
    return {"linear_ramp_to_cosine": dict(learning_rate=_rate(rng), final_learning_rate=_rate(rng),
                                          num_ramp_steps=ramp, final_num_steps=final)}


def _kind(kind: str, rng: random.Random, depth: int = 0) -> dict:
    """A random config of ``kind`` whose phase boundaries fall inside the tested steps."""
    ramp = rng.choice([0, rng.randint(1, 40)])
    if kind in LearningRate.KINDS[:4]:
        return _tml_kind(kind, rng)
    if kind == "exponential_decay":
        rate = rng.choice([0.5, 0.9, 0.999, 1.01, rng.uniform(0.01, 2)])
        return {kind: dict(learning_rate=_rate(rng), decay_rate=rate, decay_steps=rng.choice([1, rng.randint(1, 50)]),
                           num_ramp_steps=ramp, staircase=rng.random() < 0.5,
                           end_learning_rate=rng.choice([None, _rate(rng)]))}
    if kind == "polynomial_decay":
        k = rng.choice([1.0, 1.0, 2.0, 0.5])  # k-decay: decays of up to 10**7 steps (docs/precision.md)
        return {kind: dict(learning_rate=_rate(rng), end_learning_rate=_rate(rng), num_ramp_steps=ramp,
                           final_num_steps=ramp + (_step(rng) if k == 1 else rng.randint(1, 120)),
                           power=rng.choice([1.0, 2.0, 0.5, rng.uniform(0.1, 5)]), k_decay=k)}
    if kind == "warmup_stable_decay":
        shapes = ["linear", "cosine", "1-sqrt"]
        L, F, S = _rate(rng), _rate(rng), rng.randint(0, 60)
        decay = rng.choice([*shapes, "exponential"])  # exponential (Megatron's): short decays (docs/precision.md)
        return {kind: dict(learning_rate=L, final_learning_rate=F, num_ramp_steps=ramp, num_stable_steps=S,
                           num_decay_steps=_step(rng, 0) if decay != "exponential" else rng.randint(0, 120),
                           decay_shape=decay, ramp_shape=rng.choice(shapes),
                           num_cycles=rng.choice([0.5, rng.uniform(0.2, 2)]))}
    if kind == "cosine_annealing":
        k = {"hard_restarts": True} if rng.random() < 0.5 else {"k_decay": rng.choice([1.0, 2.0, 0.7])}
        return {kind: dict(learning_rate=_rate(rng), final_learning_rate=_rate(rng), num_ramp_steps=ramp,
                           num_steps=_step(rng) if k.get("k_decay", 1) == 1 else rng.randint(1, 120),
                           num_cycles=rng.choice([0.5, rng.randint(1, 5), rng.uniform(0.1, 3)]), **k)}
    if kind == "tanh_decay":
        lb = rng.choice([-7.0, -3.0, rng.uniform(-8, 2)])
        return {kind: dict(learning_rate=_rate(rng), final_learning_rate=_rate(rng), num_steps=_step(rng),
                           lower_bound=lb, upper_bound=rng.choice([3.0, lb + rng.uniform(0.1, 8)]))}
    if kind == "cosine_with_restarts":
        return {kind: dict(learning_rate=_rate(rng), final_learning_rate=_rate(rng), num_ramp_steps=ramp,
                           cycle_steps=rng.choice([1, rng.randint(1, 30)]), cycle_mult=rng.choice([1, 2, 3, 7]),
                           cycle_decay=rng.choice([1.0, 0.5, rng.uniform(0.3, 1.2)]))}
    if kind == "one_cycle":
        return {kind: dict(max_learning_rate=_rate(rng), total_steps=rng.choice([rng.randint(5, 200), BIG + 7]),
                           pct_start=rng.choice([0.3, 0.25, 0.45]), anneal_strategy=rng.choice(["cos", "linear"]),
                           div_factor=rng.choice([25.0, 3.0]), final_div_factor=rng.choice([1e4, 7.0]),
                           three_phase=rng.random() < 0.5)}
    if kind == "inverse_sqrt":
        return {kind: dict(learning_rate=_rate(rng), num_ramp_steps=ramp, timescale=rng.choice([None, rng.randint(1, 500)]))}
    if kind == "log_warmup":
        return {kind: dict(learning_rate=_rate(rng), initial_learning_rate=rng.choice([0.0, _rate(rng)]),
                           num_steps=rng.choice([2, 3, rng.randint(2, 200), BIG + 3]))}
    if kind == "cyclic":
        mode = rng.choice(["triangular", "triangular2", "exp_range"])
        return {kind: dict(base_learning_rate=_rate(rng), max_learning_rate=_rate(rng), step_size_up=rng.randint(1, 40),
                           step_size_down=rng.choice([None, rng.randint(1, 40), BIG]), mode=mode,
                           gamma=rng.choice([0.99, 0.5, rng.uniform(0.9, 1.0)]) if mode == "exp_range" else 1.0)}
    if kind == "plateau":  # no metric is given here: its learning_rate at every step
        return {kind: dict(learning_rate=_rate(rng), patience=rng.randint(0, 5), factor=rng.choice([0.1, 0.5]))}
    plain = LearningRate.KINDS[:-3]  # every kind but join, product and offset
    if kind == "offset":
        return {kind: dict(schedule=_kind(rng.choice(plain), rng, depth + 1), steps=rng.choice([0, rng.randint(1, 80)]))}
    children = [_kind(rng.choice(plain if depth else LearningRate.KINDS), rng, depth + 1)
                for _ in range(rng.randint(1, 3))]
    if kind == "join":
        bounds = sorted(rng.sample(range(1, 200), len(children) - 1))
        return {kind: dict(schedules=children, boundaries=bounds)}
    return {kind: dict(schedules=children)}  # product


def config_pool(seed: int = 0, size: int = 52) -> list[LearningRate]:
    """Configs of every kind whose boundaries fall inside the tested steps (0..200, ~2**40)."""
    rng = random.Random(seed)
    pool = []
    while len(pool) < size:
        try:  # a random one_cycle may have a zero-length phase: draw again
            pool.append(LearningRate(**_kind(LearningRate.KINDS[len(pool) % len(LearningRate.KINDS)], rng)))
        except ValueError:
            continue
    return pool


def group_configs(num_groups: int, seed: int = 0) -> tuple[list[LearningRate], list[int]]:
    """``num_groups`` configs drawn from a pool, and each group's index into the pool."""
    pool = config_pool(seed)
    rng = random.Random(seed + num_groups)
    index = [g % len(pool) if g < len(pool) else rng.randrange(len(pool)) for g in range(num_groups)]
    return pool, index


def sweep(advance, table: torch.Tensor, runs=STEP_RUNS) -> tuple[list[int], torch.Tensor]:
    """Run ``advance`` over the steps of ``runs``: increment 0 at each run's first step, then 1.

    Returns the steps and the float32 learning rates, one row per step.
    """
    steps, rows = [], []
    lrs = torch.full((table.shape[-1],), float("nan"), dtype=torch.float32, device=table.device)
    step = torch.zeros(1, dtype=torch.int64, device=table.device)
    for first, stop in runs:
        step.fill_(first)
        for s in range(first, stop):
            advance(step, table, lrs, 0 if s == first else 1)
            steps.append(s)
            rows.append(lrs.clone())
        assert int(step) == stop - 1, f"counter at {int(step)} after advancing to {stop - 1}"
    return steps, torch.stack(rows).cpu()


def table_reference(table: torch.Tensor, steps: list[int]) -> torch.Tensor:
    table = table.cpu()
    return torch.stack([evaluate_table(table, torch.tensor(s)) for s in steps])


def config_reference(pool, index, steps: list[int]) -> torch.Tensor:
    per_config = torch.tensor([[compute_lr(cfg, s) for cfg in pool] for s in steps], dtype=torch.float64)
    return per_config[:, index]


def _ordered(x: torch.Tensor) -> torch.Tensor:
    """float32 bit patterns as integers ordered like the floats (adjacent floats differ by 1)."""
    bits = x.contiguous().view(torch.int32).to(torch.int64)
    return torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def assert_precision_goal(actual: torch.Tensor, expected: torch.Tensor, steps: list[int], what: str) -> None:
    """float32 ``actual`` vs ``expected`` (rounded to float32): >= 99.99% identical, <= 1 ulp apart."""
    expected = expected.to(torch.float32)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    both_nan = actual.isnan() & expected.isnan()
    same = (actual == expected) | both_nan
    nan_mismatch = actual.isnan() ^ expected.isnan()
    ulps = (_ordered(actual) - _ordered(expected)).abs()
    ulps = torch.where(same, 0, ulps)
    bad = nan_mismatch | (ulps > 1)
    n_diff, total = int((~same).sum()), same.numel()
    if bad.any() or n_diff > total * 1e-4:
        where = (bad if bad.any() else ~same).nonzero().tolist()[:8]
        details = "; ".join(
            f"step {steps[i]} group {g}: got {actual[i, g].item()!r} expected {expected[i, g].item()!r}"
            f" ({'NaN mismatch' if nan_mismatch[i, g] else f'{int(ulps[i, g])} ulp'})"
            for i, g in where
        )
        pytest.fail(
            f"{what}: {n_diff} of {total} (step, group) values differ "
            f"({int(bad.sum())} by more than 1 ulp or NaN, {int(nan_mismatch.sum())} NaN mismatches); "
            f"first: {details}"
        )


# --- the extension itself --------------------------------------------------------------------------


def test_native_built_when_required():
    if os.environ.get("FUSEDSCHED_BUILD_NATIVE") == "1":
        assert _native._C is not None, f"FUSEDSCHED_BUILD_NATIVE=1 but {_native.REASON}"
    elif _native._C is None:
        pytest.skip(f"native extension not available: {_native.REASON}")


@needs_native
def test_schema_and_kernels():
    schema = str(torch.ops.fusedsched.advance_native_.default._schema)
    assert schema == "fusedsched::advance_native_(Tensor(a!) step, Tensor table, Tensor(b!) lrs, int increment) -> ()"
    clock = str(torch.ops.fusedsched.advance_native_.clock._schema)
    assert clock == (
        "fusedsched::advance_native_.clock(Tensor(a!) step, Tensor table, Tensor(b!) lrs, int increment, "
        "Tensor? amount, Tensor? skip, Tensor(c!)? plateau=None, Tensor? metric=None, "
        "Tensor(d!)? previous_scale=None) -> ()"
    )
    assert unavailable_reason("native", "cpu") is None
    # the Python op fusedsched::advance_ lives in the same namespace (a FRAGMENT beside TORCH_LIBRARY)
    assert hasattr(torch.ops.fusedsched, "advance_")


@pytest.mark.precision
@needs_native
@pytest.mark.parametrize("num_groups", GROUP_COUNTS)
def test_cpu_matches_evaluate_table(num_groups):
    pool, index = group_configs(num_groups)
    table = build_table([pool[i] for i in index]).table
    steps, got = sweep(advance_native, table)
    assert_precision_goal(got, table_reference(table, steps), steps, f"native CPU vs evaluate_table, G={num_groups}")


@needs_native
@pytest.mark.parametrize("num_groups", GROUP_COUNTS)
def test_cpu_matches_compute_lr(num_groups):
    pool, index = group_configs(num_groups, seed=1)
    assert {pool[i].kind for i in index} == set(LearningRate.KINDS) or num_groups < len(LearningRate.KINDS)
    table = build_table([pool[i] for i in index]).table
    steps, got = sweep(advance_native, table)
    assert_precision_goal(got, config_reference(pool, index, steps), steps, f"native CPU vs compute_lr, G={num_groups}")


@needs_native
def test_every_kind_alone_matches_compute_lr():
    pool = config_pool(seed=2, size=2 * len(LearningRate.KINDS))
    for cfg in pool:
        table = build_table([cfg]).table
        steps, got = sweep(advance_native, table)
        assert_precision_goal(got, config_reference([cfg], [0], steps), steps, f"native CPU vs compute_lr for {cfg}")


@needs_native
@pytest.mark.skipif(
    unavailable_reason("triton", "cpu") is not None,
    reason=f"Triton interpreter not available: {unavailable_reason('triton', 'cpu')}",
)
@pytest.mark.parametrize("num_groups", GROUP_COUNTS)
def test_cpu_matches_triton_interpreter(num_groups):
    pool, index = group_configs(num_groups, seed=3)
    table = build_table([pool[i] for i in index]).table
    # the interpreter takes tenths of a second a launch over a thousand groups: the block edge for a few steps
    runs = ((0, 41), (150, 161), (BIG - 1, BIG + 2)) if num_groups < 1000 else ((0, 3), (BIG - 1, BIG + 1))

    def advance_triton(step, table, lrs, increment):
        torch.ops.fusedsched.advance_.default(step, table, lrs, increment, backend="triton")

    steps, native = sweep(advance_native, table, runs)
    steps_t, triton = sweep(advance_triton, table, runs)
    assert steps == steps_t
    assert_precision_goal(native, triton, steps, f"native CPU vs Triton interpreter, G={num_groups}")


@pytest.mark.precision
@needs_native
def test_increment_zero_reevaluates_without_advancing():
    pool, index = group_configs(11)
    table = build_table([pool[i] for i in index]).table
    step = torch.tensor([57], dtype=torch.int64)
    lrs = torch.full((11,), float("nan"))
    advance_native(step, table, lrs, 0)
    assert int(step) == 57
    first = lrs.clone()
    lrs.fill_(float("nan"))
    advance_native(step, table, lrs, 0)
    assert int(step) == 57
    torch.testing.assert_close(lrs, first, rtol=0, atol=0)
    assert_precision_goal(lrs[None], evaluate_table(table, step)[None], [57], "increment 0")
    advance_native(step, table, lrs, 1)
    assert int(step) == 58


@needs_native
def test_zero_dim_step_counter():
    table = build_table([LearningRate(constant=0.5)]).table
    step, lrs = torch.tensor(4), torch.zeros(1)
    advance_native(step, table, lrs, 1)
    assert step.shape == () and int(step) == 5 and lrs.item() == 0.5


def _sample_args(num_groups=3, device="cpu"):
    pool, index = group_configs(num_groups)
    table = build_table([pool[i] for i in index], device=device).table
    step = torch.tensor([9], dtype=torch.int64, device=device)
    lrs = torch.zeros(num_groups, dtype=torch.float32, device=device)
    return step, table, lrs


@needs_native
@pytest.mark.parametrize("increment", [0, 1])
def test_opcheck(increment):
    step, table, lrs = _sample_args(11)
    torch.library.opcheck(torch.ops.fusedsched.advance_native_.default, (step, table, lrs, increment))


@pytest.mark.precision
@needs_native
def test_torch_compile_fullgraph():
    step, table, lrs = _sample_args(11)

    @torch.compile(fullgraph=True)
    def compiled(step, table, lrs):
        torch.ops.fusedsched.advance_native_(step, table, lrs, 1)

    for expected_step in range(10, 14):
        compiled(step, table, lrs)
        assert int(step) == expected_step
        assert_precision_goal(
            lrs[None], evaluate_table(table, step)[None], [expected_step], "torch.compile(fullgraph=True)"
        )


@needs_native
@pytest.mark.parametrize(
    "change, argument",
    [
        (lambda a: {**a, "step": a["step"].to(torch.int32)}, "step"),
        (lambda a: {**a, "step": torch.zeros(2, dtype=torch.int64)}, "step"),
        (lambda a: {**a, "table": a["table"].float()}, "table"),
        (lambda a: {**a, "table": a["table"][:, :5].contiguous()}, "table"),
        (lambda a: {**a, "table": a["table"][0]}, "table"),
        (lambda a: {**a, "table": a["table"][:0]}, "table"),
        (lambda a: {**a, "table": a["table"].transpose(0, 2).contiguous().transpose(0, 2)}, "table"),
        (lambda a: {**a, "lrs": a["lrs"].half()}, "lrs"),
        (lambda a: {**a, "lrs": torch.zeros(4)}, "lrs"),
        (lambda a: {**a, "lrs": torch.zeros(3, 1)}, "lrs"),
        (lambda a: {**a, "increment": 2}, "increment"),
        (lambda a: {**a, "increment": -1}, "increment"),
    ],
)
@pytest.mark.parametrize("entry", ["op", "eager launch"])
def test_bad_inputs_name_the_argument(change, argument, entry):
    step, table, lrs = _sample_args(3)
    args = change({"step": step, "table": table, "lrs": lrs, "increment": 1})
    call = torch.ops.fusedsched.advance_native_.default if entry == "op" else _native.launch
    with pytest.raises(RuntimeError, match=rf"advance_native_.*\b{argument}\b"):
        call(args["step"], args["table"], args["lrs"], args["increment"])
    assert int(step) == 9, "a rejected call must not advance the counter"


# --- fusedsched._C.launch: the op from eager Python, without torch.ops' Python layer ----------------


@needs_native
@pytest.mark.parametrize("num_groups", [1, 3, 1025])
def test_eager_launch_writes_what_the_op_writes(num_groups):
    step, table, lrs = _sample_args(num_groups)
    twin_step, twin_lrs = step.clone(), lrs.clone()
    amount, skip = torch.tensor(7), torch.zeros(())
    calls = [(1,), (0,), (1, amount), (1, None, skip), (1, amount, skip), (0, amount)]
    for extra in calls * 3:
        skip.fill_(float(step.item() % 2))  # skipped every other call
        _native.launch(step, table, lrs, *extra)
        increment, optional = extra[0], (list(extra[1:]) + [None] * 4)[:4]
        if any(t is not None for t in optional):
            torch.ops.fusedsched.advance_native_.clock(twin_step, table, twin_lrs, increment, *optional)
        else:
            torch.ops.fusedsched.advance_native_.default(twin_step, table, twin_lrs, increment)
        assert int(step) == int(twin_step), extra
        assert torch.equal(lrs, twin_lrs), extra
    assert int(step) > 9


@needs_native
def test_eager_launch_dispatches_like_the_op():
    """Through the C++ dispatcher: dispatch modes see the op (its overload chosen by the arguments)."""
    step, table, lrs = _sample_args(3)
    amount = torch.tensor(2)
    with RecordOps() as record:
        _native.launch(step, table, lrs, 1)
        _native.launch(step, table, lrs, 1, amount)
        _native.launch(step, table, lrs, 1, None, None, None, None)
    assert record.seen == ["fusedsched.advance_native_.default", "fusedsched.advance_native_.clock",
                           "fusedsched.advance_native_.default"]
    assert int(step) == 9 + 1 + 2 + 1


@pytest.mark.precision
@needs_native
def test_traceable_launch_is_one_graph_under_torch_compile():
    """What compiled code calls in place of fusedsched._C.launch (which dynamo cannot trace)."""
    step, table, lrs = _sample_args(3)
    amount = torch.tensor(3)
    counts = torch._dynamo.utils.counters
    torch._dynamo.reset()
    counts.clear()

    @torch.compile(fullgraph=True)
    def compiled(step, table, lrs, amount):
        _native.traceable_launch(step, table, lrs, 1)
        _native.traceable_launch(step, table, lrs, 1, amount)

    for n in range(1, 4):
        amount.fill_(n)
        compiled(step, table, lrs, amount)
    assert int(step) == 9 + (1 + 1) + (1 + 2) + (1 + 3)
    assert_precision_goal(lrs[None], evaluate_table(table, step)[None], [int(step)], "compiled traceable launch")
    assert counts["stats"]["unique_graphs"] == 1


_ = object()  # test_eager_launch_refuses_what_is_not_its_arguments: keep the sample's argument


@needs_native
@pytest.mark.parametrize(
    "args, message",
    [
        ((), "takes 4 to 9 positional arguments"),
        ((1, 2, 3, 4, 5, 6, 7, 8, 9, 10), "takes 4 to 9 positional arguments"),
        (("step", _, _, 1), "step must be a tensor, got str"),
        ((_, None, _, 1), "table must be a tensor, got NoneType"),
        ((_, _, _, 1.0), "increment must be an int, got float"),
        ((_, _, _, 1, 3), "amount must be a tensor, got int"),
        ((_, _, _, 1, None, 0.0), "skip must be a tensor, got float"),
        ((_, _, _, 1, None, None, [], None), "plateau must be a tensor, got list"),
        ((_, _, _, 1, None, None, None, 1.0), "metric must be a tensor, got float"),
        ((_, _, _, 1, None, None, None, None, 2), "previous_scale must be a tensor, got int"),
    ],
)
def test_eager_launch_refuses_what_is_not_its_arguments(args, message):
    """``_``: the sample's step, table or lrs in that place."""
    step, table, lrs = _sample_args(3)
    given = [(step, table, lrs)[i] if a is _ else a for i, a in enumerate(args)]
    with pytest.raises(TypeError, match=message):
        _native.launch(*given)
    assert int(step) == 9


@needs_native
def test_float64_lrs_on_cpu_are_compute_lr_bit_for_bit():
    """Host mode's path: the CPU kernel writing float64 gives ``compute_lr``'s values exactly."""
    configs = configs_for(len(CONFIGS) * 3)
    table = build_table(configs).table
    step = torch.full((), -1, dtype=torch.int64)
    lrs = torch.full((len(configs),), float("nan"), dtype=torch.float64)
    steps = list(range(0, 160)) + BIG_STEPS
    for s in steps:
        step.fill_(s - 1)
        torch.ops.fusedsched.advance_native_.default(step, table, lrs, 1)
        assert int(step) == s
        assert lrs.tolist() == [compute_lr(c, s) for c in configs], f"step {s}"


# --- without the extension -------------------------------------------------------------------------


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_disable_switch_falls_back_to_reference_without_warning():
    proc = _run_python(
        """
        import fusedsched, torch
        from fusedsched.ops import explain, resolve_backend
        print(explain("cpu")["native"])
        print(resolve_backend("cpu"))
        print(hasattr(torch.ops.fusedsched, "advance_native_"))
        """,
        FUSEDSCHED_DISABLE_NATIVE="1",
        FUSEDSCHED_BACKEND="auto",
    )
    assert proc.returncode == 0, proc.stderr
    reason, backend, registered = proc.stdout.strip().splitlines()
    assert reason == "disabled by FUSEDSCHED_DISABLE_NATIVE=1"
    assert backend == "reference"
    assert registered == "False"


def test_missing_extension_warns_once_and_falls_back():
    proc = _run_python(
        """
        import importlib.abc, sys, warnings

        class NoNative(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "fusedsched._C":
                    raise ImportError("simulated: no fusedsched._C")

        sys.meta_path.insert(0, NoNative())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import fusedsched.ops
            import fusedsched.ops._native
        from fusedsched.ops import explain, resolve_backend
        native = [w for w in caught if "native backend is unavailable" in str(w.message)]
        print(len(native))
        print(explain("cpu")["native"])
        print(resolve_backend("cpu"))
        """,
        FUSEDSCHED_DISABLE_NATIVE="0",
        FUSEDSCHED_BACKEND="auto",
    )
    assert proc.returncode == 0, proc.stderr
    count, reason, backend = proc.stdout.strip().splitlines()
    assert count == "1", proc.stdout
    assert "simulated: no fusedsched._C" in reason
    assert backend == "reference"


@needs_native
def test_both_registration_orders_coexist():
    # Python's FRAGMENT (fusedsched::advance_) first, then TORCH_LIBRARY from _C.
    proc = _run_python(
        """
        import fusedsched.ops, torch
        from fusedsched.schedule.program import Segment, Shape, pack_programs
        assert not hasattr(torch.ops.fusedsched, "advance_native_")
        import fusedsched._C
        step, lrs = torch.zeros(1, dtype=torch.int64), torch.zeros(1)
        table = pack_programs([[Segment(0, Shape.CONSTANT, 0.25)]])
        torch.ops.fusedsched.advance_native_(step, table, lrs, 1)
        torch.ops.fusedsched.advance_(step, table, lrs, 1, backend="reference")
        print(int(step), lrs.item())
        """,
        FUSEDSCHED_DISABLE_NATIVE="1",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "0.25"]


# --- CUDA --------------------------------------------------------------------------------------------


def _needs_native_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    reason = unavailable_reason("native", "cuda")
    if reason is not None:
        pytest.skip(f"native CUDA kernel not available: {reason}")


@pytest.mark.cuda
@pytest.mark.parametrize("num_groups", GROUP_COUNTS)
def test_cuda_matches_reference(num_groups):
    _needs_native_cuda()
    pool, index = group_configs(num_groups, seed=4)
    table = build_table([pool[i] for i in index], device="cuda").table
    steps, got = sweep(advance_native, table)
    assert_precision_goal(got, table_reference(table, steps), steps, f"native CUDA vs evaluate_table, G={num_groups}")
    assert_precision_goal(got, config_reference(pool, index, steps), steps, f"native CUDA vs compute_lr, G={num_groups}")


@pytest.mark.cuda
@pytest.mark.parametrize("start", [0, BIG - 50])
def test_cuda_graph_replays_advance(start):
    _needs_native_cuda()
    step, table, lrs = _sample_args(1025, device="cuda")
    graph = capture(lambda: advance_native(step, table, lrs, 1))
    step.fill_(start)
    rows = []
    for _ in range(100):
        graph.replay()
        rows.append(lrs.clone())
    torch.cuda.synchronize()
    assert int(step) == start + 100
    steps = list(range(start + 1, start + 101))
    assert_precision_goal(torch.stack(rows).cpu(), table_reference(table, steps), steps, "CUDA graph replays")


@needs_native
@pytest.mark.parametrize("cycle_steps, mult", [(1, 4), (3, 7), (2**30 + 3, 4), (5, 2), (1, 1)])
def test_float64_restarts_are_compute_lr_bit_for_bit_up_to_max_step(cycle_steps, mult):
    """The cycle lookup stays exact at every restart up to 2**53 - 2, where the products get big."""
    from fusedsched.tml.config import MAX_STEP

    cfg = LearningRate(cosine_with_restarts=dict(learning_rate=0.1, final_learning_rate=1e-3, num_ramp_steps=3,
                                                 cycle_steps=cycle_steps, cycle_mult=mult, cycle_decay=0.9))
    steps, start, n = {MAX_STEP, MAX_STEP - 1}, 0, 0
    while start < MAX_STEP and n < 200:
        steps |= {v for v in (start + 2, start + 3, start + 4) if v <= MAX_STEP}  # num_ramp_steps = 3
        start += cycle_steps * mult**n if mult > 1 else cycle_steps * 2**n
        n += 1
    table = build_table([cfg]).table
    step, lrs = torch.zeros((), dtype=torch.int64), torch.zeros(1, dtype=torch.float64)
    for s in sorted(steps):
        step.fill_(s)
        torch.ops.fusedsched.advance_native_.default(step, table, lrs, 0)
        assert lrs.item() == compute_lr(cfg, s), f"step {s}"


@needs_native
def test_float64_every_kind_is_compute_lr_bit_for_bit_at_its_edges_and_far_away():
    """Host mode's float64 path for random configs of every kind, beside each edge, up to 2**53 - 2."""
    from fusedsched.schedule.reference import schedule_marks
    from fusedsched.tml.config import MAX_STEP

    pool = config_pool(seed=7, size=4 * len(LearningRate.KINDS)) + list(CONFIGS)
    table = build_table(pool).table
    step, lrs = torch.zeros((), dtype=torch.int64), torch.zeros(len(pool), dtype=torch.float64)
    marks = {m for cfg in pool for m in schedule_marks(cfg)}
    steps = sorted({min(max(m + d, 0), MAX_STEP) for m in marks for d in (-1, 0, 1)}
                   | {2**41, 2**52 + 1, MAX_STEP - 1, MAX_STEP})
    # an offset evaluates its schedule at s + k: exact in float64 while s + k <= MAX_STEP (host mode
    # takes the Python formulas beyond, HostRates' limit); compared only there
    ahead = [max(0, -min(seg.shift for seg in compile_schedule(cfg))) for cfg in pool]
    for s in steps:
        step.fill_(s)
        torch.ops.fusedsched.advance_native_.default(step, table, lrs, 0)
        want = [compute_lr(cfg, s) for cfg in pool]
        got = lrs.tolist()
        bad = [(i, pool[i].kind, got[i], want[i]) for i in range(len(pool)) if s + ahead[i] <= MAX_STEP
               and got[i] != want[i] and not (math.isnan(got[i]) and math.isnan(want[i]))]
        assert not bad, f"step {s}: {bad[:3]}"


def test_host_mode_takes_the_formulas_where_an_offset_passes_the_exact_steps():
    """Host mode's native path evaluates an offset schedule at s + k in float64: past MAX_STEP - k the
    step is inexact there, so host mode takes the Python formulas (compute_lr's value exactly)."""
    from fusedsched import LRShim
    from fusedsched.tml.config import MAX_STEP

    cfg = LearningRate(offset={"schedule": {"cosine_with_restarts": {
        "learning_rate": 0.0, "final_learning_rate": 0.1, "num_ramp_steps": 33, "cycle_steps": 1, "cycle_mult": 3,
        "cycle_decay": 1.1445147381361465}}, "steps": 12})
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(8)]
    opt = torch.optim.SGD([{"params": [p]} for p in params], lr=0.0)
    shim = LRShim(opt, {f"g{i}": cfg for i in range(8)}, device_schedule=False)
    assert shim._engine.native
    for s in (MAX_STEP - 12, MAX_STEP - 3, MAX_STEP):
        shim.step(epoch=s)
        assert shim.get_last_lr() == [compute_lr(cfg, s)] * 8, s

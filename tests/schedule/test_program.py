"""Compiled schedule programs, evaluated on the host, against the float64 reference ``compute_lr``."""

import math

import numpy as np
import pytest
import torch
from _compare import BIG_STEPS, CONFIGS, assert_lrs_match, expected_f32

from fusedsched import LearningRate, compute_lr
from fusedsched.ops import _native
from fusedsched.schedule.kinds import build_table, compile_schedule
from fusedsched.schedule.program import (
    NUM_COLUMNS,
    PYFLOAT,
    SCALAR,
    Column,
    Segment,
    Shape,
    evaluate_table,
    shape_values,
)

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability

STEPS = list(range(0, 260)) + BIG_STEPS


def _host_lrs(table: torch.Tensor, step: int) -> np.ndarray:
    return evaluate_table(table, torch.tensor(step)).numpy()


EXACT_SHAPES = {Shape.CONSTANT, Shape.LINEAR}  # no cos / pow / sqrt / log: torch rounds like Python


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.kind)
def test_program_agrees_with_compute_lr_in_float64(cfg):
    table = build_table([cfg]).table
    got = np.array([_host_lrs(table, s)[0] for s in STEPS])
    want = np.array([compute_lr(cfg, s) for s in STEPS])
    if {seg.shape for seg in compile_schedule(cfg)} <= EXACT_SHAPES:
        np.testing.assert_array_equal(got, want)
    else:  # torch's cos, pow, sqrt, log may differ from the C library's in the last bit
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=8 * np.finfo(np.float64).eps * scale)


def test_linear_ramp_to_constant_keeps_the_min_at_the_ramp_end():
    # (0.1 / 3) * 3 rounds below 0.1; the seed formula min(L, (L / R) * s) returns that, not L.
    cfg = LearningRate(linear_ramp_to_constant={"learning_rate": 0.1, "num_ramp_steps": 3})
    table = build_table([cfg]).table
    assert _host_lrs(table, 3)[0] == compute_lr(cfg, 3) == min(0.1, (0.1 / 3) * 3)


def test_compile_shapes_per_kind():
    cos = LearningRate(linear_ramp_to_cosine={"learning_rate": 1.0, "final_learning_rate": 0.5, "num_ramp_steps": 2, "final_num_steps": 9})
    assert compile_schedule(cos) == (
        Segment(0, Shape.LINEAR, 0.0, 1.0, end=2, stop=2),
        Segment(2, Shape.COSINE, 1.0, 0.5, end=9, p=math.pi, stop=10),
        Segment(10, Shape.CONSTANT, 0.5),
    )
    pw = LearningRate(piecewise_constant={"learning_rate_boundaries": [4, 8], "learning_rate_values": [3.0, 2.0, 1.0]})
    assert [(s.start, s.v0) for s in compile_schedule(pw)] == [(0, 3.0), (4, 2.0), (8, 1.0)]


def test_table_is_padded_and_laid_out_by_column():
    configs = [LearningRate(constant=0.5), CONFIGS[2]]
    table = build_table(configs)
    assert table.table.dtype == torch.float64
    assert table.table.shape == (4, NUM_COLUMNS, 2)
    assert table.table[:, Column.STOP, 1].tolist() == [3.0, 10.0, 100.0, math.inf]
    assert table.num_groups == 2
    starts = table.table[:, Column.START]
    assert starts[:, 0].tolist() == [0.0, math.inf, math.inf, math.inf]
    assert starts[:, 1].tolist() == [0.0, 3.0, 10.0, 100.0]
    np.testing.assert_array_equal(_host_lrs(table.table, 50), [0.5, 0.03])


def test_empty_table_is_rejected():
    with pytest.raises(ValueError, match="at least one program"):
        build_table([])


# --- the shapes and compositions of the new kinds ------------------------------------------------


def test_every_program_has_one_active_segment_per_factor():
    from fusedsched.schedule.kinds import kind_row

    for cfg in CONFIGS:
        program = compile_schedule(cfg)
        factors = kind_row(cfg).factor_formula()
        for s in list(range(0, 260, 7)) + BIG_STEPS:
            active = [seg for seg in program if seg.start <= s < seg.stop]
            assert len(active) == len(factors(s)), (cfg.kind, s, active)


def test_join_shifts_and_cuts_its_schedules():
    ramp = {"linear_ramp_to_constant": {"learning_rate": 1.0, "num_ramp_steps": 4}}
    cfg = LearningRate(join={"schedules": [{"constant": 0.5}, ramp, {"constant": 0.25}], "boundaries": [10, 12]})
    assert compile_schedule(cfg) == (
        Segment(0, Shape.CONSTANT, 0.5, stop=10),
        # the ramp keeps its local origin and end; SHIFT carries the boundary; cut at 12
        Segment(10, Shape.LINEAR, 0.0, 1.0, origin=0, end=4, stop=12, shift=10),
        Segment(12, Shape.CONSTANT, 0.25, origin=0, shift=12),
    )


def test_product_concatenates_its_factors():
    cfg = LearningRate(product={"schedules": [
        {"constant": 2.0},
        {"piecewise_constant": {"learning_rate_boundaries": [3], "learning_rate_values": [1.0, 0.5]}},
    ]})
    assert [(s.start, s.stop, s.v0) for s in compile_schedule(cfg)] == [(0, math.inf, 2.0), (0, 3, 1.0), (3, math.inf, 0.5)]
    np.testing.assert_array_equal([_host_lrs(build_table([cfg]).table, s)[0] for s in (0, 2, 3, 9)], [2.0, 2.0, 1.0, 1.0])


def test_shift_keeps_fractional_origins_exact():
    # one_cycle's phases start at float steps (7 * 0.3 - 1 = 1.1); a join must not round them
    cycle = {"one_cycle": {"max_learning_rate": 1.0, "total_steps": 7, "anneal_strategy": "linear"}}
    cfg = LearningRate(join={"schedules": [{"constant": 0.1}, cycle], "boundaries": [1000]})
    program = compile_schedule(cfg)
    assert [seg.origin for seg in program[1:3]] == [0.0, float(0.3 * 7) - 1]
    table = build_table([cfg]).table
    steps = range(995, 1010)
    assert [_host_lrs(table, s)[0] for s in steps] == [compute_lr(cfg, s) for s in steps]


@pytest.mark.parametrize("cfg, shapes", [
    (dict(exponential_decay=dict(learning_rate=1.0, decay_rate=0.5, decay_steps=3, num_ramp_steps=2)), [Shape.LINEAR, Shape.EXPONENTIAL]),
    (dict(exponential_decay=dict(learning_rate=0.0, decay_rate=2.0, decay_steps=3)), [Shape.CONSTANT]),
    (dict(polynomial_decay=dict(learning_rate=1.0, final_num_steps=9)), [Shape.POWER, Shape.CONSTANT]),
    (dict(warmup_stable_decay=dict(learning_rate=1.0, num_ramp_steps=2, num_stable_steps=3, num_decay_steps=4, decay_shape="1-sqrt", ramp_shape="cosine")),
     [Shape.COSINE, Shape.CONSTANT, Shape.ONE_MINUS_SQRT, Shape.CONSTANT]),
    (dict(warmup_stable_decay=dict(learning_rate=1.0, num_ramp_steps=2, num_stable_steps=3, num_decay_steps=4,
                                   decay_shape="exponential")),
     [Shape.LINEAR, Shape.CONSTANT, Shape.EXP_ANNEAL, Shape.CONSTANT]),
    (dict(cosine_annealing=dict(learning_rate=1.0, num_steps=9)), [Shape.COSINE]),
    (dict(cosine_annealing=dict(learning_rate=1.0, num_steps=9, hard_restarts=True, num_cycles=2)), [Shape.COSINE_CYCLES, Shape.CONSTANT]),
    (dict(cosine_with_restarts=dict(learning_rate=1.0, cycle_steps=9, cycle_mult=2)), [Shape.COSINE_RESTARTS]),
    (dict(one_cycle=dict(max_learning_rate=1.0, total_steps=10, three_phase=True)), [Shape.COSINE] * 3 + [Shape.CONSTANT]),
    (dict(inverse_sqrt=dict(learning_rate=1.0, num_ramp_steps=5)), [Shape.LINEAR, Shape.INV_SQRT]),
    (dict(log_warmup=dict(learning_rate=1.0, num_steps=5)), [Shape.LOG, Shape.CONSTANT]),
    (dict(tanh_decay=dict(learning_rate=1.0, num_steps=5)), [Shape.TANH, Shape.CONSTANT]),
    (dict(cosine_annealing=dict(learning_rate=1.0, num_steps=9, k_decay=2.0)), [Shape.COSINE, Shape.CONSTANT]),
    (dict(polynomial_decay=dict(learning_rate=1.0, final_num_steps=9, k_decay=0.5)), [Shape.POWER, Shape.CONSTANT]),
])
def test_compile_shapes_of_the_new_kinds(cfg, shapes):
    assert [seg.shape for seg in compile_schedule(LearningRate(**cfg))] == shapes


def test_inverse_sqrt_origin_makes_u_over_span_hugging_faces_ratio():
    (ramp, decay) = compile_schedule(LearningRate(inverse_sqrt=dict(learning_rate=1.0, num_ramp_steps=5, timescale=3)))
    assert (decay.start, decay.origin, decay.end) == (5, 2, 5)  # u / span = (s - 2) / 3 = (s + shift) / timescale


@pytest.mark.parametrize("xp", [PYFLOAT, SCALAR], ids=["pyfloat", "scalar"])
def test_log_shape_is_deepspeed_s_warm_up(xp):
    # DeepSpeed's WarmupLR: min_lr + delta_lr * (inverse_log_warm_up * log(n + 1)), inverse_log_warm_up
    # = 1.0 / log(W); the LOG segment of log_warmup, joined one step later (u = s - 1), bit for bit
    for lo, hi, W in [(0.0, 0.1, 2), (1e-4, 0.02, 3), (0.01, 0.3, 1000), (0.3, 0.07, 37)]:
        cfg = LearningRate(join={"schedules": [{"constant": lo}, {"log_warmup": {
            "learning_rate": hi, "initial_learning_rate": lo, "num_steps": W}}], "boundaries": [1]})
        seg = compile_schedule(cfg)[1]
        assert (seg.shape, seg.p, seg.start, seg.stop) == (Shape.LOG, 1.0 / math.log(W), 1, 1 + W)
        row = seg.row()
        for n in range(W):
            want = lo + (hi - lo) * ((1.0 / math.log(W)) * math.log(n + 1))
            assert float(shape_values(Shape.LOG, row, n + 1, xp)) == want == compute_lr(cfg, n + 1), (W, n)
        assert compute_lr(cfg, W + 1) == hi


@pytest.mark.parametrize("xp", [PYFLOAT, SCALAR], ids=["pyfloat", "scalar"])
def test_tanh_shape_is_timm_s_tanh(xp):
    # timm's TanhLRScheduler._get_lr in one cycle: lr_min + 0.5 * (lr_max - lr_min) * (1 - tanh(lb * (1. - tr)
    # + ub * tr)), tr = t_curr / t_i; the TANH segment of tanh_decay, bit for bit
    for lr_max, lr_min, T, lb, ub in [(0.1, 0.0, 10, -7.0, 3.0), (0.3, 1e-4, 37, -2.5, 6.0), (1.0, 0.7, 1, 0.5, 1.5)]:
        cfg = LearningRate(tanh_decay={"learning_rate": lr_max, "final_learning_rate": lr_min, "num_steps": T,
                                       "lower_bound": lb, "upper_bound": ub})
        seg = compile_schedule(cfg)[0]
        assert (seg.shape, seg.v0, seg.v1, seg.p, seg.q, seg.start, seg.stop, seg.end) == (
            Shape.TANH, lr_max, lr_min, lb, ub, 0, T, T)
        for t in range(T):
            tr = t / T
            want = lr_min + 0.5 * (lr_max - lr_min) * (1 - math.tanh(lb * (1. - tr) + ub * tr))
            assert float(shape_values(Shape.TANH, seg.row(), t, xp)) == want == compute_lr(cfg, t), (T, t)
        assert compute_lr(cfg, T) == lr_min


@pytest.mark.parametrize("kind, cfg", [
    ("cosine_annealing", dict(learning_rate=0.3, final_learning_rate=1e-3, num_ramp_steps=4, num_steps=25)),
    ("polynomial_decay", dict(learning_rate=0.3, end_learning_rate=1e-3, num_ramp_steps=4, final_num_steps=29, power=2.0)),
])
def test_k_decay_one_is_today_s_program_and_k_decay_is_timm_s(kind, cfg):
    # k_decay = 1 compiles to the same table as no k_decay (w = 0: the k-free operation order); another k puts
    # timm's t_curr ** k / t_i ** k in place of u / span, bit for bit in the native kernel
    plain, one = LearningRate(**{kind: cfg}), LearningRate(**{kind: {**cfg, "k_decay": 1.0}})
    assert torch.equal(build_table([plain]).table, build_table([one]).table)
    assert all(seg.w == 0.0 for seg in compile_schedule(plain))
    k = 1.7
    cfg_k = LearningRate(**{kind: {**cfg, "k_decay": k}})
    for s in range(4, 33):
        t = s - 4
        if kind == "cosine_annealing":
            want = 1e-3 + 0.5 * (0.3 - 1e-3) * (1 + math.cos(math.pi * t ** k / 25 ** k)) if t < 25 else 1e-3  # timm's
        else:
            want = 1e-3 + (0.3 - 1e-3) * (1 - t ** k / 25 ** k) ** 2.0 if t <= 25 else 1e-3  # timm's poly
        assert compute_lr(cfg_k, s) == want, s
    if _native._C is not None:
        from fusedsched.schedule.program import program_over_steps

        steps = list(range(40)) + BIG_STEPS
        table = program_over_steps(compile_schedule(cfg_k), torch.tensor(steps))
        lrs = torch.zeros(len(steps), dtype=torch.float64)
        torch.ops.fusedsched.advance_native_.default(torch.zeros((), dtype=torch.int64), table, lrs, 0)
        assert lrs.tolist() == [compute_lr(cfg_k, s) for s in steps]


def test_factors_column_counts_the_product_factors():
    from fusedsched.schedule.program import num_factors

    plain = CONFIGS[6]
    product = LearningRate(product={"schedules": [{"constant": 2.0}, {"constant": 3.0}, {"constant": 0.5}]})
    joined = LearningRate(join={"schedules": [{"constant": 1.0}, {"product": {"schedules": [{"constant": 2.0}, {"constant": 3.0}]}}],
                                "boundaries": [4]})
    table = build_table([plain, product, joined]).table
    assert table[:, Column.FACTORS].tolist() == [[1.0, 3.0, 2.0]] * table.shape[0]  # every row, padding too
    assert [num_factors(compile_schedule(c)) for c in (plain, product, joined)] == [1, 3, 2]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.kind)
def test_plain_programs_stop_where_the_next_segment_starts(cfg):
    # what lets the kernels pick a plain schedule's segment from START alone
    from fusedsched.schedule.program import num_factors

    program = compile_schedule(cfg)
    if num_factors(program) == 1:
        assert program[0].start == 0
        assert [seg.stop for seg in program] == [seg.start for seg in program[1:]] + [math.inf]


def test_negative_step_counts_as_zero():
    table = build_table(CONFIGS).table
    np.testing.assert_array_equal(_host_lrs(table, -1), _host_lrs(table, 0))


@pytest.mark.parametrize("rate, end, staircase", [(0.5, 1e-3, False), (0.9, 0.07, True), (1.5, 0.3, False), (0.5, 0.0, False)])
def test_exponential_decay_becomes_constant_once_bounded(rate, end, staircase):
    cfg = LearningRate(exponential_decay={"learning_rate": 0.1, "decay_rate": rate, "decay_steps": 7,
                                          "num_ramp_steps": 3, "staircase": staircase, "end_learning_rate": end})
    *_, last = compile_schedule(cfg)
    assert last.shape == Shape.CONSTANT and last.v0 == end
    c = int(last.start)
    assert compute_lr(cfg, c - 1) != end and compute_lr(cfg, c) == end
    table = build_table([cfg]).table
    decaying, bounded = list(range(c - 3, c)), list(range(c, c + 3)) + [10**9]
    # from c on the constant itself; before it torch's pow, which may differ from the C library's
    # in the last bit (docs/precision.md)
    assert [_host_lrs(table, s)[0] for s in bounded] == [compute_lr(cfg, s) for s in bounded] == [end] * len(bounded)
    np.testing.assert_allclose([_host_lrs(table, s)[0] for s in decaying], [compute_lr(cfg, s) for s in decaying],
                               rtol=1e-15, atol=0)


def test_the_device_path_of_evaluate_table_agrees_with_the_cpu_path():
    # on CUDA evaluate_table multiplies every active segment (no sync); on CPU it picks plain
    # schedules' segments first. The two lay the values out differently, and torch's vectorized
    # cos / pow round a value by where it sits in the tensor (AVX2: 0.95**21 differs in its last
    # bit): each path is held to the precision goal (docs/precision.md), and the two paths agree
    # in float64 as closely as either agrees with compute_lr
    from fusedsched.schedule.program import _product_of_active

    table = build_table(CONFIGS).table
    steps = STEPS[::7]
    off_by_one = 0
    for s in steps:
        want = np.array([compute_lr(c, s) for c in CONFIGS])
        at = torch.tensor(float(s), dtype=torch.float64)
        every_active, picked = _product_of_active(table, at).numpy(), evaluate_table(table, at).numpy()
        for got, path in ((every_active, "every active segment"), (picked, "plain segments picked")):
            off_by_one += assert_lrs_match(got, expected_f32(CONFIGS, s), f"{path}, step {s}")
        np.testing.assert_allclose(every_active, picked, rtol=1e-15, atol=8 * np.finfo(np.float64).eps * np.abs(want).max(),
                                   err_msg=f"step {s}")
    assert off_by_one <= 1e-4 * 2 * len(CONFIGS) * len(steps), f"{off_by_one} rates 1 ulp off float32(compute_lr)"


# --- tables from programs, and one program over a vector of steps ---------------------------------


def test_from_programs_packs_the_programs_it_is_given():
    from fusedsched.schedule.program import ScheduleTable

    programs = [compile_schedule(c) for c in CONFIGS[:5]]
    table = ScheduleTable.from_programs(programs)
    assert table.programs == tuple(programs)
    assert torch.equal(table.table, build_table(CONFIGS[:5]).table)
    with pytest.raises(ValueError, match="at least one program"):
        ScheduleTable.from_programs([])


def test_program_over_steps_moves_each_group_back_by_its_step():
    from fusedsched.schedule.program import program_over_steps

    cfg = CONFIGS[30]  # a join: its SHIFT column is not zero
    program, steps = compile_schedule(cfg), torch.tensor([0, 7, 10**10])
    table = program_over_steps(program, steps)
    one = build_table([cfg]).table[..., 0]
    assert table.shape == (len(program), NUM_COLUMNS, 3)
    for i, s in enumerate(steps.tolist()):
        moved = {Column.START, Column.STOP, Column.SHIFT}
        for column in Column:
            want = one[:, column] - s if column in moved else one[:, column]
            assert torch.equal(table[:, column, i], want), (column, s)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.kind)
def test_evaluate_program_agrees_with_compute_lr_in_float64(cfg):
    from fusedsched.schedule.program import evaluate_program

    program = compile_schedule(cfg)
    got = evaluate_program(program, torch.tensor(STEPS)).numpy()
    want = np.array([compute_lr(cfg, s) for s in STEPS])
    assert got.shape == (len(STEPS),) and got.dtype == np.float64
    if {seg.shape for seg in program} <= EXACT_SHAPES:
        np.testing.assert_array_equal(got, want)
    else:  # torch's vectorized cos, pow, sqrt, log may differ from the C library's in the last bits
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=8 * np.finfo(np.float64).eps * np.abs(want).max())


@pytest.mark.skipif(_native._C is None, reason=f"native extension not available: {_native.REASON}")
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.kind)
def test_native_op_over_moved_programs_is_compute_lr(cfg):
    # what compute_lr_array relies on: the program moved back by s, at step 0, is the program at s
    from fusedsched.schedule.program import program_over_steps

    steps = STEPS + [2**52 + 1, 2**53 - 3, 2**53 - 2]
    table = program_over_steps(compile_schedule(cfg), torch.tensor(steps))
    lrs = torch.zeros(len(steps), dtype=torch.float64)
    torch.ops.fusedsched.advance_native_.default(torch.zeros((), dtype=torch.int64), table, lrs, 0)
    assert lrs.tolist() == [compute_lr(cfg, s) for s in steps]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.kind)
def test_compiled_programs_start_stop_and_shift_at_whole_steps(cfg):
    # what makes program_over_steps exact (origins and ends may be fractional: one_cycle's are)
    for seg in compile_schedule(cfg):
        assert float(seg.start).is_integer() and float(seg.shift).is_integer(), seg
        assert seg.stop == math.inf or float(seg.stop).is_integer(), seg


@pytest.mark.parametrize("xp", [PYFLOAT, SCALAR], ids=["pyfloat", "scalar"])
def test_exp_anneal_shape_is_megatron_s_exponential_wsd_anneal(xp):
    # Megatron's OptimizerParamScheduler.get_lr: delta_lr = max_lr - min_lr; wsd_decay_ratio =
    # float(wsd_steps) / float(wsd_decay_steps); coeff = (2.0 * math.pow(0.5, ratio)) - 1.0;
    # min_lr + coeff * delta_lr, written out here: the EXP_ANNEAL segment bit for bit, min_lr at the end
    for lo, hi, A, D in [(0.0, 0.1, 0, 7), (1e-3, 0.02, 5, 37), (3e-4, 0.7, 11, 10**6), (0.05, 0.3, 2**40, 2**33 + 1)]:
        cfg = LearningRate(warmup_stable_decay={"learning_rate": hi, "final_learning_rate": lo, "num_ramp_steps": 0,
                                                "num_stable_steps": A, "num_decay_steps": D,
                                                "decay_shape": "exponential"})
        seg = next(seg for seg in compile_schedule(cfg) if seg.shape == Shape.EXP_ANNEAL)
        for s in sorted({A, A + 1, A + 2, A + D // 3, A + D // 2, A + D - 1, A + D}):
            coeff = (2.0 * math.pow(0.5, float(s - A) / float(D))) - 1.0
            want = lo + coeff * (hi - lo)
            assert float(shape_values(Shape.EXP_ANNEAL, seg.row(), s, xp)) == want == compute_lr(cfg, s), (A, D, s)
        assert lo + ((2.0 * math.pow(0.5, 1.0)) - 1.0) * (hi - lo) == lo

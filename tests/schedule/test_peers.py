"""Each new kind's float64 formula (``compute_lr``) against the peer named as its source of truth:
torch's schedulers, Hugging Face's schedule functions (transformers 5.24), optax's and timm's
documented formulas, DeepSpeed's warm-up. Every phase boundary, and far past the end."""

import functools
import math
import warnings

import numpy as np
import pytest
import torch
from _peers import (
    assert_rates_match,
    optax_exponential_decay,
    optax_join_schedules,
    optimizer,
    stepped,
    timm_cosine,
    torch_rates,
)
from torch.optim import lr_scheduler as tls
from transformers import optimization as hf

from fusedsched import LearningRate, compute_lr
from fusedsched.schedule.kinds.cosine import restart_cycle
from fusedsched.tml.config import MAX_STEP


def ours(cfg: LearningRate, steps) -> np.ndarray:
    return np.array([compute_lr(cfg, s) for s in steps])


def lr(**kind) -> LearningRate:
    return LearningRate(**kind)


def hf_rates(schedule, base: float, steps) -> np.ndarray:
    """LambdaLR's ``base_lr * lmbda(s)`` for an HF schedule built on an optimizer with lr ``base``."""
    sched = schedule(optimizer(base))
    f = sched.lr_lambdas[0]
    return np.array([base * f(s) for s in steps])


# --- exponential_decay: optax, torch ExponentialLR / StepLR ----------------------------------------


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize("rate, end", [(0.5, None), (0.9, 0.3), (1.5, None), (1.5, 20.0), (1.0, 0.5)])
def test_exponential_decay_is_optax_after_the_ramp(staircase, rate, end):
    L, k, R = 3.0, 7, 11
    cfg = lr(exponential_decay=dict(learning_rate=L, decay_rate=rate, decay_steps=k, num_ramp_steps=R,
                                    staircase=staircase, end_learning_rate=end))
    peer = optax_exponential_decay(L, k, rate, transition_begin=R, staircase=staircase, end_value=end)
    steps = list(range(R, R + 200)) + [R + 10**4, 10**6, 2**40]
    assert ours(cfg, steps).tolist() == [peer(s) for s in steps]  # the same formula, bit for bit
    ramp = lr(linear_ramp_to_constant=dict(learning_rate=L, num_ramp_steps=R))
    assert ours(cfg, range(R)).tolist() == ours(ramp, range(R)).tolist()


def test_exponential_decay_is_torch_exponential_and_step():
    cfg = lr(exponential_decay=dict(learning_rate=0.1, decay_rate=0.97, decay_steps=1))
    assert_rates_match(ours(cfg, range(3000)), torch_rates(lambda o: tls.ExponentialLR(o, 0.97), 0.1, 3000),
                       rel=1e-12, what="ExponentialLR")
    step = lr(exponential_decay=dict(learning_rate=0.1, decay_rate=0.3, decay_steps=25, staircase=True))
    assert_rates_match(ours(step, range(600)), torch_rates(lambda o: tls.StepLR(o, 25, 0.3), 0.1, 600),
                       what="StepLR")


def test_exponential_decay_with_zero_rate_and_growth_is_zero_not_nan():
    cfg = lr(exponential_decay=dict(learning_rate=0.0, decay_rate=2.0, decay_steps=1))
    assert ours(cfg, [0, 1, 5000, 2**40]).tolist() == [0.0] * 4
    grows = lr(exponential_decay=dict(learning_rate=1.0, decay_rate=2.0, decay_steps=1))
    assert ours(grows, [10, 5000]).tolist() == [1024.0, math.inf]


# --- polynomial_decay: HF, torch PolynomialLR / LinearLR ----------------------------------------


@pytest.mark.parametrize("warmup, total, end, power", [(0, 100, 0.0, 1.0), (10, 100, 1e-7, 2.0), (7, 50, 0.02, 0.5), (1, 3, 0.0, 3.0)])
def test_polynomial_decay_is_hugging_face(warmup, total, end, power):
    L = 0.1
    cfg = lr(polynomial_decay=dict(learning_rate=L, end_learning_rate=end, num_ramp_steps=warmup,
                                   final_num_steps=total, power=power))
    schedule = functools.partial(hf.get_polynomial_decay_schedule_with_warmup, num_warmup_steps=warmup,
                                 num_training_steps=total, lr_end=end, power=power)
    steps = list(range(total + 20)) + [10 * total, 2**40]
    assert_rates_match(ours(cfg, steps), hf_rates(schedule, L, steps), steps, what="polynomial")


def test_polynomial_decay_is_torch_polynomial_and_linear():
    cfg = lr(polynomial_decay=dict(learning_rate=0.5, final_num_steps=40, power=1.7))
    assert_rates_match(ours(cfg, range(120)), torch_rates(lambda o: tls.PolynomialLR(o, 40, 1.7), 0.5, 120),
                       rel=1e-13, what="PolynomialLR")
    rise = lr(polynomial_decay=dict(learning_rate=0.5 * 0.25, end_learning_rate=0.5 * 1.0, final_num_steps=30))
    assert_rates_match(ours(rise, range(80)),
                       torch_rates(lambda o: tls.LinearLR(o, start_factor=0.25, total_iters=30), 0.5, 80),
                       rel=1e-13, what="LinearLR")


# --- warmup_stable_decay: HF get_wsd_schedule --------------------------------------------------------


@pytest.mark.parametrize("ramp_shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("decay_shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("ratio, cycles", [(0.0, 0.5), (0.1, 0.5), (0.05, 1.25)])
def test_warmup_stable_decay_is_hugging_face(ramp_shape, decay_shape, ratio, cycles):
    L, W, S, D = 0.02, 13, 20, 37
    cfg = lr(warmup_stable_decay=dict(learning_rate=L, final_learning_rate=L * ratio, num_ramp_steps=W,
                                      num_stable_steps=S, num_decay_steps=D, decay_shape=decay_shape,
                                      ramp_shape=ramp_shape, num_cycles=cycles))
    schedule = functools.partial(hf.get_wsd_schedule, num_warmup_steps=W, num_decay_steps=D, num_stable_steps=S,
                                 warmup_type=ramp_shape, decay_type=decay_shape, min_lr_ratio=ratio, num_cycles=cycles)
    steps = list(range(W + S + D + 10)) + [10**5, 2**40]
    assert_rates_match(ours(cfg, steps), hf_rates(schedule, L, steps), steps, what="wsd")


def test_warmup_stable_decay_without_phases():
    cfg = lr(warmup_stable_decay=dict(learning_rate=1.0, final_learning_rate=0.5, num_ramp_steps=0,
                                      num_stable_steps=0, num_decay_steps=0))
    assert ours(cfg, [0, 1, 10]).tolist() == [0.5] * 3


# --- cosine_annealing: torch CosineAnnealingLR, HF cosine and hard restarts ------------------------


@pytest.mark.parametrize("T_max, eta_min", [(10, 0.0), (37, 0.001), (1, 0.0)])
def test_cosine_annealing_is_torch_cosine_annealing_lr_past_t_max(T_max, eta_min):
    L = 0.1
    cfg = lr(cosine_annealing=dict(learning_rate=L, final_learning_rate=eta_min, num_steps=T_max))
    steps = 8 * T_max + 3  # four periods: torch's cosine goes back up after T_max
    stock = torch_rates(lambda o: tls.CosineAnnealingLR(o, T_max, eta_min), L, steps)
    assert_rates_match(ours(cfg, range(steps)), stock, rel=1e-12, what="CosineAnnealingLR (stepped)")
    closed = tls.CosineAnnealingLR(optimizer(L), T_max, eta_min)
    far = [10**6 + 1, 10**6 + T_max]
    closed_form = [closed._get_closed_form_lr()[0] for closed.last_epoch in far]
    assert_rates_match(ours(cfg, far), closed_form, rel=1e-9, what="closed form far out")
    # at 2**40 torch's argument pi * s / T_max has lost ~1e-5 rad; the kind reduces s modulo the
    # period 2 * T_max first, so it stays exactly periodic
    for s in (2**40, 2**40 + 3, MAX_STEP):
        assert compute_lr(cfg, s) == compute_lr(cfg, s % (2 * T_max) + 2 * T_max)


@pytest.mark.parametrize("warmup, total, cycles, min_rate", [(0, 100, 0.5, 0.0), (10, 110, 0.5, 0.0), (5, 90, 1.5, 0.0), (8, 64, 0.5, 0.1)])
def test_cosine_annealing_is_hugging_face_cosine(warmup, total, cycles, min_rate):
    L = 3e-4
    N = max(1, total - warmup)
    cfg = lr(cosine_annealing=dict(learning_rate=L, final_learning_rate=L * min_rate, num_ramp_steps=warmup,
                                   num_steps=N, num_cycles=cycles))
    if min_rate:
        schedule = functools.partial(hf.get_cosine_with_min_lr_schedule_with_warmup, num_warmup_steps=warmup,
                                     num_training_steps=total, num_cycles=cycles, min_lr_rate=min_rate)
    else:
        schedule = functools.partial(hf.get_cosine_schedule_with_warmup, num_warmup_steps=warmup,
                                     num_training_steps=total, num_cycles=cycles)
    steps = list(range(3 * total)) + [10**5 + 7]
    # far past the end the cosine argument is ~1e4 rad: its float64 rounding (ours and HF's differ in
    # operation order) moves the rate by ~1e-12 of L, far below float32 resolution
    assert_rates_match(ours(cfg, steps), hf_rates(schedule, L, steps), steps, rel=1e-11, what="HF cosine")


@pytest.mark.parametrize("warmup, total, cycles", [(0, 100, 1), (10, 110, 3), (4, 1004, 7), (0, 490, 49)])
def test_cosine_annealing_hard_restarts_is_hugging_face(warmup, total, cycles):
    # 49 cycles over 490 steps: HF's (49 * (10 / 490)) % 1.0 is 0.9999999999999999, not 0, so its
    # rate at the first restart is ~0, not the peak. Its numbers are the spec: so are ours.
    L = 1e-3
    cfg = lr(cosine_annealing=dict(learning_rate=L, num_ramp_steps=warmup, num_steps=total - warmup,
                                   num_cycles=cycles, hard_restarts=True))
    schedule = functools.partial(hf.get_cosine_with_hard_restarts_schedule_with_warmup, num_warmup_steps=warmup,
                                 num_training_steps=total, num_cycles=cycles)
    steps = list(range(total + 30)) + [10**6, 2**40]
    got, want = ours(cfg, steps), hf_rates(schedule, L, steps)
    assert_rates_match(got, want, steps, what="HF hard restarts")
    if cycles == 49:
        assert want[10] < 1e-15 * L and got[10] == want[10]


# --- cosine_with_restarts: torch CosineAnnealingWarmRestarts, timm cycle_decay ---------------------


@pytest.mark.parametrize("T_0, T_mult, eta_min", [(10, 1, 0.0), (7, 2, 0.001), (3, 3, 0.0), (1, 2, 0.0), (1, 1, 0.01)])
def test_cosine_with_restarts_is_torch_warm_restarts(T_0, T_mult, eta_min):
    L = 0.1
    cfg = lr(cosine_with_restarts=dict(learning_rate=L, final_learning_rate=eta_min, cycle_steps=T_0, cycle_mult=T_mult))
    stock = torch_rates(lambda o: tls.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min), L, 2000)
    assert ours(cfg, range(2000)).tolist() == stock.tolist()  # torch's formula, bit for bit


@pytest.mark.parametrize("T_0, T_mult, decay", [(10, 1, 0.5), (6, 2, 0.8), (5, 3, 0.9)])
def test_cosine_with_restarts_cycle_decay_is_timm(T_0, T_mult, decay):
    L, F = 0.1, 1e-4
    cfg = lr(cosine_with_restarts=dict(learning_rate=L, final_learning_rate=F, cycle_steps=T_0, cycle_mult=T_mult,
                                       cycle_decay=decay))
    peer = timm_cosine(L, F, T_0, T_mult, decay)
    steps = [s for s in range(3000) if T_mult == 1 or not _timm_misplaces_restart(s, T_0, T_mult)]
    assert_rates_match(ours(cfg, steps), [peer(s) for s in steps], steps, what="timm")


def _timm_misplaces_restart(t: int, t_initial: int, mul: int) -> bool:
    """timm finds the cycle with a float log and no correction: at some restarts it is one cycle off."""
    i = math.floor(math.log(1 - t / t_initial * (1 - mul), mul))
    return i != restart_cycle(t, t_initial, mul)[0]


def test_restart_cycle_lookup_is_exact_at_giant_steps():
    # the closed form against walking the restarts one by one
    for C, m in [(1, 2), (3, 2), (7, 3), (5, 10), (2**20 + 7, 1)]:
        starts = [0]
        while starts[-1] < 2**41:
            starts.append(starts[-1] + C * m ** (len(starts) - 1))
        cycles = list(enumerate(zip(starts, starts[1:])))
        for n, (first, after) in cycles[:100] + cycles[-100:] if m == 1 else cycles:  # m = 1: 2**21 cycles
            for u in {first, first + 1, after - 1, 2**40}:
                if first <= u < after:
                    assert restart_cycle(u, C, m) == (n, u - first, C * m**n), (C, m, u)


def test_cosine_with_restarts_is_two_segments_at_any_step():
    from fusedsched.schedule.kinds import compile_schedule

    cfg = lr(cosine_with_restarts=dict(learning_rate=0.1, num_ramp_steps=10, cycle_steps=1, cycle_mult=2))
    assert len(compile_schedule(cfg)) == 2


# --- one_cycle: torch OneCycleLR ---------------------------------------------------------------------


@pytest.mark.parametrize("total, pct, strategy, three", [
    (100, 0.3, "cos", False), (100, 0.3, "linear", False), (77, 0.25, "cos", True), (77, 0.25, "linear", True),
    (7, 0.3, "cos", False), (1000, 0.0, "cos", False), (30, 0.7, "linear", True), (3, 0.5, "cos", False),
])
def test_one_cycle_is_torch_one_cycle_lr(total, pct, strategy, three):
    max_lr, div, final_div = 0.4, 25.0, 1e4
    cfg = lr(one_cycle=dict(max_learning_rate=max_lr, total_steps=total, pct_start=pct, anneal_strategy=strategy,
                            div_factor=div, final_div_factor=final_div, three_phase=three))
    stock = stepped(tls.OneCycleLR(optimizer(max_lr), max_lr, total_steps=total, pct_start=pct,
                                   anneal_strategy=strategy, three_phase=three, cycle_momentum=False,
                                   div_factor=div, final_div_factor=final_div), total)[:, 0]
    assert_rates_match(ours(cfg, range(total)), stock, what="OneCycleLR")
    # torch stops at total_steps; the kind holds its last value
    assert ours(cfg, [total, total + 1, 10**9]).tolist() == [compute_lr(cfg, total - 1)] * 3


@pytest.mark.parametrize("strategy, three", [("cos", False), ("linear", False), ("cos", True), ("linear", True)])
@pytest.mark.parametrize("base_m, max_m", [(0.5, 0.95), (0.5, 0.9), (0.701, 0.933), (0.85, 0.95)])
def test_one_cycle_from_its_initial_and_final_values_is_torch_s_momentum_cycle(base_m, max_m, strategy, three):
    """OneCycleLR's momentum runs max_m -> base_m -> max_m (three-phase: then max_m held): ``one_cycle``
    peaking at base_m with ``initial_learning_rate = final_learning_rate = max_m``, values no
    ``div_factor`` gives for every pair (base_m / d == max_m has no float solution for (0.5, 0.95))."""
    total, pct = 40, 0.3
    cfg = lr(one_cycle=dict(max_learning_rate=base_m, initial_learning_rate=max_m, final_learning_rate=max_m,
                            total_steps=total, pct_start=pct, anneal_strategy=strategy, three_phase=three))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    stock = tls.OneCycleLR(opt, 0.1, total_steps=total, pct_start=pct, anneal_strategy=strategy, three_phase=three,
                           base_momentum=base_m, max_momentum=max_m)
    momenta = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for s in range(total):
            momenta.append(opt.param_groups[0]["momentum"])
            if s < total - 1:
                stock.step()
    assert_rates_match(ours(cfg, range(total)), momenta, what="OneCycleLR momentum")
    assert ours(cfg, [0, total - 1]).tolist() == [max_m, max_m]  # cos(0) and the last phase's end: exact


def test_one_cycle_takes_a_value_or_its_division_factor_not_both():
    for given, factor in (("initial_learning_rate", "div_factor"), ("final_learning_rate", "final_div_factor")):
        with pytest.raises(ValueError, match=rf"{factor} \(5.0\) and {given} \(0.1\): give one"):
            lr(one_cycle={"max_learning_rate": 1.0, "total_steps": 10, given: 0.1, factor: 5.0})
    cfg = lr(one_cycle={"max_learning_rate": 1.0, "total_steps": 10, "initial_learning_rate": 0.2, "final_div_factor": 4.0})
    assert (cfg.one_cycle.initial, cfg.one_cycle.minimum) == (0.2, 0.05)  # the factor divides the given initial


# --- inverse_sqrt: HF get_inverse_sqrt_schedule -----------------------------------------------------


@pytest.mark.parametrize("warmup, timescale", [(10, None), (0, None), (100, 7), (1, 1)])
def test_inverse_sqrt_is_hugging_face(warmup, timescale):
    L = 0.01
    cfg = lr(inverse_sqrt=dict(learning_rate=L, num_ramp_steps=warmup, timescale=timescale))
    schedule = functools.partial(hf.get_inverse_sqrt_schedule, num_warmup_steps=warmup, timescale=timescale)
    steps = list(range(300)) + [10**6, 2**40]
    got, want = ours(cfg, steps), hf_rates(schedule, L, steps)
    assert_rates_match(got, want, steps, what="inverse sqrt")
    after = [i for i, s in enumerate(steps) if s >= warmup]
    assert got[after].tolist() == want[after].tolist()  # past the ramp, HF's formula bit for bit


# --- log_warmup: DeepSpeed WarmupLR(warmup_type="log") ----------------------------------------------


@pytest.mark.parametrize("initial, L, N", [(0.0, 0.01, 1000), (1e-4, 0.3, 2), (0.02, 0.7, 3), (0.5, 0.01, 37)])
def test_log_warmup_is_deepspeed_warmup_lr(initial, L, N):
    schedules = pytest.importorskip("deepspeed.runtime.lr_schedules", reason="deepspeed is not installed")
    cfg = lr(log_warmup=dict(learning_rate=L, initial_learning_rate=initial, num_steps=N))
    stock = schedules.WarmupLR(optimizer(L), warmup_min_lr=initial, warmup_max_lr=L, warmup_num_steps=N)
    steps = list(range(N + 50)) + [10**6, 2**40]
    want = []
    for s in steps:  # DeepSpeed's rate at last_batch_iteration s
        stock.step(s)
        want.append(stock.get_last_lr()[0])
    got, want = ours(cfg, steps), np.array(want)
    assert_rates_match(got, want, steps, what="log warm-up")
    warm_up = [i for i, s in enumerate(steps) if s < N]
    assert got[warm_up].tolist() == want[warm_up].tolist()  # DeepSpeed's formula bit for bit
    # from N on DeepSpeed's gamma is 1.0 (min + delta * 1.0); the kind holds L itself
    assert got[len(warm_up):].tolist() == [L] * (len(steps) - len(warm_up))


# --- join: optax join_schedules; product -------------------------------------------------------------

RAMP = dict(linear_ramp_to_constant=dict(learning_rate=0.1, num_ramp_steps=10))
EXP = dict(exponential_decay=dict(learning_rate=0.1, decay_rate=0.5, decay_steps=30))
RESTARTS = dict(cosine_with_restarts=dict(learning_rate=0.05, cycle_steps=20, cycle_mult=2))


def test_join_is_optax_join_schedules_nested():
    inner = dict(join=dict(schedules=[EXP, RESTARTS], boundaries=[40]))
    cfg = lr(join=dict(schedules=[RAMP, inner, {"constant": 0.001}], boundaries=[10, 500]))
    f = lambda c: (lambda s: compute_lr(LearningRate(**c), s))  # noqa: E731
    peer = optax_join_schedules([f(RAMP), optax_join_schedules([f(EXP), f(RESTARTS)], [40]), f({"constant": 0.001})],
                                [10, 500])
    steps = list(range(700)) + [2**40]
    assert ours(cfg, steps).tolist() == [peer(s) for s in steps]


def test_join_with_a_boundary_at_zero_skips_the_first_schedule():
    cfg = lr(join=dict(schedules=[{"constant": 1.0}, EXP], boundaries=[0]))
    assert ours(cfg, [0, 30]).tolist() == [0.1, 0.05]


def test_product_multiplies_left_to_right():
    cos = dict(cosine_annealing=dict(learning_rate=1.0, final_learning_rate=0.5, num_steps=25))
    cfg = lr(product=dict(schedules=[RAMP, EXP, cos]))
    steps = list(range(200)) + [2**40]
    want = [compute_lr(LearningRate(**RAMP), s) * compute_lr(LearningRate(**EXP), s) * compute_lr(LearningRate(**cos), s)
            for s in steps]
    assert ours(cfg, steps).tolist() == want


def test_product_flattens_nested_products_and_products_in_joins():
    a, b, c = ({"constant": 0.1 * k} for k in (3, 7, 11))
    nested = lr(product=dict(schedules=[a, {"product": dict(schedules=[b, c])}]))
    assert compute_lr(nested, 0) == (0.30000000000000004 * 0.7000000000000001) * 1.1
    joined = lr(product=dict(schedules=[a, {"join": dict(schedules=[{"product": dict(schedules=[b, c])}, b], boundaries=[5])}]))
    assert compute_lr(joined, 0) == (0.30000000000000004 * 0.7000000000000001) * 1.1
    assert compute_lr(joined, 5) == 0.30000000000000004 * 0.7000000000000001

"""timm, DeepSpeed and Megatron-core schedulers converted: the shims give, step for step, the real
packages' own rates.

Each case builds the stack's scheduler twice over identical optimizers (several groups, each with
its own settings: timm's ``lr_scale``, DeepSpeed's per-group lists, Megatron's ``max_lr`` /
``min_lr``), converts one and drives both with the stack's own stepping calls, comparing every
group's float32 rate with float32 of the source's to docs/precision.md's goal (identical or one ulp
apart, at most 0.01% one ulp apart), through every phase and far past the end; also from a
scheduler already stepped. On the native backend every step is compared; on an interpreted one
(Triton on CPU, where each launch costs tenths of a second) the steps around each change of piece
and one inside each piece (:func:`compared_steps`). Packages not installed skip with a reason;
``make test`` installs them (requirements-stacks.txt).
"""

import math
import warnings

import numpy as np
import pytest
import torch
from _peers import timm_scheduler, ulps32

from fusedsched import GraphSafeAdamW, LearningRate, LRShim, compute_lr
from fusedsched.convert import (
    DeepSpeedShim,
    MegatronShim,
    TimmShim,
    deepspeed_config_to_hyperparameters,
    deepspeed_config_to_schedules,
    from_deepspeed,
    from_deepspeed_config,
    from_megatron,
    from_timm,
)
from fusedsched.ops import unavailable_reason
from fusedsched.schedule.reference import schedule_marks

pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")

BACKENDS = [b for b in ("native", "reference", "triton") if unavailable_reason(b, "cpu") is None]
FAR = [10**4, 10**6, 2**40 + 3]  # far past every schedule's end
INTERPRETED = {"triton"}  # on CPU each launch runs under the Triton interpreter (tests/conftest.py): costly


def make_optimizer(groups, cls=torch.optim.SGD, **kwargs):
    return cls([{"params": [torch.nn.Parameter(torch.zeros(1))], **g} for g in groups], **kwargs)


def rates(optimizer):
    return [float(g["lr"]) for g in optimizer.param_groups]


def assert_precision(got, want, steps):
    got, want = np.array(got, dtype=np.float64), np.array(want, dtype=np.float64)
    ulps = ulps32(got.astype(np.float32), want)
    where = np.argwhere(ulps > 1)
    assert not where.size, (f"{len(where)} rates more than 1 ulp off; first at step {steps[where[0][0]]} group "
                            f"{where[0][1]}: got {got[tuple(where[0])]!r}, source {want[tuple(where[0])]!r}")
    assert (ulps == 1).sum() <= 1e-4 * ulps.size, f"{(ulps == 1).sum()} of {ulps.size} rates 1 ulp off"


def compared_steps(configs, first, last, backend):
    """The steps after ``first`` and before ``last`` a run compares: every one, or on an
    interpreted backend the first three, each place a schedule of ``configs`` changes piece
    (``schedule_marks``) with the steps on either side, and one step inside each gap between those
    (each piece is one formula: its edges and a step inside check it)."""
    if backend not in INTERPRETED:
        return list(range(first + 1, last))
    edges = {first + 1, first + 2, first + 3} | {m + d for c in configs for m in schedule_marks(c) for d in (-1, 0, 1)}
    edges = sorted(s for s in edges if first < s < last)
    inside = {(a + b) // 2 for a, b in zip([first, *edges], [*edges, last]) if b - a > 1}
    return sorted({*edges, *inside})


def assert_untouched(optimizer, before):
    assert [g["lr"] for g in optimizer.param_groups] == before
    assert all(type(g["lr"]) is float for g in optimizer.param_groups)


# --- timm -------------------------------------------------------------------------------------------

TIMM_GROUPS = [{"lr": 0.1}, {"lr": 0.03, "lr_scale": 0.5}, {"lr": 1.0, "lr_scale": 0.25}, {"lr": 0.02, "lr_scale": 1.0}]


def timm_cases():
    return {
        "cosine, warm-up not a prefix (timm's default)": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=50, lr_min=1e-4, warmup_t=5, warmup_lr_init=1e-5, t_in_epochs=False), 120),
        "cosine, restarts x2, decay, limit, prefix": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=10, lr_min=1e-3, cycle_mul=2.0, cycle_decay=0.5, cycle_limit=4, warmup_t=3,
            warmup_lr_init=1e-3, warmup_prefix=True, t_in_epochs=False), 200),
        "cosine, restarts x1, warm-up not a prefix": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=7, cycle_decay=0.8, cycle_limit=5, warmup_t=4, warmup_lr_init=0.2), 60),
        "cosine, endless restarts": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=9, lr_min=0.01, cycle_limit=10**9, t_in_epochs=False), 120),
        "step": (lambda o, ts: ts.StepLRScheduler(o, decay_t=7, decay_rate=0.5, warmup_t=3, warmup_lr_init=1e-4), 60),
        "step, not a prefix": (lambda o, ts: ts.StepLRScheduler(
            o, decay_t=4, decay_rate=0.9, warmup_t=6, warmup_lr_init=1e-4, warmup_prefix=False), 60),
        "step, rate 0": (lambda o, ts: ts.StepLRScheduler(o, decay_t=5, decay_rate=0.0, t_in_epochs=False), 20),
        "multistep": (lambda o, ts: ts.MultiStepLRScheduler(
            o, decay_t=[1, 5, 12, 12, 30], decay_rate=0.3, warmup_t=2, warmup_lr_init=1e-5), 50),
        "poly": (lambda o, ts: ts.PolyLRScheduler(o, t_initial=40, power=2.0, lr_min=1e-4, warmup_t=5,
                                                  warmup_lr_init=1e-6, t_in_epochs=False), 80),
        "poly, cycles": (lambda o, ts: ts.PolyLRScheduler(
            o, t_initial=10, power=0.5, cycle_mul=2, cycle_decay=0.7, cycle_limit=3, warmup_t=4,
            warmup_prefix=True), 100),
        "wsd 1-sqrt": (lambda o, ts: ts.WSDLRScheduler(o, t_initial=60, decay_t=20, lr_min=1e-4, warmup_t=5,
                                                      warmup_lr_init=1e-6, t_in_epochs=False), 100),
        "wsd cosine, from the start": (lambda o, ts: ts.WSDLRScheduler(
            o, t_initial=30, decay_t=30, lr_min=0.01, decay_fn="cosine"), 50),
        "wsd linear": (lambda o, ts: ts.WSDLRScheduler(o, t_initial=40, decay_t=15, decay_fn="linear", warmup_t=3), 60),
        "create_scheduler_v2 cosine, per update": (lambda o, ts: ts.create_scheduler_v2(
            o, "cosine", num_epochs=12, warmup_epochs=2, warmup_lr=1e-5, min_lr=1e-6, cooldown_epochs=1,
            step_on_epochs=False, updates_per_epoch=9)[0], 140),
        "create_scheduler_v2 step, per epoch": (lambda o, ts: ts.create_scheduler_v2(
            o, "step", num_epochs=30, decay_epochs=4, decay_rate=0.5, warmup_epochs=3)[0], 40),
        "tanh, warm-up not a prefix (timm's default)": (lambda o, ts: ts.TanhLRScheduler(
            o, t_initial=50, lr_min=1e-4, warmup_t=5, warmup_lr_init=1e-5, t_in_epochs=False), 120),
        "tanh, restarts x2, decay, limit, bounds, prefix": (lambda o, ts: ts.TanhLRScheduler(
            o, t_initial=10, lb=-4.0, ub=6.0, lr_min=1e-3, cycle_mul=2.0, cycle_decay=0.5, cycle_limit=4, warmup_t=3,
            warmup_lr_init=1e-3, warmup_prefix=True, t_in_epochs=False), 200),
        "tanh, restarts x1, per epoch": (lambda o, ts: ts.TanhLRScheduler(
            o, t_initial=7, lb=-2, ub=2, cycle_decay=0.8, cycle_limit=5, warmup_t=4, warmup_lr_init=0.2), 60),
        "create_scheduler_v2 tanh, per update": (lambda o, ts: ts.create_scheduler_v2(
            o, "tanh", num_epochs=12, warmup_epochs=2, warmup_lr=1e-5, min_lr=1e-6, cooldown_epochs=1,
            step_on_epochs=False, updates_per_epoch=9)[0], 140),
        "create_scheduler_v2 tanh, per epoch, prefix": (lambda o, ts: ts.create_scheduler_v2(
            o, "tanh", num_epochs=20, warmup_epochs=3, warmup_prefix=True, cycle_limit=2, cycle_decay=0.3)[0], 60),
        # no warm-up: before timm's first call the groups hold the base rates its constructor sets,
        # not _get_lr(0) (tanh's starts below it; WSD's max(lr, lr_min) above a base below lr_min)
        "create_scheduler_v2 tanh, no warm-up, per update": (lambda o, ts: ts.create_scheduler_v2(
            o, "tanh", num_epochs=12, step_on_epochs=False, updates_per_epoch=9)[0], 130),
        "create_scheduler_v2 tanh, no warm-up, per epoch": (lambda o, ts: ts.create_scheduler_v2(
            o, "tanh", num_epochs=20, min_lr=1e-4)[0], 30),
        "wsd, lr_min above two base rates, no warm-up": (lambda o, ts: ts.WSDLRScheduler(
            o, t_initial=30, decay_t=10, lr_min=0.05), 40),
        # a fractional cycle_mul: timm's cycles (1 - m**i) / (1 - m) * t_initial on, m**i * t_initial long
        "cosine, cycle_mul 1.5, cycles 200, 300, 450": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=200, cycle_mul=1.5, cycle_limit=3, lr_min=1e-4, cycle_decay=0.5, t_in_epochs=False), 1000),
        "cosine, cycle_mul 1.5, a last cycle of 1012.5": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=200, cycle_mul=1.5, cycle_limit=5, lr_min=1e-4, warmup_t=3, warmup_lr_init=1e-5,
            t_in_epochs=False), 2700),
        "cosine, cycle_mul 1.5, one cycle": (lambda o, ts: ts.create_scheduler_v2(
            o, "cosine", num_epochs=30, cycle_mul=1.5, warmup_epochs=2, min_lr=1e-5)[0], 40),
        "tanh, cycle_mul 1.5, prefix": (lambda o, ts: ts.TanhLRScheduler(
            o, t_initial=8, cycle_mul=1.5, cycle_limit=4, cycle_decay=0.8, warmup_t=2, warmup_prefix=True), 80),
        "poly k-decay, cycle_mul 1.5": (lambda o, ts: ts.PolyLRScheduler(
            o, t_initial=32, power=2.0, k_decay=1.5, cycle_mul=1.5, cycle_limit=4, lr_min=1e-4, t_in_epochs=False),
            300),
        # cycles 200, 220.00000000000003, 242.00000000000003 (timm's floats) from 0, 200, 420
        "cosine, cycle_mul 1.1": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=200, cycle_mul=1.1, cycle_limit=3, lr_min=1e-3, cycle_decay=0.9, t_in_epochs=False), 700),
        "cosine k-decay": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=40, lr_min=1e-4, k_decay=2.0, warmup_t=5, warmup_lr_init=1e-5, t_in_epochs=False), 90),
        "cosine k-decay, restarts x2, decay, prefix": (lambda o, ts: ts.CosineLRScheduler(
            o, t_initial=6, k_decay=0.5, cycle_mul=2, cycle_decay=0.7, cycle_limit=5, warmup_t=2, warmup_prefix=True), 220),
        "create_scheduler_v2 cosine k-decay, per update": (lambda o, ts: ts.create_scheduler_v2(
            o, "cosine", num_epochs=10, warmup_epochs=1, min_lr=1e-5, k_decay=1.5, cycle_limit=3, cycle_decay=0.9,
            step_on_epochs=False, updates_per_epoch=7)[0], 250),
        "poly k-decay, cycles": (lambda o, ts: ts.PolyLRScheduler(
            o, t_initial=12, power=2.0, k_decay=3.0, lr_min=1e-4, cycle_mul=3, cycle_decay=0.6, cycle_limit=3,
            warmup_t=4, warmup_lr_init=1e-6, t_in_epochs=False), 180),
        "poly k-decay, not a prefix": (lambda o, ts: ts.PolyLRScheduler(
            o, t_initial=30, power=0.5, k_decay=0.7, warmup_t=6, warmup_lr_init=0.01), 60),
    }


def timm_loop(scheduler, t_from, ts):
    """Drive ``scheduler`` as timm's train.py does: ``step_update`` after every update, ``step``
    after every epoch; each ``t`` of ``ts`` is given to both (one of them acts)."""
    for t in ts:
        if t <= t_from:
            continue
        scheduler.step_update(num_updates=t)
        scheduler.step(t, metric=0.5)


def run_timm(make, steps, before=0, backend="native"):
    ts_module = timm_scheduler()
    source, twin = (make(make_optimizer(TIMM_GROUPS, lr=0.1), ts_module) for _ in range(2))
    for s in (source, twin):
        timm_loop(s, 0, range(1, before + 1))
    shim = from_timm(twin, t=before, backend=backend)
    assert isinstance(shim, TimmShim) and shim.device_schedule and shim.t_in_epochs == source.t_in_epochs
    got, want, seen = [shim.lr_tensor.tolist()], [rates(source.optimizer)], [before]
    for t in [*compared_steps(shim.lr_dict.values(), before, before + steps, backend), *FAR]:
        timm_loop(source, 0, [t])
        timm_loop(shim, 0, [t])
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
        seen.append(t)
    assert_precision(got, want, seen)
    return shim


@pytest.mark.parametrize("name", list(timm_cases()))
def test_timm(name):
    run_timm(*timm_cases()[name])


@pytest.mark.parametrize("name", ["cosine, warm-up not a prefix (timm's default)", "cosine, restarts x2, decay, limit, prefix",
                                  "multistep", "poly, cycles", "tanh, warm-up not a prefix (timm's default)",
                                  "tanh, restarts x2, decay, limit, bounds, prefix", "cosine k-decay, restarts x2, decay, prefix",
                                  "poly k-decay, cycles"])
def test_timm_from_a_scheduler_already_stepped(name):
    make, steps = timm_cases()[name]
    run_timm(make, steps // 2, before=steps // 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["cosine, restarts x2, decay, limit, prefix", "tanh, restarts x2, decay, limit, bounds, prefix",
                                  "cosine, cycle_mul 1.1"])  # its cosines scaled by 2**j (convert/timm.py: _cosine_steps)
def test_timm_every_backend(backend, name):  # k-decay on every backend: tests/ops/test_backends.py (CONFIGS)
    run_timm(*timm_cases()[name], backend=backend)


def test_timm_t_in_epochs_picks_the_call_that_steps():
    ts = timm_scheduler()
    for per_epoch in (True, False):
        shim = from_timm(ts.StepLRScheduler(make_optimizer([{"lr": 1.0}]), decay_t=1, decay_rate=0.5,
                                            t_in_epochs=per_epoch))
        shim.step_update(3)
        assert shim.get_last_lr() == [0.125 if not per_epoch else 1.0]
        shim.step(2)
        assert shim.get_last_lr() == [0.25 if per_epoch else 0.125]
        shim.step()  # one t more, whichever the source steps on
        assert shim.last_epoch == (3 if per_epoch else 4)


def _plateau_metrics(n, seed=4):
    rng = np.random.default_rng(seed)
    return [float(v) for v in np.round(0.5 + np.cumsum(rng.normal(scale=0.02, size=n)), 2)]


@pytest.mark.parametrize("settings, before", [
    (dict(warmup_t=5, warmup_lr_init=1e-4, patience_t=2, decay_rate=0.5, lr_min=1e-3, cooldown_t=1), 0),
    (dict(warmup_t=5, warmup_lr_init=1e-4, patience_t=1, decay_rate=0.5, mode="min", threshold=1e-3), 3),
    (dict(warmup_t=3, warmup_lr_init=0.2, patience_t=0, decay_rate=0.3, lr_min=1e-4), 40),
    (dict(patience_t=1, decay_rate=0.7, lr_min=1e-3), 0),
    (dict(patience_t=1, decay_rate=0.7, lr_min=1e-3), 25),
])
def test_timm_plateau_follows_the_metric_on_the_device(settings, before):
    """PlateauLRScheduler: timm's warm-up, then torch's ReduceLROnPlateau over the metric given to
    step(epoch, metric) (per group: lr_scale applied in the warm-up only, lr_min on the scaled rate);
    converted fresh or part-way, its plateau state carried over."""
    ts = timm_scheduler()
    metrics = _plateau_metrics(160)
    source, twin = (ts.PlateauLRScheduler(make_optimizer(TIMM_GROUPS, lr=0.1), **settings) for _ in range(2))
    for epoch in range(1, before + 1):
        for s in (source, twin):
            s.step(epoch, metrics[epoch])
    shim = from_timm(twin, t=before, backend="native")
    assert isinstance(shim, TimmShim) and shim.has_plateau
    got, want, seen = [], [], []
    for epoch in range(before + 1, len(metrics)):
        for s in (source, shim):
            s.step_update(epoch * 10, metrics[epoch])  # PlateauLRScheduler steps per epoch only
            s.step(epoch, metrics[epoch] if epoch % 7 else None)  # now and then an epoch without a metric
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
        seen.append(epoch)
    assert got == [[float(np.float32(x)) for x in row] for row in want]
    after_warmup = {r[0] for r, e in zip(want, seen) if e > settings.get("warmup_t", 0) + 1}
    assert len(after_warmup) > 1 or before > 0  # the plateau reduced the rates (a fresh run sees it happen)


def test_timm_refusals_name_the_setting_and_touch_nothing():
    ts = timm_scheduler()
    cases = [
        (lambda o: ts.CosineLRScheduler(o, t_initial=10, noise_range_t=5), ValueError, r"noise_range_t=5\)"),
        (lambda o: ts.TanhLRScheduler(o, t_initial=10, noise_range_t=5), ValueError, r"noise_range_t=5\)"),
        (lambda o: ts.CosineLRScheduler(o, t_initial=10, k_decay=2.0, cycle_limit=100), ValueError,
         r"CosineLRScheduler\(cycle_limit=100\): at most 64 cycles are converted with k_decay != 1"),
        (lambda o: ts.CosineLRScheduler(o, t_initial=10, k_decay=-1.0), ValueError, r"k_decay"),
        (lambda o: ts.TanhLRScheduler(o, t_initial=10, cycle_limit=65), ValueError, r"TanhLRScheduler\(cycle_limit=65\)"),
        # cycles 10, 15, 22.5: the third is not a whole number of steps, which tanh_decay's length is
        (lambda o: ts.TanhLRScheduler(o, t_initial=10, cycle_mul=1.5, cycle_limit=3), ValueError,
         r"TanhLRScheduler\(t_initial=10, cycle_mul=1.5\): cycle 2 is 22.5 steps long .* tanh_decay"),
        # a cosine takes a last cycle of 22.5 steps, not one after it, which starts at t=47.5
        (lambda o: ts.CosineLRScheduler(o, t_initial=10, cycle_mul=1.5, cycle_limit=4), ValueError,
         r"CosineLRScheduler\(t_initial=10, cycle_mul=1.5\): cycle 3 starts at t=47.5 .* between two steps"),
        (lambda o: ts.CosineLRScheduler(o, t_initial=200, cycle_mul=1.5, cycle_limit=10**9), ValueError,
         r"cycle 5 starts at t=2637.5"),
        (lambda o: ts.CosineLRScheduler(o, t_initial=200, cycle_mul=1.1, cycle_limit=4), ValueError,
         r"cycle 3 starts at t=662.0000000000002"),
        # cycles 16, 8, 4, 2, 1, 0.5 from 0, 16, 24, 28, 30, 31, then 31.5
        (lambda o: ts.PolyLRScheduler(o, t_initial=16, cycle_mul=0.5, cycle_limit=7), ValueError,
         r"cycle 5 is 0.5 steps long .* polynomial_decay"),
        (lambda o: ts.CosineLRScheduler(o, t_initial=16, cycle_mul=0.5, cycle_limit=7), ValueError,
         r"cycle 6 starts at t=31.5"),
        (lambda o: ts.CosineLRScheduler(o, t_initial=10, cycle_mul=-2.0, cycle_limit=3), ValueError,
         r"cycle_mul=-2.0\): must be a number > 0"),
        (lambda o: ts.StepLRScheduler(o, decay_t=2.5), ValueError, r"decay_t=2.5"),
        (lambda o: ts.PlateauLRScheduler(o, noise_range_t=5), ValueError, r"noise_range_t=5\)"),
        (lambda o: ts.WSDLRScheduler(o, t_initial=10, decay_t=5, stable_fn="rsqrt", stable_timescale=3), ValueError,
         r"stable_fn='rsqrt'\)"),
        (lambda o: ts.WSDLRScheduler(o, t_initial=10, decay_t=5, decay_fn="exp"), ValueError, r"decay_fn='exp'\)"),
        (lambda o: ts.PolyLRScheduler(o, t_initial=2, cycle_limit=100), ValueError, r"cycle_limit=100\)"),
        # timm finds the cycle with a float log: log(243, 3) < 5 misses the restart at t = 121
        (lambda o: ts.CosineLRScheduler(o, t_initial=1, cycle_mul=3, cycle_limit=8), ValueError,
         r"gives .* at t=121 .* cycle arithmetic"),
    ]
    for make, error, match in cases:
        optimizer = make_optimizer(TIMM_GROUPS)
        scheduler = make(optimizer)
        before = [g["lr"] for g in optimizer.param_groups]
        with pytest.raises(error, match=match):
            from_timm(scheduler)
        assert_untouched(optimizer, before)


@pytest.mark.parametrize("name", ["create_scheduler_v2 tanh, no warm-up, per epoch",
                                  "wsd, lr_min above two base rates, no warm-up"])
def test_timm_at_t_0_gives_the_groups_rate_before_timm_s_first_call_or_after_its_step_0(name):
    """Before timm's first call a group holds its base rate (times lr_scale), from the constructor;
    timm's step(0) sets _get_lr(0) instead. Either state converts to the rate the group holds."""
    make, _ = timm_cases()[name]
    ts = timm_scheduler()
    for step_0 in (False, True):
        source, twin = (make(make_optimizer(TIMM_GROUPS, lr=0.1), ts) for _ in range(2))
        constructed = [g["initial_lr"] * g.get("lr_scale", 1.0) for g in source.optimizer.param_groups]
        assert rates(source.optimizer) == constructed
        if step_0:
            source.step(0)
            twin.step(0)
            assert rates(source.optimizer) != constructed
        shim = from_timm(twin, backend="native")
        assert shim.last_epoch == 0
        for t in (0, 1, 2, 25):
            if t:
                source.step(t)
                shim.step(t)
            assert shim.lr_tensor.tolist() == [float(np.float32(v)) for v in rates(source.optimizer)], (step_0, t)
        shim.step(0)  # back to t = 0: the state it was converted in (docs/stacks.md, Steps)
        at_0 = [v * g.get("lr_scale", 1.0) for v, g in zip(source._get_lr(0), source.optimizer.param_groups)]
        assert shim.lr_tensor.tolist() == [float(np.float32(v)) for v in (at_0 if step_0 else constructed)]


@pytest.mark.parametrize("cls", ["CosineLRScheduler", "PolyLRScheduler", "TanhLRScheduler"])
def test_timm_shrinking_cycles_up_to_where_timm_s_log_has_a_value(cls):
    """cycle_mul 0.5: cycles of 16, 8, 4, 2, 1 steps from 0, 16, 24, 28, 30, then lr_min from 31;
    from t = 32 (t_initial / (1 - cycle_mul)) timm's log raises, and the shim holds lr_min."""
    ts = timm_scheduler()
    source, twin = (getattr(ts, cls)(make_optimizer(TIMM_GROUPS), t_initial=16, cycle_mul=0.5, cycle_limit=5,
                                     lr_min=1e-3, cycle_decay=0.7, t_in_epochs=False) for _ in range(2))
    shim = from_timm(twin, backend="native")
    got, want = [], []
    for t in range(1, 32):
        source.step_update(t)
        shim.step_update(t)
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
    assert_precision(got, want, list(range(1, 32)))
    assert want[-1] == [1e-3 * g.get("lr_scale", 1.0) for g in TIMM_GROUPS]  # lr_min (times lr_scale) at t = 31
    with pytest.raises(ValueError, match="math domain error"):
        source.step_update(32)
    for t in (32, 10**6):
        shim.step_update(t)
        assert shim.lr_tensor.tolist() == [float(np.float32(v)) for v in want[-1]]


def test_timm_without_its_t_is_refused():
    ts = timm_scheduler()
    optimizer = make_optimizer(TIMM_GROUPS)
    scheduler = ts.CosineLRScheduler(optimizer, t_initial=20, t_in_epochs=False)
    scheduler.step_update(7)
    before = [g["lr"] for g in optimizer.param_groups]
    with pytest.raises(ValueError, match="timm keeps no step count: pass t="):
        from_timm(scheduler)
    assert_untouched(optimizer, before)
    assert from_timm(scheduler, t=7).get_last_lr() == pytest.approx(before, rel=1e-6)


# --- DeepSpeed --------------------------------------------------------------------------------------

DS_BASES = [0.1, 0.03, 0.5]


def deepspeed_cases():
    return {
        "WarmupLR": ("WarmupLR", dict(warmup_min_lr=[0.0, 1e-4, 0.01], warmup_max_lr=[0.1, 0.02, 0.3],
                                      warmup_num_steps=10, warmup_type="linear"), 40),
        "WarmupLR, max from the groups": ("WarmupLR", dict(warmup_min_lr=1e-5, warmup_num_steps=1,
                                                           warmup_type="linear"), 10),
        "WarmupDecayLR": ("WarmupDecayLR", dict(total_num_steps=50, warmup_min_lr=1e-5, warmup_max_lr=[0.1, 0.2, 0.05],
                                                warmup_num_steps=8, warmup_type="linear"), 80),
        "WarmupDecayLR, total before the warm-up ends": ("WarmupDecayLR", dict(
            total_num_steps=5, warmup_max_lr=0.1, warmup_num_steps=8, warmup_type="linear"), 20),
        "WarmupCosineLR": ("WarmupCosineLR", dict(total_num_steps=60, warmup_min_ratio=0.1, warmup_num_steps=8,
                                                  cos_min_ratio=0.01, warmup_type="linear"), 90),
        "WarmupCosineLR, one cosine step": ("WarmupCosineLR", dict(total_num_steps=3, warmup_num_steps=2,
                                                                   warmup_type="linear"), 10),
        "OneCycle": ("OneCycle", dict(cycle_min_lr=[1e-4, 1e-3, 0.0], cycle_max_lr=[0.1, 0.01, 0.3],
                                      cycle_first_step_size=10, cycle_second_step_size=15, cycle_momentum=False), 50),
        "OneCycle, second step size from the first": ("OneCycle", dict(cycle_min_lr=0.001, cycle_max_lr=0.01,
                                                                       cycle_first_step_size=7, cycle_momentum=False), 30),
        **DEEPSPEED_ONE_CYCLE_CASES,
        # min_lr * (1 + rate * (b / size)), rising without end
        "LRRangeTest": ("LRRangeTest", dict(lr_range_test_min_lr=[1e-4, 1e-3, 0.01], lr_range_test_step_size=7,
                                            lr_range_test_step_rate=0.5), 40),
        "LRRangeTest, defaults": ("LRRangeTest", {}, 30),
        "LRRangeTest, rate 0": ("LRRangeTest", dict(lr_range_test_min_lr=0.02, lr_range_test_step_rate=0.0), 10),
        **DEEPSPEED_LOG_CASES,
    }


# OneCycle's staircase (floor(position) / stair_count over each half) and post-cycle decay
# (min_lr / (1 + decay_lr_rate * (k / decay_step_size)), k steps after the cycle), with and without
# momentum cycling (SGD has no betas: DeepSpeed turns it off; see test_deepspeed_one_cycle_cycles_betas)
ONE_CYCLE_LR = dict(cycle_min_lr=[1e-4, 1e-3, 0.0], cycle_max_lr=[0.1, 0.01, 0.3])
DEEPSPEED_ONE_CYCLE_CASES = {
    "OneCycle, stairs (the second count from the first)": ("OneCycle", dict(
        ONE_CYCLE_LR, cycle_first_step_size=10, cycle_second_step_size=15, cycle_first_stair_count=3), 50),
    "OneCycle, stairs in the second half only, more stairs than steps": ("OneCycle", dict(
        ONE_CYCLE_LR, cycle_first_step_size=7, cycle_second_step_size=9, cycle_first_stair_count=0,
        cycle_second_stair_count=20), 30),
    "OneCycle, stairs in the first half only, no second half": ("OneCycle", dict(
        ONE_CYCLE_LR, cycle_first_step_size=6, cycle_second_step_size=0, cycle_first_stair_count=4,
        cycle_second_stair_count=0), 20),
    "OneCycle, uneven stairs": ("OneCycle", dict(
        ONE_CYCLE_LR, cycle_first_step_size=13, cycle_second_step_size=9, cycle_first_stair_count=5,
        cycle_second_stair_count=4), 40),
    "OneCycle, post-cycle decay": ("OneCycle", dict(
        ONE_CYCLE_LR, cycle_first_step_size=10, cycle_second_step_size=15, decay_lr_rate=0.5, decay_step_size=5), 80),
    "OneCycle, post-cycle decay, rate 0.001 per 1000 steps, stairs": ("OneCycle", dict(
        ONE_CYCLE_LR, cycle_first_step_size=8, cycle_second_step_size=8, cycle_first_stair_count=2,
        decay_lr_rate=0.001, decay_step_size=1000), 60),
    "OneCycle, post-cycle decay at every step, one-step halves": ("OneCycle", dict(
        ONE_CYCLE_LR, cycle_first_step_size=1, cycle_second_step_size=1, decay_lr_rate=1.0, decay_step_size=1), 20),
    "OneCycle, a decay step size and no rate (no decay)": ("OneCycle", dict(
        ONE_CYCLE_LR, cycle_first_step_size=4, decay_step_size=3, decay_mom_rate=0.1), 20),
}

# DeepSpeed's default warm-up, warmup_type="log": min + (max - min) * ((1.0 / log(W)) * log(n + 1))
# (W = max(2, warmup_num_steps)), reproduced exactly by ``log_warmup``.
DEEPSPEED_LOG_CASES = {
    "WarmupLR, log": ("WarmupLR", dict(warmup_min_lr=[0.0, 1e-4, 0.01], warmup_max_lr=[0.1, 0.02, 0.3],
                                       warmup_num_steps=10), 40),
    "WarmupLR, log, max from the groups": ("WarmupLR", dict(warmup_min_lr=[1e-5, 0.2, 0.0], warmup_num_steps=37), 80),
    "WarmupLR, log, 1 step": ("WarmupLR", dict(warmup_min_lr=1e-3, warmup_max_lr=[0.1, 0.02, 0.3],
                                               warmup_num_steps=1), 10),
    "WarmupLR, log, 2 steps": ("WarmupLR", dict(warmup_min_lr=[0.0, 1e-4, 0.01], warmup_max_lr=0.07,
                                                warmup_num_steps=2), 10),
    "WarmupDecayLR, log": ("WarmupDecayLR", dict(total_num_steps=50, warmup_min_lr=[1e-5, 0.0, 3e-3],
                                                 warmup_max_lr=[0.1, 0.2, 0.05], warmup_num_steps=8), 80),
    "WarmupDecayLR, log, 1 step": ("WarmupDecayLR", dict(total_num_steps=9, warmup_max_lr=0.3, warmup_num_steps=1), 20),
    "WarmupDecayLR, log, total before the warm-up ends": ("WarmupDecayLR", dict(
        total_num_steps=5, warmup_max_lr=0.1, warmup_num_steps=8), 20),
    "WarmupCosineLR, log": ("WarmupCosineLR", dict(total_num_steps=60, warmup_min_ratio=0.1, warmup_num_steps=8,
                                                   cos_min_ratio=0.01), 90),
    "WarmupCosineLR, log, defaults": ("WarmupCosineLR", dict(total_num_steps=1500), 1600),
    "WarmupCosineLR, log, 1 step": ("WarmupCosineLR", dict(total_num_steps=6, warmup_min_ratio=0.3,
                                                           warmup_num_steps=1), 12),
    "WarmupCosineLR, log, 2 steps": ("WarmupCosineLR", dict(total_num_steps=3, warmup_num_steps=2), 10),
}


def deepspeed():
    return pytest.importorskip("deepspeed.runtime.lr_schedules", reason="deepspeed is not installed (make test installs it)")


def run_deepspeed(kind, params, steps, before=0, backend="native"):
    schedules = deepspeed()
    source, twin = (getattr(schedules, kind)(make_optimizer([{"lr": b} for b in DS_BASES], lr=0.1), **params)
                    for _ in range(2))
    for _ in range(before):
        source.step()
        twin.step()
    shim = from_deepspeed(twin, backend=backend)
    assert isinstance(shim, DeepSpeedShim) and shim.last_batch_iteration == source.last_batch_iteration
    got, want, seen = [shim.lr_tensor.tolist()], [rates(source.optimizer)], [before]
    compared = compared_steps(shim.lr_dict.values(), before, before + steps, backend)  # the shim's steps
    for previous, n in zip([before, *compared], compared):
        if n == previous + 1:
            source.step()
            shim.step()
        else:  # step(last_batch_iteration) jumps
            source.step(n - 1)
            shim.step(n - 1)
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
        seen.append(n)
    for k in FAR:  # step(last_batch_iteration) jumps
        source.step(k)
        shim.step(k)
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
        seen.append(k)
    assert shim.last_batch_iteration == source.last_batch_iteration
    assert_precision(got, want, seen)
    # the JSON block gives the same schedules
    from_json = deepspeed_config_to_schedules({"type": kind, "params": params}, DS_BASES)
    assert [c.model_dump() for c in from_json] == [c.model_dump() for c in shim.lr_dict.values()]


@pytest.mark.parametrize("name", list(deepspeed_cases()))
def test_deepspeed(name):
    run_deepspeed(*deepspeed_cases()[name])


@pytest.mark.parametrize("name", ["WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "OneCycle, uneven stairs",
                                  "OneCycle, post-cycle decay"])
def test_deepspeed_from_a_scheduler_already_stepped(name):
    kind, params, steps = deepspeed_cases()[name]
    run_deepspeed(kind, params, steps // 2, before=steps // 2)


@pytest.mark.parametrize("name", ["WarmupLR, log", "WarmupDecayLR, log", "WarmupCosineLR, log"])
def test_deepspeed_log_warm_up_from_a_scheduler_already_stepped(name):
    kind, params, steps = DEEPSPEED_LOG_CASES[name]
    run_deepspeed(kind, params, steps // 2, before=3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["WarmupCosineLR", "WarmupLR, log", "WarmupDecayLR, log", "WarmupCosineLR, log",
                                  "OneCycle, post-cycle decay, rate 0.001 per 1000 steps, stairs"])
def test_deepspeed_every_backend(backend, name):
    run_deepspeed(*deepspeed_cases()[name], backend=backend)


@pytest.mark.parametrize("name", list(DEEPSPEED_LOG_CASES))
def test_deepspeed_log_warm_up_is_exact_in_host_mode(name):
    """Host mode writes compute_lr's float64 rate: DeepSpeed's own bit for bit before the first
    step and through the log warm-up (and WarmupLR's constant after it); the decays after it (a
    linear or cosine decay, converted as before) to the precision goal; far past the end too."""
    kind, params, steps = DEEPSPEED_LOG_CASES[name]
    source = getattr(deepspeed(), kind)(make_optimizer([{"lr": b} for b in DS_BASES], lr=0.1), **params)
    configs = deepspeed_config_to_schedules({"type": kind, "params": params}, DS_BASES)
    host_optimizer = make_optimizer([{"lr": b} for b in DS_BASES], lr=0.1)
    host = LRShim(host_optimizer, {f"group{g}": c for g, c in enumerate(configs)}, device_schedule=False)
    got, want, seen = [rates(host_optimizer)], [rates(source.optimizer)], [-1]
    for n in range(steps):
        source.step()
        host.step()
        got.append(rates(host_optimizer))
        want.append(rates(source.optimizer))
        seen.append(n)
    for n in FAR:
        source.step(n)
        got.append([compute_lr(c, n + 1) for c in configs])
        want.append(rates(source.optimizer))
        seen.append(n)
    exact = [i for i, n in enumerate(seen) if n < source.warmup_num_steps or kind == "WarmupLR"]
    assert len(exact) > source.warmup_num_steps  # every warm-up step, and the rates before it
    assert [got[i] for i in exact] == [want[i] for i in exact]
    assert_precision(got, want, seen)
    warm_up = [c for cfg in configs for c in _kinds_in(cfg) if c.kind == "log_warmup"]
    assert len(warm_up) == len(DS_BASES)  # the log warm-up is a log_warmup, not an approximation


def _kinds_in(cfg):
    """``cfg`` and every schedule nested in it."""
    yield cfg
    body = cfg.schedule
    for child in getattr(body, "schedules", None) or ([body.schedule] if hasattr(body, "steps") else []):
        yield from _kinds_in(child)


@pytest.mark.parametrize("backend", BACKENDS)
def test_deepspeed_lr_range_test_up_to_the_last_step(backend):
    # the line rises to the last step a device-mode shim takes (MAX_STEP), DeepSpeed's value there too
    from fusedsched.schedule.fields import MAX_STEP

    params = dict(lr_range_test_min_lr=[1e-4, 1e-3, 0.01], lr_range_test_step_size=7, lr_range_test_step_rate=0.5)
    source, twin = (deepspeed().LRRangeTest(make_optimizer([{"lr": b} for b in DS_BASES]), **params) for _ in range(2))
    shim = from_deepspeed(twin, backend=backend)
    got, want, seen = [], [], []
    for k in [5, 2**40, 2**52, MAX_STEP - 2, MAX_STEP - 1]:
        source.step(k)
        shim.step(k)
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
        seen.append(k)
    assert_precision(got, want, seen)


def test_deepspeed_one_cycle_momentum_is_off_for_an_optimizer_without_betas():
    schedules = deepspeed()
    sgd = schedules.OneCycle(make_optimizer([{"lr": 0.1}]), cycle_min_lr=0.01, cycle_max_lr=0.1, cycle_first_step_size=4)
    assert not sgd.cycle_momentum  # DeepSpeed turned it off: SGD has no betas
    assert isinstance(from_deepspeed(sgd), DeepSpeedShim)


def _with_warmup_type(scheduler, warmup_type):
    """``scheduler`` with a ``warmup_type`` DeepSpeed's constructor would have replaced by 'log'."""
    scheduler.warmup_type = warmup_type
    return scheduler


def test_deepspeed_refusals_name_the_setting_and_touch_nothing():
    schedules = deepspeed()
    cases = [
        (lambda o: _with_warmup_type(schedules.WarmupLR(o, warmup_max_lr=0.1), "exp"), ValueError,
         r"WarmupLR\(warmup_type='exp'\): only 'log' \(the default\) and 'linear'"),
        (lambda o: _with_warmup_type(schedules.WarmupCosineLR(o, total_num_steps=10), None), ValueError,
         r"WarmupCosineLR\(warmup_type=None\)"),
        # the post-cycle decay min_lr / (1 + k / ts) needs a whole timescale ts = decay_step_size / decay_lr_rate
        (lambda o: schedules.OneCycle(o, 0.01, 0.1, decay_lr_rate=0.3, decay_step_size=100, cycle_momentum=False),
         ValueError, r"OneCycle\(decay_lr_rate=0.3, decay_step_size=100\).*here 333.33"),
        (lambda o: schedules.OneCycle(o, 0.01, 0.1, decay_lr_rate=-0.1, decay_step_size=5, cycle_momentum=False),
         ValueError, r"decay_lr_rate=-0.1, decay_step_size=5\).*negative timescale"),
        (lambda o: schedules.OneCycle(o, 0.01, 0.1, cycle_first_stair_count=2.5, cycle_momentum=False), ValueError,
         r"cycle_first_stair_count=2.5\): only a whole number"),
        (lambda o: schedules.OneCycle(o, 0.01, 0.1, cycle_first_step_size=3000, cycle_first_stair_count=2000,
                                      cycle_second_stair_count=0, cycle_momentum=False), ValueError,
         r"cycle_first_stair_count=2000\) over 3000 steps: more than 1024 stairs"),
        (lambda o: schedules.OneCycle(o, 0.01, 0.1, cycle_first_step_size=2.5, cycle_momentum=False), ValueError,
         r"cycle_first_step_size=2.5"),
        (lambda o: schedules.LRRangeTest(o, lr_range_test_staircase=True), ValueError,
         r"LRRangeTest\(lr_range_test_staircase=True\): the staircase"),
        (lambda o: schedules.LRRangeTest(o, lr_range_test_step_rate=-0.1), ValueError,
         r"LRRangeTest\(lr_range_test_step_rate=-0.1\)"),
        (lambda o: torch.optim.lr_scheduler.StepLR(o, 3), TypeError, "from_deepspeed cannot convert StepLR"),
    ]
    for make, error, match in cases:
        optimizer = make_optimizer([{"lr": b} for b in DS_BASES])
        scheduler = make(optimizer)
        before = [g["lr"] for g in optimizer.param_groups]
        with pytest.raises(error, match=match):
            from_deepspeed(scheduler)
        assert_untouched(optimizer, before)
    adam = make_optimizer([{"lr": 0.1}], cls=torch.optim.Adam)  # reads betas by value: refused, untouched
    with pytest.raises(ValueError, match=r"hyperparameters\['group0'\]\['beta1'\].*reads it by value"):
        from_deepspeed(schedules.OneCycle(adam, 0.01, 0.1))
    assert_untouched(adam, [0.01])
    adam = make_optimizer([{"lr": 0.1}], cls=GraphSafeAdamW)
    with pytest.raises(ValueError, match=r"decay_mom_rate=-0.5, decay_step_size=3\).*falls below 0"):
        from_deepspeed(schedules.OneCycle(adam, 0.01, 0.1, decay_mom_rate=-0.5, decay_step_size=3))
    assert_untouched(adam, [0.01])


ONE_CYCLE_MOMENTUM = dict(cycle_min_mom=[0.85, 0.8, 0.7], cycle_max_mom=[0.95, 0.9, 0.99])
ONE_CYCLE_BETAS_CASES = {
    "cycle": dict(ONE_CYCLE_LR, **ONE_CYCLE_MOMENTUM, cycle_first_step_size=10, cycle_second_step_size=15),
    "stairs and lr decay": dict(ONE_CYCLE_LR, **ONE_CYCLE_MOMENTUM, cycle_first_step_size=10, cycle_second_step_size=15,
                                cycle_first_stair_count=4, cycle_second_stair_count=3, decay_lr_rate=0.5,
                                decay_step_size=5),
}
# DeepSpeed's post-cycle momentum "decay" multiplies max_mom by (1 + rate * (k / size)): it rises without
# bound, so a cycled beta1 passes 1 (Adam's 0 / 0) and the conversion is refused, naming it
MOMENTUM_DECAYS = {
    "stairs, lr and momentum decays": dict(ONE_CYCLE_BETAS_CASES["stairs and lr decay"], decay_mom_rate=0.01),
    "momentum decay alone": dict(ONE_CYCLE_LR, **ONE_CYCLE_MOMENTUM, cycle_first_step_size=6, cycle_second_step_size=3,
                                 decay_step_size=7, decay_mom_rate=0.002),
}


def one_cycle_betas(optimizer):
    return [float(b) for g in optimizer.param_groups for b in g["betas"]]


def run_one_cycle_betas(params, before, backend):
    """OneCycle over a graph-safe Adam: its lrs and betas, the shim's and DeepSpeed's, step by step
    through the cycle and the decay, then far past the end."""
    schedules = deepspeed()
    groups = [{"lr": b, "betas": (0.9, 0.999)} for b in DS_BASES]
    source, twin = (schedules.OneCycle(make_optimizer(groups, GraphSafeAdamW, lr=0.1), **params) for _ in range(2))
    assert source.cycle_momentum
    for _ in range(before):
        source.step()
        twin.step()
    shim = from_deepspeed(twin, backend=backend)
    got, want, seen = [one_cycle_betas(twin.optimizer)], [one_cycle_betas(source.optimizer)], [before]
    lrs_got, lrs_want = [shim.lr_tensor.tolist()], [rates(source.optimizer)]
    configs = [*shim.lr_dict.values(), *(c for betas in shim.hyperparameters.values() for c in betas.values())]
    for n in [*compared_steps(configs, before, before + 60, backend), *FAR]:
        source.step(n - 1)
        shim.step(n - 1)
        got.append(one_cycle_betas(twin.optimizer))
        want.append(one_cycle_betas(source.optimizer))
        lrs_got.append(shim.lr_tensor.tolist())
        lrs_want.append(rates(source.optimizer))
        seen.append(n)
    assert_precision(got, want, seen)
    assert_precision(lrs_got, lrs_want, seen)
    return shim, want


def started(befores):
    """``(backend, before)``: every backend from step 0; starting part-way (a jump, the same launch on
    every backend) also on the backends whose launches cost little."""
    return [(b, before) for b in BACKENDS for before in befores if before == 0 or b not in INTERPRETED]


@pytest.mark.parametrize("backend, before", started([0, 13]))
def test_deepspeed_one_cycle_cycles_betas(backend, before):
    # DeepSpeed's default: betas = (max_mom - (max_mom - min_mom) * scale, 0.99), inversely to the lr,
    # then (max_mom, 0.99) after the cycle; per-group momentum bounds
    _, want = run_one_cycle_betas(ONE_CYCLE_BETAS_CASES["cycle"], before, backend)
    assert want[-1] == [0.95, 0.99, 0.9, 0.99, 0.99, 0.99]  # after the cycle: (max_mom, 0.99)


@pytest.mark.parametrize("backend, before", started([0, 30]))
def test_deepspeed_one_cycle_stairs_and_decays_of_lr_and_betas(backend, before):
    _, want = run_one_cycle_betas(ONE_CYCLE_BETAS_CASES["stairs and lr decay"], before, backend)
    assert want[-1] == [0.95, 0.99, 0.9, 0.99, 0.99, 0.99]  # after the cycle: (max_mom, 0.99)


@pytest.mark.parametrize("name", list(MOMENTUM_DECAYS))
def test_deepspeed_momentum_decay_that_lifts_beta1_past_1_is_refused(name):
    params = MOMENTUM_DECAYS[name]
    source = deepspeed().OneCycle(make_optimizer([{"lr": b} for b in DS_BASES], GraphSafeAdamW, lr=0.1), **params)
    for n in range(1, 400):  # DeepSpeed itself writes beta1 >= 1 there
        source.step(n - 1)
    assert max(one_cycle_betas(source.optimizer)[::2]) >= 1
    for from_object in (True, False):
        optimizer = make_optimizer([{"lr": b} for b in DS_BASES], GraphSafeAdamW, lr=0.1)
        scheduler = deepspeed().OneCycle(optimizer, **params) if from_object else None  # sets the betas
        betas, lrs = [g["betas"] for g in optimizer.param_groups], [g["lr"] for g in optimizer.param_groups]
        with pytest.raises(ValueError, match=r"\['beta1'\]: its highest value is .*, not below 1"):
            if from_object:
                from_deepspeed(scheduler)
            else:
                from_deepspeed_config({"type": "OneCycle", "params": params}, optimizer)
        assert [g["betas"] for g in optimizer.param_groups] == betas  # nothing changed
        assert [g["lr"] for g in optimizer.param_groups] == lrs


@pytest.mark.parametrize("name", list(ONE_CYCLE_BETAS_CASES))
def test_deepspeed_one_cycle_betas_from_the_json_block(name):
    # the block alone gives the object's lr and beta schedules; from_deepspeed_config builds the shim
    # over the optimizer as DeepSpeed would (betas cycled: the optimizer has betas), at the same rates
    params = ONE_CYCLE_BETAS_CASES[name]
    shim, _ = run_one_cycle_betas(params, 0, "native")
    block = {"type": "OneCycle", "params": params}
    lrs = deepspeed_config_to_schedules(block, DS_BASES)
    betas = deepspeed_config_to_hyperparameters(block, len(DS_BASES))
    assert [c.model_dump() for c in lrs] == [c.model_dump() for c in shim.lr_dict.values()]
    assert [{k: c.model_dump() for k, c in b.items()} for b in betas] == [
        {k: c.model_dump() for k, c in shim.hyperparameters[g].items()} for g in shim.group_names]
    source = deepspeed().OneCycle(make_optimizer([{"lr": b} for b in DS_BASES], GraphSafeAdamW, lr=0.1), **params)
    optimizer = make_optimizer([{"lr": b} for b in DS_BASES], GraphSafeAdamW, lr=0.1)
    from_json = from_deepspeed_config(block, optimizer)
    assert isinstance(from_json, DeepSpeedShim) and from_json.last_batch_iteration == -1
    got, want = [one_cycle_betas(optimizer) + rates(optimizer)], [one_cycle_betas(source.optimizer) + rates(source.optimizer)]
    for n in [*range(1, 60), *FAR]:
        source.step(n - 1)
        from_json.step(n - 1)
        got.append(one_cycle_betas(optimizer) + from_json.lr_tensor.tolist())
        want.append(one_cycle_betas(source.optimizer) + rates(source.optimizer))
    assert_precision(got, want, [0, *range(1, 60), *FAR])


def test_deepspeed_one_cycle_json_momentum_follows_the_optimizer_as_deepspeed_does():
    block = {"type": "OneCycle", "params": dict(ONE_CYCLE_LR, cycle_first_step_size=4, cycle_min_mom=0.8)}
    sgd = make_optimizer([{"lr": b} for b in DS_BASES])  # no betas: DeepSpeed turns the cycling off
    shim = from_deepspeed_config(block, sgd)
    assert shim.hyperparameters == {} and "betas" not in sgd.param_groups[0]
    assert deepspeed_config_to_hyperparameters({**block, "params": {**block["params"], "cycle_momentum": False}},
                                               3) == [{}, {}, {}]
    adam = make_optimizer([{"lr": b} for b in DS_BASES], torch.optim.Adam)  # betas read by value: refused
    with pytest.raises(ValueError, match=r"hyperparameters\['group0'\]\['beta1'\].*reads it by value"):
        from_deepspeed_config(block, adam)
    assert_untouched(adam, DS_BASES)
    started = from_deepspeed_config({"type": "WarmupLR", "params": {"warmup_num_steps": 4, "warmup_type": "linear",
                                                                    "last_batch_iteration": 1}},
                                    make_optimizer([{"lr": 0.1}]))
    # DeepSpeed's linear warm-up at last_batch_iteration 1: 0.1 * 1 / 4
    assert started.last_batch_iteration == 1 and started.get_last_lr() == pytest.approx([0.025])


@pytest.mark.parametrize("config, error, match", [
    ({"type": "WarmupExp", "params": {}}, TypeError, "cannot convert scheduler type 'WarmupExp'"),
    ({"type": "LRRangeTest", "params": {"lr_range_test_staircase": True}}, ValueError, "lr_range_test_staircase=True"),
    ({"type": "LRRangeTest", "params": {"lr_range_test_step_size": 2.0}}, ValueError,
     r"lr_range_test_step_size=2.0\): must be a positive integer"),
    ({"type": "WarmupLR", "params": {"warmup_num_step": 5}}, ValueError, r"unknown \['warmup_num_step'\]"),
    ({"type": "WarmupDecayLR", "params": {"warmup_type": "linear"}}, ValueError, r"missing \['total_num_steps'\]"),
    ({"type": "WarmupLR", "params": {"warmup_num_steps": 0, "warmup_type": "linear"}}, ValueError, "positive integer, got 0"),
    ({"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 1.0, "decay_lr_rate": 0.7,
                                     "decay_step_size": 2}}, ValueError, r"decay_lr_rate=0.7, decay_step_size=2\)"),
    ({"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 1.0, "cycle_second_stair_count": 0.5}},
     ValueError, r"cycle_second_stair_count=0.5\)"),
    ({"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 1.0, "cycle_first_step_size": 0}},
     ValueError, r"cycle_first_step_size=0.0, cycle_second_step_size=0.0\): the first must be positive"),
    ({"type": "WarmupLR", "params": {"warmup_max_lr": [0.1], "warmup_type": "linear"}}, ValueError, "expected 3 values"),
    ({"params": {}}, ValueError, "'type' and 'params'"),
    ({"type": "WarmupLR", "params": {"warmup_type": "exp"}}, ValueError, r"WarmupLR\(warmup_type='exp'\)"),
    ({"type": "WarmupDecayLR", "params": {"total_num_steps": 9, "warmup_type": "Log"}}, ValueError,
     r"WarmupDecayLR\(warmup_type='Log'\)"),
    ({"type": "WarmupCosineLR", "params": {"total_num_steps": 9, "warmup_type": None}}, ValueError,
     r"WarmupCosineLR\(warmup_type=None\)"),
])
def test_deepspeed_config_refusals(config, error, match):
    with pytest.raises(error, match=match):
        deepspeed_config_to_schedules(config, DS_BASES)


def test_deepspeed_config_needs_no_deepspeed():
    configs = deepspeed_config_to_schedules({"type": "WarmupLR", "params": {
        "warmup_min_lr": 0.0, "warmup_max_lr": 0.1, "warmup_num_steps": 4, "warmup_type": "linear"}}, [0.1])
    # DeepSpeed's rates at last_batch_iteration -1, 0, 1, ...: min, then min + delta * n / W, then max
    assert [compute_lr(configs[0], s) for s in range(7)] == pytest.approx([0.0, 0.0, 0.025, 0.05, 0.075, 0.1, 0.1])
    # the default warm-up, 'log': min + delta * (log(n + 1) / log(W)), then max
    configs = deepspeed_config_to_schedules({"type": "WarmupLR", "params": {
        "warmup_min_lr": 0.0, "warmup_max_lr": 0.1, "warmup_num_steps": 4}}, [0.1])
    want = [0.0, 0.0, 0.1 * math.log(2) / math.log(4), 0.1 * math.log(3) / math.log(4), 0.1, 0.1, 0.1]
    assert [compute_lr(configs[0], s) for s in range(7)] == pytest.approx(want, rel=1e-15)


# --- Megatron-core ---------------------------------------------------------------------------------

# Megatron-core 0.16 builds each group's max_lr / min_lr from its overrides (lr_mult is kept for
# backwards compatibility and not read by the scheduler).
MEGATRON_GROUPS = [{"lr": 0.0}, {"lr": 0.0, "max_lr": 0.02, "min_lr": 2e-4, "lr_mult": 2.0, "wd_mult": 0.0},
                   {"lr": 0.0, "max_lr": 0.5, "min_lr": 0.0}]


def megatron_cases():
    common = dict(init_lr=1e-5, max_lr=0.1, min_lr=1e-3, start_wd=0.01, end_wd=0.01, wd_incr_steps=100,
                  wd_incr_style="constant")
    return {
        "constant": (dict(common, lr_warmup_steps=10, lr_decay_steps=50, lr_decay_style="constant"), 40),
        "linear": (dict(common, lr_warmup_steps=10, lr_decay_steps=60, lr_decay_style="linear"), 90),
        "linear, no warm-up": (dict(common, lr_warmup_steps=0, lr_decay_steps=30, lr_decay_style="linear"), 50),
        "cosine": (dict(common, lr_warmup_steps=7, lr_decay_steps=80, lr_decay_style="cosine"), 120),
        "inverse-square-root": (dict(common, lr_warmup_steps=5, lr_decay_steps=1000, lr_decay_style="inverse-square-root"), 1100),
        "inverse-square-root, no warm-up": (dict(common, lr_warmup_steps=0, lr_decay_steps=40,
                                                 lr_decay_style="inverse-square-root"), 60),
        "WSD linear": (dict(common, lr_warmup_steps=6, lr_decay_steps=50, lr_decay_style="WSD", wsd_decay_steps=20,
                            lr_wsd_decay_style="linear"), 70),
        "WSD cosine": (dict(common, lr_warmup_steps=6, lr_decay_steps=50, lr_decay_style="WSD", wsd_decay_steps=20,
                            lr_wsd_decay_style="cosine"), 70),
        "WSD exponential": (dict(common, lr_warmup_steps=6, lr_decay_steps=50, lr_decay_style="WSD", wsd_decay_steps=20,
                                 lr_wsd_decay_style="exponential"), 70),
        "WSD exponential, anneal from inside the warm-up": (dict(
            common, lr_warmup_steps=9, lr_decay_steps=31, lr_decay_style="WSD", wsd_decay_steps=27,
            lr_wsd_decay_style="exponential"), 50),
        "WSD minus_sqrt, anneal from inside the warm-up": (dict(
            common, lr_warmup_steps=12, lr_decay_steps=30, lr_decay_style="WSD", wsd_decay_steps=25,
            lr_wsd_decay_style="minus_sqrt"), 50),
        # no warm-up and wsd_decay_steps > lr_decay_steps: Megatron is already in the anneal at step 0
        **{f"WSD {style}, no warm-up, anneal from before step 0": (dict(
            common, lr_warmup_steps=0, lr_decay_steps=20, lr_decay_style="WSD", wsd_decay_steps=30,
            lr_wsd_decay_style=style), 40) for style in ("linear", "cosine", "minus_sqrt", "exponential")},
        "WSD minus_sqrt, anneal from the start": (dict(common, lr_warmup_steps=0, lr_decay_steps=24, lr_decay_style="WSD",
                                                       wsd_decay_steps=24, lr_wsd_decay_style="minus_sqrt"), 40),
        "WSD exponential, anneal from the start": (dict(common, lr_warmup_steps=0, lr_decay_steps=37,
                                                        lr_decay_style="WSD", wsd_decay_steps=37,
                                                        lr_wsd_decay_style="exponential"), 50),
        # wsd_decay_steps <= 0: the anneal would start after lr_decay_steps, where min_lr takes over, so
        # its style (even "exponential") is never evaluated
        "WSD exponential, wsd_decay_steps 0": (dict(common, lr_warmup_steps=4, lr_decay_steps=20, lr_decay_style="WSD",
                                                    wsd_decay_steps=0, lr_wsd_decay_style="exponential"), 30),
        "WSD cosine, wsd_decay_steps < 0, no warm-up": (dict(common, lr_warmup_steps=0, lr_decay_steps=20,
                                                             lr_decay_style="WSD", wsd_decay_steps=-3,
                                                             lr_wsd_decay_style="cosine"), 30),
    }


def megatron():
    module = pytest.importorskip("megatron.core.optimizer_param_scheduler",
                                 reason="megatron-core is not installed (make test installs it)")
    return module.OptimizerParamScheduler


def run_megatron(params, steps, before=0, increment=1, backend="native"):
    scheduler_class = megatron()
    source, twin = (scheduler_class(make_optimizer(MEGATRON_GROUPS, lr=0.0), **params) for _ in range(2))
    for s in (source, twin):
        s.step(before)
    shim = from_megatron(twin, backend=backend)
    assert isinstance(shim, MegatronShim) and shim.num_steps == source.num_steps == before
    got, want, seen = [shim.lr_tensor.tolist()], [rates(source.optimizer)], [before]
    every = [before + i * increment for i in range(1, steps)]
    for n in compared_steps(shim.lr_dict.values(), before, before + steps, backend) if increment == 1 else every:
        source.step(n - source.num_steps)  # 1 (a step) or more (a jump)
        shim.step(n - shim.num_steps)
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
        seen.append(source.num_steps)
    for k in FAR:
        source.step(k - source.num_steps)
        shim.step(k - shim.num_steps)
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
        seen.append(k)
    assert shim.num_steps == source.num_steps
    assert_precision(got, want, seen)


@pytest.mark.parametrize("name", list(megatron_cases()))
def test_megatron(name):
    run_megatron(*megatron_cases()[name])


@pytest.mark.parametrize("name", ["linear", "cosine", "inverse-square-root", "WSD cosine", "WSD exponential"])
def test_megatron_from_a_scheduler_already_stepped_and_by_increments(name):
    params, steps = megatron_cases()[name]
    run_megatron(params, steps // 6, before=steps // 3, increment=3)


@pytest.mark.parametrize("name", ["cosine", "WSD minus_sqrt, no warm-up, anneal from before step 0", "WSD exponential",
                                  "WSD exponential, anneal from inside the warm-up",
                                  "WSD exponential, no warm-up, anneal from before step 0"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_megatron_every_backend(backend, name):
    run_megatron(*megatron_cases()[name], backend=backend)


@pytest.mark.parametrize("style", ["linear", "cosine"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_megatron_weight_decay_increment(style, backend):
    # start_wd -> end_wd over wd_incr_steps, times each group's wd_mult, as Megatron's step writes
    # group["weight_decay"]; a group with start_wd == end_wd keeps Megatron's constant
    from fusedsched import GraphSafeAdamW

    scheduler_class = megatron()
    groups = [{"lr": 0.0, "wd_mult": 1.0}, {"lr": 0.0, "wd_mult": 0.5, "start_wd": 0.0, "end_wd": 0.3},
              {"lr": 0.0, "wd_mult": 2.0, "start_wd": 0.05, "end_wd": 0.05}]
    params = dict(init_lr=1e-5, max_lr=0.1, min_lr=1e-3, lr_warmup_steps=5, lr_decay_steps=60, lr_decay_style="cosine",
                  start_wd=0.01, end_wd=0.1, wd_incr_steps=40, wd_incr_style=style)
    source, twin = (scheduler_class(make_optimizer(groups, GraphSafeAdamW, lr=0.0), **params) for _ in range(2))
    for s in (source, twin):
        s.step(3)
    shim = from_megatron(twin, backend=backend)
    assert sorted(shim.hyperparameters) == ["group0", "group1"]  # group 2's weight decay is constant

    def decays(optimizer):
        return [float(g["weight_decay"]) for g in optimizer.param_groups]

    got, want, seen = [decays(twin.optimizer)], [decays(source.optimizer)], [3]
    lrs_got, lrs_want = [shim.lr_tensor.tolist()], [rates(source.optimizer)]
    configs = [*shim.lr_dict.values(), *(c for h in shim.hyperparameters.values() for c in h.values())]
    for n in [*compared_steps(configs, 3, 54, backend), 60, 160, 10**6 + 160]:  # then increments 7, 100, 10**6
        increment = n - source.num_steps
        source.step(increment)
        shim.step(increment)
        got.append(decays(twin.optimizer))
        want.append(decays(source.optimizer))
        lrs_got.append(shim.lr_tensor.tolist())
        lrs_want.append(rates(source.optimizer))
        seen.append(source.num_steps)
    assert_precision(got, want, seen)
    assert_precision(lrs_got, lrs_want, seen)
    assert want[1][2] == 0.05 * 2.0 and want[-1][:2] == [0.1, 0.3 * 0.5]


def test_megatron_weight_decay_increment_needs_an_optimizer_that_reads_tensors():
    scheduler_class = megatron()
    params = dict(init_lr=0.0, max_lr=0.1, min_lr=0.0, lr_warmup_steps=2, lr_decay_steps=20, lr_decay_style="linear",
                  start_wd=0.0, end_wd=0.1, wd_incr_steps=20, wd_incr_style="linear")
    optimizer = make_optimizer(MEGATRON_GROUPS, torch.optim.AdamW, lr=0.0)
    scheduler = scheduler_class(optimizer, **params)
    before = [g["lr"] for g in optimizer.param_groups]
    with pytest.raises(ValueError, match=r"hyperparameters\['group0'\]\['weight_decay'\].*reads it by value"):
        from_megatron(scheduler)
    assert_untouched(optimizer, before)
    assert all(type(g["weight_decay"]) is float for g in optimizer.param_groups)


def test_megatron_refusals_name_the_setting_and_touch_nothing():
    scheduler_class = megatron()
    base = dict(init_lr=0.0, max_lr=0.1, min_lr=0.0, lr_warmup_steps=2, lr_decay_steps=20, lr_decay_style="WSD",
                wsd_decay_steps=5, lr_wsd_decay_style="linear", start_wd=0.01, end_wd=0.01, wd_incr_steps=20,
                wd_incr_style="constant")
    cases = [
        # an increment style Megatron may add (0.16 asserts in its constructor for any other)
        (dict(base, start_wd=0.0, end_wd=0.1, wd_incr_style="linear"), {"wd_incr_style": "exponential"},
         r"wd_incr_style='exponential'; supported: 'linear', 'cosine'"),
        # an anneal style Megatron may add (0.16 raises in get_lr for any other)
        (base, {"lr_wsd_decay_style": "square"},
         r"lr_wsd_decay_style='square'\); supported: \['cosine', 'exponential', 'linear', 'minus_sqrt'\]"),
        (dict(base, lr_warmup_steps=0, wsd_decay_steps=30), {"lr_wsd_decay_style": "square"},
         r"lr_wsd_decay_style='square'"),
        (base, {"lr_warmup_steps": 2.5}, r"lr_warmup_steps=2.5\): only a whole number"),
        (base, {"wsd_decay_steps": 4.5}, r"wsd_decay_steps=4.5\): only a whole number"),
    ]
    for params, later, match in cases:
        optimizer = make_optimizer(MEGATRON_GROUPS)
        scheduler = scheduler_class(optimizer, **params)
        for key, value in later.items():
            setattr(scheduler, key, value)
        before = [g["lr"] for g in optimizer.param_groups]
        with pytest.raises(ValueError, match=match):
            from_megatron(scheduler)
        assert_untouched(optimizer, before)
        assert scheduler.num_steps == 0
    with pytest.raises(TypeError, match="from_megatron cannot convert StepLR"):
        from_megatron(torch.optim.lr_scheduler.StepLR(make_optimizer([{"lr": 0.1}]), 2))


# --- the offset kind they rely on -----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_offset_kind_on_every_backend(backend):
    configs = [
        LearningRate(join={"schedules": [{"constant": 0.5}, {"offset": {"schedule": {"cosine_with_restarts": {
            "learning_rate": 1.0, "cycle_steps": 7, "cycle_mult": 2, "cycle_decay": 0.5}}, "steps": 3}}], "boundaries": [3]}),
        LearningRate(offset={"schedule": {"product": {"schedules": [{"constant": 0.3}, {"cosine_annealing": {
            "learning_rate": 1.0, "num_steps": 11}}]}}, "steps": 5}),
        LearningRate(offset={"schedule": {"linear_ramp_to_constant": {"learning_rate": 0.2, "num_ramp_steps": 9}},
                             "steps": 0}),
    ]
    shim = LRShim(make_optimizer([{"lr": 0.0}] * len(configs)), {f"g{i}": c for i, c in enumerate(configs)},
                  device_schedule=True, backend=backend)
    got, want, steps = [], [], [0, *compared_steps(configs, 0, 80, backend)]
    for before, s in zip([0, *steps], steps):
        if s == before + 1:
            shim.step()
        elif s > before:
            shim.step(amount=s - before)
        got.append(shim.lr_tensor.tolist())
        want.append([compute_lr(c, s) for c in configs])
    assert_precision(got, want, steps)
    assert [compute_lr(configs[1], s) for s in (0, 6)] == [0.3 * compute_lr(LearningRate(cosine_annealing={
        "learning_rate": 1.0, "num_steps": 11}), s + 5) for s in (0, 6)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isfinite(compute_lr(configs[0], 2**40))


# --- torchtitan: its LambdaLR, recognized by from_torch ---------------------------------------------


def torchtitan_lambda(optimizer, training_steps, **config):
    module = pytest.importorskip("torchtitan.components.optimizer.lr_scheduler",
                                 reason="torchtitan is not installed (make test installs it)")
    container = module.LRSchedulersContainer.Config(**config).build(optimizers=[optimizer], training_steps=training_steps)
    return container.schedulers[0]


TORCHTITAN_CASES = {
    # (config, training steps, warned, compared far past the last step)
    "linear, no stable phase": (dict(warmup_steps=10, decay_type="linear"), 60, True, False),
    "sqrt, WSD, min_lr_factor": (dict(warmup_steps=5, decay_ratio=0.4, decay_type="sqrt", min_lr_factor=0.1), 50, True, False),
    "cosine, WSD, far past the end": (dict(warmup_steps=7, decay_ratio=0.5, decay_type="cosine", min_lr_factor=0.05), 40,
                                      False, True),
    "cosine, no warm-up": (dict(warmup_steps=0, decay_type="cosine"), 30, False, True),
    "warm-up over every step (torchtitan asserts after)": (dict(warmup_steps=30, decay_type="linear"), 20, False, False),
}


@pytest.mark.parametrize("name", list(TORCHTITAN_CASES))
def test_torchtitan(name):
    from fusedsched import from_torch
    from fusedsched.convert.torch import ConversionWarning

    config, total, warned, far = TORCHTITAN_CASES[name]
    source, twin = (torchtitan_lambda(make_optimizer([{"lr": b} for b in DS_BASES], lr=0.1), total, **config)
                    for _ in range(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shim = from_torch(twin)
    held = [w for w in caught if issubclass(w.category, ConversionWarning)]
    assert bool(held) == warned, [str(w.message) for w in held]
    # torchtitan steps the scheduler once per training step: steps 0 .. total; the cosine goes on
    steps = 4 * total if far else total + 1
    got, want = [shim.lr_tensor.tolist()], [rates(source.optimizer)]
    for _ in range(1, steps):
        source.optimizer.step()
        source.step()
        shim.step()
        got.append(shim.lr_tensor.tolist())
        want.append(rates(source.optimizer))
    assert_precision(got, want, list(range(steps)))


def test_megatron_drives_the_torch_optimizer_behind_megatron_s():
    scheduler_class = megatron()
    from megatron.core.optimizer.optimizer import ChainedOptimizer

    class Wrapper:  # what MegatronOptimizer exposes: its torch optimizer and that one's groups
        def __init__(self, optimizer):
            self.optimizer = optimizer

        @property
        def param_groups(self):
            return self.optimizer.param_groups

    params = dict(megatron_cases()["cosine"][0])
    inner = make_optimizer(MEGATRON_GROUPS)
    shim = from_megatron(scheduler_class(Wrapper(inner), **params))
    assert all(g["lr"].data_ptr() == shim.lr_tensor[i].data_ptr() for i, g in enumerate(inner.param_groups))
    chained = ChainedOptimizer([Wrapper(make_optimizer([{"lr": 0.1}])), Wrapper(make_optimizer([{"lr": 0.2}]))])
    with pytest.raises(TypeError, match="ChainedOptimizer of 2 optimizers is not converted"):
        from_megatron(scheduler_class(chained, **params))


# --- the stack shims' own stepping calls: LRShim's jump -----------------------------------------


def _stack_shims():
    """A converted shim of each stack, started part-way (``from_*`` at the source's current step)."""
    ts, schedules = timm_scheduler(), deepspeed()
    warmup = schedules.WarmupLR(make_optimizer([{"lr": b} for b in DS_BASES]), warmup_max_lr=0.1,
                                warmup_num_steps=10, warmup_type="linear")
    for _ in range(4):
        warmup.step()
    cosine = ts.CosineLRScheduler(make_optimizer(TIMM_GROUPS), t_initial=20, t_in_epochs=False)
    cosine.step_update(5)
    plateau = ts.PlateauLRScheduler(make_optimizer(TIMM_GROUPS), warmup_t=2, warmup_lr_init=1e-3, patience_t=1)
    for epoch in (1, 2, 3):
        plateau.step(epoch, 0.5)
    megatron_scheduler = megatron()(make_optimizer(MEGATRON_GROUPS, lr=0.0), **megatron_cases()["cosine"][0])
    megatron_scheduler.step(6)
    return {"deepspeed": from_deepspeed(warmup), "timm": from_timm(cosine, t=5), "timm plateau": from_timm(plateau, t=3),
            "megatron": from_megatron(megatron_scheduler)}


def test_a_stack_shim_counts_its_calls_as_a_fresh_torch_scheduler_does():
    # started part-way, one step() call counted (the constructor's); each call after it counts one
    shims = _stack_shims()
    assert {name: (shim.last_epoch, shim.state_dict()["_step_count"]) for name, shim in shims.items()} == {
        "deepspeed": (4, 1), "timm": (5, 1), "timm plateau": (3, 1), "megatron": (6, 1)}
    shims["deepspeed"].step(9)  # last_batch_iteration 9
    shims["timm"].step_update(12)
    shims["timm plateau"].step(4, 0.4)  # the metric, then the rate at epoch 4
    shims["megatron"].step(5)
    for shim in shims.values():
        shim.step()
    assert {name: (shim.last_epoch, shim.state_dict()["_step_count"]) for name, shim in shims.items()} == {
        "deepspeed": (11, 3), "timm": (13, 3), "timm plateau": (5, 3), "megatron": (12, 3)}


def test_a_stack_shim_checks_its_step_argument_before_anything_changes():
    shims = _stack_shims()
    cases = [
        ("deepspeed", lambda s: s.step(-3), ValueError, r"^last_batch_iteration \+ 1 must be >= 0, got -2$"),
        ("deepspeed", lambda s: s.step(2.5), ValueError, r"^last_batch_iteration=2.5: only a whole number"),
        ("timm", lambda s: s.step_update("7"), TypeError, r"^num_updates must be an integer, got '7' \(str\)$"),
        ("timm", lambda s: s.step_update(2**53), OverflowError, r"^num_updates must be <= 2\*\*53 - 2 .* got 9007199254740992"),
        ("timm plateau", lambda s: s.step(-4, 0.5), ValueError, r"^epoch must be >= 0, got -4$"),
        ("timm plateau", lambda s: s.step(6, "low"), ValueError, r"^metrics must be one real number .* got 'low'$"),
        ("megatron", lambda s: s.step(-1), ValueError, r"^increment must be an int >= 0, got -1$"),
        ("megatron", lambda s: s.step(2**53), OverflowError, r"^num_steps \+ increment must be <= 2\*\*53 - 2"),
    ]
    for name, call, error, match in cases:
        shim = shims[name]
        before = (shim.last_epoch, shim.state_dict(), shim.lr_tensor.tolist())
        with pytest.raises(error, match=match):
            call(shim)
        assert (shim.last_epoch, shim.state_dict(), shim.lr_tensor.tolist()) == before, name


# --- Megatron's override_opt_param_scheduler and use_checkpoint_opt_param_scheduler ------------------

from fusedsched import ScheduleChangedWarning  # noqa: E402 (this section's own)


def _megatron_resume(flags, changed):
    """A Megatron run (``cosine``, 12 steps) saved; a new one (``changed`` settings, ``flags``) built from
    it, both Megatron's and the shim's, each loading its own checkpoint with its defaults."""
    scheduler_class = megatron()
    params = megatron_cases()["cosine"][0]
    source = scheduler_class(make_optimizer(MEGATRON_GROUPS, lr=0.0), **params)
    source.step(12)
    shim = from_megatron(scheduler_class(make_optimizer(MEGATRON_GROUPS, lr=0.0), **params))
    shim.step(12)
    new = dict(params, **changed, **flags)
    target, twin = (scheduler_class(make_optimizer(MEGATRON_GROUPS, lr=0.0), **new) for _ in range(2))
    return source.state_dict(), shim.state_dict(), target, from_megatron(twin), shim


@pytest.mark.parametrize("flags, schedules", [
    ({}, "checkpoint"),  # Megatron's defaults: use_checkpoint_opt_param_scheduler=True
    ({"override_opt_param_scheduler": True, "use_checkpoint_opt_param_scheduler": False}, "configured"),
])
def test_megatron_resume_follows_its_flags_as_megatron_does(flags, schedules):
    megatron_state, state, target, shim, source_shim = _megatron_resume(flags, {"lr_decay_steps": 150, "min_lr": 2e-3})
    assert (shim.resume_schedules, shim.resume_strict) == (schedules, False)
    configured = dict(shim.lr_dict)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target.load_state_dict(megatron_state)
        shim.load_state_dict(state)
    changed = [w for w in caught if issubclass(w.category, ScheduleChangedWarning)]
    assert len(changed) == (1 if schedules == "configured" else 0)  # the override is reported, not silent
    assert shim.lr_dict == (configured if schedules == "configured" else source_shim.lr_dict)
    assert shim.num_steps == target.num_steps == 12
    got, want, seen = [shim.lr_tensor.tolist()], [rates(target.optimizer)], [12]
    for n in range(13, 170):
        target.step(1)
        shim.step(1)
        got.append(shim.lr_tensor.tolist())
        want.append(rates(target.optimizer))
        seen.append(n)
    assert_precision(got, want, seen)


def test_megatron_resume_without_either_flag_refuses_a_changed_schedule_as_megatron_does():
    flags = {"use_checkpoint_opt_param_scheduler": False}
    megatron_state, state, target, shim, _ = _megatron_resume(flags, {"lr_decay_steps": 150})
    assert (shim.resume_schedules, shim.resume_strict) == ("configured", True)
    with pytest.raises(AssertionError, match="do not match"):
        target.load_state_dict(megatron_state)
    before = shim.state_dict()
    with pytest.raises(ValueError, match=r"differ from the configured ones \(strict=True\)"):
        shim.load_state_dict(state)
    assert shim.state_dict() == before
    same = _megatron_resume(flags, {})  # an unchanged schedule loads, as Megatron's does
    same[2].load_state_dict(same[0])
    same[3].load_state_dict(same[1])
    assert same[3].num_steps == same[2].num_steps == 12


def test_megatron_shim_takes_a_cooldown_from_any_checkpoint():
    scheduler = megatron()(make_optimizer(MEGATRON_GROUPS, lr=0.0), **megatron_cases()["WSD linear"][0])
    scheduler.step(20)
    shim = from_megatron(scheduler, spare_segments=2)
    before = shim.lr_tensor.clone()
    shim.switch({name: {"warmup_stable_decay": {"learning_rate": "current", "final_learning_rate": 0.0,
                                                "num_ramp_steps": 0, "num_stable_steps": 0, "num_decay_steps": 10,
                                                "decay_shape": "linear"}} for name in shim.group_names})
    assert torch.equal(shim.lr_tensor, before)
    shim.step(10)
    assert shim.lr_tensor.tolist() == [0.0] * len(MEGATRON_GROUPS)

"""``from_torch``: the device-mode ``LRShim`` gives, step by step, the stock scheduler's own rates.

Each case builds the same scheduler twice over identical optimizers, converts one and steps both,
comparing every group's float32 rate with float32 of the stock one to docs/precision.md's goal
(identical or one ulp apart; at most 0.01% one ulp apart), through every phase boundary and far
past the end; also from a scheduler already stepped, and on every backend that runs here.
"""

import functools
import math
import warnings

import numpy as np
import pytest
import torch
from _peers import optimizer, ulps32
from torch.optim import lr_scheduler as tls
from transformers import optimization as hf

from fusedsched import GraphSafeSGD, LearningRate, LRShim, compute_lr, from_torch
from fusedsched.convert.torch import SUPPORTED, ConversionWarning, learning_rates_from_torch
from fusedsched.ops import unavailable_reason

BACKENDS = [b for b in ("native", "reference", "triton") if unavailable_reason(b, "cpu") is None]
BASES = (0.1, 0.03, 1.0)


def _steps(scheduler, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            scheduler.optimizer.step()
            scheduler.step()


def compare(make, steps, before=0, bases=BASES, backend="native"):
    """Step ``make``'s stock scheduler and its conversion side by side for ``steps`` steps."""
    stock, twin = make(optimizer(list(bases))), make(optimizer(list(bases)))
    _steps(stock, before)
    _steps(twin, before)
    shim = from_torch(twin, backend=backend)
    assert shim.device_schedule and shim.backend == backend
    got, want = [], []
    for i in range(steps):
        if i:
            _steps(stock, 1)
            shim.step()
        want.append([float(v) for v in stock.get_last_lr()])
        got.append(shim.lr_tensor.tolist())
        assert all(g["lr"].data_ptr() == shim.lr_tensor[k].data_ptr() for k, g in enumerate(twin.optimizer.param_groups))
    got, want = np.array(got), np.array(want)
    ulps = ulps32(got.astype(np.float32), want)
    where = np.argwhere(ulps > 1)
    assert not where.size, (
        f"{len(where)} rates more than 1 ulp off; first at step {before + where[0][0]} group {where[0][1]}: "
        f"got {got[tuple(where[0])]!r}, stock {want[tuple(where[0])]!r}")
    assert (ulps == 1).sum() <= max(1e-4 * ulps.size, 0), f"{(ulps == 1).sum()} of {ulps.size} rates 1 ulp off"
    return shim


SCHEDULERS = {
    "StepLR": (lambda o: tls.StepLR(o, step_size=3, gamma=0.5), 60),
    "StepLR gamma 0": (lambda o: tls.StepLR(o, step_size=4, gamma=0.0), 12),
    "MultiStepLR": (lambda o: tls.MultiStepLR(o, milestones=[0, 5, 5, 20, 31], gamma=0.3), 60),
    "ExponentialLR": (lambda o: tls.ExponentialLR(o, gamma=0.95), 400),
    "CosineAnnealingLR periodic": (lambda o: tls.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 200),
    "CosineAnnealingLR T_max 1": (lambda o: tls.CosineAnnealingLR(o, T_max=1), 20),
    "LinearLR warm-up": (lambda o: tls.LinearLR(o, start_factor=0.25, total_iters=8), 40),
    "LinearLR decay": (lambda o: tls.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=20), 40),
    "LinearLR total_iters 0": (lambda o: tls.LinearLR(o, start_factor=0.5, total_iters=0), 10),
    "ConstantLR": (lambda o: tls.ConstantLR(o, factor=0.5, total_iters=4), 20),
    "ConstantLR total_iters 0": (lambda o: tls.ConstantLR(o, factor=0.5, total_iters=0), 10),
    "PolynomialLR": (lambda o: tls.PolynomialLR(o, total_iters=30, power=2.0), 60),
    "CosineAnnealingWarmRestarts": (lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-3), 400),
    "CosineAnnealingWarmRestarts T_mult 1": (lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=7), 100),
    "OneCycleLR cos": (lambda o: tls.OneCycleLR(o, max_lr=[0.1, 0.2, 0.05], total_steps=50, cycle_momentum=False), 51),
    "OneCycleLR linear three-phase": (lambda o: tls.OneCycleLR(
        o, max_lr=0.3, total_steps=77, pct_start=0.25, anneal_strategy="linear", three_phase=True,
        cycle_momentum=False, div_factor=7.0, final_div_factor=3.0), 78),
    "OneCycleLR pct_start 0": (lambda o: tls.OneCycleLR(o, max_lr=0.1, total_steps=30, pct_start=0.0, cycle_momentum=False), 31),
    "OneCycleLR epochs": (lambda o: tls.OneCycleLR(o, max_lr=0.01, epochs=3, steps_per_epoch=7, cycle_momentum=False), 22),
    "CyclicLR triangular": (lambda o: tls.CyclicLR(o, 0.01, [0.1, 0.3, 0.05], step_size_up=7, step_size_down=3,
                                                   cycle_momentum=False), 200),
    "CyclicLR triangular2": (lambda o: tls.CyclicLR(o, [0.001, 0.002, 0.003], 0.1, step_size_up=4, mode="triangular2",
                                                    cycle_momentum=False), 200),
    "CyclicLR exp_range": (lambda o: tls.CyclicLR(o, 0.01, 0.1, step_size_up=5, step_size_down=11, mode="exp_range",
                                                  gamma=0.997, cycle_momentum=False), 300),
    "CyclicLR step 1, gamma ignored": (lambda o: tls.CyclicLR(o, 0.2, 0.01, step_size_up=1, gamma=0.5,
                                                              cycle_momentum=False), 20),
    "SequentialLR warm-up + cosine": (lambda o: tls.SequentialLR(
        o, [tls.LinearLR(o, start_factor=0.1, total_iters=10), tls.CosineAnnealingLR(o, T_max=30)], milestones=[10]), 120),
    "SequentialLR three": (lambda o: tls.SequentialLR(
        o, [tls.ConstantLR(o, factor=0.1, total_iters=3), tls.ExponentialLR(o, gamma=0.9), tls.StepLR(o, 4, 0.5)],
        milestones=[5, 15]), 40),
    "SequentialLR milestone 0": (lambda o: tls.SequentialLR(
        o, [tls.ConstantLR(o, factor=0.1, total_iters=0), tls.ConstantLR(o, factor=0.3, total_iters=0)], milestones=[0]), 8),
    "SequentialLR restarts + one-cycle": (lambda o: tls.SequentialLR(
        o, [tls.CosineAnnealingWarmRestarts(o, T_0=4), tls.OneCycleLR(o, max_lr=0.1, total_steps=20, cycle_momentum=False),
            tls.MultiStepLR(o, milestones=[3, 6])], milestones=[13, 33]), 50),
    "SequentialLR of Hugging Face schedules": (lambda o: tls.SequentialLR(
        o, [hf.get_constant_schedule_with_warmup(o, 5), hf.get_cosine_schedule_with_warmup(o, 3, 40)], milestones=[12]), 80),
    "ChainedScheduler (torch's example)": (lambda o: tls.ChainedScheduler(
        [tls.ConstantLR(o, factor=0.1, total_iters=2), tls.ExponentialLR(o, gamma=0.9)]), 60),
    "ChainedScheduler warm-up x cosine": (lambda o: tls.ChainedScheduler(
        [tls.LinearLR(o, start_factor=0.1, total_iters=10), tls.CosineAnnealingLR(o, T_max=25)]), 120),
    "ChainedScheduler cosine x multistep": (lambda o: tls.ChainedScheduler(
        [tls.CosineAnnealingLR(o, T_max=25), tls.MultiStepLR(o, milestones=[5, 12], gamma=0.5)]), 120),
    "ChainedScheduler three factors": (lambda o: tls.ChainedScheduler(
        [tls.LinearLR(o, start_factor=0.5, total_iters=6), tls.StepLR(o, 5, 0.7), tls.PolynomialLR(o, 40, 0.5)]), 60),
    "ChainedScheduler nested, ending in HF": (lambda o: tls.ChainedScheduler(
        [tls.ChainedScheduler([tls.StepLR(o, 3, 0.5)]), hf.get_cosine_schedule_with_warmup(o, 5, 40)]), 60),
    "MultiplicativeLR constant": (lambda o: tls.MultiplicativeLR(o, hf._get_constant_lambda), 10),
}

HF_SCHEDULES = {
    "constant": (hf.get_constant_schedule, 10),
    "constant with warm-up": (functools.partial(hf.get_constant_schedule_with_warmup, num_warmup_steps=7), 20),
    "linear": (functools.partial(hf.get_linear_schedule_with_warmup, num_warmup_steps=10, num_training_steps=60), 90),
    "linear, no warm-up": (functools.partial(hf.get_linear_schedule_with_warmup, num_warmup_steps=0, num_training_steps=30), 40),
    "linear, end before warm-up": (functools.partial(hf.get_linear_schedule_with_warmup, num_warmup_steps=10, num_training_steps=6), 20),
    "cosine": (functools.partial(hf.get_cosine_schedule_with_warmup, num_warmup_steps=10, num_training_steps=60), 200),
    "cosine 1.5 cycles": (functools.partial(hf.get_cosine_schedule_with_warmup, num_warmup_steps=3, num_training_steps=40, num_cycles=1.5), 100),
    "cosine with min lr": (functools.partial(hf.get_cosine_with_min_lr_schedule_with_warmup, num_warmup_steps=5,
                                             num_training_steps=50, min_lr_rate=0.1), 120),
    "cosine, warm-up with min lr": (functools.partial(hf.get_cosine_with_min_lr_schedule_with_warmup_lr_rate,
                                                      num_warmup_steps=6, num_training_steps=50, min_lr_rate=0.1), 120),
    "cosine, warm-up from a rate": (functools.partial(hf.get_cosine_with_min_lr_schedule_with_warmup_lr_rate,
                                                      num_warmup_steps=4, num_training_steps=30, min_lr=0.002,
                                                      warmup_lr_rate=0.25), 80),
    "cosine, one warm-up step": (functools.partial(hf.get_cosine_with_min_lr_schedule_with_warmup_lr_rate,
                                                   num_warmup_steps=1, num_training_steps=30, min_lr_rate=0.0), 50),
    "cosine with hard restarts": (functools.partial(hf.get_cosine_with_hard_restarts_schedule_with_warmup,
                                                    num_warmup_steps=4, num_training_steps=100, num_cycles=3), 130),
    "polynomial": (functools.partial(hf.get_polynomial_decay_schedule_with_warmup, num_warmup_steps=5,
                                     num_training_steps=50, lr_end=1e-4, power=2.0), 80),
    "inverse sqrt": (functools.partial(hf.get_inverse_sqrt_schedule, num_warmup_steps=10), 200),
    "inverse sqrt, timescale": (functools.partial(hf.get_inverse_sqrt_schedule, num_warmup_steps=0, timescale=3), 50),
    "wsd": (functools.partial(hf.get_wsd_schedule, num_warmup_steps=5, num_decay_steps=20, num_stable_steps=10,
                              min_lr_ratio=0.05), 50),
    "wsd 1-sqrt / cosine": (functools.partial(hf.get_wsd_schedule, num_warmup_steps=8, num_decay_steps=15,
                                              num_training_steps=40, warmup_type="1-sqrt", decay_type="linear"), 60),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_torch_scheduler(name):
    make, steps = SCHEDULERS[name]
    compare(make, steps)


@pytest.mark.parametrize("name", HF_SCHEDULES)
def test_hugging_face_schedule(name):
    make, steps = HF_SCHEDULES[name]
    compare(make, steps, bases=(3e-4, 1e-3))


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR periodic", "CosineAnnealingWarmRestarts",
                                  "OneCycleLR cos", "SequentialLR warm-up + cosine", "ChainedScheduler warm-up x cosine"])
def test_from_a_scheduler_already_stepped(name):
    make, steps = SCHEDULERS[name]
    shim = compare(make, steps // 2, before=steps // 2)
    assert shim.last_epoch == 2 * (steps // 2) - 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend(backend):
    for name in ("CosineAnnealingWarmRestarts", "OneCycleLR cos", "ChainedScheduler warm-up x cosine"):
        make, steps = SCHEDULERS[name]
        compare(make, steps, backend=backend)
    compare(*HF_SCHEDULES["wsd"], bases=(3e-4,), backend=backend)


def test_far_past_the_end():
    compare(lambda o: tls.CosineAnnealingLR(o, T_max=50, eta_min=1e-4), 2000, bases=(0.1,))
    compare(lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=3), 2000, bases=(0.1,))
    compare(HF_SCHEDULES["polynomial"][0], 1000, bases=(1e-3,))


def test_one_cycle_carries_each_groups_max_lr_and_the_step_at_total_steps():
    make, steps = SCHEDULERS["OneCycleLR cos"]
    shim = compare(make, steps)  # through step 50 == total_steps, where torch extrapolates
    rates = learning_rates_from_torch(make(optimizer(list(BASES))))
    peaks = [c.join.schedules[0].one_cycle.max_learning_rate for c in rates]
    assert peaks == [0.1, 0.2, 0.05]
    last = shim.lr_tensor.clone()
    for _ in range(5):  # torch raises past total_steps; the shim holds the last value of the schedule
        shim.step()
    assert shim.lr_tensor.tolist() == [np.float32(c.join.schedules[2].constant) for c in rates]
    assert shim.lr_tensor.tolist() != last.tolist()  # step total_steps was torch's extrapolation, not the hold


def test_lr_shim_itself():
    lr_dict = {"a": LearningRate(cosine_with_restarts=dict(learning_rate=0.1, cycle_steps=5)),
               "b": LearningRate(one_cycle=dict(max_learning_rate=0.2, total_steps=30))}
    host = LRShim(optimizer([0.0, 0.0]), lr_dict, device_schedule=False)
    _steps(host, 7)
    shim = from_torch(host, backend="native")
    assert shim.device_schedule and shim.last_epoch == 7 and list(shim.lr_dict) == ["a", "b"]
    for s in range(8, 48):
        shim.step()
        want = np.array([compute_lr(c, s) for c in lr_dict.values()], dtype=np.float32)
        assert shim.lr_tensor.numpy().tolist() == want.tolist(), s
    assert shim.last_epoch == 47


def test_group_names_carry_over():
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1, "name": "tower"},
                           {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.2, "name": "backbone"}], lr=0.1)
    shim = from_torch(tls.StepLR(opt, 2))
    assert list(shim.lr_dict) == ["tower", "backbone"]


def _untouched_after(make, error, match):
    opt = optimizer([0.1, 0.2])
    scheduler = make(opt)
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(error, match=match):
        from_torch(scheduler)
    assert [dict(g) for g in opt.param_groups] == before
    assert all(isinstance(g["lr"], float) for g in opt.param_groups)


@pytest.mark.parametrize("make, name", [
    (lambda o: tls.LambdaLR(o, lambda s: 0.9**s), "LambdaLR"),
    (lambda o: tls.MultiplicativeLR(o, lambda s: 0.9), "MultiplicativeLR"),
    (lambda o: tls.SequentialLR(o, [tls.StepLR(o, 2), tls.SequentialLR(o, [tls.StepLR(o, 3)], [])], [4]), "SequentialLR"),
    (lambda o: type("MyStepLR", (tls.StepLR,), {})(o, 2), "MyStepLR"),
])
def test_unsupported_schedulers_are_refused_naming_what_is_supported(make, name):
    _untouched_after(make, TypeError, rf"cannot convert {name}.*supported: StepLR")


def test_not_a_scheduler():
    with pytest.raises(TypeError, match="must be a torch.optim.lr_scheduler.LRScheduler, got dict"):
        from_torch({"constant": 0.1})


@pytest.mark.parametrize("make, match", [
    (lambda o: tls.OneCycleLR(o, max_lr=0.1, total_steps=10),
     r"OneCycleLR\(cycle_momentum=True\).*SGD reads it by value.*fusedsched.GraphSafeSGD.*cycle_momentum=False"),
    (lambda o: tls.CyclicLR(o, 0.01, 0.1),
     r"CyclicLR\(cycle_momentum=True\).*SGD reads it by value.*fusedsched.GraphSafeSGD.*cycle_momentum=False"),
    (lambda o: tls.SequentialLR(o, [tls.StepLR(o, 2), tls.CyclicLR(o, 0.01, 0.1)], [3]),
     r"CyclicLR\(cycle_momentum=True\).*not inside SequentialLR.*construct it with cycle_momentum=False"),
    (lambda o: tls.CyclicLR(o, 0.01, 0.1, scale_fn=lambda x: 0.9**x, cycle_momentum=False), "custom scale_fn"),
    (lambda o: tls.CyclicLR(o, 0.01, 0.1, step_size_up=2.5, cycle_momentum=False), "whole numbers of steps"),
    (lambda o: tls.CyclicLR(o, 0.01, 0.1, mode="exp_range", gamma=1.01, cycle_momentum=False), r"gamma \(1.01\) must be <= 1"),
    (lambda o: tls.ChainedScheduler([tls.ExponentialLR(o, 0.9), tls.CosineAnnealingLR(o, T_max=10)]), "ExponentialLR, which still changes"),
    (lambda o: tls.ChainedScheduler([tls.LinearLR(o, total_iters=3), tls.CosineAnnealingLR(o, T_max=10, eta_min=0.01)]), "eta_min"),
    (lambda o: tls.ChainedScheduler([hf.get_constant_schedule(o), tls.StepLR(o, 2)]), "before chainable"),
    (lambda o: hf.get_cosine_with_min_lr_schedule_with_warmup_lr_rate(o, 0, 50, min_lr_rate=0.1), "one step before step 0"),
    (lambda o: hf.get_cosine_with_min_lr_schedule_with_warmup_lr_rate(o, 1, 50, min_lr_rate=0.1, warmup_lr_rate=0.5),
     "after a first step at warmup_lr_rate"),
])
def test_supported_schedulers_with_unrepresentable_settings_are_refused(make, match):
    _untouched_after(make, ValueError, match)


def test_supported_list_names_every_scheduler_of_the_spec():
    for name in ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "ConstantLR",
                 "PolynomialLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "SequentialLR", "ChainedScheduler",
                 "LRShim", "LambdaLR", "MultiplicativeLR", "get_wsd_schedule", "get_inverse_sqrt_schedule"):
        assert name in SUPPORTED


def test_conversions_are_kinds_not_kernels():
    opt = optimizer(0.1)
    configs = learning_rates_from_torch(tls.SequentialLR(
        opt, [tls.LinearLR(opt, start_factor=0.1, total_iters=10), tls.CosineAnnealingLR(opt, T_max=30)], milestones=[10]))
    assert configs[0].kind == "join"
    assert [c.kind for c in configs[0].join.schedules] == ["polynomial_decay", "cosine_annealing"]
    assert math.isclose(configs[0].join.schedules[0].polynomial_decay.learning_rate, 0.01)


def test_tensor_learning_rates_and_a_device_mode_shim():
    params = [torch.nn.Parameter(torch.zeros(3)) for _ in range(2)]
    opt = torch.optim.Adam([{"params": [p], "lr": torch.tensor(lr)} for p, lr in zip(params, (0.01, 0.02))], lr=0.01)
    # the stock twin on the same (float32-rounded) base rates, as floats
    stock_opt = torch.optim.Adam([{"params": [torch.nn.Parameter(torch.zeros(3))], "lr": float(g["lr"])}
                                  for g in opt.param_groups], lr=0.01)
    shim = from_torch(tls.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2), backend="reference")
    stock = tls.CosineAnnealingWarmRestarts(stock_opt, T_0=4, T_mult=2)
    again = from_torch(shim, backend="native")  # an LRShim converts to itself, rebinding the groups
    assert all(g["lr"].data_ptr() == again.lr_tensor[i].data_ptr() for i, g in enumerate(opt.param_groups))
    for _ in range(30):
        _steps(stock, 1)
        again.step()
        assert again.lr_tensor.tolist() == np.float32(stock.get_last_lr()).tolist()


RECURSIVE = {
    "StepLR": lambda o, last=-1: tls.StepLR(o, step_size=10, gamma=0.5, last_epoch=last),
    "MultiStepLR": lambda o, last=-1: tls.MultiStepLR(o, milestones=[5, 20, 31], gamma=0.3, last_epoch=last),
    "ExponentialLR": lambda o, last=-1: tls.ExponentialLR(o, gamma=0.9, last_epoch=last),
}


def _with_initial_lr(lrs):
    """An optimizer whose groups hold ``initial_lr`` (as a resumed one does) but still their base ``lr``."""
    opt = optimizer(list(lrs))
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    return opt


@pytest.mark.parametrize("name", RECURSIVE)
def test_a_group_rate_torch_would_go_on_from_is_refused(name):
    # constructed at last_epoch=12 over groups still at their base rate: torch goes on from that rate
    # (StepLR: 0.1 until step 19, then 0.05), the closed form is 0.05 at step 13
    opt = _with_initial_lr([0.1, 0.2])
    scheduler = RECURSIVE[name](opt, 12)
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=rf"param group 0 has lr 0.1, but {name}'s schedule gives .* at its step 13 "
                                         r"\(from initial_lr 0.1\).*last_epoch=-1.*load the optimizer's state"):
        from_torch(scheduler)
    assert [dict(g) for g in opt.param_groups] == before
    assert all(isinstance(g["lr"], float) for g in opt.param_groups)


@pytest.mark.parametrize("name", RECURSIVE)
@pytest.mark.parametrize("how", ["load both states", "optimizer state, then last_epoch"])
def test_a_resumed_scheduler_converts_and_goes_on_as_torch(name, how):
    make = RECURSIVE[name]
    stock = make(optimizer(list(BASES)))
    _steps(stock, 13)
    opt = optimizer(list(BASES))
    opt.load_state_dict(stock.optimizer.state_dict())
    if how == "load both states":
        resumed = make(opt)
        resumed.load_state_dict(stock.state_dict())
    else:  # constructing steps once, from the loaded rates
        resumed = make(opt, 12)
    assert resumed.last_epoch == 13
    shim = from_torch(resumed, backend="native")
    for i in range(31):
        if i:
            _steps(stock, 1)
            shim.step()
        got, want = shim.lr_tensor.numpy(), np.array(stock.get_last_lr(), dtype=np.float64)
        assert (ulps32(got, want) <= 1).all(), (13 + i, got.tolist(), want.tolist())


def test_closed_form_schedulers_ignore_a_changed_group_rate():
    # LambdaLR, OneCycleLR and CosineAnnealingWarmRestarts compute every rate from the base rate:
    # a group rate set by hand is overwritten at the next step by torch as by the shim
    for make in (lambda o: hf.get_cosine_schedule_with_warmup(o, 5, 40),
                 lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=7),
                 lambda o: tls.OneCycleLR(o, max_lr=0.3, total_steps=40, cycle_momentum=False)):
        stock, twin = make(optimizer(list(BASES))), make(optimizer(list(BASES)))
        _steps(stock, 9)
        _steps(twin, 9)
        for a, b in zip(stock.optimizer.param_groups, twin.optimizer.param_groups):
            a["lr"] = b["lr"] = 0.5
        shim = from_torch(twin, backend="native")
        for _ in range(20):
            _steps(stock, 1)
            shim.step()
            assert (ulps32(shim.lr_tensor.numpy(), np.array(stock.get_last_lr())) <= 1).all()


@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_linear_negative_extrapolation_is_not_kept_and_warned(three_phase):
    make = lambda o: tls.OneCycleLR(o, max_lr=[0.1, 0.3], total_steps=100, anneal_strategy="linear",  # noqa: E731
                                    cycle_momentum=False, three_phase=three_phase)
    stock = make(optimizer([0.1, 0.3]))
    with pytest.warns(ConversionWarning, match=r"extrapolates its last phase to -\d.* at step total_steps=100; "
                                               r"the shim gives the schedule's last value 4(\.0+\d*)?e-07"):
        shim = from_torch(make(optimizer([0.1, 0.3])), backend="native")
    for step in range(1, 101):
        _steps(stock, 1)
        shim.step()
        want = np.array(stock.get_last_lr(), dtype=np.float64)
        if step < 100:
            assert (ulps32(shim.lr_tensor.numpy(), want) <= 1).all(), step
    assert (want < 0).all()  # torch's at total_steps
    assert (shim.lr_tensor.numpy() >= 0).all()
    assert shim.lr_tensor.tolist() == np.float32([0.1 / 25 / 1e4, 0.3 / 25 / 1e4]).tolist()


def test_one_cycle_cos_keeps_torch_s_rate_at_total_steps_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        compare(lambda o: tls.OneCycleLR(o, max_lr=0.1, total_steps=100, cycle_momentum=False), 101)


@pytest.mark.parametrize("make, refused", [
    (lambda o: tls.SequentialLR(o, [tls.LinearLR(o, 0.5, total_iters=3), tls.StepLR(o, 4)], milestones=[5]), True),
    (lambda o: tls.SequentialLR(o, [tls.StepLR(o, 4), hf.get_constant_schedule(o)], milestones=[5]), False),
    (lambda o: tls.ChainedScheduler([tls.ConstantLR(o, 0.5, total_iters=3), tls.ExponentialLR(o, 0.9)]), True),
    (lambda o: tls.ChainedScheduler([tls.ExponentialLR(o, 0.9), hf.get_constant_schedule(o)]), False),
    (lambda o: tls.CosineAnnealingLR(o, T_max=20), True),
])
def test_a_changed_group_rate_is_refused_where_the_running_scheduler_goes_on_from_it(make, refused):
    scheduler = make(optimizer([0.1]))
    _steps(scheduler, 8)
    scheduler.optimizer.param_groups[0]["lr"] = 0.5
    if refused:
        with pytest.raises(ValueError, match=r"param group 0 has lr 0.5, but .* at its step 8"):
            from_torch(scheduler)
        assert scheduler.optimizer.param_groups[0]["lr"] == 0.5
    else:
        assert from_torch(scheduler).last_epoch == 8


def test_the_graph_safe_class_named_for_a_torch_optimizer_is_the_optimizers_wing_s():
    """One map, torch optimizer class -> its graph-safe class (``fusedsched.optimizers.GRAPH_SAFE``):
    the tml builders swap classes by it and from_torch names the class to use from it."""
    from fusedsched.optimizers import GRAPH_SAFE
    from fusedsched.tml import builders

    assert builders.GRAPH_SAFE is GRAPH_SAFE
    assert set(GRAPH_SAFE) == {torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD}
    for torch_cls, graph_safe in GRAPH_SAFE.items():
        opt = torch_cls([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        with pytest.raises(ValueError, match=rf"{torch_cls.__name__} reads it by value.*fusedsched\.{graph_safe.__name__} "):
            from_torch(tls.OneCycleLR(opt, max_lr=0.1, total_steps=10))


def _plateau_with_a_group_added_later(min_lr):
    opt = optimizer([0.1, 0.2])
    scheduler = tls.ReduceLROnPlateau(opt, min_lr=min_lr, patience=0, factor=0.5)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.4})
    return opt, scheduler


def test_a_plateau_whose_min_lr_list_misses_a_group_added_later_is_refused_naming_min_lr():
    opt, scheduler = _plateau_with_a_group_added_later([1e-3, 1e-4])
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau\(min_lr=\[0.001, 0.0001\]\) has 2 values for the "
                                         r"optimizer's 3 param groups"):
        from_torch(scheduler)
    assert [dict(g) for g in opt.param_groups] == before


def test_a_plateau_with_one_min_lr_covers_a_group_added_later_as_torch_does():
    """torch's ReduceLROnPlateau extends a single ``min_lr`` to every group at its next reduction."""
    (stock_opt, stock), (opt, twin) = (_plateau_with_a_group_added_later(0.03) for _ in range(2))
    shim = from_torch(twin, backend="native")
    metrics = [1.0, 1.0, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    got, want = [], []
    for m in metrics:
        stock.step(m)
        shim.step(m)
        want.append([float(g["lr"]) for g in stock_opt.param_groups])
        got.append([float(v) for v in shim.lr_tensor])
    assert got == [[float(np.float32(v)) for v in row] for row in want]
    assert want[-1] == [0.03, 0.03, 0.03]  # every group down to the one min_lr, the added one included


@pytest.mark.parametrize("strategy, three", [("cos", False), ("linear", False), ("cos", True)])
def test_one_cycle_converts_every_momentum_pair_to_torch_s_sequence(strategy, three):
    """Every two-decimal (base_momentum, max_momentum) pair in [0.5, 0.99], and (0.701, 0.933), one
    group each: the momentum (and the rate) float32 of torch's at every step to total_steps, 0 ulp
    (but the negative rate ``"linear"`` extrapolates to at total_steps, warned and not kept)."""
    pairs = [(a / 100, b / 100) for a in range(50, 100) for b in range(a + 1, 100)] + [(0.701, 0.933)]
    total = 40

    def make():
        opt = GraphSafeSGD([{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in pairs], lr=0.1, momentum=0.9)
        return tls.OneCycleLR(opt, max_lr=0.1, total_steps=total, anneal_strategy=strategy, three_phase=three,
                              base_momentum=[b for b, _ in pairs], max_momentum=[m for _, m in pairs])

    stock, twin = make(), make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shim = from_torch(twin, backend="native")
    assert {type(w.message) for w in caught} == ({ConversionWarning} if strategy == "linear" else set())
    for step in range(total + 1):
        if step:
            _steps(stock, 1)
            twin.optimizer.step()
            shim.step()
        for key in ("momentum", "lr") if step < total or strategy == "cos" else ("momentum",):
            want = np.array([g[key] for g in stock.optimizer.param_groups], dtype=np.float32)
            got = torch.stack([g[key] for g in twin.optimizer.param_groups]).numpy()
            off = np.flatnonzero(got != want)
            assert not off.size, (f"step {step} {key}: {off.size} groups differ, first (base_momentum, max_momentum) "
                                  f"= {pairs[off[0]]}: {got[off[0]]!r} != torch's {want[off[0]]!r}")

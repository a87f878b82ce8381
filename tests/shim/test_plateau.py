"""The ``plateau`` kind: torch's ``ReduceLROnPlateau`` as a schedule, its state on the device.

The oracle is torch's own ``ReduceLROnPlateau`` fed the same metric sequences (random walks rounded
so that values repeat and tie at the threshold, NaNs), in host mode (float64, exact) and device
mode on every CPU backend (float32 of torch's rate). Compositions (a warm-up ``join``, a ``product``
factor) are checked against :func:`fusedsched.schedule.plateau_state.plateau_update` driven by hand. Then
``from_torch`` with the state carried over, checkpoints by name, the skip signal and bad input.
The CUDA test replays a captured step that feeds the loss tensor to the plateau.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from _compare import f32
from _cuda import NoSyncs, capture
from torch.optim.lr_scheduler import ReduceLROnPlateau

from fusedsched import LearningRate, LRShim, ScheduleChangedWarning, compute_lr, from_torch
from fusedsched.ops import unavailable_reason
from fusedsched.schedule.kinds import compile_plateau
from fusedsched.schedule.plateau_state import plateau_update

CPU_BACKENDS = [b for b in ("native", "reference", "triton") if unavailable_reason(b, "cpu") is None]
SETTINGS = [
    dict(mode="min", threshold_mode="rel", patience=3, cooldown=2, factor=0.5, threshold=1e-3),
    dict(mode="max", threshold_mode="abs", patience=0, cooldown=0, factor=0.1, threshold=0.01),
    dict(mode="min", threshold_mode="abs", patience=1, cooldown=1, factor=0.7, threshold=0.0, eps=1e-3),
    dict(mode="max", threshold_mode="rel", patience=2, cooldown=0, factor=0.3, threshold=1e-4),
]


# torch's arithmetic against a reference (a plateau inside a schedule: evaluate_table): .ci/run repeats it per
# CPU capability
pytestmark = [pytest.mark.usefixtures("quiet_user_warnings"), pytest.mark.precision]


def metric_walk(seed: int, n: int, nan_every: int = 0) -> list[float]:
    """A random walk rounded to 2 decimals: long plateaus, exact repeats, ties at thresholds."""
    rng = np.random.default_rng(seed)
    values = np.round(5 + np.cumsum(rng.normal(scale=0.02, size=n)), 2)
    out = [float(v) for v in values]
    if nan_every:
        out = [math.nan if i % nan_every == nan_every - 1 else v for i, v in enumerate(out)]
    return out


def _optimizer(lrs, device_schedule=False):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": torch.tensor(lr) if device_schedule else lr}
                            for p, lr in zip(params, lrs)], lr=0.0)


def _torch_pair(settings, lrs=(0.1, 0.05), min_lrs=(1e-3, 1e-4)):
    opt = _optimizer(lrs)
    ref = ReduceLROnPlateau(opt, min_lr=list(min_lrs), **settings)
    return opt, ref


def _plateau_config(lr, min_lr, settings):
    return {"plateau": {"learning_rate": lr, "min_learning_rate": min_lr, **settings}}


def _shim(settings, lrs=(0.1, 0.05), min_lrs=(1e-3, 1e-4), device_schedule=False, backend=None):
    opt = _optimizer(lrs, device_schedule)
    configs = {f"g{i}": _plateau_config(lr, m, settings) for i, (lr, m) in enumerate(zip(lrs, min_lrs))}
    return LRShim(opt, configs, device_schedule=device_schedule, backend=backend)


# --- the model -------------------------------------------------------------------------------------


def test_formula_is_the_rate_no_metric_has_lowered():
    cfg = LearningRate(plateau={"learning_rate": 0.1, "patience": 2})
    assert [compute_lr(cfg, s) for s in (0, 1, 10**6)] == [0.1, 0.1, 0.1]


@pytest.mark.parametrize("field, value", [("factor", 1.0), ("factor", -0.1), ("factor", math.nan),
                                          ("threshold", -1e-4), ("eps", math.inf), ("patience", -1),
                                          ("cooldown", 1.5), ("mode", "lowest"), ("threshold_mode", "pct"),
                                          ("min_learning_rate", -1.0)])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        LearningRate(plateau={"learning_rate": 0.1, field: value})


def test_one_plateau_per_schedule():
    two = {"product": {"schedules": [{"plateau": {"learning_rate": 1.0}}, {"plateau": {"learning_rate": 1.0}}]}}
    with pytest.raises(ValueError, match="at most one plateau"):
        LearningRate(**two)


def test_where_a_joined_plateau_is_active():
    cfg = LearningRate(join={"schedules": [{"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 5}},
                                           {"plateau": {"learning_rate": 0.1}}, {"constant": 0.01}],
                             "boundaries": [5, 20]})
    row = compile_plateau(cfg)
    assert (row.start, row.stop) == (5, 20)
    assert [row.active(s) for s in (4, 5, 19, 20)] == [False, True, True, False]


# --- torch's sequence, host and device ----------------------------------------------------------


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("mode", ["host", *CPU_BACKENDS])
def test_same_rates_as_reduce_lr_on_plateau(settings, mode):
    # the Triton interpreter (~50 ms a step): 60 steps, past every settings' reductions, with a NaN every 29
    n, nan_every = {"host": (3000, 97), "native": (3000, 97), "reference": (400, 97)}.get(mode, (60, 29))
    opt, ref = _torch_pair(settings)
    shim = _shim(settings, device_schedule=mode != "host", backend=None if mode == "host" else mode)
    reductions = 0
    for m in metric_walk(seed=len(str(settings)), n=n, nan_every=nan_every):
        before = [g["lr"] for g in opt.param_groups]
        ref.step(m)
        shim.step(m if mode == "host" else torch.tensor(m, dtype=torch.float64))
        want = [g["lr"] for g in opt.param_groups]
        reductions += want != before
        got = shim.get_last_lr()
        assert got == (want if mode == "host" else [f32(x) for x in want])
    assert reductions >= 2  # the sequence exercised the reduction
    assert shim.last_epoch == ref.last_epoch
    state = shim.plateau_states()[("g0", "lr")]
    assert state[1:] == [ref.best, ref.num_bad_epochs, ref.cooldown_counter] or (
        math.isnan(ref.best) and math.isnan(state[1]))


@pytest.mark.parametrize("mode", ["host", *CPU_BACKENDS])
def test_metric_as_float32_tensor_python_float_and_keyword(mode):
    settings = SETTINGS[0]
    opt, ref = _torch_pair(settings)
    shim = _shim(settings, device_schedule=mode != "host", backend=None if mode == "host" else mode)
    for i, m in enumerate(metric_walk(seed=3, n=60 if mode == "triton" else 200)):
        m32 = torch.tensor(m, dtype=torch.float32)
        ref.step(m32)  # torch reads float(m32): the float32 value
        [lambda m=m32: shim.step(m), lambda m=m32: shim.step(metrics=m), lambda m=m32: shim.step(float(m))][i % 3]()
        want = [g["lr"] for g in opt.param_groups]
        assert shim.get_last_lr() == (want if mode == "host" else [f32(x) for x in want])


@pytest.mark.parametrize("mode", ["host", *CPU_BACKENDS])
def test_steps_without_a_metric_leave_the_plateau_alone(mode):
    settings = dict(patience=0, factor=0.5)
    shim = _shim(settings, lrs=(0.1,), min_lrs=(0.0,), device_schedule=mode != "host",
                 backend=None if mode == "host" else mode)
    shim.step(1.0)
    for _ in range(5):
        shim.step(amount=1)  # no metric: nothing to compare
    assert shim.plateau_states()[("g0", "lr")] == [0.1, 1.0, 0.0, 0.0]
    shim.step(2.0)  # worse: one bad epoch > patience 0
    assert shim.get_last_lr() == [0.05 if mode == "host" else f32(0.05)]
    assert shim.last_epoch == 7


def _walk_reference(cfg_of_value, row, metrics, steps_with_metric):
    """Rates of a schedule holding a plateau, by hand: the plateau's state moves on the steps given a
    metric where it is active; the rate is the schedule with the plateau at its current value."""
    column = row.settings.fresh()
    out = []
    metric_iter = iter(metrics)
    for s in range(1, len(steps_with_metric) + 1):
        if steps_with_metric[s - 1]:
            m = next(metric_iter)
            if row.active(s):
                plateau_update(column, m)
        out.append(compute_lr(cfg_of_value(column[0]), s))
    return out


def _join(value):
    return LearningRate(join={"schedules": [{"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10}},
                                            {"plateau": {"learning_rate": value, "patience": 2, "factor": 0.5,
                                                         "min_learning_rate": 1e-3}}],
                              "boundaries": [10]})


def _product(value):
    return LearningRate(product={"schedules": [
        {"cosine_annealing": {"learning_rate": 0.1, "final_learning_rate": 0.01, "num_steps": 150}},
        {"plateau": {"learning_rate": value, "patience": 1, "factor": 0.5, "min_learning_rate": 0.05,
                     "mode": "max"}}]})


@pytest.mark.parametrize("make, initial", [(_join, 0.1), (_product, 1.0)])
@pytest.mark.parametrize("mode", ["host", *CPU_BACKENDS])
def test_compositions_follow_the_hand_reference(make, initial, mode):
    cfg = make(initial)
    row = compile_plateau(cfg)
    n = 60 if mode == "triton" else 200
    given = [s % 4 != 0 for s in range(1, n + 1)]  # every fourth step gives no metric
    metrics = metric_walk(seed=11, n=sum(given), nan_every=23)
    want = _walk_reference(lambda v: make(v), row, metrics, given)
    ds = mode != "host"
    shim = LRShim(_optimizer([0.0], ds), {"g": cfg}, device_schedule=ds, backend=mode if ds else None)
    it = iter(metrics)
    for s in range(1, n + 1):
        shim.step(next(it)) if given[s - 1] else shim.step(amount=1)
        got = shim.get_last_lr()[0]
        assert got == (want[s - 1] if mode == "host" else f32(want[s - 1])), s
    assert min(want) < want[0] or make is _product  # a reduction happened


# --- from_torch, checkpoints, the clock, bad input ------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_from_torch_carries_the_state_over(backend):
    settings = SETTINGS[0]
    metrics = metric_walk(seed=5, n=600)
    opt, ref = _torch_pair(settings)
    opt2, ref2 = _torch_pair(settings)
    for m in metrics[:250]:
        ref.step(m)
        ref2.step(m)
    assert ref2.num_bad_epochs or ref2.cooldown_counter or opt2.param_groups[0]["lr"] < 0.1
    shim = from_torch(ref2, backend=backend)
    assert shim.last_epoch == ref.last_epoch
    for m in metrics[250:300 if backend == "triton" else None]:
        ref.step(m)
        shim.step(m)
        assert shim.get_last_lr() == [f32(g["lr"]) for g in opt.param_groups]


def test_from_torch_refuses_a_plateau_subclass():
    class Mine(ReduceLROnPlateau):
        pass

    opt = _optimizer([0.1])
    with pytest.raises(TypeError, match="Mine"):
        from_torch(Mine(opt))
    assert isinstance(opt.param_groups[0]["lr"], float)  # untouched


@pytest.mark.parametrize("mode", ["host", "native"])
def test_checkpoint_resumes_exactly_by_name(mode):
    if mode == "native" and "native" not in CPU_BACKENDS:
        pytest.skip("the native op is not built")
    ds = mode != "host"
    settings = SETTINGS[2]
    metrics = metric_walk(seed=8, n=400)
    a = _shim(settings, device_schedule=ds)
    for m in metrics[:150]:
        a.step(m)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert set(state["plateaus"]) == {"g0", "g1"}
    b = _shim(settings, device_schedule=ds)
    b.load_state_dict(state)
    assert b.plateau_states() == a.plateau_states()
    assert b.get_last_lr() == a.get_last_lr()
    for m in metrics[150:]:
        a.step(m)
        b.step(m)
        assert b.get_last_lr() == a.get_last_lr()


def test_a_checkpoint_without_plateau_state_is_reported():
    a = _shim(SETTINGS[0])
    state = a.state_dict()
    del state["plateaus"]
    b = _shim(SETTINGS[0])
    with pytest.warns(ScheduleChangedWarning, match="no plateau state"):
        b.load_state_dict(state)
    with pytest.raises(ValueError, match="no plateau state"):
        b.load_state_dict(state, strict=True)


@pytest.mark.parametrize("entry, match", [({"value": 0.1}, "exactly the keys"),
                                          ({"value": -1.0, "best": 1.0, "bad_epochs": 0, "cooldown_left": 0}, "value"),
                                          ({"value": 0.1, "best": 1.0, "bad_epochs": 1.5, "cooldown_left": 0}, "bad_epochs"),
                                          ({"value": "x", "best": 1.0, "bad_epochs": 0, "cooldown_left": 0}, "numbers")])
def test_bad_plateau_state_is_refused_before_anything_changes(entry, match):
    a = _shim(SETTINGS[0])
    for m in (1.0, 2.0, 3.0):
        a.step(m)
    state = a.state_dict()
    state["plateaus"]["g0"]["lr"] = entry
    b = _shim(SETTINGS[0])
    before = (b.last_epoch, b.plateau_states())
    with pytest.raises((ValueError, TypeError), match=match):
        b.load_state_dict(state)
    assert (b.last_epoch, b.plateau_states()) == before


@pytest.mark.parametrize("mode", ["host", *CPU_BACKENDS])
def test_a_skipped_step_leaves_the_plateau_alone(mode):
    found_inf = torch.zeros(())
    ds = mode != "host"
    shim = LRShim(_optimizer([0.1], ds), {"g": _plateau_config(0.1, 0.0, dict(patience=0, factor=0.5))},
                  device_schedule=ds, backend=mode if ds else None, skip_steps_on=found_inf)
    shim.step(1.0)
    found_inf.fill_(1.0)
    shim.step(5.0)  # skipped: the worse metric is not seen
    found_inf.fill_(0.0)
    assert shim.plateau_states()[("g", "lr")] == [0.1, 1.0, 0.0, 0.0]
    shim.step(5.0)
    assert shim.plateau_states()[("g", "lr")][0] == 0.05


@pytest.mark.parametrize("mode", ["host", "reference"])
def test_bad_metrics_are_refused_before_anything_changes(mode):
    ds = mode != "host"
    shim = _shim(SETTINGS[0], device_schedule=ds, backend=mode if ds else None)
    for bad in (torch.zeros(2), torch.tensor(True), "1.0", [1.0], True):
        with pytest.raises(ValueError, match="metrics"):
            shim.step(metrics=bad)
    assert shim.last_epoch == 0


def test_metrics_without_a_plateau_are_refused():
    opt = _optimizer([0.1])
    shim = LRShim(opt, {"g": {"constant": 0.1}})
    with pytest.raises(ValueError, match="no schedule of this LRShim holds a plateau"):
        shim.step(metrics=1.0)
    shim.step(3)  # without a plateau, the positional argument is still torch's epoch
    assert shim.last_epoch == 3


@pytest.mark.parametrize("mode", ["host", "reference"])
def test_a_plateau_shared_by_groups_is_one_state(mode):
    ds = mode != "host"
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    lr = torch.tensor(0.1) if ds else 0.1
    opt = torch.optim.SGD([{"params": [p], "name": f"g{i}", "weight_decay": 0.01} for i, p in
                                            enumerate(params)], lr=lr) if not ds else None
    if ds:
        from fusedsched import GraphSafeSGD
        opt = GraphSafeSGD([{"params": [p], "name": f"g{i}", "weight_decay": 0.01} for i, p in enumerate(params)],
                           lr=torch.tensor(0.1))
    wd = _plateau_config(0.01, 0.0, dict(patience=0, factor=0.5))
    shim = LRShim(opt, {f"g{i}": {"constant": 0.1} for i in range(3)}, device_schedule=ds,
                  backend="reference" if ds else None,
                  hyperparameters={f"g{i}": {"weight_decay": wd} for i in range(3)})
    for m in (1.0, 2.0, 3.0):
        shim.step(m)
    assert [g["weight_decay"] for g in shim.optimizer.param_groups] == [pytest.approx(0.0025, rel=1e-6)] * 3
    assert list(shim.plateau_states()) == [("g0", "weight_decay")]  # one row, named by its first group
    state = shim.state_dict()
    other = LRShim(opt, {f"g{i}": {"constant": 0.1} for i in range(3)}, device_schedule=ds,
                   backend="reference" if ds else None,
                   hyperparameters={f"g{i}": {"weight_decay": wd} for i in range(3)})
    other.load_state_dict(state)
    assert other.plateau_states() == shim.plateau_states()
    other.load_plateau_states({("g2", "weight_decay"): [0.01, 1.0, 0.0, 0.0]})  # any sharing group names it
    assert other.get_last_hyperparameters()["g1"]["weight_decay"] == pytest.approx(0.01, rel=1e-6)


def test_a_plateau_as_a_hyperparameter_with_a_multiplier():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1, weight_decay=0.01)
    shim = LRShim(opt, {"g": {"constant": 0.1}},
                  hyperparameters={"g": {"weight_decay": _plateau_config(1.0, 0.0, dict(patience=0, factor=0.5))}},
                  multipliers={"g": {"weight_decay": 0.02}})
    shim.step(1.0)
    shim.step(2.0)
    assert shim.get_last_hyperparameters() == {"g": {"weight_decay": 0.5 * 0.02}}
    assert shim.plateau_states() == {("g", "weight_decay"): [0.5, 1.0, 0.0, 0.0]}


@pytest.mark.parametrize("backend", [b for b in CPU_BACKENDS if b != "triton"])
def test_compiled_step_reads_the_metric_tensor_without_recompiling(backend):
    from torch._dynamo.testing import CompileCounterWithBackend

    settings = SETTINGS[0]
    opt, ref = _torch_pair(settings)
    shim = _shim(settings, device_schedule=True, backend=backend)
    loss = torch.zeros(())
    counter = CompileCounterWithBackend("inductor")
    torch._dynamo.reset()
    step = torch.compile(lambda: shim.step(loss), backend=counter, fullgraph=True)
    for m in metric_walk(seed=21, n=300):
        loss.fill_(m)
        step()
        ref.step(f32(m))
    assert counter.frame_count == 1
    assert shim.get_last_lr() == [f32(g["lr"]) for g in opt.param_groups]
    assert shim.last_epoch == ref.last_epoch


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["native", "triton", "reference"])
def test_cuda_graph_feeds_the_loss_tensor_to_the_plateau(backend):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    settings = SETTINGS[0]
    opt, ref = _torch_pair(settings)
    params = [torch.nn.Parameter(torch.zeros(2, device="cuda")) for _ in range(2)]
    dev_opt = torch.optim.SGD([{"params": [p], "lr": torch.tensor(lr, device="cuda")} for p, lr in zip(params, (0.1, 0.05))],
                              lr=0.0)
    shim = LRShim(dev_opt, {f"g{i}": _plateau_config(lr, m, settings) for i, (lr, m) in
                            enumerate(zip((0.1, 0.05), (1e-3, 1e-4)))}, backend=backend)
    loss = torch.zeros((), device="cuda")
    graph = capture(lambda: shim.step(loss))
    metrics = metric_walk(seed=13, n=1000, nan_every=101)
    got = []
    with NoSyncs():
        for m in metrics:
            loss.fill_(m)
            graph.replay()
            got.append(shim.lr_tensor.clone())
    for m, rates in zip(metrics, got):
        ref.step(f32(m))  # the loss tensor holds float32
        assert rates.tolist() == [f32(g["lr"]) for g in opt.param_groups]


@pytest.mark.parametrize("mode", ["host", *[b for b in CPU_BACKENDS if b != "triton"]])
def test_a_metric_with_amount_zero_feeds_the_plateau_in_place(mode):
    """Evaluations counted apart from training steps (Hugging Face's Trainer): the counter stays."""
    ds = mode != "host"
    shim = _shim(dict(patience=0, factor=0.5), lrs=(0.1,), min_lrs=(0.0,), device_schedule=ds,
                 backend=mode if ds else None)
    for _ in range(3):
        shim.step()
    shim.step(metrics=1.0, amount=0)
    shim.step(metrics=2.0, amount=0)
    assert shim.last_epoch == 3
    assert shim.plateau_states()[("g0", "lr")] == [0.05, 1.0, 0.0, 0.0]
    assert shim.get_last_lr() == [0.05 if mode == "host" else f32(0.05)]

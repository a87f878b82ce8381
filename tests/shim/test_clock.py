"""The schedule's clock: ``step(amount=...)`` and ``skip_steps_on`` (a GradScaler or a found_inf tensor).

A skipped optimizer step leaves every schedule where it was, as a loop that calls
``scheduler.step()`` only after applied optimizer steps would (the host-skip reference); an amount
advances the counter by that many units (tokens), so the rates are ``compute_lr`` of the cumulative
count. The op's own contract for the new inputs is checked on every backend. The CUDA tests replay
captured graphs under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import copy
import pickle
import random

import numpy as np
import pytest
import torch
from _compare import RecordOps, f32
from _cuda import NoSyncs, capture
from torch._dynamo.testing import CompileCounterWithBackend

from fusedsched import LearningRate, LRShim, compute_lr
from fusedsched.ops import advance_, check_advance_args, unavailable_reason
from fusedsched.optimizers.adagrad import FusedAdagrad
from fusedsched.schedule.fields import MAX_STEP
from fusedsched.schedule.kinds import build_table

CPU_BACKENDS = [b for b in ("native", "reference", "triton") if unavailable_reason(b, "cpu") is None]
WARMUP_DECAY = LearningRate(
    linear_ramp_to_cosine={"learning_rate": 0.1, "final_learning_rate": 0.001, "num_ramp_steps": 8,
                           "final_num_steps": 60}
)
# token-counted: a warm-up over the first 4,096 tokens, then a cosine decay to 100,000 tokens
TOKENS = LearningRate(
    linear_ramp_to_cosine={"learning_rate": 3e-4, "final_learning_rate": 3e-5, "num_ramp_steps": 4096,
                           "final_num_steps": 100_000}
)
CONFIGS = [WARMUP_DECAY, LearningRate(piecewise_constant={"learning_rate_boundaries": [5, 12],
                                                          "learning_rate_values": [0.3, 0.2, 0.1]})]


pytestmark = pytest.mark.usefixtures("quiet_user_warnings")


def _shim(device_schedule=True, backend=None, configs=CONFIGS, device="cpu", **kwargs):
    params = [torch.nn.Parameter(torch.zeros(2, device=device)) for _ in configs]
    lr = torch.tensor(0.0, device=device) if device_schedule else 0.0
    optimizer = torch.optim.SGD([{"params": [p]} for p in params], lr=lr)
    return LRShim(optimizer, {f"g{i}": c for i, c in enumerate(configs)}, device_schedule=device_schedule,
                  backend=backend if device_schedule else None, **kwargs)


def _rates(shim) -> list[float]:
    return [float(g["lr"]) for g in shim.optimizer.param_groups]


# --- the op ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_op_adds_increment_times_amount_unless_skipped(backend):
    table = build_table(CONFIGS, "cpu").table
    rng = random.Random(0)
    step, lrs = torch.tensor(3), torch.zeros(len(CONFIGS))
    expected = 3
    for i in range(12):
        increment = rng.choice([0, 1])
        amount = torch.tensor([rng.randrange(0, 9)]) if i % 3 else torch.tensor(rng.randrange(0, 9))
        dtype = torch.bool if i % 2 else torch.float32
        skipped = rng.random() < 0.4
        skip = torch.tensor([skipped], dtype=dtype) if i % 4 else torch.tensor(skipped, dtype=dtype)
        advance_(step, table, lrs, increment, backend, amount=amount, skip=skip)
        expected += 0 if skipped else increment * int(amount.reshape(-1)[0])
        assert int(step) == expected, (i, increment, amount, skip)
        assert lrs.tolist() == [f32(compute_lr(c, expected)) for c in CONFIGS]
    advance_(step, table, lrs, 1, backend, amount=torch.tensor(5))  # amount alone
    advance_(step, table, lrs, 1, backend, skip=torch.tensor(2.5))  # skip alone: any nonzero
    assert int(step) == expected + 5


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_op_skips_where_the_scale_fell_below_the_previous_one(backend):
    """previous_scale: skip is a GradScaler's scale; the step is skipped iff it fell below
    previous_scale, which then takes it (skipped or not), whatever the amount and the increment."""
    table = build_table(CONFIGS, "cpu").table
    rng = random.Random(1)
    step, lrs, previous = torch.tensor(5), torch.zeros(len(CONFIGS)), torch.tensor(2.0**16)
    expected, scale = 5, 2.0**16
    for i in range(40):
        before = scale
        scale = f32(rng.choice([scale, scale / 2, scale * 2, scale * 0.999, scale]))  # kept, backed off, grown
        increment = rng.choice([0, 1, 1])
        amount = torch.tensor(rng.randrange(0, 5)) if i % 3 == 0 else None
        shape = () if i % 2 else (1,)
        advance_(step, table, lrs, increment, backend, amount=amount, skip=torch.full(shape, scale),
                 previous_scale=previous)
        if not scale < before:
            expected += increment * (1 if amount is None else int(amount))
        assert int(step) == expected, (i, before, scale)
        assert float(previous) == scale
        assert lrs.tolist() == [f32(compute_lr(c, expected)) for c in CONFIGS]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_opcheck_with_amount_and_skip(backend):
    table = build_table(CONFIGS, "cpu").table
    args = (torch.tensor(4), table, torch.zeros(len(CONFIGS)), 1, torch.tensor(3), torch.tensor(0.0))
    torch.library.opcheck(torch.ops.fusedsched.advance_.default, args, {"backend": backend})
    if backend == "native":
        native = (torch.tensor(4), table, torch.zeros(len(CONFIGS)), 1, torch.tensor([2]), torch.tensor([True]))
        torch.library.opcheck(torch.ops.fusedsched.advance_native_.clock, native)
    scaled = (torch.tensor(4), table, torch.zeros(len(CONFIGS)), 1, None, torch.tensor(0.5), None, None,
              torch.tensor(1.0))
    torch.library.opcheck(torch.ops.fusedsched.advance_.default, scaled, {"backend": backend})
    if backend == "native":
        torch.library.opcheck(torch.ops.fusedsched.advance_native_.clock,
                              scaled[:4] + (None, torch.tensor(0.5), None, None, torch.tensor(1.0)))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"amount": torch.tensor(1, dtype=torch.int32)}, "amount must be a one-element int64 tensor, got torch.int32"),
        ({"amount": torch.tensor([1, 2])}, r"amount must be a one-element int64 tensor, got torch.int64 of shape \(2,\)"),
        ({"skip": torch.tensor(1)}, "skip must be a one-element float32 or bool tensor .*, got torch.int64"),
        ({"skip": torch.zeros(2)}, r"skip must be a one-element float32 or bool tensor.* of shape \(2,\)"),
        ({"amount": torch.tensor(1, device="meta")}, "amount must be on the counter's device cpu, got meta"),
        ({"skip": torch.tensor(1.0, device="meta")}, "skip must be on the counter's device cpu, got meta"),
        ({"skip": torch.tensor(1.0), "previous_scale": torch.tensor(1.0, dtype=torch.float64)},
         "previous_scale must be a one-element float32 tensor, got torch.float64"),
        ({"skip": torch.tensor(1.0), "previous_scale": torch.ones(2)},
         r"previous_scale must be a one-element float32 tensor, got torch.float32 of shape \(2,\)"),
        ({"skip": torch.tensor(1.0), "previous_scale": torch.tensor(1.0, device="meta")},
         "previous_scale must be on the counter's device cpu, got meta"),
        ({"previous_scale": torch.tensor(1.0)}, "previous_scale needs skip, a float32 scale"),
        ({"skip": torch.tensor(True), "previous_scale": torch.tensor(1.0)}, "previous_scale needs skip, a float32 scale"),
    ],
)
def test_op_argument_checks_name_the_argument(change, message):
    table = build_table(CONFIGS, "cpu").table
    args = {"amount": None, "skip": None, "previous_scale": None, **change}
    with pytest.raises(ValueError, match=message):
        check_advance_args(torch.tensor(0), table, torch.zeros(len(CONFIGS)), 1, **args)
    on_cpu = all(t is None or t.device.type == "cpu" for t in args.values())
    if "native" in CPU_BACKENDS and on_cpu:
        step = torch.tensor(0)
        named = message.split(" tensor")[0]  # torch's own names of dtypes and shapes follow
        with pytest.raises(RuntimeError, match="advance_native_: " + named):
            torch.ops.fusedsched.advance_native_.clock(step, table, torch.zeros(len(CONFIGS)), 1, **args)
        assert int(step) == 0


# --- skip: GradScaler -----------------------------------------------------------------------------


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


OPTIMIZERS = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, fused=True),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, fused=True),
    "adagrad": lambda params, lr: FusedAdagrad(params, lr=lr),
}


def _scaled_run(name, steps, inf_at, *, mode, backend=None, scaler_kwargs=None, state=None, record=None):
    """Train ``steps`` steps under a CPU GradScaler with inf gradients at the steps ``inf_at``.

    ``mode``: "signal" (device mode, ``skip_steps_on(scaler)``), "host-signal" (host mode, the same),
    or "reference" (device mode, ``scheduler.step()`` only after applied steps: the host-skip
    reference). Returns (model, scheduler, scaler, the rate each step's optimizer read)."""
    model = _model()
    device_schedule = mode != "host-signal"
    lr = torch.tensor(0.0) if device_schedule else 0.0
    optimizer = OPTIMIZERS[name](model.parameters(), lr)
    scaler = torch.amp.GradScaler("cpu", **{"init_scale": 2.0**10, "growth_interval": 3, **(scaler_kwargs or {})})
    skip = scaler if mode != "reference" else None
    shim = LRShim(optimizer, {"all": WARMUP_DECAY}, device_schedule=device_schedule, backend=backend,
                  skip_steps_on=skip)
    gen = torch.Generator().manual_seed(1)
    used = []
    for s in range(steps):
        x, y = torch.randn(8, 4, generator=gen), torch.randn(8, 1, generator=gen)
        loss = torch.nn.functional.mse_loss(model(x), y)
        if s in inf_at:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        used.append(float(optimizer.param_groups[0]["lr"]))
        before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        assert (scaler.get_scale() < before) == (s in inf_at) or not scaler.is_enabled()
        if mode != "reference" or s not in inf_at or not scaler.is_enabled():
            shim.step()
        optimizer.zero_grad()
        if record is not None:
            record(s, model, optimizer, shim, scaler)
    return model, shim, scaler, used


INF_AT = {1, 3, 4, 9, 15}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_grad_scaler_skips_like_the_host_skip_reference(name):
    model, shim, scaler, used = _scaled_run(name, 20, INF_AT, mode="signal")
    ref_model, ref_shim, _, ref_used = _scaled_run(name, 20, INF_AT, mode="reference")
    host_model, host_shim, _, host_used = _scaled_run(name, 20, INF_AT, mode="host-signal")
    assert used == ref_used and [f32(u) for u in host_used] == used
    assert shim.last_epoch == ref_shim.last_epoch == host_shim.last_epoch == 20 - len(INF_AT)
    assert shim.get_last_lr() == ref_shim.get_last_lr() == [f32(compute_lr(WARMUP_DECAY, 20 - len(INF_AT)))]
    assert host_shim.get_last_lr() == [compute_lr(WARMUP_DECAY, 20 - len(INF_AT))]
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)
    assert shim.skip_signal is scaler and ref_shim.skip_signal is None


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_grad_scaler_skips_on_every_backend(backend):
    *_, used = _scaled_run("sgd", 12, {1, 2, 7}, mode="signal", backend=backend)
    *_, ref_used = _scaled_run("sgd", 12, {1, 2, 7}, mode="reference", backend=backend)
    assert used == ref_used


def test_a_control_run_without_the_signal_would_differ():
    """The comparison can fail: without skipping, the schedule runs ahead of the reference."""
    *_, used = _scaled_run("sgd", 12, {1, 2, 7}, mode="reference")
    *_, plain = _scaled_run("sgd", 12, set(), mode="reference")
    assert used != plain


def test_a_disabled_scaler_never_skips():
    model, shim, _, used = _scaled_run("sgd", 8, set(), mode="signal", scaler_kwargs={"enabled": False})
    _, ref, _, ref_used = _scaled_run("sgd", 8, set(), mode="reference", scaler_kwargs={"enabled": False})
    assert used == ref_used and shim.last_epoch == ref.last_epoch == 8
    assert "advance" in vars(shim._engine)  # the signal's path, with no flag to pass


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_grad_scaler_step_is_one_launch_of_the_op(backend):
    """The op compares the scale with the previous one itself: no torch op besides it."""
    shim = _shim(backend=backend)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    scaler.scale(torch.ones(()))  # the scale tensor exists
    shim.skip_steps_on(scaler)
    shim.optimizer.step()
    for lower in (False, True, False):
        if lower:
            scaler._scale.mul_(0.5)  # what update() does on an inf
        with RecordOps() as record:
            shim.step()
        assert len(record.seen) == 1 and "advance" in record.seen[0], record.seen
    assert shim.last_epoch == 2


def test_skip_before_the_scalers_first_scale_and_on_its_first_step():
    shim = _shim()
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    shim.skip_steps_on(scaler)  # no scale tensor yet: the previous scale is the initial one
    shim.optimizer.step()
    shim.step()  # no step scaled yet: nothing to skip
    assert shim.last_epoch == 1
    loss = (torch.nn.Parameter(torch.ones(1)) * float("inf")).sum()
    scaler.scale(loss)  # creates the scale at 8.0
    scaler._scale.mul_(0.5)  # what update() does on an inf
    shim.step()
    assert shim.last_epoch == 1
    shim.step()  # the scale stayed: applied
    assert shim.last_epoch == 2


def test_scaler_load_state_dict_then_scheduler_resumes_exactly():
    """Save both mid-run; a fresh scaler, optimizer and scheduler load and continue like the uninterrupted run."""
    saved = {}

    def record(s, model, optimizer, shim, scaler):
        if s == 9:
            saved.update(model=copy.deepcopy(model.state_dict()), opt=copy.deepcopy(optimizer.state_dict()),
                         shim=shim.state_dict(), scaler=scaler.state_dict())

    inf_at = {2, 11, 16}  # step 10, the first after the load, is applied
    no_growth = {"growth_interval": 1000}
    _, full, _, full_used = _scaled_run("adam", 20, inf_at, mode="signal", record=record, scaler_kwargs=no_growth)
    assert saved["scaler"]["scale"] < 2.0**10  # the loaded scale is below the fresh scaler's initial one

    model = _model()
    optimizer = OPTIMIZERS["adam"](model.parameters(), torch.tensor(0.0))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1000)
    shim = LRShim(optimizer, {"all": WARMUP_DECAY}, device_schedule=True)
    shim.skip_steps_on(scaler)  # before the loads: the scheduler's load takes the loaded scale
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["opt"])
    scaler.load_state_dict(saved["scaler"])
    shim.load_state_dict(saved["shim"])
    assert shim.skip_signal is scaler  # the signal is not checkpoint data: it stays
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):  # the same batches as the first run's first 10 steps
        torch.randn(8, 4, generator=gen), torch.randn(8, 1, generator=gen)
    used = []
    for s in range(10, 20):
        x, y = torch.randn(8, 4, generator=gen), torch.randn(8, 1, generator=gen)
        loss = torch.nn.functional.mse_loss(model(x), y) * (float("inf") if s in inf_at else 1.0)
        scaler.scale(loss).backward()
        used.append(float(optimizer.param_groups[0]["lr"]))
        scaler.step(optimizer)
        scaler.update()
        shim.step()
        optimizer.zero_grad()
    assert used == full_used[10:]
    assert shim.last_epoch == full.last_epoch == 20 - len(inf_at)


def test_loading_a_lower_scale_into_a_live_scaler_is_not_a_skip():
    shim = _shim()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(torch.ones(1))  # the scale tensor exists
    shim.skip_steps_on(scaler)
    state = shim.state_dict()
    scaler.load_state_dict({**scaler.state_dict(), "scale": 16.0})  # in place: fill_
    shim.load_state_dict(state)  # takes the loaded scale as the previous one
    shim.step()
    assert shim.last_epoch == 1


# --- skip: a found_inf tensor ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
@pytest.mark.parametrize("device_schedule", [True, False])
def test_found_inf_tensor_skips_its_steps(dtype, device_schedule):
    found_inf = torch.zeros(1, dtype=dtype)
    shim = _shim(device_schedule, skip_steps_on=found_inf)
    rng = random.Random(3)
    applied = 0
    for _ in range(30):
        skipped = rng.random() < 0.3
        found_inf.fill_(skipped)
        shim.optimizer.step()
        shim.step()
        applied += not skipped
        want = [compute_lr(c, applied) for c in CONFIGS]
        assert _rates(shim) == ([f32(w) for w in want] if device_schedule else want)
    assert shim.last_epoch == applied and shim._step_count == 31  # torch's count of step() calls
    shim.skip_steps_on(None)
    found_inf.fill_(True)
    shim.step()
    assert shim.last_epoch == applied + 1


# --- amounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_tensor", [True, False])
@pytest.mark.parametrize("device_schedule", [True, False])
def test_token_counted_schedule_follows_the_cumulative_count(device_schedule, as_tensor):
    shim = _shim(device_schedule, configs=[TOKENS, WARMUP_DECAY])
    rng = np.random.default_rng(5)
    total = 0
    for amount in rng.integers(0, 3000, size=60).tolist():
        shim.optimizer.step()
        shim.step(amount=torch.tensor(amount) if as_tensor else amount)
        total += amount
        want = [compute_lr(TOKENS, total), compute_lr(WARMUP_DECAY, total)]
        assert _rates(shim) == ([f32(w) for w in want] if device_schedule else want), total
    assert shim.last_epoch == total
    shim.step()  # a plain step is one unit
    assert shim.last_epoch == total + 1


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_amount_and_skip_together_on_every_backend(backend):
    found_inf = torch.zeros(())
    shim = _shim(backend=backend, configs=[TOKENS], skip_steps_on=found_inf)
    total, amount = 0, torch.zeros((), dtype=torch.int64)
    for i, tokens in enumerate([512, 1024, 3000, 7, 0, 4096, 100]):
        amount.fill_(tokens)
        found_inf.fill_(float(i in (2, 5)))
        shim.step(amount=amount)
        total += 0 if i in (2, 5) else tokens
        assert _rates(shim) == [f32(compute_lr(TOKENS, total))]
    assert shim.last_epoch == total


def test_checkpoint_counts_tokens_and_resumes_exactly():
    shim = _shim(configs=[TOKENS])
    for tokens in (1000, 2500, 333):
        shim.step(amount=torch.tensor(tokens))
    state = shim.state_dict()
    assert state["last_epoch"] == state["device_step"] == 3833 and type(state["last_epoch"]) is int
    torch.save(state, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    resumed = _shim(configs=[TOKENS], skip_steps_on=torch.zeros(1))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for s in (shim, resumed):
        s.step(amount=4000)
    assert resumed.last_epoch == shim.last_epoch == 7833 and _rates(resumed) == _rates(shim)
    assert resumed.skip_signal is not None  # kept across the load
    assert copy.deepcopy(resumed).skip_signal is None  # a copy has none (not checkpoint data)
    assert pickle.loads(pickle.dumps(resumed)).skip_signal is None


# --- bad input: raised before anything changes ----------------------------------------------------


def _snapshot(shim):
    return (shim.last_epoch, shim._step_count, _rates(shim),
            int(shim.step_tensor) if shim.device_schedule else None)


@pytest.mark.parametrize("device_schedule", [True, False])
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"amount": -1}, ValueError, "amount must be >= 0, got -1"),
        ({"amount": True}, TypeError, "amount must be an integer, got True"),
        ({"amount": 2.0}, TypeError, "amount must be an integer, got 2.0"),
        ({"amount": torch.tensor(-3)}, ValueError, "amount must be >= 0, got -3"),
        ({"amount": torch.tensor(3, dtype=torch.int32)}, ValueError, "amount must be a one-element int64 tensor"),
        ({"amount": torch.tensor([1, 2])}, ValueError, "amount must be a one-element int64 tensor"),
        ({"amount": 2, "epoch": 5}, TypeError, "not both; got epoch=5 and amount=2"),
    ],
)
def test_bad_amounts_raise_before_anything_changes(device_schedule, kwargs, error, message):
    shim = _shim(device_schedule)
    shim.step(amount=3)
    before = _snapshot(shim)
    kwargs = dict(kwargs)
    epoch = kwargs.pop("epoch", None)
    with pytest.raises(error, match=message):
        shim.step(epoch, **kwargs)
    assert _snapshot(shim) == before


@pytest.mark.skipif("native" not in CPU_BACKENDS, reason="needs the native CPU op")
def test_an_amount_tensor_is_checked_once_and_its_later_changes_refused_by_the_op():
    shim = _shim(backend="native")
    amount = torch.tensor(2)
    shim.step(amount=amount)
    shim.step(amount=amount)  # the same tensor: not checked again; its value is read each step
    amount.fill_(-1)
    with pytest.raises(ValueError, match="amount must be >= 0, got -1"):
        shim.step(amount=amount)
    before = _snapshot(shim)
    amount.data = torch.tensor(2, dtype=torch.int32)  # the same tensor, another dtype
    with pytest.raises(RuntimeError, match="advance_native_: amount must be a one-element int64 tensor"):
        shim.step(amount=amount)
    assert _snapshot(shim) == before == (4, 3, before[2], 4)
    shim.step(amount=torch.tensor(3))  # another tensor: checked
    assert shim.last_epoch == 7


def test_amount_on_another_device_is_refused_in_device_mode():
    shim = _shim()
    with pytest.raises(ValueError, match="amount must be on the counter's device cpu, got meta"):
        shim.step(amount=torch.tensor(1, device="meta"))
    assert shim.last_epoch == 0


@pytest.mark.parametrize("device_schedule, last", [(True, MAX_STEP), (False, 2**63 - 1)])
def test_an_amount_past_the_last_exact_step_raises(device_schedule, last):
    shim = _shim(device_schedule)
    shim.last_epoch = last - 10
    shim.step(amount=10)  # up to the last step is fine
    assert shim.last_epoch == last
    before = _snapshot(shim)
    with pytest.raises(OverflowError, match="amount=1 would take the step from"):
        shim.step(amount=1)
    assert _snapshot(shim) == before


@pytest.mark.parametrize(
    "signal, error, message",
    [
        (torch.zeros(1, dtype=torch.int64), ValueError, "found_inf must be a one-element float32 or bool tensor"),
        (torch.zeros(2), ValueError, r"found_inf must be .* of shape \(2,\)"),
        (torch.zeros(1, device="meta"), ValueError, "found_inf must be on the counter's device cpu, got meta"),
        ("scaler", TypeError, "skip_steps_on takes a torch.amp.GradScaler or a one-element found_inf tensor"),
    ],
)
def test_bad_skip_signals_are_refused(signal, error, message):
    shim = _shim()
    with pytest.raises(error, match=message):
        shim.skip_steps_on(signal)
    assert shim.skip_signal is None
    lr = torch.tensor(0.5)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    with pytest.raises(error, match=message):
        LRShim(optimizer, {"all": WARMUP_DECAY}, skip_steps_on=signal)
    group = optimizer.param_groups[0]
    assert group["lr"] is lr and float(lr) == 0.5 and "initial_lr" not in group  # the groups are untouched


# --- torch.compile --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("signal", ["found_inf", "scaler"])
def test_compiled_step_with_amount_and_skip_does_not_recompile(signal, backend):
    torch._dynamo.reset()
    shim = _shim(backend=backend, configs=[TOKENS])
    found_inf = torch.zeros(1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaler.scale(torch.ones(1))  # the scale tensor exists before tracing
    shim.skip_steps_on(found_inf if signal == "found_inf" else scaler)
    compiler = CompileCounterWithBackend("inductor")

    @torch.compile(fullgraph=True, backend=compiler)
    def advance(scheduler, amount):
        scheduler.step(amount=amount)

    amount, total = torch.zeros((), dtype=torch.int64), 0
    rng = random.Random(7)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for i in range(12):
            tokens, skipped = rng.randrange(1, 5000), i % 4 == 1
            amount.fill_(tokens)
            if signal == "found_inf":
                found_inf.fill_(float(skipped))
            elif skipped:
                scaler._scale.mul_(0.5)  # update() on an inf
            advance(shim, amount)
            total += 0 if skipped else tokens
            assert int(shim.step_tensor) == total
            assert _rates(shim) == [f32(compute_lr(TOKENS, total))]
    assert compiler.frame_count == 1
    assert shim.last_epoch == total
    torch._dynamo.reset()


def test_compiled_plain_step_skips_on_found_inf():
    torch._dynamo.reset()
    found_inf = torch.zeros(1)
    shim = _shim(skip_steps_on=found_inf)
    compiler = CompileCounterWithBackend("inductor")

    @torch.compile(fullgraph=True, backend=compiler)
    def advance(scheduler):
        scheduler.step()

    applied = 0
    with torch._dynamo.config.patch(error_on_recompile=True):
        for i in range(8):
            found_inf.fill_(float(i % 3 == 0))
            advance(shim)
            applied += i % 3 != 0
            assert _rates(shim) == [f32(compute_lr(c, applied)) for c in CONFIGS]
    assert compiler.frame_count == 1 and shim.last_epoch == applied
    torch._dynamo.reset()


# --- CUDA: captured graphs ------------------------------------------------------------------------

CUDA_BACKENDS = ["triton", "native", "reference"]
REPLAYS = 1000


@pytest.mark.cuda
@pytest.mark.parametrize("signal", ["found_inf", "scaler"])
@pytest.mark.parametrize("backend", CUDA_BACKENDS)
def test_captured_step_with_amount_and_skip_equals_eager(backend, signal):
    reason = unavailable_reason(backend, "cuda")
    if reason:
        pytest.skip(f"{backend} unavailable on cuda: {reason}")
    rng = np.random.default_rng(11)
    amounts = torch.tensor(rng.integers(0, 200, size=REPLAYS), device="cuda")
    skips = torch.tensor(rng.random(REPLAYS) < 0.2, device="cuda")

    def make():
        shim = _shim(backend=backend, configs=[TOKENS, WARMUP_DECAY], device="cuda")
        amount = torch.zeros((), dtype=torch.int64, device="cuda")
        found_inf = torch.zeros((), device="cuda")
        scaler = torch.amp.GradScaler("cuda", init_scale=2.0**16)
        scaler.scale(torch.ones(1, device="cuda"))
        shim.skip_steps_on(found_inf if signal == "found_inf" else scaler)
        return shim, amount, found_inf, scaler

    def feed(i, amount, found_inf, scaler):  # device copies only
        amount.copy_(amounts[i])
        if signal == "found_inf":
            found_inf.copy_(skips[i])
        else:  # update(): halve on an inf, else keep
            scaler._scale.mul_(torch.where(skips[i], 0.5, 1.0))

    shim, amount, found_inf, scaler = make()
    graph = capture(lambda: shim.step(amount=amount))
    # the warm-up and the capture advanced by the amount's 0 and skipped nothing: the counter is at 0
    history = torch.zeros(REPLAYS, 2, device="cuda")
    with NoSyncs():
        for i in range(REPLAYS):
            feed(i, amount, found_inf, scaler)
            graph.replay()
            history[i].copy_(shim.lr_tensor)
    shim.mark_device_ahead()

    eager, e_amount, e_found_inf, e_scaler = make()
    eager_history = torch.zeros(REPLAYS, 2, device="cuda")
    for i in range(REPLAYS):
        feed(i, e_amount, e_found_inf, e_scaler)
        eager.step(amount=e_amount)
        eager_history[i].copy_(eager.lr_tensor)
    total = int((amounts * ~skips).sum())
    assert shim.last_epoch == eager.last_epoch == total
    assert torch.equal(history, eager_history)
    assert history[-1].tolist() == [f32(compute_lr(TOKENS, total)), f32(compute_lr(WARMUP_DECAY, total))]

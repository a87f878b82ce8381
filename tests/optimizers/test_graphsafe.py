"""What ``GraphSafeAdam``, ``GraphSafeAdamW`` and ``GraphSafeSGD`` share (``fusedsched.optimizers.graphsafe``).

- a step reads tensor hyperparameters without a host sync (no ``aten::_local_scalar_dense``);
- ``torch.compile(fullgraph=True)`` compiles the step once, hyperparameters rewritten in place;
- ``torch.amp.GradScaler`` (``grad_scale`` / ``found_inf``): unscaled and skipped on the device, the
  parameters equal torch's optimizer run through its own scaler;
- checkpoints load both ways with torch's optimizers, with ``torch.load(weights_only=True)``;
- bad hyperparameters are refused, naming the field and the value, before anything changes.
"""

from __future__ import annotations

import copy
import inspect
import io
import pickle
import re

import pytest
import torch
from _compare import CountSyncs
from _hyper import Hyper, assert_identical, params, set_grads, twins, values
from torch._dynamo.testing import CompileCounterWithBackend

from fusedsched import GraphSafeAdam, GraphSafeAdamW, GraphSafeSGD

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability


def _ours(name: str, ps, h: Hyper, native: bool | None = False, **options):
    """Ours; the foreach step by default (bit-identical to torch's); ``native`` is ``fused``: None
    takes Adam(W)'s fused CPU kernel (its default on the CPU), True every fused CPU kernel."""
    if name == "sgd":
        return GraphSafeSGD(ps, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                            weight_decay=h["weight_decay"], fused=native, **options)
    cls = GraphSafeAdamW if name == "adamw" else GraphSafeAdam
    return cls(ps, lr=h["lr"], betas=(h["beta1"], h["beta2"]), weight_decay=h["weight_decay"], eps=h["eps"],
               native=native, **options)


def _torch(name: str, ps, h: Hyper, **options):
    """torch's optimizer on the same values as floats: capturable foreach Adam(W), foreach SGD."""
    v = h.floats()
    if name == "sgd":
        return torch.optim.SGD(ps, lr=v["lr"], momentum=v["momentum"], dampening=v["dampening"],
                               weight_decay=v["weight_decay"], foreach=True, **options)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(ps, lr=v["lr"], betas=(v["beta1"], v["beta2"]), weight_decay=v["weight_decay"], eps=v["eps"],
               foreach=True, capturable=True, **options)


def _sync_floats(opt, h: Hyper) -> None:
    """Hand a torch optimizer the values of ``h`` as floats (a tensor a checkpoint gave it, replaced)."""
    v = h.floats()
    for group in opt.param_groups:
        for key in ("lr", "weight_decay", "eps", "momentum", "dampening"):
            if key in group:
                group[key] = v[key]
        if "betas" in group:
            group["betas"] = (v["beta1"], v["beta2"])


NAMES = ["adam", "adamw", "sgd"]
#: every step implementation: the foreach steps and the fused CPU kernels (the CUDA kernels' twins)
PATHS = [("adam", False), ("adamw", False), ("adam", None), ("adamw", None), ("sgd", False), ("sgd", True)]
PATH_IDS = ["adam", "adamw", "adam-native", "adamw-native", "sgd", "sgd-fused"]
OPTIONS = {"adam": {"amsgrad": True, "maximize": True}, "adamw": {"amsgrad": True}, "sgd": {"nesterov": False}}


@pytest.mark.parametrize("amp", [False, True], ids=["plain", "grad_scale+found_inf"])
@pytest.mark.parametrize("name, native", PATHS, ids=PATH_IDS)
def test_a_step_reads_no_tensor_on_the_host(name, native, amp):
    h = Hyper()
    h.set(values(0, weight_decay=0.01, dampening=0.1))
    ps = params(dtype=torch.float32) + params(1, dtype=torch.complex64)
    opt = _ours(name, ps, h, native=native, **OPTIONS[name])
    for step in range(3):
        set_grads(step, ps)
        if amp:
            opt.grad_scale, opt.found_inf = torch.tensor(4.0), torch.tensor(float(step == 1))
        h.set(values(step, weight_decay=0.01, dampening=0.1))
        with CountSyncs() as counter:
            opt.step()
        assert counter.count == 0, f"step {step}: {counter.count} host reads"


def test_the_sync_counter_sees_torch_reading_a_tensor_lr():
    """Positive control: torch's foreach SGD passes a tensor lr as ``alpha=``, one ``.item()``."""
    ps = params()
    opt = torch.optim.SGD(ps, lr=torch.tensor(0.1), foreach=True)
    set_grads(0, ps)
    with CountSyncs() as counter:
        opt.step()
    assert counter.count >= 1


@pytest.mark.parametrize("name, native", PATHS, ids=PATH_IDS)
def test_compiled_step_fullgraph_no_recompiles_as_hyperparameters_change(name, native):
    torch._dynamo.reset()
    h, h_eager = Hyper(), Hyper()
    for x in (h, h_eager):
        x.set(values(0, weight_decay=0.01, dampening=0.1))
    ps = params()
    eager_ps = twins(ps)
    opt = _ours(name, ps, h, native=native, **OPTIONS[name])
    eager = _ours(name, eager_ps, h_eager, native=native, **OPTIONS[name])
    compiler = CompileCounterWithBackend("inductor")

    @torch.compile(fullgraph=True, backend=compiler)
    def compiled_step():
        opt.step()

    try:
        with torch._dynamo.config.patch(error_on_recompile=True):
            for step in range(8):
                for x in (h, h_eager):
                    x.set(values(step, weight_decay=0.01, dampening=0.1))
                set_grads(step, ps, eager_ps)
                compiled_step()
                eager.step()
        assert compiler.frame_count == 1
        for a, b in zip(ps, eager_ps):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        assert not torch.equal(ps[0], params()[0])
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("name, native", PATHS, ids=PATH_IDS)
def test_grad_scaler_unscales_and_skips_like_torch(cpu_capturable, name, native):
    h, ref_h = Hyper(), Hyper()
    ps = params()
    ts = twins(ps)
    for x in (h, ref_h):
        x.set(values(0, weight_decay=0.01, dampening=0.1))
    ours, theirs = _ours(name, ps, h, native=native), _torch(name, ts, ref_h)
    assert ours._step_supports_amp_scaling
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2) for _ in range(2)]
    for step in range(8):
        for x in (h, ref_h):
            x.set(values(step, weight_decay=0.01, dampening=0.1))
        _sync_floats(theirs, ref_h)
        for opt, group, scaler in ((ours, ps, scalers[0]), (theirs, ts, scalers[1])):
            opt.zero_grad()
            loss = sum((p * (step + 1 + i)).sin().sum() for i, p in enumerate(group))
            if step in (2, 5):
                loss = loss * float("inf")  # an overflow: the step is skipped, the scale drops
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    assert scalers[0].get_scale() == scalers[1].get_scale()
    if native is False:
        assert_identical(ps, ts)
    else:  # the native kernel: within its bound
        for a, b in zip(ps, ts):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    if name != "sgd":
        assert [ours.state[p]["step"].item() for p in ps] == [theirs.state[t]["step"].item() for t in ts] == [6.0] * 3
    assert not hasattr(ours, "found_inf")  # GradScaler takes its attributes back after the step


def test_grad_scaler_close_to_torch_fused_adamw():
    ps = params()
    ts = twins(ps)
    ours = GraphSafeAdamW(ps, lr=torch.tensor(0.01), betas=(torch.tensor(0.9), torch.tensor(0.99)))
    theirs = torch.optim.AdamW(ts, lr=0.01, betas=(0.9, 0.99), fused=True)
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**8) for _ in range(2)]
    for step in range(6):
        for opt, group, scaler in ((ours, ps, scalers[0]), (theirs, ts, scalers[1])):
            opt.zero_grad()
            loss = sum((p * (step + 1)).sin().sum() for p in group) * (float("inf") if step == 3 else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    for a, b in zip(ps, ts):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def _roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _continue(pairs, h_list, first: int, steps: int = 4):
    for step in range(first, first + steps):
        for (opt, _), h in zip(pairs, h_list):
            h.set(values(step, weight_decay=0.01, dampening=0.1))
            if not isinstance(opt, (GraphSafeAdam, GraphSafeSGD)):
                _sync_floats(opt, h)
        set_grads(step, *[ps for _, ps in pairs])
        for opt, _ in pairs:
            opt.step()


@pytest.mark.parametrize("saved_as", ["floats", "tensors"])
@pytest.mark.parametrize("name", NAMES)
def test_torch_checkpoint_loads_and_training_continues_identically(cpu_capturable, name, saved_as):
    ref_h, h = Hyper(), Hyper()
    ts = params()
    ref_h.set(values(0, weight_decay=0.01, dampening=0.1))
    theirs = _torch(name, ts, ref_h)
    _continue([(theirs, ts)], [ref_h], 0, 3)
    if saved_as == "tensors":  # torch's optimizer saves tensor hyperparameters as tensors
        group = theirs.param_groups[0]
        group["lr"] = torch.tensor(group["lr"])
        if name != "sgd":
            group["betas"] = tuple(torch.tensor(b) for b in group["betas"])
    ps = twins(ts)  # the parameters as the checkpoint's
    h.set(values(7, weight_decay=0.5))  # other values, replaced by the checkpoint's
    ours = _ours(name, ps, h)
    live = dict(h.t)
    ours.load_state_dict(_roundtrip(theirs.state_dict()))
    group = ours.param_groups[0]
    assert group["lr"] is live["lr"] and group["weight_decay"] is live["weight_decay"]  # written in place
    assert group["weight_decay"].item() == theirs.param_groups[0]["weight_decay"]
    assert group["lr"].item() == float(theirs.param_groups[0]["lr"])
    if name != "sgd":
        assert group["betas"][0] is live["beta1"] and group["eps"] is live["eps"]
        assert all(ours.state[p]["step"].dtype == torch.float32 for p in ps)
    _continue([(theirs, ts), (ours, ps)], [ref_h, h], 3)
    assert_identical(ps, ts)


def _torch_fused(name: str, ps, h: Hyper):
    """torch's fused optimizer (its CPU kernels) on the same values as floats."""
    v = h.floats()
    if name == "sgd":
        return torch.optim.SGD(ps, lr=v["lr"], momentum=v["momentum"], dampening=v["dampening"],
                               weight_decay=v["weight_decay"], fused=True)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(ps, lr=v["lr"], betas=(v["beta1"], v["beta2"]), weight_decay=v["weight_decay"], eps=v["eps"],
               fused=True)


@pytest.mark.parametrize("name", NAMES)
def test_torch_fused_checkpoint_loads_and_the_graph_safe_step_continues(cpu_capturable, name):
    """A checkpoint of torch's fused optimizer (``fused=True`` in its groups) loads; the group keeps
    our option keys and runs the graph-safe step: the same as torch's foreach step from that
    checkpoint, bit for bit."""
    ref_h, h, foreach_h = Hyper(), Hyper(), Hyper()
    ts = params()
    ref_h.set(values(0, weight_decay=0.01, dampening=0.1))
    fused = _torch_fused(name, ts, ref_h)
    _continue([(fused, ts)], [ref_h], 0, 3)
    saved = _roundtrip(fused.state_dict())
    assert saved["param_groups"][0]["fused"] is True
    ps, qs = twins(ts), twins(ts)
    h.set(values(7, weight_decay=0.5))
    ours = _ours(name, ps, h)
    live = ours.param_groups[0]["lr"]
    ours.load_state_dict(saved)
    group = ours.param_groups[0]
    assert group["fused"] is None and group["lr"] is live and live.item() == fused.param_groups[0]["lr"]
    assert ours.state_dict()["param_groups"][0]["fused"] is None
    foreach_h.set(values(0, weight_decay=0.01, dampening=0.1))
    foreach = _torch(name, qs, foreach_h)
    foreach.load_state_dict(_roundtrip(fused.state_dict()))
    for g in foreach.param_groups:  # torch takes the checkpoint's options: back to its foreach step
        g.update(fused=None, foreach=True, **({} if name == "sgd" else {"capturable": True}))
    _continue([(ours, ps), (foreach, qs), (fused, ts)], [h, foreach_h, ref_h], 3)
    assert_identical(ps, qs)
    for a, b in zip(ps, ts):  # torch's fused kernel itself: close
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_a_loaded_groups_options_become_ours_and_stay_refused_as_arguments(name):
    """``differentiable=True`` in a loaded group (torch's differentiable optimizer) is accepted like
    ``fused=True``; as an argument or in an added group it is still refused, and an added group
    cannot ask for another ``fused`` than the optimizer's."""
    h = Hyper()
    h.set(values(0))
    ps = params()
    opt = _ours(name, ps, h)
    _continue([(opt, ps)], [h], 0, 2)
    saved = copy.deepcopy(opt.state_dict())
    saved["param_groups"][0].update(differentiable=True, fused=True, foreach=True)
    opt.load_state_dict(saved)
    assert {k: opt.param_groups[0][k] for k in ("differentiable", "fused", "foreach")} == {
        "differentiable": False, "fused": None, "foreach": None}
    with pytest.raises(ValueError, match="differentiable=True is not an option \\(param group 1\\)"):
        opt.add_param_group({"params": params(2), "differentiable": True})
    with pytest.raises(ValueError, match="fused is chosen for the whole optimizer when it is built \\(fused=False\\); a "
                                         "param group cannot ask for fused=True \\(param group 1\\)"):
        opt.add_param_group({"params": params(2), "fused": True})
    opt.add_param_group({"params": params(2), "fused": False})  # the optimizer's own choice
    assert opt.param_groups[1]["fused"] is None  # torch's default in the group, for checkpoints


@pytest.mark.parametrize("name", NAMES)
def test_our_checkpoint_loads_into_torch_fused_optimizer(name):
    """The reverse: torch's fused optimizer loads ours; it takes the checkpoint's options (``fused=None``),
    so it runs fused again once told."""
    h, ref_h = Hyper(), Hyper()
    ps = params()
    h.set(values(0, weight_decay=0.01, dampening=0.1))
    ref_h.set(values(0, weight_decay=0.01, dampening=0.1))
    ours = _ours(name, ps, h)
    _continue([(ours, ps)], [h], 0, 3)
    ts = twins(ps)
    theirs = _torch_fused(name, ts, ref_h)
    theirs.load_state_dict(_roundtrip(ours.state_dict()))
    assert theirs.param_groups[0]["fused"] is None
    for g in theirs.param_groups:
        g["fused"] = True
    _continue([(ours, ps), (theirs, ts)], [h, ref_h], 3)
    for a, b in zip(ps, ts):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_our_checkpoint_loads_into_torch_default_optimizer(name):
    h = Hyper()
    ps = params()
    h.set(values(0, weight_decay=0.01, dampening=0.1))
    ours = _ours(name, ps, h)
    _continue([(ours, ps)], [h], 0, 3)
    saved = _roundtrip(ours.state_dict())
    group = saved["param_groups"][0]
    assert isinstance(group["lr"], float) and isinstance(group["weight_decay"], float)
    assert group["lr"] == h["lr"].item() and group["foreach"] is None and group["fused"] is None
    ts = twins(ps)
    theirs = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](ts)
    theirs.load_state_dict(saved)
    assert len(saved["state"]) == len(ps)
    for i, t in enumerate(ts):
        assert set(theirs.state[t]) == set(saved["state"][i]), sorted(theirs.state[t])
        for key, value in saved["state"][i].items():
            assert torch.equal(theirs.state[t][key], value), key
            assert torch.equal(value, ours.state[ps[i]][key]), key
    _continue([(ours, ps), (theirs, ts)], [h, Hyper()], 3)  # theirs reads the same values as floats
    for a, b in zip(ps, ts):
        if name == "sgd":
            assert torch.equal(a, b)
        else:  # torch's default Adam: float64 bias corrections (the documented bound)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)


def test_copies_and_pickles_keep_training():
    h = Hyper()
    h.set(values(0))
    ps = params()
    opt = _ours("adamw", ps, h, amsgrad=True)
    _continue([(opt, ps)], [h], 0, 2)
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        twin_ps = twin.param_groups[0]["params"]
        set_grads(5, twin_ps)
        twin.step()
        assert all(twin.state[p]["step"].item() == 3 for p in twin_ps)


@pytest.mark.parametrize("fused", [None, True, False])
def test_copies_and_pickles_keep_the_path(fused):
    """``fused`` is part of a copy and a pickle: ``explain()`` and the step take the same path."""
    opt = GraphSafeAdamW(params(), lr=torch.tensor(0.01), fused=fused)
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert twin.fused is fused
        assert twin.explain() == opt.explain()
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # a load keeps the optimizer's own choice
    assert opt.fused is fused


BAD = [
    ("adam", {"lr": -0.1}, "lr must be finite and >= 0, got -0.1"),
    ("adam", {"lr": torch.tensor(-1.0)}, "lr must be finite and >= 0, got tensor(-1.0"),
    ("adam", {"lr": float("nan")}, "lr must be finite and >= 0, got nan"),
    ("adam", {"betas": (1.0, 0.999)}, "betas[0] must be in [0, 1), got 1.0"),
    ("adam", {"betas": (0.9, torch.tensor(-0.5))}, "betas[1] must be in [0, 1), got tensor(-0.5"),
    ("adam", {"betas": (0.9,)}, "betas must be a pair (beta1, beta2), got (0.9,)"),
    ("adamw", {"eps": -1e-8}, "eps must be finite and >= 0, got -1e-08"),
    ("adamw", {"weight_decay": -0.01}, "weight_decay must be finite and >= 0, got -0.01"),
    ("adamw", {"lr": torch.tensor([0.1])}, "lr must be a float or a 0-dim floating-point tensor, got a torch.float32 tensor of shape (1,)"),
    ("adamw", {"betas": (torch.tensor(1), 0.99)}, "betas[0] must be a float or a 0-dim floating-point tensor, got a torch.int64 tensor"),
    ("adam", {"eps": "small"}, "eps must be a float or a 0-dim floating-point tensor, got 'small'"),
    ("adam", {"lr": True}, "lr must be a float or a 0-dim floating-point tensor, got True"),
    ("adam", {"lr": torch.tensor(0.1, device="meta")}, "lr is a tensor on meta and the parameters are on"),
    ("sgd", {"differentiable": True}, "differentiable=True is not an option"),
    ("sgd", {"momentum": torch.tensor(-0.5)}, "momentum must be finite and >= 0, got tensor(-0.5, dtype=torch.float32"),
    ("sgd", {"dampening": -0.1}, "dampening must be finite and >= 0, got -0.1"),
    ("sgd", {"nesterov": True}, "nesterov=True needs momentum > 0 and dampening 0, got momentum 0"),
    ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": torch.tensor(0.1)}, "nesterov=True needs momentum > 0 and dampening 0"),
]
CLASSES = {"adam": GraphSafeAdam, "adamw": GraphSafeAdamW, "sgd": GraphSafeSGD}


@pytest.mark.parametrize("name, bad, message", BAD, ids=[f"{n}-{'-'.join(b)}" for n, b, _ in BAD])
def test_bad_hyperparameters_are_refused_naming_field_and_value(name, bad, message):
    cls = CLASSES[name]
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(params(), **bad)
    opt = cls(params(), lr=0.1)
    with pytest.raises(ValueError, match=re.escape(message)):
        opt.add_param_group({"params": params(2), **bad})
    assert len(opt.param_groups) == 1 and len(opt.state) == (3 if name != "sgd" else 0)


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_checkpoint_changes_nothing(name):
    h = Hyper()
    h.set(values(0))
    ps = params()
    opt = _ours(name, ps, h)
    _continue([(opt, ps)], [h], 0, 2)
    saved = copy.deepcopy(opt.state_dict())
    saved["param_groups"][0]["lr"] = -1.0
    before = copy.deepcopy(opt.state_dict())
    lr = opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match="lr must be finite and >= 0, got -1.0 \\(loaded param group 0\\)"):
        opt.load_state_dict(saved)
    after = opt.state_dict()
    assert opt.param_groups[0]["lr"] is lr and after["param_groups"] == before["param_groups"]
    for key, state in before["state"].items():
        for k, v in state.items():
            assert torch.equal(after["state"][key][k], v)


def test_add_param_group_creates_state_and_accepts_tensors():
    ps = params()
    opt = GraphSafeAdam(ps[:1], lr=0.01)
    opt.add_param_group({"params": ps[1:], "lr": torch.tensor(0.02), "betas": (torch.tensor(0.8), 0.99)})
    assert set(opt.state[ps[2]]) == {"step", "exp_avg", "exp_avg_sq"}
    assert opt.param_groups[1]["capturable"] is False and opt.param_groups[1]["fused"] is None
    set_grads(0, ps)
    opt.step()
    assert all(opt.state[p]["step"].item() == 1 for p in ps)


@pytest.mark.parametrize("ours, theirs", [(GraphSafeAdam, torch.optim.Adam), (GraphSafeAdamW, torch.optim.AdamW),
                                          (GraphSafeSGD, torch.optim.SGD)], ids=["adam", "adamw", "sgd"])
def test_constructor_takes_torch_arguments_with_torch_defaults(ours, theirs):
    mine, torchs = inspect.signature(ours.__init__).parameters, inspect.signature(theirs.__init__).parameters
    for name, param in torchs.items():
        assert name in mine, name
        assert mine[name].default == param.default and mine[name].kind == param.kind, name
    def positional(params):
        return [n for n, p in params.items() if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]

    assert positional(mine) == positional(torchs)  # the same order: positional calls mean the same


def test_an_lrshim_binding_survives_a_load():
    """The live tensors are put back before torch's post-load hooks, where an LRShim binds its views."""
    from fusedsched import LearningRate, LRShim

    ps = params()
    opt = GraphSafeAdamW(ps, lr=0.01, betas=(torch.tensor(0.9), 0.999))
    schedule = LearningRate(linear_ramp_to_constant={"learning_rate": 0.07, "num_ramp_steps": 30})
    shim = LRShim(opt, {"g0": schedule}, device_schedule=True)
    set_grads(0, ps)
    opt.step()
    shim.step()
    saved = _roundtrip(opt.state_dict())
    assert isinstance(saved["param_groups"][0]["lr"], float)
    beta1 = opt.param_groups[0]["betas"][0]
    opt.load_state_dict(saved)
    group = opt.param_groups[0]
    assert group["lr"].data_ptr() == shim.lr_tensor.data_ptr()  # the shim's buffer, bound again
    assert group["betas"][0] is beta1 and beta1.item() == pytest.approx(0.9)
    shim.step()
    set_grads(1, ps)
    opt.step()
    assert group["lr"].item() == shim.lr_tensor[0].item() > 0.0

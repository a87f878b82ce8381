"""``GraphSafeAdam`` / ``GraphSafeAdamW`` against torch's Adam / AdamW, hyperparameters changing every step.

torch's foreach Adam with ``capturable=True`` is the algorithm implemented; torch asserts a CUDA-like
device for it, so the ``cpu_capturable`` fixture lets its operations run on the CPU as they are.
Against it the parameters are bit-identical (float32, float64, complex64); against torch's
default foreach Adam (Python float64 bias corrections) within the documented relative 1e-5;
bfloat16 within the documented bound.
"""

from __future__ import annotations

import pytest
import torch
from _hyper import Hyper, assert_identical, params, set_grads, spread, twins, values
from torch.utils._python_dispatch import TorchDispatchMode

from fusedsched import GraphSafeAdam, GraphSafeAdamW
from fusedsched.optimizers import SparseGradientError
from fusedsched.optimizers import fused as fused_ops

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability

PAIRS = {"adam": (GraphSafeAdam, torch.optim.Adam), "adamw": (GraphSafeAdamW, torch.optim.AdamW)}
STEPS = 30


class _OpNames(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(str(func))
        return func(*args, **(kwargs or {}))


def _groups(ps, hypers, kinds, options):
    """Two groups (the first two parameters, the rest), each with its own hyperparameters."""
    out = []
    for i, (chunk, h) in enumerate(zip((ps[:2], ps[2:]), hypers)):
        def pick(key, i=i, h=h):
            return h[key] if key in kinds else h.floats()[key]
        out.append(
            {
                "params": chunk,
                "lr": pick("lr"),
                "betas": (pick("beta1"), pick("beta2")),
                "weight_decay": pick("weight_decay"),
                "eps": pick("eps"),
                **options,
            }
        )
    return out


def _train_pair(name, *, dtype=torch.float32, reference="capturable", kinds=("lr", "beta1", "beta2", "weight_decay", "eps"),
                weight_decay=0.01, options=None, steps=STEPS, none_at=(), native=False, hyper_dtype=torch.float32,
                draw=None):
    """Our optimizer and torch's from the same start, the same values every step; their parameters.

    Ours reads the hyperparameters in ``kinds`` from 0-dim ``hyper_dtype`` tensors, the others as
    floats; torch's (``reference="capturable"`` or ``"default"``, foreach) reads every one as the
    Python float our tensor holds. ``draw(step, group)``: the values (``values`` by default; a
    ``weight_decay`` of 0 holds). ``native=False``: our foreach step (the one bit-identical to
    torch's); ``reference="ours"``: our foreach step is the reference for the native kernel
    (``native=None``).
    """
    ours_cls, torch_cls = PAIRS[name]
    options = options or {}
    ps = params(dtype=dtype)
    ts = twins(ps)

    def vals(step, g):
        v = values(step, g, weight_decay=weight_decay) if draw is None else draw(step, g)
        return {**v, "weight_decay": v["weight_decay"] if weight_decay else 0.0}

    hypers = [Hyper(hyper_dtype), Hyper(hyper_dtype)]
    refs = [Hyper(hyper_dtype), Hyper(hyper_dtype)]  # the reference's own tensors (reference="ours")
    for g, (h, r) in enumerate(zip(hypers, refs)):
        h.set(vals(0, g))
        r.set(vals(0, g))
    ours = ours_cls(_groups(ps, hypers, kinds, options), native=native)
    if reference == "ours":
        torch_kinds = kinds
        theirs = ours_cls(_groups(ts, refs, kinds, options), native=False)
    else:
        torch_kinds = ()
        extra = {"foreach": True, "capturable": reference == "capturable"}
        theirs = torch_cls(_groups(ts, refs, torch_kinds, {**options, **extra}))
    for step in range(steps):
        for g in range(2):
            hypers[g].set(vals(step, g))
            refs[g].set(vals(step, g))
            got = hypers[g].floats()
            for group, opt_kinds in ((ours.param_groups[g], kinds), (theirs.param_groups[g], torch_kinds)):
                h = hypers[g] if group is ours.param_groups[g] else refs[g]
                val = {k: (h[k] if k in opt_kinds else got[k]) for k in got}
                group["lr"], group["betas"] = val["lr"], (val["beta1"], val["beta2"])
                group["weight_decay"], group["eps"] = val["weight_decay"], val["eps"]
        set_grads(step, ps, ts, none=(1,) if step in none_at else ())
        ours.step()
        theirs.step()
    return ps, ts, ours, theirs


def _assert_same_state(ps, ts, ours, theirs, amsgrad):
    for p, t in zip(ps, ts):
        for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()):
            assert torch.equal(ours.state[p][key], theirs.state[t][key]), key
        assert torch.equal(ours.state[p]["step"], theirs.state[t]["step"])


@pytest.mark.parametrize("hyper_dtype", [torch.float32, torch.float64], ids=lambda d: f"tensors-{d}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("name", list(PAIRS))
def test_bit_identical_to_torch_capturable_foreach(cpu_capturable, name, amsgrad, maximize, weight_decay, dtype,
                                                  hyper_dtype):
    ps, ts, ours, theirs = _train_pair(
        name, dtype=dtype, weight_decay=weight_decay, options={"amsgrad": amsgrad, "maximize": maximize},
        hyper_dtype=hyper_dtype,
    )
    assert_identical(ps, ts)
    _assert_same_state(ps, ts, ours, theirs, amsgrad)


@pytest.mark.parametrize("hyper_dtype", [torch.float32, torch.float64], ids=lambda d: f"tensors-{d}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("name", list(PAIRS))
def test_bit_identical_over_the_whole_ranges(cpu_capturable, name, amsgrad, dtype, hyper_dtype):
    """Betas below 0.5, values no float32 holds in float64 tensors: ours computes every derived number
    (``1 - beta``, AdamW's ``1 - lr * weight_decay``, the bias corrections) as torch does from floats."""
    ps, ts, ours, theirs = _train_pair(name, dtype=dtype, options={"amsgrad": amsgrad}, hyper_dtype=hyper_dtype,
                                       draw=spread, steps=40)
    assert_identical(ps, ts)
    _assert_same_state(ps, ts, ours, theirs, amsgrad)


def test_adamw_decay_factor_is_rounded_once_as_torch_rounds_it(cpu_capturable):
    """lr 0.0381 and weight decay 0.21 as float32 tensors (issue 29): torch's ``1 - lr * wd`` from the
    same values as floats is float32(0.99199897...), one float32 ulp from float32(1 - float32(lr * wd))."""
    lr, wd = torch.tensor(0.0381), torch.tensor(0.21)
    assert (1 - lr * wd).item() != torch.tensor(1 - lr.item() * wd.item(), dtype=torch.float32).item()
    ps = [torch.nn.Parameter(torch.linspace(-3, 3, 101))]
    ts = twins(ps)
    us = twins(ps)
    ours = GraphSafeAdamW(ps, lr=lr, weight_decay=wd, native=False)
    theirs = torch.optim.AdamW(ts, lr=lr.item(), weight_decay=wd.item(), foreach=True, capturable=True)
    with_tensor_lr = torch.optim.AdamW(us, lr=lr.clone(), weight_decay=wd.item(), foreach=True, capturable=True)
    set_grads(0, ps, ts, us)
    for opt in (ours, theirs, with_tensor_lr):
        opt.step()
    assert_identical(ps, ts)
    assert not torch.equal(us[0], ps[0])  # torch given a float32 tensor lr rounds the factor twice


@pytest.mark.parametrize("kinds", [(), ("lr",), ("beta1", "weight_decay"), ("beta2", "eps")], ids=lambda k: "+".join(k) or "floats")
@pytest.mark.parametrize("name", list(PAIRS))
def test_floats_and_mixed_float_tensor_groups_bit_identical(cpu_capturable, name, kinds):
    ps, ts, _, _ = _train_pair(name, kinds=kinds, options={"amsgrad": True})
    assert_identical(ps, ts)


@pytest.mark.parametrize("name", list(PAIRS))
def test_complex_parameters_bit_identical(cpu_capturable, name):
    ps, ts, _, _ = _train_pair(name, dtype=torch.complex64, options={"maximize": True})
    assert_identical(ps, ts)


@pytest.mark.parametrize("name", list(PAIRS))
def test_parameters_without_gradient_are_left_alone_like_torch(cpu_capturable, name):
    ps, ts, ours, theirs = _train_pair(name, none_at=(0, 3, 4, 9))
    assert_identical(ps, ts)
    assert ours.state[ps[1]]["step"].item() == theirs.state[ts[1]]["step"].item() == STEPS - 4
    assert ours.state[ps[0]]["step"].item() == STEPS


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("name", list(PAIRS))
def test_within_the_documented_bound_of_torch_default_foreach(name, amsgrad, weight_decay):
    """Default foreach (non-capturable) torch: float64 bias corrections, so close, not identical."""
    ps, ts, _, _ = _train_pair(name, reference="default", weight_decay=weight_decay, options={"amsgrad": amsgrad})
    for p, t in zip(ps, ts):
        torch.testing.assert_close(p, t, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", list(PAIRS))
def test_bfloat16_within_the_documented_bound(cpu_capturable, name):
    ps, ts, _, _ = _train_pair(name, dtype=torch.bfloat16, options={"maximize": True})
    for p, t in zip(ps, ts):
        assert p.dtype == torch.bfloat16
        bound = 2**-4 * t.float().abs().max().item()
        assert (p.float() - t.float()).abs().max().item() <= bound


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("name", list(PAIRS))
def test_native_kernel_within_the_documented_bound_of_the_foreach_step(name, amsgrad, maximize, weight_decay, dtype):
    if fused_ops.load() is not None:
        pytest.skip(f"the fused step is unavailable: {fused_ops.load()}")
    ps, ts, ours, theirs = _train_pair(
        name, dtype=dtype, reference="ours", weight_decay=weight_decay, native=None,
        options={"amsgrad": amsgrad, "maximize": maximize}, none_at=(2, 3),
    )
    _assert_within_the_native_bound(ps, ts, ours, theirs)


@pytest.mark.parametrize("hyper_dtype", [torch.float32, torch.float64], ids=lambda d: f"tensors-{d}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", list(PAIRS))
def test_native_kernel_within_the_bound_over_the_whole_ranges(name, dtype, hyper_dtype):
    """Betas below 0.5 too (torch's other lerp formula), tensors of either precision."""
    if fused_ops.load() is not None:
        pytest.skip(f"the fused step is unavailable: {fused_ops.load()}")
    ps, ts, ours, theirs = _train_pair(name, dtype=dtype, reference="ours", native=None, hyper_dtype=hyper_dtype,
                                       draw=spread, options={"amsgrad": True})
    _assert_within_the_native_bound(ps, ts, ours, theirs)


def _assert_within_the_native_bound(ps, ts, ours, theirs):
    for p, t in zip(ps, ts):
        torch.testing.assert_close(p, t, rtol=1e-5, atol=1e-7)
        assert torch.equal(ours.state[p]["step"], theirs.state[t]["step"])
        torch.testing.assert_close(ours.state[p]["exp_avg_sq"], theirs.state[t]["exp_avg_sq"], rtol=1e-5, atol=1e-12)


def test_native_kernel_is_used_on_cpu_and_foreach_where_it_cannot_be(monkeypatch):
    if fused_ops.load() is not None:
        pytest.skip(f"the fused step is unavailable: {fused_ops.load()}")
    ps = params() + params(1, dtype=torch.bfloat16)
    opt = GraphSafeAdamW(ps, lr=torch.tensor(0.01))
    set_grads(0, ps)
    with _OpNames() as seen:
        opt.step()
    assert "fusedsched.graphsafe_adam_.default" in seen.names  # float32
    assert any(n.startswith("aten._foreach_lerp_") for n in seen.names)  # bfloat16: the foreach step by default
    assert opt.explain()[0]["path"] == "fused and foreach"
    monkeypatch.setattr(fused_ops, "_loaded", {"reason": "not built here"})
    monkeypatch.setattr(fused_ops, "_device_reasons", {})
    for argument in ({"native": True}, {"fused": True}):
        with pytest.raises(ValueError, match="fused=True, but the fused step is unavailable: not built here"):
            GraphSafeAdam(ps, **argument)
    with pytest.raises(ValueError, match="native=False and fused=True disagree"):
        GraphSafeAdam(ps, native=False, fused=True)


def test_decoupled_weight_decay_makes_adam_adamw_as_in_torch():
    ps = params()
    qs = twins(ps)
    adam = GraphSafeAdam(ps, lr=torch.tensor(0.01), weight_decay=0.1, decoupled_weight_decay=True)
    adamw = GraphSafeAdamW(qs, lr=torch.tensor(0.01), weight_decay=0.1)
    for step in range(4):
        set_grads(step, ps, qs)
        adam.step()
        adamw.step()
    assert_identical(ps, qs)
    assert adam.state_dict()["param_groups"][0]["decoupled_weight_decay"] is True


def test_defaults_match_torch():
    p = [torch.nn.Parameter(torch.zeros(2))]
    for ours, theirs in ((GraphSafeAdam(p), torch.optim.Adam(p)), (GraphSafeAdamW(p), torch.optim.AdamW(p))):
        for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"):
            assert ours.defaults[key] == theirs.defaults[key], key


def test_state_exists_from_construction_and_sparse_gradients_are_refused():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = GraphSafeAdam(emb.parameters(), lr=torch.tensor(0.1), amsgrad=True)
    state = opt.state[emb.weight]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert state["step"].dtype == torch.float32 and state["step"].item() == 0
    emb(torch.tensor([1, 2])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(SparseGradientError, match="GraphSafeAdam does not support sparse gradients"):
        opt.step()
    assert torch.equal(emb.weight, before) and state["step"].item() == 0


def test_a_step_compiled_before_any_eager_one_finds_the_native_kernel_loaded(monkeypatch):
    """``fused.load()`` loads fusedsched._C on first use, which a fullgraph trace cannot do: the
    constructor loads it, so a first step under torch.compile traces (with the kernel where built)."""
    saved = dict(fused_ops._loaded)
    monkeypatch.setattr(fused_ops, "_loaded", {})  # as in a fresh process
    monkeypatch.setattr(fused_ops, "_device_reasons", {})
    torch._dynamo.reset()
    try:
        ps = params()
        opt = GraphSafeAdamW(ps, lr=torch.tensor(0.01), betas=(torch.tensor(0.9), 0.999))
        compiled = torch.compile(opt.step, fullgraph=True, backend="aot_eager")
        set_grads(0, ps)
        compiled()
        assert fused_ops._loaded == saved
        assert all(opt.state[p]["step"].item() == 1 for p in ps)
    finally:
        torch._dynamo.reset()

"""``GraphSafeSGD`` against ``torch.optim.SGD(foreach=True)``, hyperparameters changing every step.

Float32, float64 and complex64 parameters are bit-identical (the hyperparameter tensors in the
parameters' precision); bfloat16 within the documented bound.
"""

from __future__ import annotations

import pytest
import torch
from _hyper import Hyper, assert_identical, params, set_grads, spread, twins, values

from fusedsched import GraphSafeSGD
from fusedsched.optimizers import SparseGradientError

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability

STEPS = 25
FIELDS = ("lr", "momentum", "dampening", "weight_decay")


def _train_pair(*, dtype=torch.float32, kinds=FIELDS, momentum=True, dampening=0.0, weight_decay=0.01,
                nesterov=False, maximize=False, steps=STEPS, none_at=(), momenta=None, hyper_dtype=None, draw=None):
    """Ours and torch's foreach SGD from the same start, the same values every step (torch's as the
    Python floats our tensors hold).

    ``momenta``: the momentum of both groups at each step (as many steps), else ``values``'.
    ``hyper_dtype``: our tensors' dtype (by default the parameters' precision). ``draw(step, group)``:
    the values (``values`` by default).
    """
    ps = params(dtype=dtype)
    ts = twins(ps)
    if hyper_dtype is None:
        hyper_dtype = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    hypers = [Hyper(hyper_dtype), Hyper(hyper_dtype)]
    steps = len(momenta) if momenta is not None else steps

    def vals(step, g):
        v = values(step, g, weight_decay=weight_decay, dampening=dampening) if draw is None else draw(step, g)
        if momenta is not None:
            v["momentum"] = momenta[step]
        return {k: (v[k] if (k != "momentum" or momentum) else 0.0) for k in FIELDS}

    def group(chunk, g, tensors):
        hypers[g].set(vals(0, g))
        got = hypers[g].floats()
        chosen = {k: (hypers[g][k] if k in tensors else got[k]) for k in FIELDS}
        return {"params": chunk, "nesterov": nesterov, "maximize": maximize, **chosen}

    ours = GraphSafeSGD([group(ps[:2], 0, kinds), group(ps[2:], 1, kinds)])
    theirs = torch.optim.SGD([group(ts[:2], 0, ()), group(ts[2:], 1, ())], foreach=True)
    for step in range(steps):
        for g in range(2):
            hypers[g].set(vals(step, g))
            theirs.param_groups[g].update({k: v for k, v in hypers[g].floats().items() if k in FIELDS})
            for k in FIELDS:
                if k not in kinds:
                    ours.param_groups[g][k] = hypers[g].floats()[k]
        set_grads(step, ps, ts, none=(1,) if step in none_at else ())
        ours.step()
        theirs.step()
    return ps, ts, ours, theirs


CASES = {
    "plain": {"momentum": False},
    "momentum": {},
    "dampening": {"dampening": 0.1},
    "nesterov": {"nesterov": True},
    "no-decay": {"weight_decay": 0.0},
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_bit_identical_to_torch_foreach_sgd(case, maximize, dtype):
    ps, ts, ours, theirs = _train_pair(dtype=dtype, maximize=maximize, **CASES[case])
    assert_identical(ps, ts)
    assert_same_state(ours.state_dict(), theirs.state_dict())


def assert_same_state(mine: dict, torchs: dict) -> None:
    """The same parameters have state, with the same keys and the same tensors (a buffer where torch has one)."""
    assert set(mine["state"]) == set(torchs["state"]), (sorted(mine["state"]), sorted(torchs["state"]))
    for index, state in torchs["state"].items():
        assert set(mine["state"][index]) == set(state), (index, sorted(mine["state"][index]), sorted(state))
        for key, value in state.items():
            assert torch.equal(mine["state"][index][key], value), (index, key)


#: momentum schedules through 0: a warm-up from 0 (a parameter without a gradient at the first step
#: with momentum starts its buffer later), a pause at 0 that keeps the buffer, 0 again at the end
MOMENTA = {
    "warm-up-from-0": [0.0, 0.0, 0.9, 0.9, 0.5, 0.9, 0.8, 0.9],
    "back-to-0": [0.9, 0.9, 0.0, 0.0, 0.9, 0.5, 0.0, 0.9],
    "one-step-at-0": [0.0, 0.9, 0.0, 0.9, 0.9, 0.0],
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("none_at", [(), (1, 2)], ids=["all-gradients", "a-late-gradient"])
@pytest.mark.parametrize("dampening", [0.0, 0.3])
@pytest.mark.parametrize("schedule", list(MOMENTA))
def test_momentum_through_zero_starts_the_buffer_where_torch_does(schedule, dampening, none_at, dtype):
    """torch keeps no buffer while momentum is 0 and starts it as the gradient at the first step with
    momentum; a tensor momentum is decided on the device, per parameter, and ends as torch's."""
    ps, ts, ours, theirs = _train_pair(dtype=dtype, momenta=MOMENTA[schedule], dampening=dampening, none_at=none_at)
    assert_identical(ps, ts)
    assert_same_state(ours.state_dict(), theirs.state_dict())


@pytest.mark.parametrize("maximize", [False, True])
def test_nesterov_momentum_back_to_zero_as_torch(maximize):
    ps, ts, ours, theirs = _train_pair(momenta=MOMENTA["back-to-0"], nesterov=True, maximize=maximize, none_at=(1,))
    assert_identical(ps, ts)
    assert_same_state(ours.state_dict(), theirs.state_dict())


def test_the_issue_momentum_warm_up_from_zero():
    """Two steps of momentum 0.9 after one at 0 (issue 29): torch's buffer starts at the second step."""
    a = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    b = torch.nn.Parameter(a.detach().clone())
    mom = torch.tensor(0.0)
    ours = GraphSafeSGD([a], lr=0.1, momentum=mom)
    ref = torch.optim.SGD([b], lr=0.1, momentum=0.0, foreach=True)
    for i, m in enumerate([0.0, 0.9, 0.9]):
        mom.fill_(m)
        ref.param_groups[0]["momentum"] = m
        a.grad = torch.tensor([0.5, 1.5, -1.0]) * (i + 1)
        b.grad = a.grad.clone()
        ours.step()
        ref.step()
        assert torch.equal(a, b), f"step {i}: {a.tolist()} != {b.tolist()}"


@pytest.mark.parametrize("hyper_dtype", [torch.float32, torch.float64], ids=lambda d: f"tensors-{d}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64], ids=str)
@pytest.mark.parametrize("nesterov", [False, True])
def test_bit_identical_over_the_whole_ranges(nesterov, dtype, hyper_dtype):
    """Tensors of any precision, values no float32 holds, dampening below 0.5: ``1 - dampening`` and
    every weight are what torch's kernels make of the same values as Python floats."""

    def draw(step, g):
        v = spread(step, g)
        return {**v, "momentum": max(v["momentum"], 0.01), "dampening": 0.0} if nesterov else v

    ps, ts, ours, theirs = _train_pair(dtype=dtype, hyper_dtype=hyper_dtype, draw=draw, nesterov=nesterov,
                                       steps=40)
    assert_identical(ps, ts)
    assert_same_state(ours.state_dict(), theirs.state_dict())


@pytest.mark.parametrize("kinds", [(), ("lr",), ("momentum", "weight_decay"), ("dampening",)], ids=lambda k: "+".join(k) or "floats")
def test_floats_and_mixed_float_tensor_groups_bit_identical(kinds):
    ps, ts, _, _ = _train_pair(kinds=kinds, dampening=0.1)
    assert_identical(ps, ts)


def test_complex_parameters_bit_identical():
    ps, ts, _, _ = _train_pair(dtype=torch.complex64, dampening=0.1, maximize=True)
    assert_identical(ps, ts)


def test_parameters_without_gradient_get_their_buffer_late_like_torch():
    ps, ts, ours, theirs = _train_pair(none_at=(0, 1, 5), dampening=0.1)
    assert_identical(ps, ts)


@pytest.mark.parametrize("case", ["momentum", "nesterov", "dampening"])
def test_bfloat16_within_the_documented_bound(case):
    ps, ts, _, _ = _train_pair(dtype=torch.bfloat16, **CASES[case])
    for p, t in zip(ps, ts):
        assert p.dtype == torch.bfloat16
        assert (p.float() - t.float()).abs().max().item() <= 2**-4 * t.float().abs().max().item()


def test_tensor_momentum_at_zero_is_float_zero_momentum():
    """At 0 a tensor momentum steps as torch's momentum 0: no buffer in the checkpoint, dampening unused."""
    p = [torch.nn.Parameter(torch.ones(3))]
    q = [torch.nn.Parameter(torch.ones(3))]
    with_tensor = GraphSafeSGD(p, lr=0.1, momentum=torch.tensor(0.0), dampening=0.5)
    with_float = GraphSafeSGD(q, lr=0.1, momentum=0.0, dampening=0.5)
    for step in range(2):
        for opt, ps in ((with_tensor, p), (with_float, q)):
            ps[0].grad = torch.full((3,), 2.0 + step)
            opt.step()
    assert torch.equal(p[0], torch.full((3,), 1.0 - 0.1 * 2.0 - 0.1 * 3.0))
    assert torch.equal(p[0], q[0])
    assert with_tensor.state_dict()["state"] == with_float.state_dict()["state"] == {}


def test_defaults_match_torch_and_sparse_gradients_are_refused():
    p = [torch.nn.Parameter(torch.zeros(2))]
    ours, theirs = GraphSafeSGD(p), torch.optim.SGD(p)
    for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"):
        assert ours.defaults[key] == theirs.defaults[key], key
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = GraphSafeSGD(emb.parameters(), lr=torch.tensor(0.1), momentum=0.9)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(SparseGradientError, match="GraphSafeSGD does not support sparse gradients"):
        opt.step()
    assert opt.state_dict()["state"] == {}  # no buffer has started


def _scaled_pair(momenta, skipped, *, tensor_momentum, dampening=0.3, weight_decay=0.01):
    """Ours through a GradScaler and torch's foreach SGD through its own, an overflow at the steps in ``skipped``."""
    ps = params()
    ts = twins(ps)
    momentum = torch.tensor(momenta[0]) if tensor_momentum else momenta[0]
    ours = GraphSafeSGD(ps, lr=torch.tensor(0.05), momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    theirs = torch.optim.SGD(ts, lr=0.05, momentum=momenta[0], dampening=dampening, weight_decay=weight_decay,
                             foreach=True)
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2) for _ in range(2)]
    for step, m in enumerate(momenta):
        if tensor_momentum:
            momentum.fill_(m)
        else:
            ours.param_groups[0]["momentum"] = m
        theirs.param_groups[0]["momentum"] = m
        for opt, group, scaler in ((ours, ps, scalers[0]), (theirs, ts, scalers[1])):
            opt.zero_grad()
            loss = sum((p * (step + 1 + i)).sin().sum() for i, p in enumerate(group))
            if step in skipped:
                loss = loss * float("inf")  # an overflow: the step is skipped, the scale drops
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    assert scalers[0].get_scale() == scalers[1].get_scale()
    return ps, ts, ours, theirs


@pytest.mark.parametrize("tensor_momentum", [True, False], ids=["tensor", "float"])
@pytest.mark.parametrize("skipped", [(0,), (0, 1), (2, 4)], ids=str)
def test_grad_scaler_a_buffer_starts_at_the_first_applied_step(skipped, tensor_momentum):
    """torch's SGD through its scaler starts the buffer as the gradient of the first step it applies."""
    ps, ts, ours, theirs = _scaled_pair([0.9] * 6, skipped, tensor_momentum=tensor_momentum)
    assert_identical(ps, ts)
    assert_same_state(ours.state_dict(), theirs.state_dict())


def test_grad_scaler_skips_the_first_step_with_momentum():
    """A skipped step where a momentum warm-up leaves 0 starts no buffer; the next applied one does."""
    ps, ts, ours, theirs = _scaled_pair([0.0, 0.9, 0.9, 0.0, 0.9, 0.9], (1, 3), tensor_momentum=True)
    assert_identical(ps, ts)
    assert_same_state(ours.state_dict(), theirs.state_dict())


@pytest.mark.parametrize("nesterov", [False, True])
def test_compiled_step_through_momentum_zero_compiles_once(nesterov):
    """The buffers exist from construction and start on the device: one graph, whatever the momentum."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    momenta = MOMENTA["back-to-0" if nesterov else "warm-up-from-0"]
    ps = params()
    eager_ps, torch_ps = twins(ps), twins(ps)
    mom, eager_mom = torch.tensor(momenta[0]), torch.tensor(momenta[0])
    opt = GraphSafeSGD(ps, lr=torch.tensor(0.05), momentum=mom, dampening=0.0 if nesterov else 0.2, nesterov=nesterov)
    eager = GraphSafeSGD(eager_ps, lr=torch.tensor(0.05), momentum=eager_mom, dampening=0.0 if nesterov else 0.2,
                         nesterov=nesterov)
    theirs = torch.optim.SGD(torch_ps, lr=0.05, momentum=momenta[0], dampening=0.0 if nesterov else 0.2,
                             nesterov=nesterov, foreach=True)
    compiler = CompileCounterWithBackend("inductor")

    @torch.compile(fullgraph=True, backend=compiler)
    def compiled_step():
        opt.step()

    try:
        with torch._dynamo.config.patch(error_on_recompile=True):
            for step, m in enumerate(momenta):
                mom.fill_(m)
                eager_mom.fill_(m)
                theirs.param_groups[0]["momentum"] = m
                set_grads(step, ps, eager_ps, torch_ps)
                compiled_step()
                eager.step()
                theirs.step()
        assert compiler.frame_count == 1
    finally:
        torch._dynamo.reset()
    assert_identical(eager_ps, torch_ps)
    for a, b in zip(ps, eager_ps):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert [sorted(s) for s in opt.state_dict()["state"].values()] == [
        sorted(s) for s in theirs.state_dict()["state"].values()]


def _steps(pairs, momenta, first):
    """Steps ``first``... of every (optimizer, parameters, momentum tensor or None) with the same gradients."""
    for step, m in enumerate(momenta, start=first):
        for opt, _, mom in pairs:
            if mom is not None:
                mom.fill_(m)
            else:
                opt.param_groups[0]["momentum"] = m
        set_grads(step, *[ps for _, ps, _ in pairs], none=(1,) if step == 1 else ())
        for opt, _, _ in pairs:
            opt.step()


@pytest.mark.parametrize("source", ["ours", "torch"])
def test_checkpoints_say_which_buffers_started_both_ways(source):
    """Momentum 0, then 0.9 at a step where one parameter has no gradient: that parameter's buffer
    has not started. The checkpoint holds torch's buffers only; either optimizer continues from it
    as the other would."""
    import io

    first = [0.0, 0.9]  # step 1: parameter 1 has no gradient, so its buffer does not start
    rest = [0.9, 0.0, 0.5, 0.9]
    ps = params()
    mom = torch.tensor(0.0)
    ours = GraphSafeSGD(ps, lr=0.05, momentum=mom, dampening=0.2)
    ts = twins(ps)
    theirs = torch.optim.SGD(ts, lr=0.05, momentum=0.0, dampening=0.2, foreach=True)
    _steps([(ours, ps, mom), (theirs, ts, None)], first, 0)
    assert_identical(ps, ts)
    saved = (ours if source == "ours" else theirs).state_dict()
    assert sorted(saved["state"]) == [0, 2] and all(set(s) == {"momentum_buffer"} for s in saved["state"].values())
    buffer = io.BytesIO()
    torch.save(saved, buffer)

    def loaded():  # a file's copy: no tensor shared with the optimizers or the other copy
        buffer.seek(0)
        return torch.load(buffer, weights_only=True)

    loaded_ps, loaded_ts = twins(ps), twins(ts)
    loaded_mom = torch.tensor(0.3)  # replaced by the checkpoint's value, in place
    loaded_ours = GraphSafeSGD(loaded_ps, lr=0.05, momentum=loaded_mom, dampening=0.2)
    loaded_theirs = torch.optim.SGD(loaded_ts, lr=0.05, momentum=0.3, dampening=0.2, foreach=True)
    loaded_ours.load_state_dict(loaded())
    loaded_theirs.load_state_dict(loaded())
    assert loaded_ours.param_groups[0]["momentum"] is loaded_mom and loaded_mom.item() == pytest.approx(0.9)
    _steps([(ours, ps, mom), (theirs, ts, None), (loaded_ours, loaded_ps, loaded_mom),
            (loaded_theirs, loaded_ts, None)], rest, len(first))
    for other in (ts, loaded_ps, loaded_ts):
        assert_identical(ps, other)
    for opt in (ours, loaded_ours, loaded_theirs):
        assert_same_state(opt.state_dict(), theirs.state_dict())


def test_copies_and_pickles_keep_which_buffers_started():
    import copy
    import pickle

    ps = params()
    mom = torch.tensor(0.0)
    opt = GraphSafeSGD(ps, lr=0.05, momentum=mom)
    _steps([(opt, ps, mom)], [0.0, 0.9], 0)
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        twin_ps = twin.param_groups[0]["params"]
        assert [bool(twin.state[p]["momentum_started"]) for p in twin_ps] == [True, False, True]
        assert_same_state(twin.state_dict(), opt.state_dict())

"""``GraphSafeSGD`` against ``torch.optim.SGD(foreach=True)``, hyperparameters changing every step.

Float32, float64 and complex64 parameters are bit-identical (the hyperparameter tensors in the
parameters' precision); bfloat16 within the documented bound.
"""

from __future__ import annotations

import pytest
import torch
from _hyper import Hyper, assert_identical, params, set_grads, twins, values

from fusedsched import GraphSafeSGD

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability

STEPS = 25
FIELDS = ("lr", "momentum", "dampening", "weight_decay")


def _train_pair(*, dtype=torch.float32, kinds=FIELDS, momentum=True, dampening=0.0, weight_decay=0.01,
                nesterov=False, maximize=False, steps=STEPS, none_at=()):
    ps = params(dtype=dtype)
    ts = twins(ps)
    hdtype = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    hypers = [Hyper(hdtype), Hyper(hdtype)]

    def vals(step, g):
        v = values(step, g, weight_decay=weight_decay, dampening=dampening)
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
    for p, t in zip(ps, ts):
        mine, torchs = ours.state[p].get("momentum_buffer"), theirs.state[t].get("momentum_buffer")
        if torchs is not None:  # a tensor momentum keeps a buffer even at 0 ("plain")
            assert torch.equal(mine, torchs)


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


def test_tensor_momentum_keeps_a_buffer_and_float_zero_momentum_none():
    p = [torch.nn.Parameter(torch.ones(3))]
    q = [torch.nn.Parameter(torch.ones(3))]
    with_tensor = GraphSafeSGD(p, lr=0.1, momentum=torch.tensor(0.0))
    with_float = GraphSafeSGD(q, lr=0.1, momentum=0.0)
    for opt, ps in ((with_tensor, p), (with_float, q)):
        ps[0].grad = torch.full((3,), 2.0)
        opt.step()
    assert torch.equal(with_tensor.state[p[0]]["momentum_buffer"], torch.full((3,), 2.0))
    assert "momentum_buffer" not in with_float.state[q[0]]
    assert torch.equal(p[0], q[0])


def test_defaults_match_torch_and_sparse_gradients_are_refused():
    p = [torch.nn.Parameter(torch.zeros(2))]
    ours, theirs = GraphSafeSGD(p), torch.optim.SGD(p)
    for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"):
        assert ours.defaults[key] == theirs.defaults[key], key
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = GraphSafeSGD(emb.parameters(), lr=torch.tensor(0.1), momentum=0.9)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="GraphSafeSGD does not support sparse gradients"):
        opt.step()
    assert not opt.state

"""``FusedAdagrad`` does what ``torch.optim.Adagrad`` does on dense parameters, on the fused kernel.

torch's own fused Adagrad (``fused=True``, accepted on CPU) runs the same kernel, so those
comparisons are exact; against the default (foreach / single-tensor) Adagrad they are close.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

from fusedsched import FusedAdagrad
from fusedsched.optimizers import SparseGradientError

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability

OPTIONS = [{}, {"lr_decay": 0.05, "weight_decay": 0.01}, {"maximize": True}, {"initial_accumulator_value": 0.3}]


def _params(seed: int = 0, complex_: bool = False) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 2)]
    dtype = torch.complex64 if complex_ else torch.float32
    return [torch.nn.Parameter(torch.randn(*s, generator=gen, dtype=dtype)) for s in shapes]


def _twins(params):
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def _grads(params, step: int) -> None:
    for i, p in enumerate(params):
        p.grad = (p.detach() * (step + 1 + i)).sin() if not p.is_complex() else (p.detach() * (step + 1)).sin()


def _train(optimizer, params, steps: int, start: int = 0) -> None:
    for s in range(start, start + steps):
        _grads(params, s)
        optimizer.step()


@pytest.mark.parametrize("lr", [0.05, "tensor"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_same_as_torch_fused_adagrad_bit_for_bit(options, lr):
    params, twins = _params(), None
    twins = _twins(params)
    fused = FusedAdagrad(params, lr=torch.tensor(0.05) if lr == "tensor" else lr, eps=1e-8, **options)
    plain = torch.optim.Adagrad(twins, lr=0.05, eps=1e-8, fused=True, **options)
    _train(fused, params, 6)
    _train(plain, twins, 6)
    for a, b in zip(params, twins):
        assert torch.equal(a, b)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_close_to_torch_default_adagrad(options):
    params = _params()
    twins = _twins(params)
    _train(FusedAdagrad(params, lr=0.05, **options), params, 8)
    _train(torch.optim.Adagrad(twins, lr=0.05, **options), twins, 8)
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_add_param_group_gets_state_and_steps_like_torch():
    params = _params()
    twins = _twins(params)
    fused = FusedAdagrad(params[:1], lr=0.1, initial_accumulator_value=0.2)
    plain = torch.optim.Adagrad(twins[:1], lr=0.1, initial_accumulator_value=0.2, fused=True)
    _train(fused, params[:1], 2)
    _train(plain, twins[:1], 2)
    fused.add_param_group({"params": params[1:], "lr": torch.tensor(0.03), "weight_decay": 0.1})
    plain.add_param_group({"params": twins[1:], "lr": 0.03, "weight_decay": 0.1})
    assert fused.param_groups[1]["fused"] is True and fused.param_groups[1]["foreach"] is False
    assert all(fused.state[p]["step"].dtype == torch.float32 for p in params[1:])
    _train(fused, params, 5, start=2)
    _train(plain, twins, 5, start=2)
    for a, b in zip(params, twins):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="foreach=True is not an option"):
        fused.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "foreach": True})


def test_complex_parameters_as_torch_does():
    params = _params(complex_=True)
    twins = _twins(params)
    _train(FusedAdagrad(params, lr=0.05, weight_decay=0.01), params, 6)
    _train(torch.optim.Adagrad(twins, lr=0.05, weight_decay=0.01), twins, 6)
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_grad_scaler_like_torch_fused_adagrad_including_a_skipped_step():
    params = _params()
    twins = _twins(params)
    fused, plain = FusedAdagrad(params, lr=0.05), torch.optim.Adagrad(twins, lr=0.05, fused=True)
    scalers = [torch.amp.GradScaler("cpu", init_scale=4.0), torch.amp.GradScaler("cpu", init_scale=4.0)]
    for step in range(5):
        for opt, ps, scaler in ((fused, params, scalers[0]), (plain, twins, scalers[1])):
            opt.zero_grad()
            loss = sum((p * (step + 1)).sin().sum() for p in ps)
            if step == 2:
                loss = loss * float("inf")  # an overflow: the step is skipped, the scale drops
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    assert scalers[0].get_scale() == scalers[1].get_scale() < 4.0
    for a, b in zip(params, twins):
        assert torch.equal(a, b)
    assert [float(fused.state[p]["step"]) for p in params] == [float(plain.state[p]["step"]) for p in twins] == [4.0] * 3


def test_checkpoints_load_both_ways_with_torch_adagrad():
    params = _params()
    plain_params = _twins(params)
    plain = torch.optim.Adagrad(plain_params, lr=0.05)
    _train(plain, plain_params, 3)
    fused = FusedAdagrad(params, lr=0.05)
    with torch.no_grad():
        for p, q in zip(params, plain_params):
            p.copy_(q)
    fused.load_state_dict(copy.deepcopy(plain.state_dict()))  # as from a file: no shared tensors
    assert all(g["fused"] is True and g["foreach"] is False for g in fused.param_groups)
    assert all(fused.state[p]["step"].dtype == torch.float32 and float(fused.state[p]["step"]) == 3 for p in params)
    _train(fused, params, 3, start=3)
    _train(plain, plain_params, 3, start=3)
    for a, b in zip(params, plain_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

    back = torch.optim.Adagrad(_twins(params), lr=0.05)
    back.load_state_dict(fused.state_dict())
    assert len(back.state) == 3


def test_copies_share_memory_and_a_sparse_gradient_is_refused():
    params = _params()
    optimizer = FusedAdagrad(params, lr=torch.tensor(0.05))
    _train(optimizer, params, 2)
    optimizer.share_memory()
    assert all(optimizer.state[p]["sum"].is_shared() for p in params)
    for twin in (copy.deepcopy(optimizer), pickle.loads(pickle.dumps(optimizer))):
        assert all(g["fused"] is True for g in twin.param_groups)
        twin_params = twin.param_groups[0]["params"]
        _train(twin, twin_params, 1)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    optimizer.load_state_dict(torch.load(buffer, weights_only=True))
    embedding = torch.nn.Embedding(5, 2, sparse=True)
    sparse = FusedAdagrad(embedding.parameters(), lr=0.1)
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(SparseGradientError, match="FusedAdagrad does not support sparse gradients"):
        sparse.step()

"""The graph-safe optimizers in a captured CUDA graph (GPU only; skipped with a reason elsewhere).

``optimizer.step()`` is captured once with every hyperparameter a 0-dim CUDA tensor, then replayed
with the hyperparameters and the gradients rewritten in place before every replay, under
``torch.cuda.set_sync_debug_mode("error")`` (any host sync raises). Each replay reads the values
of that replay: the parameters equal an eager twin stepped with the same tensors, and are close
to torch's optimizer given the values as floats. With ``grad_scale`` / ``found_inf`` captured
too, a replay with ``found_inf`` 1 changes nothing.
"""

from __future__ import annotations

import pytest
import torch
from _cuda import NoSyncs, capture
from _hyper import Hyper, params, twins, values

from fusedsched import GraphSafeAdam, GraphSafeAdamW, GraphSafeSGD

pytestmark = pytest.mark.cuda

REPLAYS = 50
NAMES = ["adam", "adamw", "sgd"]


def _ours(name, ps, h, **options):
    if name == "sgd":
        return GraphSafeSGD(ps, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                            weight_decay=h["weight_decay"], **options)
    cls = GraphSafeAdamW if name == "adamw" else GraphSafeAdam
    return cls(ps, lr=h["lr"], betas=(h["beta1"], h["beta2"]), weight_decay=h["weight_decay"], eps=h["eps"],
               amsgrad=True, **options)


def _torch(name, ps, v):
    if name == "sgd":
        return torch.optim.SGD(ps, lr=v["lr"], momentum=v["momentum"], dampening=v["dampening"],
                               weight_decay=v["weight_decay"], foreach=True)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(ps, lr=v["lr"], betas=(v["beta1"], v["beta2"]), weight_decay=v["weight_decay"], eps=v["eps"],
               amsgrad=True, foreach=True, capturable=True)


def _cuda_params(seed=0):
    return [torch.nn.Parameter(p.detach().cuda()) for p in params(seed)]


def _grads(ps, steps):
    gen = torch.Generator(device="cuda").manual_seed(3)
    return [[torch.randn(p.shape, device="cuda", generator=gen) for p in ps] for _ in range(steps)]


@pytest.mark.parametrize("name", NAMES)
def test_captured_step_reads_new_hyperparameters_on_every_replay(name):
    h, h_eager = Hyper(device="cuda"), Hyper(device="cuda")
    for x in (h, h_eager):
        x.set(values(0, weight_decay=0.01, dampening=0.1))
    ps = _cuda_params()
    eager_ps, torch_ps = twins(ps), twins(ps)
    grads = _grads(ps, REPLAYS + 1)
    opt, eager = _ours(name, ps, h), _ours(name, eager_ps, h_eager)
    theirs = _torch(name, torch_ps, h.floats())
    for p, g in zip(ps, grads[0]):
        p.grad = g.clone()

    def warm_and_step():  # the side-stream warm-up step is the first step
        opt.step()

    graph = capture(warm_and_step, warmups=1)  # warm-up step, then the capture (which runs nothing)
    for group_ps, o in ((eager_ps, eager), (torch_ps, theirs)):
        for p, g in zip(group_ps, grads[0]):
            p.grad = g.clone()
        o.step()
    with NoSyncs():
        for step in range(1, REPLAYS + 1):
            for x in (h, h_eager):
                x.set(values(step, weight_decay=0.01, dampening=0.1))
            for p, q, g in zip(ps, eager_ps, grads[step]):
                p.grad.copy_(g)
                q.grad = g.clone()
            graph.replay()
            eager.step()
    for step in range(1, REPLAYS + 1):  # torch's optimizer with the same values as floats
        v = values(step, weight_decay=0.01, dampening=0.1)
        h_eager.set(v)
        f = h_eager.floats()
        group = theirs.param_groups[0]
        group.update({k: f[k] for k in ("lr", "weight_decay", "eps", "momentum", "dampening") if k in group})
        if "betas" in group:
            group["betas"] = (f["beta1"], f["beta2"])
        for p, g in zip(torch_ps, grads[step]):
            p.grad = g.clone()
        theirs.step()
    for a, b, c in zip(ps, eager_ps, torch_ps):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_captured_grad_scale_and_found_inf_skip_on_the_device(name):
    h = Hyper(device="cuda")
    h.set(values(0, weight_decay=0.01, dampening=0.1))
    ps = _cuda_params()
    opt = _ours(name, ps, h)
    scale, found_inf = torch.tensor(8.0, device="cuda"), torch.zeros((), device="cuda")
    for p in ps:
        p.grad = torch.randn_like(p) * 8

    def step():
        opt.grad_scale, opt.found_inf = scale, found_inf
        opt.step()

    graph = capture(step, warmups=1)
    snapshots = [[p.detach().clone() for p in ps]]
    with NoSyncs():
        for replay in range(6):
            found_inf.fill_(float(replay % 2))
            graph.replay()
            snapshots.append([p.detach().clone() for p in ps])
    for replay in range(6):
        changed = [not torch.equal(a, b) for a, b in zip(snapshots[replay], snapshots[replay + 1])]
        assert changed == [replay % 2 == 0] * len(ps), f"replay {replay} (found_inf {replay % 2})"
    if name != "sgd":
        assert all(opt.state[p]["step"].item() == 1 + 3 for p in ps)  # the warm-up step and 3 kept replays


def test_cpu_hyperparameter_tensors_with_cuda_parameters_step_eagerly():
    on_cpu, on_cuda = Hyper(), Hyper(device="cuda")
    for x in (on_cpu, on_cuda):
        x.set(values(2, weight_decay=0.01))
    ps = _cuda_params()
    qs = twins(ps)
    a, b = _ours("adamw", ps, on_cpu), _ours("adamw", qs, on_cuda)
    for step in range(3):
        for group_ps, o in ((ps, a), (qs, b)):
            for p in group_ps:
                p.grad = torch.ones_like(p) * (step + 1)
            o.step()
    for p, q in zip(ps, qs):
        assert torch.equal(p, q)

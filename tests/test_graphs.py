"""Whole-step CUDA-graph capture (GPU only; skipped with a reason elsewhere).

A captured forward + backward + optimizer.step() + scheduler.step() is replayed 1000 times under
``torch.cuda.set_sync_debug_mode("error")``: the parameters must match an eager run whose float
learning rates come from ``compute_lr``, and the device counter must read 1000 more.
"""

import pytest
import torch

from fusedsched import LearningRate, OptimizerConfig, build_optimizer, compute_lr
from fusedsched.ops import unavailable_reason

pytestmark = pytest.mark.cuda

SCHEDULE = LearningRate(
    linear_ramp_to_cosine={"learning_rate": 0.05, "final_learning_rate": 0.001, "num_ramp_steps": 50, "final_num_steps": 800}
)
OPTIMIZERS = {
    "adam": {"adam": {"lr": 0.05}},
    "sgd_momentum": {"sgd": {"lr": 0.05, "momentum": 0.9}},
    "adagrad": {"adagrad": {"lr": 0.05, "eps": 1e-10}},
}
WARMUP, REPLAYS = 3, 1000


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).cuda()


def _loss(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


def _eager_reference(name, xs, ys):
    """The same training with a plain torch optimizer and float lrs set from compute_lr."""
    model = _model()
    cls = {"adam": torch.optim.Adam, "sgd_momentum": torch.optim.SGD, "adagrad": torch.optim.Adagrad}[name]
    hyper = dict(next(iter(OPTIMIZERS[name].values())))
    opt = cls(model.parameters(), **hyper)
    for i in range(WARMUP + REPLAYS):
        # the device-mode lr at step i is float32(compute_lr(i)); schedule step i drives update i+1
        for group in opt.param_groups:
            group["lr"] = float(torch.tensor(compute_lr(SCHEDULE, i), dtype=torch.float32))
        x, y = (xs[0], ys[0]) if i < WARMUP else (xs[i - WARMUP], ys[i - WARMUP])
        opt.zero_grad(set_to_none=True)
        _loss(model, x, y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("backend", ["triton", "native", "reference"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_replayed_step_matches_eager(name, backend):
    from fusedsched.graphs import CapturedTrainingStep

    reason = unavailable_reason(backend, "cuda")
    if reason:
        pytest.skip(f"{backend} unavailable on cuda: {reason}")
    g = torch.Generator(device="cuda").manual_seed(1)
    xs = torch.randn(REPLAYS, 64, 16, device="cuda", generator=g)
    ys = torch.randn(REPLAYS, 64, 1, device="cuda", generator=g)

    model = _model()
    config = OptimizerConfig(learning_rate=SCHEDULE, **OPTIMIZERS[name])
    optimizer, scheduler = build_optimizer(model, config, backend=backend)
    assert scheduler.device_schedule and scheduler.backend == backend
    step = CapturedTrainingStep(lambda x, y: _loss(model, x, y), optimizer, scheduler, (xs[0], ys[0]), WARMUP)
    start = scheduler.step_tensor.item()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(REPLAYS):
            step.replay(xs[i], ys[i])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert scheduler.step_tensor.item() == start + REPLAYS
    assert scheduler.last_epoch == start + REPLAYS
    want = float(torch.tensor(compute_lr(SCHEDULE, start + REPLAYS), dtype=torch.float32))
    assert scheduler.get_last_lr() == [want]

    reference = _eager_reference(name, xs, ys)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)

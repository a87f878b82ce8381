"""CUDA-graph capture and replay on every backend (GPU only; skipped with a reason elsewhere).

- A captured whole training step (forward + backward + optimizer.step() + scheduler.step()) for
  Adam, SGD with momentum and Adagrad is replayed 1000 times under
  ``torch.cuda.set_sync_debug_mode("error")`` (any host sync raises): the learning rate of every
  replay equals float32(compute_lr), the device counter reads 1000 more, and the parameters match
  an eager run of a plain torch optimizer whose float learning rates come from ``compute_lr``.
- A graph holding only ``scheduler.step()`` for 1025 groups of every kind is replayed 1000 times
  from step 0 and from 2**40, under the same sync check, against float32(compute_lr).
"""

import numpy as np
import pytest
import torch
from _compare import assert_lrs_match, configs_for
from _cuda import NoSyncs, capture

from fusedsched import LearningRate, LRShim, OptimizerConfig, build_optimizer, compute_lr
from fusedsched.ops import BACKENDS, unavailable_reason

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


def _f32(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32))


def _expected(configs: list[LearningRate], steps: range) -> np.ndarray:
    """float32(compute_lr) as ``[step, group]``, computed once per distinct config."""
    columns = {id(c): np.array([compute_lr(c, s) for s in steps], np.float64).astype(np.float32) for c in configs}
    return np.stack([columns[id(c)] for c in configs], axis=1)


def _require(backend: str) -> None:
    reason = unavailable_reason(backend, "cuda")
    if reason:
        pytest.skip(f"{backend} unavailable on cuda: {reason}")


def test_triton_kernel_is_compiled_not_interpreted():
    """On CUDA the triton backend must run the compiled kernel: the interpreter would copy through the host."""
    import triton

    from fusedsched.ops import _triton

    assert not _triton.INTERPRETED
    kernels = [v for v in vars(_triton).values() if isinstance(v, triton.runtime.jit.KernelInterface)]
    assert kernels and all(isinstance(k, triton.runtime.jit.JITFunction) for k in kernels), kernels


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
            group["lr"] = _f32(compute_lr(SCHEDULE, i))
        x, y = (xs[0], ys[0]) if i < WARMUP else (xs[i - WARMUP], ys[i - WARMUP])
        opt.zero_grad(set_to_none=True)
        _loss(model, x, y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_replayed_step_matches_eager(name, backend):
    from fusedsched.shim.graphs import CapturedTrainingStep

    _require(backend)
    g = torch.Generator(device="cuda").manual_seed(1)
    xs = torch.randn(REPLAYS, 64, 16, device="cuda", generator=g)
    ys = torch.randn(REPLAYS, 64, 1, device="cuda", generator=g)

    model = _model()
    config = OptimizerConfig(learning_rate=SCHEDULE, **OPTIMIZERS[name])
    optimizer, scheduler = build_optimizer(model, config, backend=backend)
    assert scheduler.device_schedule and scheduler.backend == backend
    step = CapturedTrainingStep(lambda x, y: _loss(model, x, y), optimizer, scheduler, (xs[0], ys[0]), WARMUP)
    start = scheduler.step_tensor.item()
    assert start == WARMUP
    used = torch.full((REPLAYS,), float("nan"), device="cuda")  # the lr each replay's optimizer.step() read
    with NoSyncs():
        for i in range(REPLAYS):
            used[i].copy_(optimizer.param_groups[0]["lr"])
            step.replay(xs[i], ys[i])
    assert scheduler.step_tensor.item() == start + REPLAYS
    assert scheduler.last_epoch == start + REPLAYS
    steps = range(start, start + REPLAYS + 1)
    assert_lrs_match(used, _expected([SCHEDULE], steps)[:-1, 0], f"{backend}: lr read by each replay")
    assert_lrs_match(torch.tensor(scheduler.get_last_lr()), _expected([SCHEDULE], steps)[-1], f"{backend}: last lr")

    reference = _eager_reference(name, xs, ys)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("first", [0, 2**40])
@pytest.mark.parametrize("backend", BACKENDS)
def test_schedule_only_graph_every_kind(backend, first):
    _require(backend)
    configs = configs_for(1025)
    params = [torch.nn.Parameter(torch.zeros(1, device="cuda")) for _ in configs]
    optimizer = torch.optim.SGD([{"params": [p], "lr": 0.0} for p in params], lr=0.0)
    shim = LRShim(optimizer, {f"g{i}": c for i, c in enumerate(configs)}, device_schedule=True, backend=backend)
    graph = capture(shim.step)
    shim.step_tensor.fill_(first - 1)  # a device write: the graph reads the counter where it is
    history = torch.full((REPLAYS, len(configs)), float("nan"), device="cuda")
    with NoSyncs():
        for i in range(REPLAYS):
            graph.replay()
            history[i].copy_(shim.lr_tensor)
    assert shim.step_tensor.item() == first - 1 + REPLAYS
    assert optimizer.param_groups[5]["lr"].data_ptr() == shim.lr_tensor[5].data_ptr()
    got = history.cpu()
    one_ulp = assert_lrs_match(got, _expected(configs, range(first, first + REPLAYS)), f"{backend} from step {first}")
    assert one_ulp <= 1e-4 * got.numel(), f"{backend}: {one_ulp} of {got.numel()} values one ulp off"

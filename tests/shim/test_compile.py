"""``LRShim`` (device mode) under ``torch.compile``: the schedule advances, nothing recompiles.

A float learning rate would be a constant baked into the graph, recompiled for every new value;
the shim's rates are tensors written in place by the ``advance_`` op, which traces with
``fullgraph=True``. Torch does not trace its fused optimizer kernels (they run eagerly between
graphs), so the optimizer test compiles without ``fullgraph``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from _compare import assert_lrs_match, expected_f32
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

from fusedsched import LearningRate, LRShim, OptimizerConfig, build_optimizer, compute_lr
from fusedsched.ops import unavailable_reason

# Changes value at every one of the first 40 steps (ramp to 8, then cosine to 40).
RAMP_COSINE = LearningRate(
    linear_ramp_to_cosine={
        "learning_rate": 0.1, "final_learning_rate": 0.001, "num_ramp_steps": 8, "final_num_steps": 40
    }
)
CONFIGS = [
    RAMP_COSINE,
    LearningRate(linear_ramp_to_constant={"learning_rate": 0.07, "num_ramp_steps": 30}),
    LearningRate(piecewise_constant={"learning_rate_boundaries": [4, 9], "learning_rate_values": [0.3, 0.2, 0.1]}),
]
STEPS = 20


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _backends() -> list[str | None]:
    return [None] + [b for b in ("reference", "triton", "native") if unavailable_reason(b, "cpu") is None]


ADVANCE_OPS = ("fusedsched::advance_", "fusedsched::advance_native_")


def _advance_calls(compiler: CompileCounterWithBackend) -> int:
    """How many calls of the ``advance_`` op the graphs handed to the compiler contain."""
    return sum(
        1
        for gm in compiler.graphs
        for node in gm.graph.nodes
        if node.op == "call_function" and getattr(node.target, "name", lambda: "")() in ADVANCE_OPS
    )


@pytest.mark.parametrize("backend", _backends(), ids=lambda b: b or "auto")
def test_fullgraph_scheduler_step_advances_without_recompiles(backend):
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(3))]} for _ in CONFIGS], lr=0.5)
    shim = LRShim(optimizer, {f"g{i}": c for i, c in enumerate(CONFIGS)}, device_schedule=True, backend=backend)

    compiler = CompileCounterWithBackend("inductor")

    @torch.compile(fullgraph=True, backend=compiler)
    def advance(scheduler):
        scheduler.step()

    previous, off = shim.lr_tensor.clone(), 0
    with torch._dynamo.config.patch(error_on_recompile=True):
        for s in range(1, STEPS + 1):
            advance(shim)
            assert shim.step_tensor.item() == s
            off += assert_lrs_match(shim.lr_tensor, expected_f32(CONFIGS, s), f"step {s}")
            assert shim.lr_tensor[0] != previous[0], f"step {s}: the rate did not change"
            assert all(float(g["lr"]) == float(v) for g, v in zip(optimizer.param_groups, shim.lr_tensor))
            previous = shim.lr_tensor.clone()
    assert off <= 1e-4 * STEPS * len(CONFIGS), f"{off} rates 1 ulp off float32(compute_lr)"
    assert compiler.frame_count == 1
    assert _advance_calls(compiler) == 1, [gm.code for gm in compiler.graphs]
    # The compiled step leaves the host counter stale and says so; reading it refreshes it.
    assert shim.last_epoch == STEPS
    assert shim.get_last_lr() == [float(np.float32(compute_lr(c, STEPS))) for c in CONFIGS]


def test_recompile_check_can_fail():
    """Positive control: a rate passed as a Python float recompiles, and error_on_recompile says so."""

    @torch.compile(fullgraph=True)
    def scale(x, lr):
        return x * lr

    x = torch.ones(2)
    with torch._dynamo.config.patch(error_on_recompile=True, specialize_float=True):
        scale(x, 0.1)
        with pytest.raises(torch._dynamo.exc.RecompileError):
            scale(x, 0.2)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


HYPER = {"adam": {"lr": 0.01}, "sgd": {"lr": 0.05, "momentum": 0.9}, "adagrad": {"lr": 0.05, "eps": 1e-8}}


@pytest.mark.parametrize("name", list(HYPER))
def test_compiled_optimizer_and_scheduler_step_match_eager(name):
    cfg = OptimizerConfig(**{name: HYPER[name]}, learning_rate=RAMP_COSINE)
    model = _model()
    eager_model = copy.deepcopy(model)
    optimizer, scheduler = build_optimizer(model, cfg, device_schedule=True)
    eager_opt, eager_sched = build_optimizer(eager_model, cfg, device_schedule=True)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 4, generator=gen), torch.randn(8, 2, generator=gen)) for _ in range(STEPS + 1)]

    def backward(m, x, y):
        torch.nn.functional.mse_loss(m(x), y).backward()

    def eager_step(m, opt, sched, x, y):
        backward(m, x, y)
        opt.step()
        sched.step()
        opt.zero_grad()

    compiler = CompileCounterWithBackend("inductor")

    @torch.compile(backend=compiler)
    def update(opt, sched):
        opt.step()
        sched.step()

    # One eager step first, as before a CUDA graph capture: it allocates the optimizer state
    # (SGD's momentum buffers start as None, and torch's traced `sgd` guards on that).
    eager_step(model, optimizer, scheduler, *batches[0])
    eager_step(eager_model, eager_opt, eager_sched, *batches[0])
    off = 0
    with torch._dynamo.config.patch(error_on_recompile=True):
        for s, (x, y) in enumerate(batches[1:], start=2):
            backward(model, x, y)
            update(optimizer, scheduler)
            optimizer.zero_grad()
            eager_step(eager_model, eager_opt, eager_sched, x, y)
            off += assert_lrs_match(scheduler.lr_tensor, expected_f32([RAMP_COSINE], s), f"step {s}")
            assert float(optimizer.param_groups[0]["lr"]) == float(scheduler.lr_tensor[0])
    assert off <= 1e-4 * STEPS
    assert _advance_calls(compiler) == 1, "scheduler.step() was not compiled"
    assert scheduler.last_epoch == eager_sched.last_epoch == STEPS + 1
    start = _model()
    moved = max((a - b).abs().max().item() for a, b in zip(eager_model.parameters(), start.parameters()))
    assert moved > 1e-2, "the eager run barely trained: the comparison would prove nothing"
    for got, want in zip(model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)

"""Bytes per parameter element counted from dispatched ops (``fusedsched.tools.traffic``), and the fused
graph-safe steps held to torch's fused kernels by that count (a count of dispatched bytes, not a timing).

float32 AdamW: torch's ``_fused_adamw_`` reads p, g, m, v and writes p, m, v: 7 x 4 = 28 bytes per
element (amsgrad: + max_v read and written, 36; with a GradScaler torch also stores the unscaled
gradient, 32); SGD with momentum: reads p, g, buf and writes p, buf, 20. The graph-safe fused op,
every hyperparameter a tensor, must move no more, in one call per step.
"""

from __future__ import annotations

import pytest
import torch

from fusedsched import GraphSafeAdam, GraphSafeAdamW, GraphSafeSGD
from fusedsched.optimizers import fused as fused_ops
from fusedsched.tools.traffic import Traffic, step_traffic

N = 1031  # no other tensor of the steps below has this many elements


def _t(v: float) -> torch.Tensor:
    return torch.tensor(v)


def test_the_count_follows_each_ops_schema():
    a, b = torch.randn(N), torch.randn(N)
    with Traffic(N) as t:
        c = a + b  # reads 2, writes 1
        c.view(-1, 1).detach()  # views: nothing
        c.copy_(a)  # overwrites c: writes 1, reads a
        c.mul_(2.0)  # reads and writes c
        torch._foreach_add_([a, b], [c, c])  # reads a, b, c, c; writes a, b
        torch.zeros(3).add_(1)  # not parameter-sized: nothing
    assert (t.read, t.written) == (4 * N * (2 + 1 + 1 + 4), 4 * N * (1 + 1 + 1 + 2))
    assert t.ops == {"aten.add.Tensor": 1, "aten.copy_.default": 1, "aten.mul_.Tensor": 1, "aten._foreach_add_.List": 1}
    assert t.per_element == (t.read + t.written) / N


def test_torch_fused_counts_as_its_kernel_moves():
    """The derivation above, for torch's own fused kernels: the yardstick the fused graph-safe step is held to."""
    adamw = step_traffic(lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True), numel=N)
    assert adamw.per_element == 28 and adamw.ops == {"aten._fused_adamw_.default": 1}
    assert step_traffic(lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True, amsgrad=True), numel=N).per_element == 36
    assert step_traffic(lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True), numel=N, amp=True).per_element == 32
    sgd = step_traffic(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, fused=True), numel=N)
    assert sgd.per_element == 20
    assert step_traffic(lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True), numel=N, dtype=torch.bfloat16).per_element == 14


def test_amp_needs_a_step_that_unscales():
    with pytest.raises(ValueError, match="AdamW does not take grad_scale"):
        step_traffic(lambda ps: torch.optim.AdamW(ps, foreach=True), numel=N, amp=True)


def _adam_hyper() -> dict:
    return {"lr": _t(1e-3), "betas": (_t(0.9), _t(0.999)), "weight_decay": _t(1e-2), "eps": _t(1e-8)}


@pytest.mark.skipif(fused_ops.load() is not None, reason=f"the fused step is unavailable: {fused_ops.load()}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize(("ours", "theirs"), [
    (lambda ps: GraphSafeAdamW(ps, **_adam_hyper(), fused=True),
     lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, fused=True)),
    (lambda ps: GraphSafeAdam(ps, **_adam_hyper(), amsgrad=True, maximize=True, fused=True),
     lambda ps: torch.optim.Adam(ps, lr=1e-3, weight_decay=1e-2, amsgrad=True, maximize=True, fused=True)),
    (lambda ps: GraphSafeSGD(ps, lr=_t(0.1), momentum=_t(0.9), weight_decay=_t(1e-4), fused=True),
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True)),
    (lambda ps: GraphSafeSGD(ps, lr=_t(0.1), momentum=_t(0.9), nesterov=True, fused=True),
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, fused=True)),
], ids=["adamw", "adam-amsgrad-maximize", "sgd", "sgd-nesterov"])
def test_the_fused_graph_safe_step_moves_no_more_than_torch_fused(ours, theirs, amp, dtype):
    """Every hyperparameter a 0-dim tensor, three parameters in one group, one call per step; with a
    GradScaler ours moves 4 bytes (float32) fewer per element: it does not store the unscaled gradient."""
    mine = step_traffic(ours, numel=N, params=3, dtype=dtype, amp=amp)
    torch_fused = step_traffic(theirs, numel=N, params=3, dtype=dtype, amp=amp)
    assert sum(mine.ops.values()) == 1 and sum(torch_fused.ops.values()) == 1
    grad = torch.finfo(dtype).bits // 8
    assert mine.per_element == torch_fused.per_element - (grad if amp else 0)


@pytest.mark.skipif(fused_ops.load() is not None, reason=f"the fused step is unavailable: {fused_ops.load()}")
def test_the_foreach_graph_safe_step_moves_more_than_the_fused_one():
    """The fallback's cost, which the fused step removes (benchmarks/step_bytes.py prints every path)."""
    fused = step_traffic(lambda ps: GraphSafeAdamW(ps, **_adam_hyper(), fused=True), numel=N)
    foreach = step_traffic(lambda ps: GraphSafeAdamW(ps, **_adam_hyper(), fused=False), numel=N)
    assert foreach.per_element > 3 * fused.per_element and sum(foreach.ops.values()) > 1

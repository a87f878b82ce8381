"""A switch under a captured CUDA graph (GPU only; skipped with a reason elsewhere).

A whole training step is captured once (``CapturedTrainingStep``) and replayed; a switch between
replays rewrites the device table in place, and the next replay follows the new schedule with no
re-capture: every replay's rate is float32(compute_lr) of the hand-written ``join`` config (the
precision goal of docs/precision.md), the rate at the switch step is the same before and after
(to that goal: the rate before is the device's evaluation of the old schedule, docs/switching.md),
the replays sync nothing, and the switch itself syncs at most once (to read the step).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _compare import assert_lrs_match
from _cuda import NoSyncs

from fusedsched import LearningRate, LRShim, compute_lr
from fusedsched.ops import BACKENDS, unavailable_reason

pytestmark = pytest.mark.cuda

SCHEDULE = LearningRate(linear_ramp_to_cosine={"learning_rate": 0.05, "final_learning_rate": 0.001,
                                               "num_ramp_steps": 50, "final_num_steps": 800})
COOLDOWN = {"warmup_stable_decay": {"learning_rate": "current", "final_learning_rate": 1e-4, "num_ramp_steps": 0,
                                    "num_stable_steps": 0, "num_decay_steps": 150, "decay_shape": "linear"}}
WARMUP, BEFORE, AFTER = 3, 200, 300


def _expected(config: LearningRate, steps: range) -> np.ndarray:
    return np.array([compute_lr(config, s) for s in steps], np.float64).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_captured_step_follows_a_switch_on_its_next_replay(backend):
    from fusedsched.shim.graphs import CapturedTrainingStep

    reason = unavailable_reason(backend, "cuda")
    if reason:
        pytest.skip(f"{backend} unavailable on cuda: {reason}")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.05, device="cuda"), capturable=True)
    scheduler = LRShim(optimizer, {"all": SCHEDULE}, backend=backend, spare_segments=2)
    assert scheduler.device_schedule and scheduler.backend == backend
    x, y = torch.randn(64, 16, device="cuda"), torch.randn(64, 1, device="cuda")
    step = CapturedTrainingStep(lambda a, b: torch.nn.functional.mse_loss(model(a), b), optimizer, scheduler,
                                (x, y), WARMUP)
    table, address = scheduler._engine.table, scheduler._engine.table.data_ptr()
    used = torch.full((BEFORE + AFTER,), float("nan"), device="cuda")  # the lr each replay's optimizer.step() read
    with NoSyncs():
        for i in range(BEFORE):
            used[i].copy_(optimizer.param_groups[0]["lr"])
            step.replay()
    at = WARMUP + BEFORE
    rate_before = scheduler.lr_tensor.clone()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scheduler.switch({"all": COOLDOWN})  # reads the step the replays took: one sync at most
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 1, [str(w.message) for w in syncs]
    assert scheduler.switches[0].at == at
    assert scheduler._engine.table is table and table.data_ptr() == address  # rewritten in place
    assert_lrs_match(scheduler.lr_tensor, rate_before.cpu().numpy(), "continuity at the switch step")
    with NoSyncs():
        for i in range(BEFORE, BEFORE + AFTER):
            used[i].copy_(optimizer.param_groups[0]["lr"])
            step.replay()  # the graph captured before the switch
    assert scheduler.last_epoch == at + AFTER
    current = compute_lr(SCHEDULE, at)
    resolved = {"warmup_stable_decay": {**COOLDOWN["warmup_stable_decay"], "learning_rate": current}}
    hand = LearningRate(join={"schedules": [SCHEDULE.model_dump(exclude_none=True), resolved], "boundaries": [at]})
    steps = range(WARMUP, at + AFTER)
    assert_lrs_match(used, _expected(hand, steps), f"{backend}: the lr each replay read")
    assert_lrs_match(torch.tensor(scheduler.get_last_lr()), _expected(hand, range(at + AFTER, at + AFTER + 1)),
                     f"{backend}: last lr")

"""CUDA only: a replayed whole training step per way of moving the LR, and the schedule node alone."""

from __future__ import annotations

import pytest
import torch

from fusedsched.tools import bench

pytestmark = pytest.mark.usefixtures("require_cuda")


@pytest.fixture(scope="module")
def training(require_cuda, device):
    return bench.training_candidates(device)


def test_training_step(measure, training, training_variant):
    groups, candidates = training
    backend, step = candidates[training_variant]
    measure(step, group="training step (MLP 256x8, Adam)", candidate=training_variant, backend=backend,
            groups=groups, model="mlp width 256 depth 8")


_NODES: dict[int, dict] = {}


def test_schedule_node(measure, device, groups, node_candidate):
    if groups not in _NODES:
        _NODES.clear()
        _NODES[groups] = bench.schedule_node_candidates(groups, device)
    backend, replay = _NODES[groups][node_candidate]
    calls = bench.calibrate(replay, device, 0.005, timer=bench.cuda_event_time)
    gpu_us = bench.cuda_event_time(replay, calls, device) * 1e6
    measure(replay, group=f"graph holding only scheduler.step(), {groups} groups", candidate=node_candidate,
            backend=backend, groups=groups, gpu_us_cuda_events=gpu_us)
    torch.cuda.synchronize(device)

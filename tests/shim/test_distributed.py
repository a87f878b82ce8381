"""Distributed training on CPU: 2 processes, gloo on 127.0.0.1, DDP and FSDP2 with fused Adam.

Every rank builds its own optimizer and ``LRShim`` from the same config; nothing in fusedsched
communicates. Checked for device mode (tensor learning rates, one ``advance_`` per step) and for
host mode:

- every rank reports the same learning rates at every step, and they are the schedule's
  (``compute_lr`` exactly in host mode, within one float32 ulp in device mode);
- every rank ends with bit-identical parameters and identical scheduler state (so a checkpoint
  written by rank 0 is every rank's checkpoint);
- the learning rates equal a single-process run's exactly, and the parameters equal it to float32
  rounding: DDP and FSDP2 average the per-rank gradients of the per-rank mean loss, which is the
  gradient of the mean loss over the concatenated batch, so the single process trains on that
  batch. Only the order of the float32 sums differs (per-rank means, then the average, against one
  mean over both halves), a few ulp per gradient. Over 12 Adam steps that leaves differences
  below 1e-7 here while the parameters move by about 0.2: ``rtol=1e-5, atol=1e-6`` leaves a
  tenfold margin and still catches any real difference (a wrong rate or gradient moves them by
  far more);
- resuming mid-run from a checkpoint that rank 0 wrote (model, optimizer, scheduler), loaded by
  every rank, ends where the uninterrupted run ends.

All ranks run every scenario in one pair of spawned processes (the start-up, importing torch, is
most of the cost). Collectives time out after ``COLLECTIVE_TIMEOUT_S`` and the whole run after
``RUN_TIMEOUT_S``, so a hang fails the tests instead of blocking CI.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _compare import assert_lrs_match

import fusedsched
from fusedsched import LearningRate, LRShim, compute_lr

WORLD_SIZE = 2
STEPS = 12
RESUME_AT = 5
ROWS_PER_RANK = 4
COLLECTIVE_TIMEOUT_S = 30
RUN_TIMEOUT_S = 120
RTOL, ATOL = 1e-5, 1e-6

# Two groups with different schedules, both crossing their edges within STEPS.
SCHEDULES = {
    "encoder": LearningRate(
        linear_ramp_to_cosine={"learning_rate": 0.05, "final_learning_rate": 0.005, "num_ramp_steps": 3, "final_num_steps": 10}
    ),
    "head": LearningRate(
        piecewise_constant={"learning_rate_boundaries": [4, 8], "learning_rate_values": [0.02, 0.01, 0.002]}
    ),
}
# build_optimizer's one group (ALL_PARAMS), for the FSDP2 runs.
OPTIMIZER_CONFIG = fusedsched.load_config(
    {
        "adam": {"lr": 0.05, "betas": [0.9, 0.999], "eps": 1e-7},
        "learning_rate": {"linear_ramp_to_cosine": SCHEDULES["encoder"].linear_ramp_to_cosine.model_dump()},
    }
)

# name -> (wrapper, mode, resume from rank 0's checkpoint at RESUME_AT)
SCENARIOS = {
    "ddp-device": ("ddp", "device", False),
    "ddp-host": ("ddp", "host", False),
    "ddp-device-resume": ("ddp", "device", True),
    "ddp-host-resume": ("ddp", "host", True),
    "fsdp2-device": ("fsdp2", "device", False),
    "fsdp2-host": ("fsdp2", "host", False),
}


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(6, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.encoder(x)))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``step``'s global batch: rank r trains on rows [r * ROWS_PER_RANK, (r + 1) * ROWS_PER_RANK)."""
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(WORLD_SIZE * ROWS_PER_RANK, 6, generator=g), torch.randn(WORLD_SIZE * ROWS_PER_RANK, 3, generator=g)


def _optimizer_and_scheduler(wrapper: str, model: torch.nn.Module, inner: Net, mode: str):
    """DDP: fused Adam over two named groups and an ``LRShim``; FSDP2: ``fusedsched.build_optimizer``."""
    device_schedule = mode == "device"
    if wrapper == "fsdp2":
        return fusedsched.build_optimizer(model, OPTIMIZER_CONFIG, device_schedule=device_schedule)
    lr = torch.tensor(0.0) if device_schedule else 0.0
    groups = [{"params": list(getattr(inner, name).parameters()), "name": name} for name in SCHEDULES]
    optimizer = torch.optim.Adam(groups, lr=lr, fused=True)
    return optimizer, LRShim(optimizer, SCHEDULES, device_schedule=device_schedule)


def _schedules_of(wrapper: str) -> list[LearningRate]:
    return [OPTIMIZER_CONFIG.learning_rate] if wrapper == "fsdp2" else list(SCHEDULES.values())


def _build(wrapper: str, mode: str, seed: int, checkpoint: dict | None = None):
    """Model (wrapped on ``WORLD_SIZE`` > 1 ranks), optimizer, scheduler; loaded from ``checkpoint``."""
    torch.manual_seed(seed)
    inner = Net()
    if checkpoint is not None:
        inner.load_state_dict(checkpoint["model"])
    model: torch.nn.Module = inner
    if dist.is_initialized() and wrapper == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(inner)
    elif dist.is_initialized() and wrapper == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (WORLD_SIZE,))
        fully_shard(inner.encoder, mesh=mesh)
        fully_shard(inner, mesh=mesh)
    optimizer, scheduler = _optimizer_and_scheduler(wrapper, model, inner, mode)
    if checkpoint is not None:  # torch's order: scheduler built, then optimizer, then scheduler state
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
    return model, inner, optimizer, scheduler


def _full(param: torch.Tensor) -> torch.Tensor:
    full = param.full_tensor() if hasattr(param, "full_tensor") else param  # FSDP2 shards are DTensors
    return full.detach().clone()


def _train(scenario: str, rank: int, world_size: int, checkpoint_path: Path | None) -> dict:
    """Run ``scenario`` on this rank (``world_size`` 1: the single-process run on the whole batch)."""
    wrapper, mode, resume = SCENARIOS[scenario]
    model, inner, optimizer, scheduler = _build(wrapper, mode, seed=0)
    rows = slice(rank * ROWS_PER_RANK, (rank + 1) * ROWS_PER_RANK) if world_size > 1 else slice(None)
    lrs = [scheduler.get_last_lr()]
    for step in range(STEPS):
        if resume and step == RESUME_AT:
            if rank == 0:
                torch.save(
                    {"model": inner.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                    checkpoint_path,
                )
            dist.barrier()
            checkpoint = torch.load(checkpoint_path, weights_only=True)
            model, inner, optimizer, scheduler = _build(wrapper, mode, seed=1, checkpoint=checkpoint)
        x, y = _batch(step)
        torch.nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return {
        "lrs": lrs,
        "group_lrs": [float(group["lr"]) for group in optimizer.param_groups],
        "last_epoch": scheduler.last_epoch,
        "backend": getattr(scheduler, "backend", None) if scheduler.device_schedule else None,
        "scheduler_state": scheduler.state_dict(),
        "params": {name: _full(p) for name, p in inner.named_parameters()},
    }


def _loopback_interface() -> str | None:
    names = [name for _, name in socket.if_nameindex()]
    return next((name for name in ("lo", "lo0") if name in names), None)


def _worker(rank: int, port: int, out_dir: str) -> None:
    """One rank: join the gloo group through the parent's store, run every scenario, save the results."""
    torch.set_num_threads(1)  # two ranks on a small machine
    interface = _loopback_interface()
    if interface is not None:
        os.environ["GLOO_SOCKET_IFNAME"] = interface  # keep gloo's own connections on 127.0.0.1
    timeout = datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timeout)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD_SIZE, timeout=timeout)
    results = {}
    for scenario in SCENARIOS:
        try:
            results[scenario] = _train(scenario, rank, WORLD_SIZE, Path(out_dir) / f"{scenario}.ckpt")
        except Exception:  # recorded; the test of this scenario reports it
            results[scenario] = {"error": traceback.format_exc()}
        try:
            dist.barrier()  # the next scenario starts together even if this one failed on one rank
        except Exception:
            pass
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory) -> list[dict]:
    """Every scenario's results on every rank, from one spawned pair of processes."""
    out_dir = tmp_path_factory.mktemp("distributed")
    # The parent holds the rendezvous store on a port the OS picks: no race for a free port.
    store = dist.TCPStore("127.0.0.1", 0, None, is_master=True, wait_for_workers=False)
    context = mp.start_processes(
        _worker, args=(store.port, str(out_dir)), nprocs=WORLD_SIZE, join=False, start_method="spawn"
    )
    deadline, finished = time.monotonic() + RUN_TIMEOUT_S, False
    try:
        while not finished and time.monotonic() < deadline:  # join() returns as each rank exits
            finished = context.join(timeout=max(deadline - time.monotonic(), 0.1))
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join()
    if not finished:
        pytest.fail(f"the {WORLD_SIZE} ranks did not finish within {RUN_TIMEOUT_S} s")
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)]


def _single_process(scenario: str) -> dict:
    """The same training in this process, on each step's whole batch (no process group)."""
    base = scenario.removesuffix("-resume")  # the uninterrupted run is the reference for a resumed one
    return _train(base, rank=0, world_size=1, checkpoint_path=None)


def _same_state(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_rank_matches_a_single_process_run(rank_results, scenario):
    wrapper, mode, _ = SCENARIOS[scenario]
    ranks = [results[scenario] for results in rank_results]
    for rank, result in enumerate(ranks):
        assert "error" not in result, f"rank {rank} failed:\n{result['error']}"
    single = _single_process(scenario)
    first = ranks[0]

    # Learning rates: the schedule, the same on every rank and in the single process.
    schedules = _schedules_of(wrapper)
    for step, lrs in enumerate(first["lrs"]):
        want = [compute_lr(c, step) for c in schedules]
        if mode == "host":
            assert lrs == want, f"step {step}: {lrs} != compute_lr {want}"
        else:
            assert_lrs_match(np.array(lrs, dtype=np.float32), np.array(want).astype(np.float32), f"step {step}")
    for rank, result in enumerate(ranks):
        assert result["lrs"] == first["lrs"], f"rank {rank}'s learning rates differ from rank 0's"
        assert result["group_lrs"] == result["lrs"][-1], f"rank {rank}: optimizer lrs != get_last_lr()"
        assert result["last_epoch"] == STEPS
        assert result["backend"] == single["backend"]
    assert first["lrs"] == single["lrs"], "learning rates differ from the single-process run"

    # Parameters: bit-identical across ranks, equal to the single process up to summation order.
    for rank, result in enumerate(ranks):
        for name, value in result["params"].items():
            assert torch.equal(value, first["params"][name]), f"rank {rank}: {name} differs from rank 0"
    assert first["params"].keys() == single["params"].keys()
    for name, value in first["params"].items():
        torch.testing.assert_close(value, single["params"][name], rtol=RTOL, atol=ATOL, msg=lambda m, name=name: f"{name}: {m}")
    assert not torch.equal(first["params"]["head.weight"], _build(wrapper, mode, seed=0)[1].head.weight), (
        "the parameters never moved"
    )

    # Scheduler state: identical on every rank, so rank 0's checkpoint serves all.
    for rank, result in enumerate(ranks):
        assert _same_state(result["scheduler_state"], first["scheduler_state"]), f"rank {rank}'s scheduler state differs"

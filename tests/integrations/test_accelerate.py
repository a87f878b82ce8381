"""accelerate as a client: ``accelerator.prepare(model, optimizer, from_torch(scheduler))`` against
the stock scheduler prepared the same way.

On the CPU, one process: the rate the optimizer used at every step (float32 of the stock rate, at
most 1 ulp apart: torch's ``CosineAnnealingLR`` is recursive), the rates read for logging
(``get_recent_lr`` through ``AcceleratedScheduler.scheduler``), gradient accumulation, skipped
optimizer steps, ``AcceleratedScheduler``'s ``num_processes`` steps per step (with and without
``split_batches``; the process count is set in ``accelerate.scheduler``'s view of the state), and
``save_state`` / ``load_state`` against the uninterrupted run. Then one real 2-process run (gloo,
``MULTI_CPU``): every rank's rates are the stock scheduler's, stepped twice per step.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import types

import accelerate
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _peers import ulps32
from accelerate.state import AcceleratorState, GradientState

from fusedsched import LRShim, from_torch

BATCHES = 8


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each Accelerator starts from a fresh shared state (it is a process-wide singleton)."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def data() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8 * BATCHES, 4, generator=g), torch.randn(8 * BATCHES, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def cosine(optimizer):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30, eta_min=1e-3)


def prepare(device: bool, make=cosine, **accelerator_kwargs):
    accelerator = accelerate.Accelerator(cpu=True, **accelerator_kwargs)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = make(optimizer)
    if device:
        scheduler = from_torch(scheduler)
    return accelerator, *accelerator.prepare(model, optimizer, scheduler, data())


def train(accelerator, model, optimizer, scheduler, loader, batches: int, skip=(), save=None):
    """``(rates used, rates for logging)`` over ``batches`` batches; the optimizer steps in ``skip``
    report a skipped step (as after a gradient-scaler overflow); ``save=(k, dir)`` saves the state
    after batch k."""
    used, logged, done = [], [], 0
    while done < batches:
        for x, y in loader:
            with accelerator.accumulate(model):
                loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), y)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    used.append(float(optimizer.param_groups[0]["lr"]))
                optimizer.step()
                optimizer._is_overflow = accelerator.sync_gradients and len(used) - 1 in skip
                scheduler.step()
                optimizer.zero_grad()
            inner = scheduler.scheduler
            logged.append(inner.get_recent_lr()[0] if isinstance(inner, LRShim) else inner.get_last_lr()[0])
            done += 1
            if save and done == save[0]:
                accelerator.save_state(save[1])
            if done == batches:
                break
    return used, logged


def assert_float32_of(got, stock) -> None:
    assert len(got) == len(stock) > 0
    ulps = ulps32(np.array(got, dtype=np.float32), np.array(stock, dtype=np.float64))
    assert ulps.max() <= 1, f"{int((ulps > 0).sum())} rates differ, up to {ulps.max()} ulps"


def run(device: bool, batches: int = 100, skip=(), **accelerator_kwargs):
    accelerator, *prepared = prepare(device, **accelerator_kwargs)
    return (*train(accelerator, *prepared, batches, skip=skip), prepared[2])


@pytest.mark.parametrize("accumulation", [1, 3])
def test_prepared_shim_steps_and_logs_as_the_stock_scheduler(accumulation):
    stock_used, stock_logged, stock = run(False, gradient_accumulation_steps=accumulation)
    used, logged, scheduler = run(True, gradient_accumulation_steps=accumulation)
    assert isinstance(scheduler.scheduler, LRShim) and scheduler.scheduler.device_schedule
    # accumulating 3: 12 epochs of 3 syncs (accelerate also syncs at an epoch's end: 8 = 3 + 3 + 2), then 1 in 4 batches
    steps = 100 if accumulation == 1 else 12 * 3 + 1
    assert len(used) == scheduler.scheduler.last_epoch == stock.scheduler.last_epoch == steps
    assert len(set(used)) > 10
    assert_float32_of(used, stock_used)
    assert_float32_of(logged, stock_logged)
    assert scheduler.get_last_lr() == scheduler.scheduler.get_recent_lr()  # the passthrough, with its sync


def test_skipped_optimizer_steps_do_not_step_the_schedule():
    skip = {3, 4, 20}
    stock_used, stock_logged, stock = run(False, skip=skip)
    used, logged, scheduler = run(True, skip=skip)
    assert scheduler.scheduler.last_epoch == stock.scheduler.last_epoch == 100 - len(skip)
    assert_float32_of(used, stock_used)
    assert_float32_of(logged, stock_logged)


@pytest.mark.parametrize("split_batches, per_step", [(False, 2), (True, 1)])
def test_several_processes_step_the_schedule_as_for_the_stock_scheduler(monkeypatch, split_batches, per_step):
    # AcceleratedScheduler.step() steps num_processes times (the batch was num_processes times bigger)
    # unless split_batches; this process stands in for one of 2.
    import accelerate.scheduler as accelerated

    monkeypatch.setattr(accelerated, "AcceleratorState", lambda: types.SimpleNamespace(num_processes=2))
    config = accelerate.DataLoaderConfiguration(split_batches=split_batches)
    stock_used, stock_logged, stock = run(False, batches=40, dataloader_config=config)
    used, logged, scheduler = run(True, batches=40, dataloader_config=config)
    assert scheduler.scheduler.last_epoch == stock.scheduler.last_epoch == 40 * per_step
    assert_float32_of(used, stock_used)
    assert_float32_of(logged, stock_logged)


def test_load_state_goes_on_as_the_uninterrupted_run(tmp_path):
    accelerator, *prepared = prepare(True)
    whole_used, whole_logged = train(accelerator, *prepared, 100, save=(40, tmp_path))
    whole_model, whole_scheduler = prepared[0], prepared[2]
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    accelerator, *prepared = prepare(True)
    accelerator.load_state(tmp_path)
    assert prepared[2].scheduler.last_epoch == 40
    used, logged = train(accelerator, *prepared, 60)  # the loader restarts; its batches repeat every 8
    assert used == whole_used[40:] and logged == whole_logged[40:]
    assert prepared[2].state_dict() == whole_scheduler.state_dict()
    for a, b in zip(prepared[0].parameters(), whole_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# --- a real 2-process run ---------------------------------------------------------------------------

WORLD_SIZE = 2
RUN_TIMEOUT_S = 120


def _rank(rank: int, port: int, out_dir: str) -> None:
    """One rank: the gloo group through the parent's store, then accelerate's MULTI_CPU set-up on it."""
    names = [name for _, name in socket.if_nameindex()]
    if "lo" in names:
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE),
                      LOCAL_WORLD_SIZE=str(WORLD_SIZE), OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    torch.set_num_threads(1)
    timeout = datetime.timedelta(seconds=30)
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timeout)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD_SIZE, timeout=timeout)
    results = {}
    for device in (False, True):
        AcceleratorState._reset_state(True)  # keeps the process group
        GradientState._reset_state()
        accelerator, *prepared = prepare(device)
        used, logged = train(accelerator, *prepared, 24)
        results[device] = {"processes": accelerator.num_processes, "used": used, "logged": logged,
                           "last_epoch": prepared[2].scheduler.last_epoch,
                           "params": [p.detach().clone() for p in prepared[0].parameters()]}
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_processes_step_the_schedule_twice_per_step_as_the_stock_scheduler(tmp_path):
    store = dist.TCPStore("127.0.0.1", 0, None, is_master=True, wait_for_workers=False)
    context = mp.start_processes(_rank, args=(store.port, str(tmp_path)), nprocs=WORLD_SIZE, join=False,
                                 start_method="spawn")
    deadline, finished = time.monotonic() + RUN_TIMEOUT_S, False
    try:
        while not finished and time.monotonic() < deadline:
            finished = context.join(timeout=max(deadline - time.monotonic(), 0.1))
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert finished, f"the {WORLD_SIZE} ranks did not finish within {RUN_TIMEOUT_S} s"
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
    for results in ranks:
        stock, device = results[False], results[True]
        assert stock["processes"] == device["processes"] == WORLD_SIZE
        assert device["last_epoch"] == stock["last_epoch"] == 2 * len(device["used"]) > 0
        assert_float32_of(device["used"], stock["used"])
        assert_float32_of(device["logged"], stock["logged"])
    assert ranks[0][True]["used"] == ranks[1][True]["used"]
    for a, b in zip(ranks[0][True]["params"], ranks[1][True]["params"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # DDP kept the ranks together

"""PyTorch Lightning as a client: an ``LRShim`` from ``from_torch`` returned by
``configure_optimizers``, against the stock scheduler in the same Trainer.

A tiny model on the CPU: the rate the optimizer used at every step (float32 of the stock rate, at
most 1 ulp apart: torch's ``CosineAnnealingLR`` computes each rate from the previous one), the
rates ``LearningRateMonitor`` / ``RecentLearningRateMonitor`` log, ``interval: "step"`` and
``"epoch"`` with ``frequency``, gradient accumulation, skipped steps, and a resume from Lightning's
own checkpoint (``ckpt_path``) against the uninterrupted run; and DDP with 2 processes on the CPU
(gloo, ``ddp_spawn``), where every rank steps the schedule as one process does.
"""

from __future__ import annotations

import json
import logging
import os
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from _peers import ulps32
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import Logger

from fusedsched import LRShim, from_torch
from fusedsched.integrations.lightning import RecentLearningRateMonitor

BATCHES = 8  # per epoch


class MemoryLogger(Logger):
    name, version = "memory", "0"

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[dict] = []

    def log_metrics(self, metrics, step=None) -> None:
        # read at logging time, as Lightning's loggers do (a device tensor's .item(): a sync)
        self.metrics.append({k: float(v) for k, v in metrics.items()})

    def log_hyperparams(self, *args, **kwargs) -> None:
        pass


def cosine(optimizer):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=40, eta_min=1e-3)


def multistep(optimizer):
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 3, 7], gamma=0.5)


class Regression(pl.LightningModule):
    """Records the rate each optimizer step uses; skips the batches numbered in ``skip`` (training_step: None)."""

    def __init__(self, device: bool, make=None, interval="step", frequency=1, skip=()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)
        self.device_schedule, self.interval, self.frequency, self.skip = device, interval, frequency, set(skip)
        self.make = make or cosine
        self.used: list[float] = []
        self.skipped = 0

    def training_step(self, batch, index):
        if self.current_epoch * BATCHES + index in self.skip:
            self.skipped += 1
            return None
        x, y = batch
        return torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)

    def on_before_optimizer_step(self, optimizer) -> None:
        self.used.append(float(optimizer.param_groups[0]["lr"]))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        scheduler = self.make(optimizer)
        if self.device_schedule:
            scheduler = from_torch(scheduler)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.interval, "frequency": self.frequency}}


def data() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8 * BATCHES, 4, generator=g), torch.randn(8 * BATCHES, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def fit(device: bool, steps: int = 120, monitor=None, ckpt_path=None, checkpoints=None, trainer_kwargs=None, **module):
    """``(model, logged rates, trainer)`` after ``steps`` optimizer steps."""
    model, logger = Regression(device, **module), MemoryLogger()
    monitor = monitor or (RecentLearningRateMonitor() if device else LearningRateMonitor())
    callbacks = [monitor] + ([ModelCheckpoint(dirpath=checkpoints, every_n_train_steps=6 * BATCHES, save_top_k=-1)]
                             if checkpoints else [])
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=logger, callbacks=callbacks, log_every_n_steps=1,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=bool(checkpoints),
                         **(trainer_kwargs or {}))
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="pytorch_lightning|lightning_fabric|torch")
        trainer.fit(model, data(), ckpt_path=ckpt_path)
    logged = [m["lr-SGD"] for m in logger.metrics if "lr-SGD" in m]
    return model, logged, trainer


def assert_float32_of(got, stock, recursive: bool = True) -> None:
    """float32 of the stock rates, step for step; 1 ulp allowed where torch's are recursive."""
    assert len(got) == len(stock) > 0
    ulps = ulps32(np.array([float(v) for v in got], dtype=np.float32), np.array(stock, dtype=np.float64))
    assert ulps.max() <= (1 if recursive else 0), f"{int((ulps > 0).sum())} rates differ, up to {ulps.max()} ulps"


def _scheduler(trainer) -> object:
    return trainer.lr_scheduler_configs[0].scheduler


def test_interval_step_uses_and_logs_the_stock_rates():
    stock, stock_logged, _ = fit(False)
    model, logged, trainer = fit(True)
    assert isinstance(_scheduler(trainer), LRShim) and _scheduler(trainer).device_schedule
    assert len(model.used) == 120 and len(set(model.used)) > 40
    assert_float32_of(model.used, stock.used)
    assert all(type(v) is float for v in logged)  # read without a sync: floats, not device tensors
    assert_float32_of(logged, stock_logged)


def test_lightnings_own_monitor_logs_the_same_rates_from_the_device_buffer():
    stock, stock_logged, _ = fit(False)
    _, logged, _ = fit(True, monitor=LearningRateMonitor())
    assert_float32_of([float(v) for v in logged], stock_logged)


@pytest.mark.parametrize("interval, frequency", [("epoch", 1), ("epoch", 2), ("step", 3)])
def test_interval_and_frequency_step_the_schedule_as_for_the_stock_scheduler(interval, frequency):
    make = multistep if interval == "epoch" else cosine
    stock, stock_logged, stock_trainer = fit(False, steps=12 * BATCHES, make=make, interval=interval, frequency=frequency)
    model, logged, trainer = fit(True, steps=12 * BATCHES, make=make, interval=interval, frequency=frequency)
    assert _scheduler(trainer).last_epoch == _scheduler(stock_trainer).last_epoch > 3
    assert_float32_of(model.used, stock.used)
    assert_float32_of(logged, stock_logged)


def test_gradient_accumulation_and_skipped_steps():
    kwargs = dict(steps=40, trainer_kwargs={"accumulate_grad_batches": 3}, skip={5, 6, 17, 30, 31, 32})
    stock, stock_logged, stock_trainer = fit(False, **kwargs)
    model, logged, trainer = fit(True, **kwargs)
    assert model.skipped == stock.skipped > 0
    assert _scheduler(trainer).last_epoch == _scheduler(stock_trainer).last_epoch
    assert_float32_of(model.used, stock.used)
    assert_float32_of(logged, stock_logged)


def test_resume_from_ckpt_path_goes_on_as_the_uninterrupted_run(tmp_path):
    whole, whole_logged, whole_trainer = fit(True, checkpoints=tmp_path)
    part, part_logged, part_trainer = fit(True, ckpt_path=str(tmp_path / "epoch=5-step=48.ckpt"))
    assert isinstance(_scheduler(part_trainer), LRShim)
    assert part.used == whole.used[48:]
    assert part_logged == whole_logged[48:]
    assert _scheduler(part_trainer).state_dict() == _scheduler(whole_trainer).state_dict()
    for a, b in zip(part.parameters(), whole.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class RankRates(Regression):
    """Writes the rates this rank used, and its scheduler's step, to ``out/rank<r>.json``."""

    def __init__(self, out: str) -> None:
        super().__init__(True)
        self.out = out

    def on_train_end(self) -> None:
        last_epoch = self.trainer.lr_scheduler_configs[0].scheduler.last_epoch
        with open(os.path.join(self.out, f"rank{self.global_rank}.json"), "w") as f:
            json.dump({"used": self.used, "last_epoch": last_epoch}, f)


def test_ddp_with_two_processes_steps_the_schedule_on_every_rank_as_one_process(tmp_path):
    stock, _, _ = fit(False, steps=20)
    trainer = pl.Trainer(max_steps=20, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="pytorch_lightning|lightning_fabric|torch")
        trainer.fit(RankRates(str(tmp_path)), data())
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1] and ranks[0]["last_epoch"] == 20
    assert_float32_of(ranks[0]["used"], stock.used)

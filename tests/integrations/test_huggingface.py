"""Hugging Face's ``Trainer`` as a client: ``DeviceScheduleTrainer`` against the stock ``Trainer``
with the same arguments, for every ``lr_scheduler_type`` fusedsched evaluates on the device.

A tiny model on the CPU (no network, nothing downloaded): the rate the optimizer used at every
step is float32 of the stock rate, the logged rates are float32 of the stock logged ones, and a run
resumed from the ``Trainer``'s own checkpoint (``resume_from_checkpoint``) goes on as the
uninterrupted run did.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import transformers
from _peers import ulps32
from transformers import Trainer, TrainerCallback, TrainingArguments

from fusedsched import LRShim
from fusedsched.integrations.huggingface import SCHEDULE_TYPES, DeviceScheduleTrainer, check_schedule_type

STEPS = 120

#: Every supported type with settings of its own (warm-up 10 steps of 120 unless set here).
KWARGS = {
    "linear": {},
    "cosine": {"num_cycles": 0.7},
    "cosine_with_restarts": {"num_cycles": 3},
    "polynomial": {"lr_end": 1e-4, "power": 2.0},
    "constant": {},
    "constant_with_warmup": {},
    "inverse_sqrt": {"timescale": 15},
    "cosine_with_min_lr": {"min_lr": 1e-3},
    "cosine_warmup_with_min_lr": {"min_lr_rate": 0.1, "warmup_lr_rate": 0.2},
    "warmup_stable_decay": {"num_decay_steps": 50, "min_lr_ratio": 0.05, "decay_type": "cosine"},
    "reduce_lr_on_plateau": {"patience": 0, "factor": 0.5, "threshold": 0.05},
}
#: the types whose rates follow an evaluation metric (the Trainer must evaluate)
METRIC_TYPES = {"reduce_lr_on_plateau"}


class Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)}


class Data(torch.utils.data.Dataset):
    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(n, 4, generator=g), torch.randn(n, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class UsedRates(TrainerCallback):
    """The rate every optimizer step uses, read just before it."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.rates.append(float(optimizer.param_groups[0]["lr"]))


def train(trainer_class, out, kind="cosine", kwargs=None, resume=None, **overrides):
    """``(rates used, rates logged, trainer)`` after ``STEPS`` optimizer steps."""
    settings = dict(output_dir=str(out), use_cpu=True, report_to="none", max_steps=STEPS, per_device_train_batch_size=8,
                    learning_rate=0.05, lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs or {}, warmup_steps=10,
                    logging_steps=1, save_strategy="steps", save_steps=50, disable_tqdm=True, seed=0)
    eval_dataset = overrides.pop("eval_dataset", None)
    settings.update(overrides)
    used = UsedRates()
    trainer = trainer_class(model=Regression(), args=TrainingArguments(**settings), train_dataset=Data(), callbacks=[used],
                            eval_dataset=eval_dataset)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="transformers|accelerate|torch")  # remarks on a plain nn.Module
        trainer.train(resume_from_checkpoint=resume)
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    return used.rates, logged, trainer


def assert_float32_of(got: list[float], stock: list[float]) -> None:
    """``got`` is float32 of ``stock``, step for step (docs/precision.md: never more than 1 ulp apart,
    identical for >= 99.99%, so for all of these few hundred)."""
    assert len(got) == len(stock) > 0
    ulps = ulps32(np.array(got, dtype=np.float32), np.array(stock))
    assert not ulps.any(), f"{int((ulps > 0).sum())} rates differ; first at step {int(np.argmax(ulps > 0))}"


def test_supported_types_are_the_installed_transformers_types_with_a_step_schedule():
    known = {t.value for t in transformers.trainer_utils.SchedulerType}
    assert set(SCHEDULE_TYPES) <= known
    assert known - set(SCHEDULE_TYPES) <= {"greedy"}
    assert set(KWARGS) == set(SCHEDULE_TYPES)


@pytest.mark.parametrize("kind", SCHEDULE_TYPES)
def test_every_type_gives_the_stock_trainers_rates(kind, tmp_path):
    evals = dict(eval_strategy="steps", eval_steps=5, eval_dataset=Data(32)) if kind in METRIC_TYPES else {}
    stock_used, stock_logged, stock = train(Trainer, tmp_path / "stock", kind, KWARGS[kind], save_strategy="no", **evals)
    used, logged, trainer = train(DeviceScheduleTrainer, tmp_path / "device", kind, KWARGS[kind], save_strategy="no",
                                  **evals)
    assert isinstance(trainer.lr_scheduler, LRShim) and trainer.lr_scheduler.device_schedule
    assert not isinstance(stock.lr_scheduler, LRShim)
    assert len(used) == STEPS
    assert_float32_of(used, stock_used)
    assert_float32_of(logged, stock_logged)
    assert len(set(used)) > 1 or kind == "constant"  # the schedule moves


def test_gradient_accumulation_steps_the_schedule_once_per_optimizer_step(tmp_path):
    kw = dict(gradient_accumulation_steps=3, max_steps=40, save_strategy="no")
    stock_used, stock_logged, _ = train(Trainer, tmp_path / "stock", "linear", **kw)
    used, logged, trainer = train(DeviceScheduleTrainer, tmp_path / "device", "linear", **kw)
    assert len(used) == 40 and trainer.lr_scheduler.last_epoch == 40
    assert_float32_of(used, stock_used)
    assert_float32_of(logged, stock_logged)


@pytest.mark.parametrize("kind", ["cosine_warmup_with_min_lr", "warmup_stable_decay"])
def test_resume_from_the_trainers_checkpoint_goes_on_as_the_uninterrupted_run(kind, tmp_path):
    whole_used, whole_logged, whole = train(DeviceScheduleTrainer, tmp_path, kind, KWARGS[kind])
    part_used, part_logged, part = train(DeviceScheduleTrainer, tmp_path, kind, KWARGS[kind],
                                         resume=str(tmp_path / "checkpoint-50"))
    assert isinstance(part.lr_scheduler, LRShim)
    assert part_used == whole_used[50:]  # the same float32 rates, step for step
    assert part_logged[-(STEPS - 50):] == whole_logged[50:]
    assert part.lr_scheduler.state_dict() == whole.lr_scheduler.state_dict()
    for a, b in zip(part.model.parameters(), whole.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resumed_with_another_type_the_configured_schedule_goes_on_from_the_step_as_in_the_stock_trainer(tmp_path):
    # The stock Trainer's LambdaLR keeps no schedule in its checkpoint: the configured one goes on from
    # the saved step. The LRShim does the same (its ScheduleChangedWarning is one warning, which the
    # Trainer's reissue_pt_warnings drops). One difference: the stock first step after the resume uses
    # the rate the optimizer's checkpoint holds (the old schedule's); the LRShim's, the configured one's.
    rates = {}
    for name, trainer_class in (("stock", Trainer), ("device", DeviceScheduleTrainer)):
        train(trainer_class, tmp_path / name, "cosine", KWARGS["cosine"], max_steps=80)
        rates[name] = train(trainer_class, tmp_path / name, "linear", max_steps=80,
                            resume=str(tmp_path / name / "checkpoint-50"))[0]
    assert len(rates["device"]) == 30
    assert_float32_of(rates["device"][1:], rates["stock"][1:])
    linear_at_50 = 0.05 * (80 - 50) / (80 - 10)
    assert rates["device"][0] == np.float32(linear_at_50) != np.float32(rates["stock"][0])


@pytest.mark.parametrize("kind", ["greedy", "not_a_type"])
def test_types_without_a_device_schedule_are_refused_by_name(kind, tmp_path):
    with pytest.raises(ValueError, match=f"lr_scheduler_type='{kind}' has no device schedule"):
        check_schedule_type(kind)
    if kind == "not_a_type":
        return  # TrainingArguments refuses it itself
    trainer = DeviceScheduleTrainer(model=Regression(), train_dataset=Data(), eval_dataset=Data(), args=TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=5, lr_scheduler_type=kind, eval_strategy="steps"))
    trainer.create_optimizer()
    groups = [dict(g) for g in trainer.optimizer.param_groups]
    with pytest.raises(ValueError, match=f"lr_scheduler_type='{kind}'"):
        trainer.create_scheduler(5)
    assert trainer.lr_scheduler is None and [dict(g) for g in trainer.optimizer.param_groups] == groups


def test_settings_no_kind_represents_are_refused_and_leave_no_scheduler(tmp_path):
    trainer = DeviceScheduleTrainer(model=Regression(), train_dataset=Data(), args=TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=5, warmup_steps=0,
        lr_scheduler_type="cosine_warmup_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1}))
    trainer.create_optimizer()
    with pytest.raises(ValueError, match="one step before step 0"):
        trainer.create_scheduler(5)
    assert trainer.lr_scheduler is None


def test_a_scheduler_given_to_the_trainer_is_used_as_given(tmp_path):
    model = Regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    given = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3)
    trainer = DeviceScheduleTrainer(model=model, train_dataset=Data(), optimizers=(optimizer, given), args=TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=5))
    assert trainer.create_scheduler(5) is given

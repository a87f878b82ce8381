"""The demo: a small multi-task model trained with one schedule per tower, then the scheduler's own
cost measured against ``LambdaLR`` doing the same schedules.

The bundled config (:func:`config_path`, ``examples/demo.yaml``) also schedules AdamW's momentum
(``beta1``, OneCycleLR's cycle) and weight decay (Megatron's increment) for every group, so the
optimizer is ``GraphSafeAdamW`` and the op evaluates those rows in the same launch as the rates.
On CUDA the whole training step is captured in a CUDA graph and replayed; on CPU it runs eagerly on
one thread. Every step records each group's learning rate and scheduled hyperparameters as the
optimizer read them (one copy of the value buffer), and the loss. :mod:`fusedsched.tools.cli` checks the
options, loads the config and writes the picture and the CSV.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..shim.hyperparameters import scaled
from ..shim.scheduler import LRShim
from ..tml.builders import build_optimizer
from ..tml.config import LearningRate, OptimizerConfig, RecapOptimizerConfig
from ..tml.grouping import sanitize
from . import bench, plotting
from .models import MultiTaskModel, multi_task_batches

__all__ = ["DemoRun", "build", "config_path", "figure", "report", "train"]

DEFAULT_TOWERS = ("task_a", "task_b")  # when the config has no multi-task section


def config_path() -> Path:
    """The demo's bundled config (``fusedsched/examples/demo.yaml``)."""
    return Path(str(resources.files("fusedsched") / "examples" / "demo.yaml"))


@dataclass
class DemoRun:
    """A finished run: ``rates[name][i]`` and ``losses[i]`` belong to schedule step ``first_step + i``."""

    device: torch.device
    backend: str
    mode: str  # how each step ran, e.g. "eager, 1 CPU thread"
    warmup: int  # steps the CUDA graph's capture took before the recorded ones
    first_step: int
    elapsed: float  # seconds for the recorded steps
    rates: dict[str, np.ndarray]
    losses: np.ndarray
    schedules: dict[str, LearningRate]
    ours: str  # the fused candidate's name in ``timing``
    timing: dict[str, bench.Timing]
    syncs: float  # host syncs per scheduler.step()
    ops: float  # ops dispatched per scheduler.step()
    #: ``{key: {group: values}}``: each scheduled hyperparameter as the optimizer read it, per step
    hyperparameters: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: ``{key: {group: schedule times its multiplier}}``
    hyperparameter_schedules: dict[str, dict[str, LearningRate]] = field(default_factory=dict)
    rows: int = 0  # the op's rows: one per group's lr, one per distinct hyperparameter schedule
    optimizer: str = ""  # the optimizer's class
    update_syncs: float | None = None  # host syncs per optimizer.step() + scheduler.step() (with hyperparameters)

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def step_numbers(self) -> np.ndarray:
        return np.arange(self.first_step, self.first_step + self.steps)


def build(opt_cfg: OptimizerConfig | RecapOptimizerConfig, device: torch.device,
          backend: str | None = None) -> tuple[MultiTaskModel, Any, LRShim]:
    """The model (seeded, one tower per multi-task rate), its optimizer and the device-mode ``LRShim``.

    Raises ``ValueError`` when the config cannot drive this model (e.g. a recap config whose backbone
    schedule is null: the demo has a backbone).
    """
    rates = opt_cfg.multi_task_learning_rates
    towers = list(rates.tower_learning_rates) if rates is not None else list(DEFAULT_TOWERS)
    torch.manual_seed(0)
    model = MultiTaskModel([sanitize(t) for t in towers]).to(device)  # recap names its tower modules so
    optimizer, shim = build_optimizer(model, opt_cfg, device_schedule=True, backend=backend)
    return model, optimizer, shim


def train(model: MultiTaskModel, optimizer: Any, shim: LRShim, device: torch.device, steps: int,
          progress: bool = False) -> DemoRun:
    """``steps`` training steps on ``device``'s synthetic batches (a tqdm bar on stderr when ``progress``),
    then the scheduler's cost against ``LambdaLR`` on fresh instances of the same schedules, and its host syncs
    (with scheduled hyperparameters, also those of five more ``optimizer.step()`` + ``scheduler.step()`` of this run's own)."""
    names = shim.group_names
    xs, ys = multi_task_batches(len(model.towers), device=device)
    values_hist = torch.zeros(steps, len(shim.values_tensor), device=device)  # lrs, then hyperparameter rows
    loss_hist = torch.zeros(steps, device=device)
    train_step: Callable[[int], None]
    if device.type == "cuda":
        from ..shim.graphs import CapturedTrainingStep

        mode, warmup = "whole step captured in a CUDA graph, replayed", 3
        captured = CapturedTrainingStep(model.loss, optimizer, shim, (xs[0], ys[0]), warmup_steps=warmup)

        def train_step(i: int) -> None:
            values_hist[i].copy_(shim.values_tensor)  # the values this replay's optimizer.step() reads
            loss_hist[i].copy_(captured.replay(xs[i % len(xs)], ys[i % len(ys)]))
    else:
        mode, warmup = "eager", 0

        def train_step(i: int) -> None:
            values_hist[i].copy_(shim.values_tensor)
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss(xs[i % len(xs)], ys[i % len(ys)])
            loss.backward()
            optimizer.step()
            shim.step()
            loss_hist[i].copy_(loss.detach())

    first_step = int(shim.step_tensor.item())  # after the graph's warm-up steps, if any
    threads = torch.get_num_threads()
    if device.type == "cpu":  # a model this small gains nothing from intra-op threads, and they
        torch.set_num_threads(1)  # stall for whole time slices when other processes share the cores
        mode += ", 1 CPU thread"
    bar = tqdm(total=steps, desc="training", unit="step", file=sys.stderr, mininterval=0.1,
               dynamic_ncols=True, disable=not progress)
    try:
        bench.synchronize(device)
        start = time.perf_counter()
        for i in range(steps):
            train_step(i)
            bar.update()
        bench.synchronize(device)
        elapsed = time.perf_counter() - start
    finally:
        bar.close()
        torch.set_num_threads(threads)

    # The scheduler's own cost, against LambdaLR doing the same schedules, on fresh instances.
    ordered = [shim.lr_dict[n] for n in names]
    ours = bench.fused_name(shim.backend)
    cands = bench.scheduler_candidates(ordered, device, names=[ours, bench.LAMBDA_FLOAT])
    timing = bench.alternate({n: fn for n, (_, fn) in cands.items()}, device, rounds=7, target_s=0.003)
    syncs, ops = bench.count_host_syncs(cands[ours][1], calls=5)
    update_syncs = None
    if shim.hyperparameters:  # this run's own optimizer and scheduler, as a training step calls them

        def update() -> None:
            optimizer.step()
            shim.step()

        update_syncs = bench.count_host_syncs(update, calls=5)[0]

    values = values_hist.cpu().numpy()
    hyper: dict[str, dict[str, np.ndarray]] = {}
    hyper_schedules: dict[str, dict[str, LearningRate]] = {}
    for group, slots in shim.hyperparameter_rows.items():
        for key, slot in slots.items():
            hyper.setdefault(key, {})[group] = values[:, slot]
            multiplier = shim.multipliers.get(group, {}).get(key, 1.0)
            hyper_schedules.setdefault(key, {})[group] = scaled(shim.hyperparameters[group][key], multiplier)
    return DemoRun(device=device, backend=shim.backend, mode=mode, warmup=warmup, first_step=first_step,
                   elapsed=elapsed, rates={n: values[:, k] for k, n in enumerate(names)}, losses=loss_hist.cpu().numpy(),
                   schedules=dict(shim.lr_dict), ours=ours, timing=timing, syncs=syncs, ops=ops,
                   hyperparameters=hyper, hyperparameter_schedules=hyper_schedules, rows=values.shape[1],
                   optimizer=type(optimizer).__name__, update_syncs=update_syncs)


def figure(run: DemoRun) -> Any:
    """Every group's recorded learning rate, each scheduled hyperparameter and the loss
    (:func:`fusedsched.tools.plotting.plot_training`), outside pyplot."""
    title = f"fusedsched demo: {run.device.type}, {run.mode.split(',')[0]}, backend {run.backend}"
    return plotting.plot_training(run.first_step, run.rates, run.losses, run.schedules, title=title, pyplot=False,
                                  hyperparameters=run.hyperparameters,
                                  hyperparameter_configs=run.hyperparameter_schedules)


def report(run: DemoRun, out: str | None, skipped: str | None = None, csv: str | None = None) -> str:
    """The demo's report: training speed and loss, ``scheduler.step()`` vs LambdaLR, host syncs, and
    the files written (``out``: the picture, else ``skipped`` says why there is none; ``csv``)."""
    names, losses, steps = list(run.rates), run.losses, run.steps
    t_ours, t_stock = run.timing[run.ours], run.timing[bench.LAMBDA_FLOAT]
    ratio = t_stock.median / t_ours.median
    versus = f"{ratio:.1f}x cheaper" if ratio >= 1 else f"{1 / ratio:.1f}x more expensive"
    tail = losses[-min(10, len(losses)):].mean()
    lines = [
        f"fusedsched demo: {steps} steps on {run.device} ({run.mode}), backend {run.backend}, "
        f"{len(names)} param group(s): {', '.join(names)}",
        f"  training          {steps / run.elapsed:.1f} steps/s ({run.elapsed:.2f} s"
        f"{f', after {run.warmup} warm-up steps' if run.warmup else ''}); loss {losses[0]:.4f} -> {tail:.4f}",
    ]
    if not np.isfinite(losses).all():
        lines.append(f"  warning           the loss is not finite from step {int(np.argmin(np.isfinite(losses)))} on: check the config")
    lines += [
        f"  scheduler.step()  {t_ours.median * 1e6:.2f} us ({run.ours}) vs {t_stock.median * 1e6:.2f} us "
        f"(LambdaLR, float LRs, same schedules): {versus} "
        f"[median of {t_ours.rounds} alternated rounds, p10-p90 {t_ours.p10 * 1e6:.2f}-{t_ours.p90 * 1e6:.2f} us]",
        f"  host syncs        {run.syncs:g} per scheduler.step() (aten::_local_scalar_dense / aten::item over 5 steps; "
        f"{run.ops:g} op(s) dispatched per step)",
    ]
    keys = list(run.hyperparameters)
    if keys:
        groups = len({g for values in run.hyperparameters.values() for g in values})
        lines.append(
            f"  hyperparameters   {', '.join(keys)} of {groups} group(s) in the same launch ({run.rows - len(names)} row(s): "
            f"groups with the same schedule share one); {run.optimizer}: {run.update_syncs:g} host syncs per "
            f"optimizer.step() + scheduler.step()")
    first, last = run.first_step, run.first_step + steps - 1
    panels = "".join(f" + {key}" for key in keys)
    if out is not None:
        lines.append(f"  plot              {out}: {len(names)} LR curve(s){panels} + loss, schedule steps {first}-{last}")
    else:
        lines.append(f"  plot              skipped: {skipped}")
    if csv:
        lines.append(f"  data              {csv}: step, {len(names)} recorded LR column(s), loss")
    return "\n".join(lines)

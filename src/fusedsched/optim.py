"""Optimizers from tml configs: ``get_optimizer_class``, ``build_optimizer`` and the multi-task builder.

With ``device_schedule=True`` (the default when the model lives on CUDA) every optimizer is built
so that a whole training step, ``optimizer.step()`` and ``scheduler.step()`` included, can be
captured in a CUDA graph: float32 tensor learning rates on the params' device, Adam
``fused=True, capturable=True``, SGD ``fused=True``, and Adagrad :class:`FusedAdagrad`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer

from .adagrad import FusedAdagrad
from .config import LearningRate, MultiTaskLearningRates, OptimizerConfig
from .scheduler import LRShim

ALL_PARAMS = "ALL_PARAMS"
BACKBONE = "backbone"


def get_optimizer_class(optimizer_config: OptimizerConfig) -> type[Optimizer]:
    """The torch optimizer class for the chosen optimizer (``adam``, ``sgd`` or ``adagrad``)."""
    return {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad}[
        optimizer_config.optimizer_name
    ]


def _optimizer_kwargs(optimizer_config: OptimizerConfig, device_schedule: bool, device: torch.device) -> dict:
    name, cfg = optimizer_config.optimizer_name, optimizer_config.optimizer
    kwargs: dict[str, Any] = {"lr": cfg.lr}
    if name == "adam":
        kwargs.update(betas=cfg.betas, eps=cfg.eps)
    elif name == "sgd":
        kwargs.update(momentum=cfg.momentum)
    else:
        kwargs.update(eps=cfg.eps)
    if device_schedule:
        kwargs["lr"] = torch.tensor(float(cfg.lr), dtype=torch.float32, device=device)
        if name in ("adam", "sgd"):
            kwargs["fused"] = True
        if name == "adam" and device.type == "cuda":
            kwargs["capturable"] = True  # Adam's capture health check demands it even when fused
    return kwargs


def _make_optimizer(param_groups: list[dict], optimizer_config: OptimizerConfig, device_schedule: bool | None, device):
    device = torch.device(device) if device is not None else param_groups[0]["params"][0].device
    if device_schedule is None:
        device_schedule = device.type == "cuda"
    kwargs = _optimizer_kwargs(optimizer_config, device_schedule, device)
    cls = get_optimizer_class(optimizer_config)
    if device_schedule and cls is torch.optim.Adagrad:
        cls = FusedAdagrad
    if device_schedule:  # one float32 lr tensor per group (LRShim re-binds them to its buffer)
        param_groups = [dict(g, lr=kwargs["lr"].clone()) for g in param_groups]
    return cls(param_groups, **kwargs), device_schedule, device


def build_optimizer(
    model: torch.nn.Module,
    optimizer_config: OptimizerConfig,
    *,
    device_schedule: bool | None = None,
    backend: str | None = None,
) -> tuple[Optimizer, LRShim]:
    """One param group named ``ALL_PARAMS`` with the chosen optimizer, and its ``LRShim``.

    The schedule is ``optimizer_config.learning_rate``, or a constant at the optimizer's ``lr`` when
    unset. A config with ``multi_task_learning_rates`` is built by :func:`build_multi_task_optimizer`.
    ``device_schedule`` defaults to True when the model is on CUDA.
    """
    if optimizer_config.multi_task_learning_rates is not None:
        return build_multi_task_optimizer(model, optimizer_config, device_schedule=device_schedule, backend=backend)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    schedule = optimizer_config.learning_rate or LearningRate(constant=optimizer_config.optimizer.lr)
    optimizer, device_schedule, device = _make_optimizer(
        [{"params": params, "name": ALL_PARAMS}], optimizer_config, device_schedule, None
    )
    return optimizer, LRShim(
        optimizer, {ALL_PARAMS: schedule}, device_schedule=device_schedule, backend=backend, device=device
    )


def multi_task_param_groups(model: torch.nn.Module, towers: list[str]) -> dict[str, list[torch.nn.Parameter]]:
    """Split trainable parameters: those whose dotted name contains ``.<tower>.`` go to that tower.

    The rest form the ``backbone`` group. Raises if a parameter matches two towers or a group is empty.
    """
    groups: dict[str, list[torch.nn.Parameter]] = {tower: [] for tower in towers}
    groups[BACKBONE] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        dotted = f".{name}."
        matches = [t for t in towers if f".{t}." in dotted]
        if len(matches) > 1:
            raise ValueError(f"parameter {name!r} matches more than one tower: {matches}")
        groups[matches[0] if matches else BACKBONE].append(param)
    empty = [g for g, ps in groups.items() if not ps]
    if empty:
        raise ValueError(f"no parameters for group(s) {empty}: check the tower names against the model")
    return groups


def build_multi_task_optimizer(
    model: torch.nn.Module,
    optimizer_config: OptimizerConfig,
    multi_task_learning_rates: MultiTaskLearningRates | None = None,
    *,
    device_schedule: bool | None = None,
    backend: str | None = None,
) -> tuple[Optimizer, LRShim]:
    """One param group per tower plus ``backbone``, each with its own schedule (tml recap style).

    ``multi_task_learning_rates`` defaults to the one in ``optimizer_config``.
    """
    rates = multi_task_learning_rates or optimizer_config.multi_task_learning_rates
    if rates is None:
        raise ValueError("build_multi_task_optimizer needs multi_task_learning_rates (argument or config)")
    towers = list(rates.tower_learning_rates)
    if BACKBONE in towers:
        raise ValueError(f"tower name {BACKBONE!r} is reserved for the shared parameters")
    groups = multi_task_param_groups(model, towers)
    lr_dict = {**rates.tower_learning_rates, BACKBONE: rates.backbone_learning_rate}
    optimizer, device_schedule, device = _make_optimizer(
        [{"params": ps, "name": name} for name, ps in groups.items()], optimizer_config, device_schedule, None
    )
    return optimizer, LRShim(optimizer, lr_dict, device_schedule=device_schedule, backend=backend, device=device)

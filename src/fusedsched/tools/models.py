"""Small models and synthetic data for the demo and the benchmarks.

:class:`MultiTaskModel` has the shape of tml's recap ranking model: a shared backbone and one tower
per task. Tower parameters are named ``towers.<task>.<i>.weight``, so the dotted name contains
``.<task>.`` and :func:`fusedsched.build_multi_task_optimizer` gives each tower its own group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiTaskModel", "mlp", "multi_task_batches", "regression_batches"]


class MultiTaskModel(nn.Module):
    """A shared MLP backbone feeding one small tower per task; ``forward`` returns ``[batch, tasks]`` logits."""

    def __init__(self, towers: Sequence[str], in_features: int = 32, hidden: int = 64, tower_hidden: int = 32):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.towers = nn.ModuleDict(
            {name: nn.Sequential(nn.Linear(hidden, tower_hidden), nn.ReLU(), nn.Linear(tower_hidden, 1)) for name in towers}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        return torch.cat([tower(h) for tower in self.towers.values()], dim=1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy over every task (each task is an engagement label, as in recap)."""
        return F.binary_cross_entropy_with_logits(self(x), y)


def multi_task_batches(
    num_tasks: int,
    num_batches: int = 16,
    batch_size: int = 256,
    in_features: int = 32,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``[num_batches, batch, in_features]`` and 0/1 labels ``[num_batches, batch, num_tasks]``.

    The labels come from a fixed random teacher (a shared nonlinear feature, one readout per task),
    so the tasks are related and learnable, and the loss falls from about ``log(2)``.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_batches, batch_size, in_features, generator=gen)
    shared = torch.randn(in_features, 16, generator=gen) / math.sqrt(in_features)
    readout = torch.randn(16, num_tasks, generator=gen) * 2.0
    logits = torch.tanh(x @ shared) @ readout + torch.randn(num_tasks, generator=gen) * 0.5
    y = torch.bernoulli(torch.sigmoid(logits), generator=gen)
    return x.to(device), y.to(device)


def mlp(width: int = 256, depth: int = 8) -> nn.Sequential:
    """``depth`` Linear layers of ``width`` with ReLU between them: ``2 * depth`` parameter tensors."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(width, width))
        if i < depth - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def regression_batches(
    width: int, num_batches: int = 8, batch_size: int = 128, device: torch.device | str = "cpu", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets ``[num_batches, batch, width]`` for :func:`mlp` (targets: a fixed random map)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_batches, batch_size, width, generator=gen)
    y = torch.tanh(x @ (torch.randn(width, width, generator=gen) / math.sqrt(width)))
    return x.to(device), y.to(device)

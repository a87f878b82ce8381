"""What the graph-safe optimizers' tests share: twin parameters, gradients, hyperparameters per step.

``values(step, group)`` changes every hyperparameter at every step (a cycling beta1 as OneCycleLR
does, a rising weight decay, ...), ``spread(step, group)`` draws them over their whole ranges;
``Hyper`` holds them as 0-dim tensors (float32 unless told) written in place, and ``floats`` gives
a reference optimizer the same values as Python floats.
"""

from __future__ import annotations

import math
import random

import torch

SHAPES = [(4, 3), (3,), (2, 2)]
FIELDS = ("lr", "beta1", "beta2", "weight_decay", "eps", "momentum", "dampening")


def values(step: int, group: int = 0, *, weight_decay: float = 0.01, dampening: float = 0.0) -> dict[str, float]:
    """Every hyperparameter at ``step`` (group ``group`` gets its own values)."""
    phase = 2 * math.pi * step / 7 + group
    return {
        "lr": 1e-2 * (1.2 + math.sin(phase)) / (1 + group),
        "beta1": 0.85 + 0.1 * (0.5 + 0.5 * math.cos(phase)),  # cycles, as OneCycleLR's momentum
        "beta2": 0.95 + 0.04 * ((step + group) % 5) / 5,
        "weight_decay": weight_decay * (1 + step / 4),  # rises
        "eps": 1e-8 * (1 + (step + group) % 3),
        "momentum": 0.8 + 0.15 * (0.5 + 0.5 * math.cos(phase)),
        "dampening": dampening * (1 + (step % 2)),
    }


def spread(step: int, group: int = 0) -> dict[str, float]:
    """Every hyperparameter at ``step`` drawn over its whole range (betas, momentum and dampening in
    [0, 1), below 0.5 too), with values no float32 holds: where rounding to float32, or ``1 - x`` in
    float32, would differ from torch's arithmetic on Python floats."""
    rng = random.Random(7919 * step + group)
    return {
        "lr": rng.uniform(1e-4, 0.1),
        "beta1": rng.uniform(0.0, 0.99),
        "beta2": rng.uniform(0.0, 0.999),
        "weight_decay": rng.uniform(0.0, 0.5),
        "eps": rng.uniform(1e-9, 1e-6),
        "momentum": rng.uniform(0.0, 0.99),
        "dampening": rng.uniform(0.0, 0.99),
    }


class Hyper:
    """One group's hyperparameters as 0-dim tensors, rewritten in place by ``set``."""

    def __init__(self, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> None:
        self.t = {k: torch.zeros((), dtype=dtype, device=device) for k in FIELDS}

    def set(self, vals: dict[str, float]) -> None:
        for k, v in vals.items():
            self.t[k].fill_(v)

    def floats(self) -> dict[str, float]:
        """The values as the tensors hold them (rounded to their dtype), as Python floats."""
        return {k: v.item() for k, v in self.t.items()}

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.t[key]


def params(seed: int = 0, dtype: torch.dtype = torch.float32, shapes=SHAPES) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        return [torch.nn.Parameter(torch.randn(*s, generator=gen, dtype=dtype)) for s in shapes]
    return [torch.nn.Parameter(torch.randn(*s, generator=gen).to(dtype)) for s in shapes]


def twins(ps: list[torch.Tensor]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(p.detach().clone()) for p in ps]


def set_grads(step: int, *lists: list[torch.Tensor], none: tuple[int, ...] = ()) -> None:
    """The same gradients (a function of the step) on every list; indices in ``none`` get None."""
    gen = torch.Generator().manual_seed(1000 + step)
    first = lists[0]
    grads = [None if i in none else torch.randn(p.shape, generator=gen, dtype=p.dtype) for i, p in enumerate(first)]
    for ps in lists:
        for p, g in zip(ps, grads):
            p.grad = None if g is None else g.clone()


def assert_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for i, (x, y) in enumerate(zip(a, b)):
        assert torch.equal(x, y), f"parameter {i}: max difference {(x - y).abs().max().item()}"



"""Test helpers: learning rates from peer libraries (torch's schedulers, Hugging Face's schedule
functions, optax's and timm's documented formulas), and the comparison the peer tests share."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

EPS = np.finfo(np.float64).eps


def optimizer(lr: float | Sequence[float] = 1.0, groups: int = 1) -> torch.optim.SGD:
    """A plain SGD optimizer with ``groups`` param groups (a list of lrs gives one group each)."""
    lrs = list(lr) if isinstance(lr, (list, tuple)) else [lr] * groups
    return torch.optim.SGD(
        [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": v} for v in lrs], lr=lrs[0]
    )


def stepped(scheduler, steps: int) -> np.ndarray:
    """``scheduler``'s learning rates at its current step and the next ``steps - 1``: ``[steps, groups]``."""
    rows = [list(scheduler.get_last_lr())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps - 1):
            scheduler.optimizer.step()
            scheduler.step()
            rows.append(list(scheduler.get_last_lr()))
    return np.array([[float(v) for v in row] for row in rows], dtype=np.float64)


def torch_rates(make: Callable[[torch.optim.Optimizer], object], lr: float, steps: int) -> np.ndarray:
    """One group's learning rates from a fresh torch scheduler, steps ``0 .. steps - 1``."""
    return stepped(make(optimizer(lr)), steps)[:, 0]


# --- formulas as their libraries document them -----------------------------------------------------


def optax_exponential_decay(init_value, transition_steps, decay_rate, transition_begin=0, staircase=False,
                            end_value=None):
    """optax.schedules.exponential_decay, float64 (optax/schedules/_schedule.py); ``jnp.power``
    overflows to inf where Python's ``**`` raises."""

    def power(x, y):
        try:
            return x**y
        except OverflowError:
            return math.inf

    def schedule(count):
        decreased_count = count - transition_begin
        p = decreased_count / transition_steps
        if staircase:
            p = math.floor(p)
        value = init_value if decreased_count <= 0 else init_value * power(decay_rate, p)
        if end_value is not None:
            value = max(value, end_value) if decay_rate < 1.0 else min(value, end_value)
        return value

    return schedule


def optax_join_schedules(schedules, boundaries):
    """optax.schedules.join_schedules (optax/schedules/_join.py), for Python ints."""

    def schedule(step):
        output = schedules[0](step)
        for boundary, sched in zip(boundaries, schedules[1:]):
            output = output if step < boundary else sched(step - boundary)
        return output

    return schedule


def timm_cosine(lr_max, lr_min, t_initial, cycle_mul, cycle_decay):
    """timm.scheduler.CosineLRScheduler's ``_get_lr`` without warm-up, for one group (k_decay 1)."""

    def schedule(t):
        if cycle_mul != 1:
            i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
            t_i = cycle_mul**i * t_initial
            t_curr = t - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
        else:
            i = t // t_initial
            t_i = t_initial
            t_curr = t - (t_initial * i)
        gamma = cycle_decay**i
        lr_max_i = lr_max * gamma
        return lr_min + 0.5 * (lr_max_i - lr_min) * (1 + math.cos(math.pi * t_curr / t_i))

    return schedule


# --- comparison ----------------------------------------------------------------------------------


def ulps32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 ulps between ``a`` and ``b`` after rounding both to float32."""
    def ordered(x):
        bits = np.asarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)

    return np.abs(ordered(a) - ordered(b))


def assert_rates_match(ours, peer, steps=None, *, rel: float = 16 * EPS, what: str = "") -> None:
    """``ours`` equals the peer's rates within ``rel`` of the largest rate (float64), and in float32
    they are identical or one ulp apart."""
    ours, peer = np.asarray(ours, dtype=np.float64), np.asarray(peer, dtype=np.float64)
    assert ours.shape == peer.shape, f"{what}: shape {ours.shape} != {peer.shape}"
    steps = list(range(len(ours))) if steps is None else list(steps)
    scale = max(float(np.abs(peer).max(initial=0.0)), 1e-300)
    bad = np.flatnonzero((np.abs(ours - peer) > rel * scale) | (ulps32(ours, peer) > 1) | (np.isnan(ours) != np.isnan(peer)))
    if bad.size:
        first = "; ".join(f"step {steps[i]}: ours {ours[i]!r} peer {peer[i]!r}" for i in bad[:6])
        raise AssertionError(f"{what}: {bad.size} of {ours.size} rates differ: {first}")


# --- the other training stacks' schedulers, imported for real ------------------------------------


def timm_scheduler():
    """``timm.scheduler``, without running ``timm/__init__.py`` (it imports torchvision, whose
    registry wheels link torch's CUDA libraries and do not load with the CPU torch): ``timm`` is
    registered as a bare package over the installed one's directory (and spec), so that
    ``import timm.scheduler`` runs only that subpackage, which needs torch and numpy alone.
    Skips (``pytest.importorskip``'s reason) when timm is not installed."""
    import importlib.util
    import sys
    import types

    import pytest

    if "timm" not in sys.modules:
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.submodule_search_locations is None:
            return pytest.importorskip("timm.scheduler", reason="timm is not installed (make test installs it)")
        package = types.ModuleType("timm")
        package.__spec__, package.__path__ = spec, list(spec.submodule_search_locations)
        sys.modules["timm"] = package
    return importlib.import_module("timm.scheduler")

"""Shared test helpers: the configs every backend is checked on, the backends that run here, a
readable float32 comparison, and dispatch modes that record the ops a call dispatches and count its
host syncs."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fusedsched import LearningRate, compute_lr
from fusedsched.ops import unavailable_reason

#: the backends that run on CPU tensors here (triton under the interpreter, native where built)
CPU_BACKENDS = [b for b in ("native", "reference", "triton") if unavailable_reason(b, "cpu") is None]

# One of each kind, with values that round awkwardly (L / R inexact) and with far-away ends.
CONFIGS = [
    LearningRate(constant=0.1),
    LearningRate(constant=0.0),
    LearningRate(piecewise_constant={"learning_rate_boundaries": [3, 10, 100], "learning_rate_values": [0.3, 0.1, 0.03, 0.001]}),
    LearningRate(piecewise_constant={"learning_rate_boundaries": [0], "learning_rate_values": [1.0, 0.7]}),
    LearningRate(linear_ramp_to_constant={"learning_rate": 0.1, "num_ramp_steps": 3}),
    LearningRate(linear_ramp_to_constant={"learning_rate": 0.7, "num_ramp_steps": 1}),
    LearningRate(linear_ramp_to_cosine={"learning_rate": 0.1, "final_learning_rate": 0.001, "num_ramp_steps": 7, "final_num_steps": 150}),
    LearningRate(linear_ramp_to_cosine={"learning_rate": 3e-4, "final_learning_rate": 0.0, "num_ramp_steps": 1, "final_num_steps": 2}),
    LearningRate(linear_ramp_to_cosine={"learning_rate": 1.0, "final_learning_rate": 0.1, "num_ramp_steps": 1000, "final_num_steps": 2**41}),
    # the kinds of the big libraries; each phase boundary falls inside 0..200, or near 2**40
    LearningRate(exponential_decay={"learning_rate": 0.1, "decay_rate": 0.5, "decay_steps": 7, "num_ramp_steps": 3}),
    LearningRate(exponential_decay={"learning_rate": 0.3, "decay_rate": 0.9, "decay_steps": 3, "staircase": True, "end_learning_rate": 0.07}),
    LearningRate(exponential_decay={"learning_rate": 1e-3, "decay_rate": 1.5, "decay_steps": 10, "end_learning_rate": 0.3}),
    LearningRate(polynomial_decay={"learning_rate": 0.1, "end_learning_rate": 1e-4, "num_ramp_steps": 5, "final_num_steps": 150, "power": 2.0}),
    LearningRate(polynomial_decay={"learning_rate": 0.1, "end_learning_rate": 0.3, "final_num_steps": 40}),
    LearningRate(polynomial_decay={"learning_rate": 0.7, "num_ramp_steps": 3, "final_num_steps": 2**41, "power": 0.5}),
    LearningRate(warmup_stable_decay={"learning_rate": 0.2, "final_learning_rate": 0.002, "num_ramp_steps": 10, "num_stable_steps": 50, "num_decay_steps": 100}),
    LearningRate(warmup_stable_decay={"learning_rate": 0.3, "num_ramp_steps": 17, "num_stable_steps": 0, "num_decay_steps": 60, "decay_shape": "linear", "ramp_shape": "cosine"}),
    LearningRate(warmup_stable_decay={"learning_rate": 0.1, "final_learning_rate": 0.01, "num_ramp_steps": 9, "num_stable_steps": 9, "num_decay_steps": 2**41, "decay_shape": "1-sqrt", "ramp_shape": "1-sqrt"}),
    LearningRate(cosine_annealing={"learning_rate": 0.1, "final_learning_rate": 0.001, "num_steps": 50}),
    LearningRate(cosine_annealing={"learning_rate": 0.05, "num_ramp_steps": 5, "num_steps": 31, "num_cycles": 1.5}),
    LearningRate(cosine_annealing={"learning_rate": 0.01, "num_ramp_steps": 10, "num_steps": 100, "num_cycles": 3, "hard_restarts": True}),
    LearningRate(cosine_with_restarts={"learning_rate": 0.1, "final_learning_rate": 1e-4, "num_ramp_steps": 5, "cycle_steps": 10, "cycle_mult": 2, "cycle_decay": 0.7}),
    LearningRate(cosine_with_restarts={"learning_rate": 0.3, "cycle_steps": 7}),
    LearningRate(cosine_with_restarts={"learning_rate": 1.0, "final_learning_rate": 0.1, "cycle_steps": 1, "cycle_mult": 3, "cycle_decay": 0.99}),
    LearningRate(one_cycle={"max_learning_rate": 0.1, "total_steps": 100}),
    LearningRate(one_cycle={"max_learning_rate": 0.3, "total_steps": 77, "pct_start": 0.25, "anneal_strategy": "linear", "three_phase": True}),
    LearningRate(one_cycle={"max_learning_rate": 1.0, "total_steps": 2**41, "pct_start": 0.5}),
    LearningRate(inverse_sqrt={"learning_rate": 0.1, "num_ramp_steps": 10}),
    LearningRate(inverse_sqrt={"learning_rate": 0.02, "num_ramp_steps": 0}),
    LearningRate(inverse_sqrt={"learning_rate": 0.3, "num_ramp_steps": 40, "timescale": 3}),
    LearningRate(join={"schedules": [
        {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10}},
        {"exponential_decay": {"learning_rate": 0.1, "decay_rate": 0.8, "decay_steps": 9}},
        {"cosine_with_restarts": {"learning_rate": 0.02, "cycle_steps": 15, "cycle_mult": 2}},
    ], "boundaries": [10, 100]}),
    LearningRate(product={"schedules": [
        {"piecewise_constant": {"learning_rate_boundaries": [20, 120], "learning_rate_values": [1.0, 0.3, 0.1]}},
        {"cosine_annealing": {"learning_rate": 0.2, "final_learning_rate": 0.01, "num_steps": 45}},
    ]}),
    LearningRate(product={"schedules": [
        {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 30}},
        {"join": {"schedules": [
            {"exponential_decay": {"learning_rate": 1.0, "decay_rate": 0.95, "decay_steps": 1}},
            {"product": {"schedules": [{"constant": 0.5}, {"one_cycle": {"max_learning_rate": 1.0, "total_steps": 60, "pct_start": 0.3}}]}},
        ], "boundaries": [70]}},
    ]}),
    # DeepSpeed's logarithmic warm-up (after the others: tests index the list above)
    LearningRate(log_warmup={"learning_rate": 0.1, "num_steps": 50}),
    LearningRate(log_warmup={"learning_rate": 0.01, "initial_learning_rate": 0.3, "num_steps": 2}),
    LearningRate(log_warmup={"learning_rate": 1.0, "initial_learning_rate": 1e-3, "num_steps": 2**40 + 3}),
    # torch's CyclicLR, its three modes; a period far past 2**40
    LearningRate(cyclic={"base_learning_rate": 0.01, "max_learning_rate": 0.1, "step_size_up": 7, "step_size_down": 3}),
    LearningRate(cyclic={"base_learning_rate": 3e-4, "max_learning_rate": 0.7, "step_size_up": 4, "mode": "triangular2"}),
    LearningRate(cyclic={"base_learning_rate": 0.1, "max_learning_rate": 0.001, "step_size_up": 11, "step_size_down": 2**40,
                         "mode": "exp_range", "gamma": 0.99994}),
    # timm's tanh (one cycle; its default bounds, others, an end far past 2**40) and k-decay
    LearningRate(tanh_decay={"learning_rate": 0.1, "final_learning_rate": 1e-4, "num_steps": 50}),
    LearningRate(tanh_decay={"learning_rate": 0.3, "num_steps": 7, "lower_bound": -2.5, "upper_bound": 4.5}),
    LearningRate(tanh_decay={"learning_rate": 0.7, "final_learning_rate": 0.01, "num_steps": 2**40 + 5,
                             "lower_bound": -3.0, "upper_bound": 5.0}),
    LearningRate(cosine_annealing={"learning_rate": 0.1, "final_learning_rate": 1e-3, "num_ramp_steps": 3,
                                   "num_steps": 40, "k_decay": 2.0}),
    LearningRate(polynomial_decay={"learning_rate": 0.1, "end_learning_rate": 1e-3, "num_ramp_steps": 3,
                                   "final_num_steps": 90, "power": 2.0, "k_decay": 0.5}),
    # Megatron's exponential WSD anneal: short; to 0 over 10**7 steps across 2**40; an anneal past 2**40
    LearningRate(warmup_stable_decay={"learning_rate": 0.1, "final_learning_rate": 1e-3, "num_ramp_steps": 5,
                                      "num_stable_steps": 7, "num_decay_steps": 20, "decay_shape": "exponential"}),
    LearningRate(warmup_stable_decay={"learning_rate": 0.5, "num_ramp_steps": 0, "num_stable_steps": 2**40 - 3,
                                      "num_decay_steps": 10**7, "decay_shape": "exponential"}),
    LearningRate(warmup_stable_decay={"learning_rate": 0.3, "final_learning_rate": 0.003, "num_ramp_steps": 4,
                                      "num_stable_steps": 0, "num_decay_steps": 2**40 + 9, "decay_shape": "exponential",
                                      "ramp_shape": "cosine"}),
]

BIG_STEPS = [2**40 - 1, 2**40, 2**40 + 1, 2**40 + 12345, 10**10]


def configs_for(num_groups: int) -> list[LearningRate]:
    """``num_groups`` configs cycling through ``CONFIGS``."""
    return [CONFIGS[i % len(CONFIGS)] for i in range(num_groups)]


def f32(x: float) -> float:
    """``x`` rounded to float32, as a Python float: what a device-mode rate holds."""
    return float(np.float32(x))


def expected_f32(configs: list[LearningRate], step: int) -> np.ndarray:
    return np.array([compute_lr(c, step) for c in configs], dtype=np.float64).astype(np.float32)


def assert_lrs_match(actual: torch.Tensor | np.ndarray, expected: np.ndarray, what: str = "") -> int:
    """The precision goal (docs/precision.md) for one batch: never more than 1 float32 ulp apart, no NaN.

    Returns how many differ by exactly one ulp, so callers can check the >= 99.99% identical rate
    over all their pairs.
    """
    got = np.asarray(actual.cpu() if isinstance(actual, torch.Tensor) else actual, dtype=np.float32)
    expected = np.asarray(expected, dtype=np.float32)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    nan = np.isnan(got) != np.isnan(expected)
    ulps = np.abs(got.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))
    ulps[np.isnan(got) & np.isnan(expected)] = 0  # NaN is NaN, whatever its sign bit
    bad = np.flatnonzero(nan | (ulps > 1))
    if bad.size:
        first = ", ".join(f"[{i}] got {got[i]!r} want {expected[i]!r} ({ulps[i]} ulp)" for i in bad[:5])
        raise AssertionError(f"{what}: {bad.size} of {got.size} values off by more than 1 ulp or NaN: {first}")
    return int(np.count_nonzero(ulps == 1))


class RecordOps(TorchDispatchMode):
    """``with RecordOps() as record: ...``: ``record.seen`` names every op dispatched inside, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


class CountSyncs(TorchDispatchMode):
    """Counts ``aten::_local_scalar_dense``: every ``.item()``, ``float(t)``, ``bool(t)`` of a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))

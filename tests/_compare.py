"""Shared test helpers: the configs every backend is checked on, and a readable float32 comparison."""

from __future__ import annotations

import numpy as np
import torch

from fusedsched import LearningRate, compute_lr

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
]

BIG_STEPS = [2**40 - 1, 2**40, 2**40 + 1, 2**40 + 12345, 10**10]


def configs_for(num_groups: int) -> list[LearningRate]:
    """``num_groups`` configs cycling through ``CONFIGS``."""
    return [CONFIGS[i % len(CONFIGS)] for i in range(num_groups)]


def expected_f32(configs: list[LearningRate], step: int) -> np.ndarray:
    return np.array([compute_lr(c, step) for c in configs], dtype=np.float64).astype(np.float32)


def assert_lrs_match(actual: torch.Tensor | np.ndarray, expected: np.ndarray, what: str = "") -> int:
    """DESIGN.md's precision goal for one batch: never more than 1 float32 ulp apart, no NaN.

    Returns how many differ by exactly one ulp, so callers can check the >= 99.99% identical rate
    over all their pairs.
    """
    got = np.asarray(actual.cpu() if isinstance(actual, torch.Tensor) else actual, dtype=np.float32)
    expected = np.asarray(expected, dtype=np.float32)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    nan = np.isnan(got) != np.isnan(expected)
    ulps = np.abs(got.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))
    bad = np.flatnonzero(nan | (ulps > 1))
    if bad.size:
        first = ", ".join(f"[{i}] got {got[i]!r} want {expected[i]!r} ({ulps[i]} ulp)" for i in bad[:5])
        raise AssertionError(f"{what}: {bad.size} of {got.size} values off by more than 1 ulp or NaN: {first}")
    return int(np.count_nonzero(ulps == 1))

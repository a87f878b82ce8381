"""Compiled schedule programs, evaluated on the host, against the float64 reference ``compute_lr``."""

import math

import numpy as np
import pytest
import torch
from _compare import BIG_STEPS, CONFIGS

from fusedsched import LearningRate, compute_lr
from fusedsched.program import NUM_COLUMNS, Column, Segment, Shape, ScheduleTable, compile_schedule, evaluate_table

STEPS = list(range(0, 260)) + BIG_STEPS


def _host_lrs(table: torch.Tensor, step: int) -> np.ndarray:
    return evaluate_table(table, torch.tensor(step)).numpy()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.kind)
def test_program_agrees_with_compute_lr_in_float64(cfg):
    table = ScheduleTable.build([cfg]).table
    got = np.array([_host_lrs(table, s)[0] for s in STEPS])
    want = np.array([compute_lr(cfg, s) for s in STEPS])
    if cfg.kind == "linear_ramp_to_cosine":  # torch.cos may differ from math.cos in the last bit
        np.testing.assert_allclose(got, want, rtol=4e-16, atol=1e-300)
    else:
        np.testing.assert_array_equal(got, want)


def test_linear_ramp_to_constant_keeps_the_min_at_the_ramp_end():
    # (0.1 / 3) * 3 rounds below 0.1; the seed formula min(L, (L / R) * s) returns that, not L.
    cfg = LearningRate(linear_ramp_to_constant={"learning_rate": 0.1, "num_ramp_steps": 3})
    table = ScheduleTable.build([cfg]).table
    assert _host_lrs(table, 3)[0] == compute_lr(cfg, 3) == min(0.1, (0.1 / 3) * 3)


def test_compile_shapes_per_kind():
    cos = LearningRate(linear_ramp_to_cosine={"learning_rate": 1.0, "final_learning_rate": 0.5, "num_ramp_steps": 2, "final_num_steps": 9})
    assert compile_schedule(cos) == (
        Segment(0, Shape.LINEAR, 0.0, 1.0, end=2),
        Segment(2, Shape.COSINE, 1.0, 0.5, end=9, p=math.pi),
        Segment(10, Shape.CONSTANT, 0.5),
    )
    pw = LearningRate(piecewise_constant={"learning_rate_boundaries": [4, 8], "learning_rate_values": [3.0, 2.0, 1.0]})
    assert [(s.start, s.v0) for s in compile_schedule(pw)] == [(0, 3.0), (4, 2.0), (8, 1.0)]


def test_table_is_padded_and_laid_out_by_column():
    configs = [LearningRate(constant=0.5), CONFIGS[2]]
    table = ScheduleTable.build(configs)
    assert table.table.dtype == torch.float64
    assert table.table.shape == (4, NUM_COLUMNS, 2)
    assert table.num_groups == 2
    starts = table.table[:, Column.START]
    assert starts[:, 0].tolist() == [0.0, math.inf, math.inf, math.inf]
    assert starts[:, 1].tolist() == [0.0, 3.0, 10.0, 100.0]
    np.testing.assert_array_equal(_host_lrs(table.table, 50), [0.5, 0.03])


def test_empty_table_is_rejected():
    with pytest.raises(ValueError, match="at least one program"):
        ScheduleTable.build([])

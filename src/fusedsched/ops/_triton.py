"""The ``triton`` backend: one launch evaluates every group's schedule.

One program (``grid=(1,)``) reads the int64 step counter, adds ``increment``, walks the groups in
blocks of ``BLOCK``, evaluates each group's segment in float64 and stores float32, then writes the
counter back. A single program is what makes the counter update race-free; the work per group is
a few loads and flops, so even 10,000 groups are a handful of loop iterations.

On CPU tensors the kernel runs only under the Triton interpreter, which reads ``TRITON_INTERPRET=1``
when this module is imported (``INTERPRETED`` records it).
"""

import os

import torch
import triton
import triton.language as tl

from ..program import NUM_COLUMNS, Column, Shape

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
BLOCK = 1024


@triton.jit
def _advance_kernel(
    step_ptr,
    table_ptr,
    lrs_ptr,
    increment,
    num_groups,
    num_segments,
    NUM_COLUMNS: tl.constexpr,
    START: tl.constexpr,
    SHAPE: tl.constexpr,
    END: tl.constexpr,
    V0: tl.constexpr,
    V1: tl.constexpr,
    P: tl.constexpr,
    LINEAR: tl.constexpr,
    COSINE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    step = tl.load(step_ptr) + increment
    s = step.to(tl.float64)
    for block_start in range(0, num_groups, BLOCK):
        g = block_start + tl.arange(0, BLOCK)
        mask = g < num_groups
        start = tl.zeros([BLOCK], dtype=tl.float64)
        shape = tl.zeros([BLOCK], dtype=tl.float64)
        end = tl.full([BLOCK], 1.0, dtype=tl.float64)  # masked lanes: no 0 / 0
        v0 = tl.zeros([BLOCK], dtype=tl.float64)
        v1 = tl.zeros([BLOCK], dtype=tl.float64)
        p = tl.zeros([BLOCK], dtype=tl.float64)
        # Select each group's last segment with start <= s (padding has start = +inf).
        for k in range(0, num_segments):
            row = table_ptr + k * NUM_COLUMNS * num_groups + g
            seg_start = tl.load(row + START * num_groups, mask=mask, other=float("inf"))
            take = seg_start <= s
            start = tl.where(take, seg_start, start)
            shape = tl.where(take, tl.load(row + SHAPE * num_groups, mask=mask), shape)
            end = tl.where(take, tl.load(row + END * num_groups, mask=mask), end)
            v0 = tl.where(take, tl.load(row + V0 * num_groups, mask=mask), v0)
            v1 = tl.where(take, tl.load(row + V1 * num_groups, mask=mask), v1)
            p = tl.where(take, tl.load(row + P * num_groups, mask=mask), p)
        span = end - start
        linear = v0 + ((v1 - v0) / span) * (s - start)
        linear = tl.minimum(tl.maximum(linear, tl.minimum(v0, v1)), tl.maximum(v0, v1))
        cosine = v1 + (v0 - v1) * 0.5 * (1 + tl.cos(p * (s - start) / span))
        lr = tl.where(shape == LINEAR, linear, v0)
        lr = tl.where(shape == COSINE, cosine, lr)
        tl.store(lrs_ptr + g, lr.to(tl.float32), mask=mask)
    tl.store(step_ptr, step)


def launch(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, increment: int) -> None:
    num_segments, _, num_groups = table.shape
    _advance_kernel[(1,)](
        step,
        table,
        lrs,
        increment,
        num_groups,
        num_segments,
        NUM_COLUMNS=NUM_COLUMNS,
        START=int(Column.START),
        SHAPE=int(Column.SHAPE),
        END=int(Column.END),
        V0=int(Column.V0),
        V1=int(Column.V1),
        P=int(Column.P),
        LINEAR=int(Shape.LINEAR),
        COSINE=int(Shape.COSINE),
        BLOCK=BLOCK,
        enable_fp_fusion=False,  # no FMA: round like the reference, operation by operation
    )

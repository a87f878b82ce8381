"""Shared helpers of the CUDA tests: no host sync allowed, and a CUDA graph captured after warm-ups."""

from __future__ import annotations

from collections.abc import Callable

import torch


class NoSyncs:
    """``torch.cuda.set_sync_debug_mode("error")`` inside: any synchronizing CUDA call raises."""

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()


def capture(fn: Callable[[], object], warmups: int = 3) -> torch.cuda.CUDAGraph:
    """``fn`` run ``warmups`` times on a side stream (compiles and loads its kernels off the capture
    stream), then captured once into a graph (the capture itself runs nothing)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmups):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph

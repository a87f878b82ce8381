"""Shared helpers of the CUDA tests: no host sync allowed, and a CUDA graph captured after warm-ups."""

from __future__ import annotations

from collections.abc import Callable

import torch

from fusedsched.shim import graphs


class NoSyncs:
    """``torch.cuda.set_sync_debug_mode("error")`` inside: any synchronizing CUDA call raises."""

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()


def capture(fn: Callable[[], object], warmups: int = 3) -> torch.cuda.CUDAGraph:
    """``fn`` warmed up on a side stream, then captured once (``fusedsched.shim.graphs.capture``)."""
    return graphs.capture(fn, warmups)[0]

"""The rates of recent steps on the host, copied from the device without a sync: for logging.

A device engine makes a :class:`RecentRates` at the first ``LRShim.get_recent_lr()``; from then on
every eager step records a copy (see the class).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["RecentRates"]


class RecentRates:
    """The rates of recent steps on the host, copied without a sync: for logging.

    On CUDA, :meth:`record` (called by the step) enqueues a non-blocking copy of the rate buffer
    into one of two pinned host buffers, in turn, and records an event after it on the current
    stream; :meth:`read` returns the newest copy whose event has completed (``event.query()``,
    which never blocks). So a read gives the rates after the last step, or after an earlier one
    while the device is still behind (usually the one before: one step stale), and never a value
    older than the last one it returned. A buffer is written only by the copy two steps later,
    after the host has read it, so a read never sees a copy in flight. Steps captured into a CUDA
    graph make no copy (nor do their replays).

    On any other device a read is the buffer itself: on the CPU no sync exists (on MPS or XPU,
    each read syncs).
    """

    def __init__(self, values: torch.Tensor, step: int) -> None:
        self._values = values
        self._copies = self._copies_to_pinned_memory(values)
        self._step = step  # of the last record (read from the buffer itself where there are no copies)
        self._latest = (step, values.tolist())  # enabling: one read (on CUDA, one sync)
        if self._copies:
            self._slots = [self._new_slot() for _ in range(2)]
            self._events = [self._new_event() for _ in range(2)]
            self._order = [0, 0]  # when each slot was written (0: never); 1, 2... in record order
            self._steps = [step, step]
            self._recorded = self._taken = 0  # the newest copy made; the newest one read

    @staticmethod
    def _copies_to_pinned_memory(values: torch.Tensor) -> bool:
        return values.device.type == "cuda"

    def _new_slot(self) -> torch.Tensor:
        return torch.empty(self._values.shape, dtype=self._values.dtype, pin_memory=True)

    def _new_event(self) -> Any:
        return torch.cuda.Event()

    def _stream(self) -> Any:
        return torch.cuda.current_stream(self._values.device)

    @staticmethod
    def _capturing() -> bool:
        return torch.cuda.is_current_stream_capturing()

    def record(self, step: int) -> None:
        """Enqueue a copy of the buffer, the rates at ``step`` (CUDA); nothing elsewhere."""
        if not self._copies:
            self._step = step
            return
        if self._capturing():  # a copy captured into a CUDA graph would not be this one
            return
        self._recorded += 1
        i = self._recorded % 2
        self._slots[i].copy_(self._values, non_blocking=True)
        self._events[i].record(self._stream())  # the stream the copy (and the op) ran on
        self._order[i], self._steps[i] = self._recorded, step

    def read(self) -> tuple[int, list[float]]:
        """``(step, rates)`` of the newest completed copy (CUDA), or of the buffer now (elsewhere)."""
        if not self._copies:
            return self._step, self._values.tolist()
        for i in sorted((0, 1), key=lambda k: -self._order[k]):  # newest first
            if self._order[i] > self._taken and self._events[i].query():
                self._taken = self._order[i]
                self._latest = (self._steps[i], self._slots[i].tolist())
                break
        return self._latest

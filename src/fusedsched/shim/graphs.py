"""Capture a whole training step in a CUDA graph and replay it, schedule included.

Every kernel argument is frozen at capture, so everything that changes per step must live in
device memory at a fixed address: the inputs (copied into static tensors before each replay),
the optimizer state, and, with an ``LRShim`` in device mode, the step counter and the learning
rates. Each replay then runs forward, backward, ``optimizer.step()`` and ``scheduler.step()``,
and the schedule advances on the device with no host sync and no re-capture.

Example::

    model = Net().cuda()
    optimizer, scheduler = fusedsched.build_optimizer(model, config)  # device mode on CUDA
    step = CapturedTrainingStep(lambda x, y: loss_fn(model(x), y), optimizer, scheduler, (x0, y0))
    for x, y in loader:
        loss = step.replay(x, y)  # a static tensor, overwritten by the next replay
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import torch

from .scheduler import LRShim

__all__ = ["CapturedTrainingStep", "capture"]

T = TypeVar("T")


def capture(body: Callable[[], T], warmups: int = 3) -> tuple[torch.cuda.CUDAGraph, T]:
    """``(graph, what body returned)``: ``body`` run ``warmups`` times on a side stream, then captured once.

    The warm-ups allocate state (an optimizer's first step) and compile and load every kernel, the
    Triton one included (loading a module during capture is an error), off the capture stream; the
    capture itself runs nothing, and ``body``'s return value (its static outputs) is the captured one.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmups):
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = body()
    return graph, out


class CapturedTrainingStep:
    """forward + backward + ``optimizer.step()`` + ``scheduler.step()`` as one CUDA graph.

    Args:
        loss_fn: ``loss_fn(*inputs)`` returns the scalar loss of one batch.
        optimizer: a graph-safe optimizer (see :func:`fusedsched.build_optimizer`).
        scheduler: an ``LRShim`` in device mode (or ``None`` for a fixed learning rate).
        example_inputs: CUDA tensors; copies become the static inputs of the graph.
        warmup_steps: eager steps run first on a side stream (they are real training steps on
            ``example_inputs``). Warm-up allocates optimizer state and compiles and loads every
            kernel, the Triton one included: loading a module during capture is an error.
    """

    def __init__(
        self,
        loss_fn: Callable[..., torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scheduler: LRShim | None,
        example_inputs: Sequence[torch.Tensor],
        warmup_steps: int = 3,
    ) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CapturedTrainingStep needs CUDA; none is available")
        if scheduler is not None and not getattr(scheduler, "device_schedule", False):
            raise ValueError(
                "the scheduler must run in device mode (LRShim(device_schedule=True)): a host-mode "
                "schedule would be frozen into the graph at its capture-time value"
            )
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1 (the first step allocates state), got {warmup_steps}")
        self.loss_fn, self.optimizer, self.scheduler = loss_fn, optimizer, scheduler
        self.static_inputs = tuple(x.detach().clone() for x in example_inputs)
        self.graph, self.static_loss = capture(self._step, warmup_steps)
        self._mark_ahead()  # capture ran the Python of scheduler.step() without running its kernel

    def _step(self) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)  # in the capture: grads come from the graph's pool
        loss = self.loss_fn(*self.static_inputs)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach()

    def _mark_ahead(self) -> None:
        if self.scheduler is not None:
            self.scheduler.mark_device_ahead()

    def replay(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Copy ``inputs`` into the static inputs (none: reuse them) and run one captured step.

        Returns the static loss tensor (read it, or clone it, before the next replay).
        """
        if inputs:
            if len(inputs) != len(self.static_inputs):
                raise ValueError(f"replay takes {len(self.static_inputs)} inputs, got {len(inputs)}")
            for static, x in zip(self.static_inputs, inputs):
                static.copy_(x, non_blocking=True)
        self.graph.replay()
        self._mark_ahead()
        return self.static_loss

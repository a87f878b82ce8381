"""Where a step's skip signal comes from: a ``torch.amp.GradScaler`` or a ``found_inf`` tensor.

A scheduler told to skip leaves every schedule where it was on a step whose optimizer step was
skipped, as a loop that calls ``scheduler.step()`` only after applied optimizer steps would.
:meth:`SkipSignal.op_inputs` gives the op ``advance_`` its ``skip`` inputs, which it reads on the
device (the op's clock rule, docs/op.md; host mode reads them with the same rule, ``ops.clock``):

- a ``found_inf`` tensor (one element, float32 or bool): the op's ``skip`` flag as it is; whoever
  owns it writes it before each ``scheduler.step()``;
- a ``GradScaler``: ``update()`` multiplies the scale by ``backoff_factor`` (< 1) exactly when the
  step found an inf or NaN and otherwise keeps it or multiplies it by ``growth_factor`` (> 1), in
  place. So the step was skipped iff the scale is now below the one seen at the previous
  ``scheduler.step()`` (``previous``: a device copy; in device mode the engine's, bound to its
  launcher). The op compares the two and copies the scale into ``previous`` in the same launch.
  Before the scaler's first ``scale()`` there is no scale tensor yet: ``previous`` starts at the
  scaler's initial scale and nothing is skipped. A disabled scaler never skips.

``previous`` must follow a scale written by anything but ``update()``: :meth:`SkipSignal.resync`
copies the current scale (``LRShim.load_state_dict`` and ``LRShim.skip_steps_on`` call it), so load
the scaler's state before the scheduler's. ``update(new_scale)`` with a lower scale reads as a skip.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops import check_skip_tensor

__all__ = ["SkipSignal"]


def _is_grad_scaler(signal: Any) -> bool:
    return isinstance(signal, torch.amp.GradScaler)


class SkipSignal:
    """A step's skip inputs from a ``GradScaler`` or a ``found_inf`` tensor, on ``device``.

    Args:
        signal: a ``torch.amp.GradScaler`` (``torch.cuda.amp.GradScaler`` is one) or a one-element
            float32 or bool tensor (nonzero: the optimizer step was skipped).
        device: the step counter's device (device mode), or None (host mode: any device; each step
            reads the flag, a sync on an accelerator).
        previous: a one-element float32 tensor where a GradScaler's scale is kept between steps
            (device mode: the engine's); a new one when None.

    Raises:
        TypeError: neither a GradScaler nor a tensor. ValueError: a tensor of another dtype, shape or
            device, or a scaler for another device type (both name the value).
    """

    def __init__(self, signal: Any, device: torch.device | None, previous: torch.Tensor | None = None) -> None:
        self.check(signal, device)
        self.source = signal
        self._found_inf: torch.Tensor | None = None
        self._previous: torch.Tensor | None = None
        if _is_grad_scaler(signal):
            if signal.is_enabled():
                if previous is None:
                    previous = torch.zeros((), dtype=torch.float32, device=device or torch.device(signal._device))
                self._previous = previous
                self.resync()
        else:
            self._found_inf = signal

    @staticmethod
    def check(signal: Any, device: torch.device | None) -> None:
        """Raise ``TypeError`` / ``ValueError`` naming the value unless ``signal`` can skip steps on ``device``."""
        if _is_grad_scaler(signal):
            if device is not None and torch.device(signal._device).type != device.type:
                raise ValueError(
                    f"skip_steps_on: the GradScaler scales on {signal._device}, the step counter is on "
                    f"{device}: give the scheduler the scaler of its device"
                )
        elif isinstance(signal, torch.Tensor):
            check_skip_tensor(signal, device if device is not None else signal.device, "skip_steps_on's found_inf")
        else:
            raise TypeError(
                f"skip_steps_on takes a torch.amp.GradScaler or a one-element found_inf tensor (float32 or "
                f"bool, nonzero: skipped), got {type(signal).__name__}"
            )

    def resync(self) -> None:
        """Take the scaler's current scale as the one of the previous step (after a load); a tensor: nothing."""
        if self._previous is None:
            return
        scale = self.source._scale
        if scale is None:  # before the first scale(): the scale it will start from
            self._previous.fill_(self.source._init_scale)
        else:
            self._previous.copy_(scale.detach().reshape(()))

    def op_inputs(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(skip, previous_scale)`` for the op, which decides and records the skip itself: a
        ``found_inf`` tensor and None; a GradScaler's scale and the previous one (the op skips iff the
        scale is below it and copies the scale into it); ``(None, None)`` when nothing can be skipped
        (a disabled scaler, or no ``scale()`` yet)."""
        if self._found_inf is not None:
            return self._found_inf, None
        if self._previous is None:
            return None, None
        scale = self.source._scale
        if scale is None:
            return None, None
        return scale, self._previous

    def constant_flag(self) -> torch.Tensor | None:
        """The ``found_inf`` tensor given (the flag every step reads as it is), else None."""
        return self._found_inf

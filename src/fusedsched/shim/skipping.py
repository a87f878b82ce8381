"""Where a step's skip signal comes from: a ``torch.amp.GradScaler`` or a ``found_inf`` tensor.

A scheduler told to skip leaves every schedule where it was on a step whose optimizer step was
skipped, as a loop that calls ``scheduler.step()`` only after applied optimizer steps would.
:meth:`SkipSignal.flag` gives the op ``advance_`` its ``skip`` input, a device tensor (nonzero:
skipped) computed without a host sync:

- a ``found_inf`` tensor (one element, float32 or bool): passed to the op as it is; whoever owns it
  writes it before each ``scheduler.step()``;
- a ``GradScaler``: ``update()`` multiplies the scale by ``backoff_factor`` (< 1) exactly when the
  step found an inf or NaN and otherwise keeps it or multiplies it by ``growth_factor`` (> 1), in
  place. So the step was skipped iff the scale is now below the one seen at the previous
  ``scheduler.step()`` (``previous``, a device copy the signal owns). Device mode gives the op both
  (:meth:`SkipSignal.op_inputs`: ``skip`` the scale, ``previous_scale``), which compares them and
  copies the scale into ``previous`` in the same launch; ``flag()`` does the same with two small
  device ops (host mode, which reads it). Before the scaler's first ``scale()`` there is no scale
  tensor yet: ``previous`` starts at the scaler's initial scale and nothing is skipped. A disabled
  scaler never skips (``flag()`` is None).

``previous`` must follow a scale written by anything but ``update()``: :meth:`resync` copies the
current scale (``LRShim.load_state_dict`` and ``LRShim.skip_steps_on`` call it), so load the
scaler's state before the scheduler's. ``update(new_scale)`` with a lower scale reads as a skip.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops import check_skip_tensor

__all__ = ["SkipSignal"]


def _is_grad_scaler(signal: Any) -> bool:
    return isinstance(signal, torch.amp.GradScaler)


class SkipSignal:
    """A step's skip flag from a ``GradScaler`` or a ``found_inf`` tensor, on ``device``.

    Args:
        signal: a ``torch.amp.GradScaler`` (``torch.cuda.amp.GradScaler`` is one) or a one-element
            float32 or bool tensor (nonzero: the optimizer step was skipped).
        device: the step counter's device (device mode), or None (host mode: any device; each step
            reads the flag, a sync on an accelerator).

    Raises:
        TypeError: neither a GradScaler nor a tensor. ValueError: a tensor of another dtype, shape or
            device, or a scaler for another device type (both name the value).
    """

    def __init__(self, signal: Any, device: torch.device | None) -> None:
        self.source = signal
        self._found_inf: torch.Tensor | None = None
        self._previous: torch.Tensor | None = None
        self._skipped: torch.Tensor | None = None  # the GradScaler's flag, written in place every step
        if _is_grad_scaler(signal):
            scaler_device = torch.device(signal._device)
            if device is not None and scaler_device.type != device.type:
                raise ValueError(
                    f"skip_steps_on: the GradScaler scales on {signal._device}, the step counter is on "
                    f"{device}: give the scheduler the scaler of its device"
                )
            if signal.is_enabled():
                self._previous = torch.zeros((), dtype=torch.float32, device=device or scaler_device)
                self._skipped = torch.zeros((), dtype=torch.bool, device=self._previous.device)
                self.resync()
        elif isinstance(signal, torch.Tensor):
            check_skip_tensor(signal, device if device is not None else signal.device, "skip_steps_on's found_inf")
            self._found_inf = signal
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

    def flag(self) -> torch.Tensor | None:
        """The device flag of this step (nonzero: skipped), or None when nothing can be skipped."""
        if self._found_inf is not None:
            return self._found_inf
        if self._previous is None:  # a disabled scaler
            return None
        scale = self.source._scale
        if scale is None:  # no step was scaled yet
            return None
        scale = scale.reshape(())
        torch.lt(scale, self._previous, out=self._skipped)  # no allocation per step
        self._previous.copy_(scale)
        return self._skipped

    def op_inputs(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(skip, previous_scale)`` for the op, which decides and records the skip itself in its
        launch: a ``found_inf`` tensor and None; a GradScaler's scale and the previous one (the op
        skips iff the scale is below it and copies the scale into it); ``(None, None)`` when nothing
        can be skipped (a disabled scaler, or no ``scale()`` yet)."""
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

    def skipped(self) -> bool:
        """Host mode: whether this step was skipped (reads the flag: a sync on an accelerator)."""
        flag = self.flag()
        return flag is not None and bool(flag.item())

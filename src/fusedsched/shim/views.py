"""What an ``LRShim`` shows beyond torch's ``LRScheduler`` contract: its device tensors, its
scheduled hyperparameters' values and rows, its plateaus' states, its skip signal.

:class:`ScheduleViews` is ``LRShim``'s base: it reads the scheduler's engine (``_engine``) and rows
(``_rows``, :class:`~fusedsched.shim.hyperparameters.Rows`) and changes nothing but the plateaus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .binding import GroupBinding
from .checkpoint import checked_plateau_state
from .engine import Engine
from .hyperparameters import Rows

__all__ = ["ScheduleViews"]


class ScheduleViews:
    """The read side of an ``LRShim`` (see the module docstring)."""

    _engine: Engine
    _rows: Rows
    _binding: GroupBinding
    _catch_up: Any  #: LRShim's: takes the step from a counter that moved unseen

    @property
    def device_schedule(self) -> bool:
        """True in device mode (the groups' lrs are views of :attr:`lr_tensor`)."""
        return self._engine.on_device

    @property
    def backend(self) -> str | None:
        """The ``advance_`` backend of device mode (None in host mode)."""
        return self._engine.backend

    @property
    def lr_tensor(self) -> torch.Tensor:
        """Device mode: the float32 rates, one per group (reading it never syncs); the first rows of
        :attr:`values_tensor`."""
        return self._device_only("lr_tensor").lrs

    @property
    def values_tensor(self) -> torch.Tensor:
        """Device mode: the whole float32 buffer, the rates then the scheduled hyperparameters' rows
        (:attr:`hyperparameter_rows`)."""
        return self._device_only("values_tensor").values

    @property
    def step_tensor(self) -> torch.Tensor:
        """Device mode: the int64 step counter."""
        return self._device_only("step_tensor").counter

    def _device_only(self, what: str) -> Any:
        if not self._engine.on_device:
            raise RuntimeError(f"{what} exists only in device mode (device_schedule=True)")
        return self._engine

    @property
    def skip_signal(self) -> Any:
        """What :meth:`skip_steps_on` was given (a GradScaler or a tensor), or None."""
        return None if self._engine.skip is None else self._engine.skip.source

    def get_last_hyperparameters(self) -> dict[str, dict[str, float]]:
        """``{group: {key: value}}`` of every scheduled hyperparameter, multipliers applied (device mode: a
        sync); ``key`` as given to ``hyperparameters`` (``beta1`` for ``betas[0]``)."""
        self._binding.verify()
        return self._rows.by_group(self._engine.all_floats())

    @property
    def hyperparameter_rows(self) -> dict[str, dict[str, int]]:
        """``{group: {key: i}}``: each scheduled hyperparameter's element of :attr:`values_tensor`
        (groups with the same schedule and multiplier of a key share one)."""
        return self._rows.by_group(range(len(self._rows.configs)))

    @property
    def has_plateau(self) -> bool:
        """Whether some schedule holds a ``plateau`` (then ``step(x)`` takes ``x`` as its metric)."""
        return bool(self._engine.plateau_rows)

    def plateau_states(self) -> dict[tuple[str, str], list[float]]:
        """``{(group, key): [value, best, bad_epochs, cooldown_left]}`` of every plateau (device mode: a
        sync); ``key`` ``"lr"`` or a scheduled hyperparameter, ``value`` before a multiplier."""
        names = self._rows.names()
        return {names[row]: state for row, state in self._engine.plateau_states().items()}

    def load_plateau_states(self, states: Mapping[tuple[str, str], list[float]]) -> None:
        """Set plateaus' states (as :meth:`plateau_states` gives them) and the rates at the current step."""
        try:
            rows = self._rows.plateau_rows(states, self._engine.plateau_rows)
        except ValueError as exc:
            raise ValueError(f"load_plateau_states: {exc}") from None
        checked = {rows[key]: checked_plateau_state(list(s), f"load_plateau_states: states[{key!r}]")
                   for key, s in states.items()}  # every state checked before any is written
        self._engine.load_plateau_states(checked)
        if self._engine.step >= 0:
            self._catch_up()
            self._engine.restore(self._engine.step)

"""What an ``LRShim`` shows: the ``LRScheduler`` contract's rates (``get_lr``, ``get_last_lr``) and,
beyond it, its recent rates, device tensors, scheduled hyperparameters' values and rows, its
plateaus' states, its skip signal.

:class:`ScheduleViews` is ``LRShim``'s base: it reads the scheduler's engine (``_engine``) and rows
(``_rows``, :class:`~fusedsched.shim.hyperparameters.Rows`) and changes nothing but the plateaus.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ..schedule.reference import compute_lr
from .binding import GroupBinding
from .checkpoint import checked_plateau_state
from .engine import Engine
from .hyperparameters import Rows, scaled

__all__ = ["ScheduleViews"]


class ScheduleViews:
    """The read side of an ``LRShim`` (see the module docstring)."""

    _engine: Engine
    _rows: Rows
    _binding: GroupBinding
    _catch_up: Any  #: LRShim's: takes the step from a counter that moved unseen
    lr_dict: dict[str, Any]  #: LRShim's: ``{group: LearningRate}``
    multipliers: dict[str, dict[str, float]]  #: LRShim's: ``{group: {key: m}}``

    def get_lr(self) -> list[float]:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                          UserWarning, stacklevel=2)
        return self._get_closed_form_lr()

    def _get_closed_form_lr(self) -> list[float]:
        step = self.last_epoch
        return [compute_lr(scaled(cfg, self.multipliers.get(name, {}).get("lr", 1.0)), step)
                for name, cfg in self.lr_dict.items()]

    def get_last_lr(self) -> list[float]:
        """Every group's current rate as floats. In device mode: one device-to-host copy (a sync)."""
        self._binding.verify()
        return self._engine.floats()

    def get_recent_lr(self) -> list[float]:
        """Every group's rate after a recent step, read without a host sync: for logging (on CUDA,
        possibly a step behind; docs/trainers.md)."""
        return self._engine.recent_rates()[1]

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

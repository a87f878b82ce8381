"""What ``LRShim`` asks of the engine that keeps its rates: :class:`Engine`, and what both engines share.

``LRShim`` picks one engine at construction (docs/architecture.md, "Modes are objects") and
delegates to it: :class:`~fusedsched.shim.host_engine.HostEngine` (float ``group["lr"]``, exact
float64 on the host) or :class:`~fusedsched.shim.device_engine.DeviceEngine` (a device table, a
step counter and one op launch per step). The scheduler keeps torch's ``LRScheduler`` contract
(``_step_count``, warnings, checkpoints); the engine keeps the step and every row's value there.

Rows: an engine holds one schedule per row, every group's ``lr`` first (in group order), then the
scheduled hyperparameters (:mod:`fusedsched.shim.hyperparameters`), which the binding writes (host)
or views (device) under their group keys. The rates (``floats``, ``recent_rates``) are the lr rows.

The clock: :meth:`Engine.advance_by` moves by an amount (an int, or on the device an int64 tensor
read by the op); an engine given a skip signal (:class:`~fusedsched.shim.skipping.SkipSignal`)
stays where it was on a skipped step (the op's clock rule, docs/op.md). Where the host does not
know how far the counter moved, :attr:`Engine.lag` says why, and the step is read from the counter
when next asked (one sync).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

import torch

from ..schedule.kinds import LearningRate, PlateauRow, compile_plateau
from .skipping import SkipSignal

__all__ = ["Engine", "Lag", "check_readable", "metric_number", "plateau_rows"]


class Lag(enum.Flag):
    """Why the host's copy of the step (:attr:`Engine.step`) may be behind the device counter (both
    reasons may hold; then the counter's steps cannot be counted as ``step()`` calls)."""

    NONE = 0  #: the host's step is the counter's
    STEPS = 1  #: the counter took steps the host did not see (graph replays, compiled steps)
    DISTANCE = 2  #: the host counted its steps but not how far they moved (an amount tensor, a skip)


def plateau_rows(configs: list[LearningRate]) -> dict[int, PlateauRow]:
    """``{row: its plateau}`` for the rows whose schedule holds one."""
    compiled = [compile_plateau(cfg) for cfg in configs]
    return {i: row for i, row in enumerate(compiled) if row is not None}


def check_readable(tensor: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if ``tensor`` holds no data to read (a meta tensor)."""
    if tensor.is_meta:
        raise ValueError(f"{name} must hold a value, got a tensor on the meta device (shape and dtype only)")


def metric_number(metrics: Any) -> Any:
    """``metrics`` if it is one real number (a Python int or float, a one-element real tensor), else
    ``ValueError`` naming ``metrics``."""
    if isinstance(metrics, torch.Tensor):
        if metrics.numel() != 1 or metrics.dtype == torch.bool or metrics.is_complex():
            raise ValueError(
                f"metrics must be one real number (a float or a one-element real tensor), got a "
                f"{metrics.dtype} tensor of shape {tuple(metrics.shape)}"
            )
        check_readable(metrics, "metrics")
        return metrics
    if isinstance(metrics, bool) or not isinstance(metrics, (int, float)):
        raise ValueError(f"metrics must be one real number (a float or a one-element real tensor), got {metrics!r}")
    return metrics


class Engine(Protocol):
    """Where an ``LRShim``'s rates live and how they move (see the module docstring)."""

    on_device: bool  #: the rates live in a device buffer that the groups view
    compilable: bool  #: :meth:`advance_unseen` may run inside a compiled graph
    step: int  #: the step of the last evaluation, as the host knows it (``last_epoch``)
    lag: Lag  #: whether :attr:`step` may be behind the counter, and why (:meth:`catch_up` reads it)
    skip: SkipSignal | None  #: where a step learns that its optimizer step was skipped
    backend: str | None  #: the ``advance_`` backend (None on the host)
    values: Any  #: every row's current value: floats (host), the float32 buffer (device)
    counter: torch.Tensor | None  #: the int64 device step counter (None on the host)
    plateau_rows: dict[int, PlateauRow]  #: the rows whose schedule holds a plateau
    #: go one step forward and set every row's value there (the cheapest path this engine has)
    advance: Callable[[], None]

    def metric_arg(self, metrics: Any) -> Any:
        """``metrics`` as this engine passes it on (host: a float; device: a one-element float32 or
        float64 tensor on the counter's device); ``ValueError`` naming ``metrics`` if it is not one number."""

    def plateau_states(self) -> dict[int, list[float]]:
        """``{row: [VALUE, BEST, BAD_EPOCHS, COOLDOWN_LEFT]}`` of every plateau (device: one copy to the host)."""

    def load_plateau_states(self, states: dict[int, list[float]]) -> None:
        """Write those plateaus' states (the others keep theirs)."""

    def check_step(self, step: int, name: str) -> None:
        """Raise ``OverflowError`` naming ``name`` if this engine cannot evaluate ``step`` exactly."""

    def check_groups(self) -> None:
        """O(optimizers): raise ``GroupBindingError`` if the groups changed behind the scheduler."""

    def advance_by(self, amount: Any, metric: Any = None) -> None:
        """Go ``amount`` steps forward (an int >= 0; device: or an int64 tensor), none if skipped;
        ``metric`` (from :meth:`metric_arg`): the plateaus active at the new step take it first."""

    def advance_unseen(self, amount: Any = None, metric: Any = None) -> None:
        """:meth:`advance` (``amount``: :meth:`advance_by`) without touching host state (inside a
        compiled graph); :attr:`lag` becomes ``Lag.STEPS``."""

    def note_unseen_steps(self) -> None:
        """The counter moved without the host (CUDA graph replays): read it when next asked."""

    def amount_value(self, amount: torch.Tensor) -> int | None:
        """An amount tensor's value, checked (>= 0, and :meth:`check_amount`), where reading it costs
        no sync (host mode reads it anyway), else None; ``ValueError`` naming ``amount`` for a wrong
        dtype, shape or (device) device."""

    def check_amount(self, amount: int) -> None:
        """Raise ``OverflowError`` naming ``amount`` if advancing by it passes this engine's last exact step."""

    def skip_steps_on(self, source: Any) -> None:
        """Skip steps on ``source`` (a GradScaler or a ``found_inf`` tensor, checked here), or on nothing (None)."""

    def jump(self, step: int) -> None:
        """Go to ``step`` and set every row's value there."""

    def move(self, step: int) -> None:
        """Set the step without evaluating (torch's ``last_epoch = k``: the next advance evaluates k + 1)."""

    def catch_up(self) -> int:
        """Take the step from the counter (device: a sync); returns how many steps it took unseen
        (0 where the host counted them itself)."""

    def floats(self) -> list[float]:
        """Every group's current rate as Python floats (device: one copy to the host)."""

    def all_floats(self) -> list[float]:
        """Every row's current value (the rates, then the hyperparameters) as Python floats."""

    def recent_rates(self) -> tuple[int, list[float]]:
        """``(step, rates)`` of a recent step, read without a host sync (see :mod:`fusedsched.shim.recent_rates`)."""

    def extra_state(self) -> dict[str, Any]:
        """Entries this engine adds to the scheduler's ``state_dict`` (plain data)."""

    def restore(self, step: int) -> None:
        """After a checkpoint load: bind the groups again, go to ``step`` (evaluated when >= 0)."""

    def rebind(self) -> None:
        """Hand every group back to the schedule at the current step."""

    def prepare_schedules(self, configs: list[LearningRate], names: list[tuple[str, str]]) -> Any:
        """New schedules, one per row (``names``: each row's ``(group, key)``), checked and prepared for
        :meth:`replace_schedules`; ``ValueError`` where they do not fit (device: the table's room)."""

    def replace_schedules(self, prepared: Any, moves: dict[int, int]) -> None:
        """Follow the prepared schedules from now on (``moves``: each plateau's row now -> after) and set
        every row's value at the current step (a switch: docs/switching.md)."""

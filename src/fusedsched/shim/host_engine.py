"""Host mode: every row's value, exactly ``compute_lr``'s float64 value, written into the groups as floats.

Few groups: one prepared formula per group (:func:`fusedsched.schedule.reference.prepare_lr`); from
:data:`HOST_NATIVE_MIN_ROWS` rows on (the groups' rates and their scheduled hyperparameters), the
native CPU op over the compiled programs, writing float64, in
one call (:func:`fusedsched.ops.host_evaluator`). Any int64 step is exact (beyond ``MAX_STEP`` by the
Python formulas). A tensor ``group["lr"]`` is filled in place, as torch's schedulers do. A switch
(:mod:`fusedsched.shim.switching`) rebuilds the prepared formulas and the native table, whatever
their size: host mode has no limit.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops import clock, host_evaluator, unavailable_reason
from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate, PlateauRow, build_table, with_plateau_value
from ..schedule.plateau_state import STATE_COLUMNS, PlateauColumn, plateau_update
from ..schedule.program import Column
from ..schedule.reference import prepare_lr
from .binding import GroupBinding
from .engine import Lag, check_readable, metric_number, plateau_rows
from .skipping import SkipSignal

__all__ = ["HOST_NATIVE_MIN_GROUPS", "HOST_NATIVE_MIN_ROWS", "MAX_INT64", "HostEngine", "HostPlateau", "HostRates"]

#: the largest step an int64 counter holds (host mode's bound)
MAX_INT64 = 2**63 - 1

#: From this many rows on (the groups' rates, then the scheduled hyperparameters' rows), host mode
#: evaluates every row with one call of the native CPU op (float64) instead of one prepared formula
#: per row. Measured on the development CPU with the op
#: called through ``fusedsched._C.launch`` (a warm-up to cosine, benchmarks/RESULTS.md): the two cost
#: the same at 2 groups (0.5 us); at 3, 0.53 us against 0.71 us; at 1,000 the op takes 20 us, the
#: formulas 190 us.
HOST_NATIVE_MIN_ROWS = 3
HOST_NATIVE_MIN_GROUPS = HOST_NATIVE_MIN_ROWS  #: the name it had when only rates were rows


class HostRates:
    """Every row's float64 value at a step, bit for bit ``compute_lr``'s, from prepared programs."""

    def __init__(self, configs: list[LearningRate]) -> None:
        self.configs = configs
        self._formulas = [prepare_lr(cfg) for cfg in configs]
        self.native = len(configs) >= HOST_NATIVE_MIN_ROWS and unavailable_reason("native", "cpu") is None
        self._native_limit = MAX_STEP
        if self.native:
            table = build_table(configs, "cpu").table
            # an offset moves a segment's step to s + k (SHIFT = -k): exact in float64 up to MAX_STEP only
            self._native_limit = MAX_STEP + min(0, int(table[:, Column.SHIFT].min().item()))
            self._evaluate = host_evaluator(table)

    def __call__(self, step: int) -> list[float]:
        if self.native and step <= self._native_limit:  # beyond, a float64 step is inexact: only Python ints are
            return self._evaluate(step)
        return [formula(step) for formula in self._formulas]

    def __getstate__(self) -> dict[str, Any]:
        return {"configs": self.configs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["configs"])


class HostPlateau:
    """A row's plateau on the host: its state (Python floats, in :mod:`fusedsched.schedule.plateau_state`'s
    column layout) and the row's formula at the plateau's current value (re-prepared when a reduction
    changes it)."""

    def __init__(self, row: PlateauRow, config: LearningRate) -> None:
        self.row, self.config = row, config
        self.column = row.settings.fresh()
        self.formula = prepare_lr(config)

    def update(self, metric: float, step: int) -> None:
        """One metric at ``step`` (if the plateau is active there)."""
        if self.row.active(step):
            value = self.column[PlateauColumn.VALUE]
            plateau_update(self.column, metric)
            if self.column[PlateauColumn.VALUE] != value:
                self._refresh()

    def state(self) -> list[float]:
        return [self.column[c] for c in STATE_COLUMNS]

    def load(self, state: list[float]) -> None:
        for c, v in zip(STATE_COLUMNS, state):
            self.column[c] = float(v)
        self._refresh()

    def _refresh(self) -> None:
        value = self.column[PlateauColumn.VALUE]
        initial = value == self.column[PlateauColumn.INITIAL]
        self.formula = prepare_lr(self.config if initial else with_plateau_value(self.config, value))

    def __getstate__(self) -> dict[str, Any]:
        return {"row": self.row, "config": self.config, "column": self.column}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.row, self.config, self.column = state["row"], state["config"], state["column"]
        self._refresh()


class HostEngine:
    """Host mode (see the module docstring): :class:`~fusedsched.shim.engine.Engine` on the host."""

    on_device = False
    compilable = False
    lag = Lag.NONE  # nothing moves without the host
    backend = None
    counter = None

    def __init__(self, binding: GroupBinding, configs: list[LearningRate], last_epoch: int) -> None:
        self._binding = binding
        self._rates = HostRates(configs)
        self.lr_rows = len(binding.names)  # the hyperparameter rows follow
        self.plateau_rows = plateau_rows(configs)
        self._plateaus = {i: HostPlateau(row, configs[i]) for i, row in self.plateau_rows.items()}
        self.step = last_epoch
        self.values: list[float] = []
        self.skip: SkipSignal | None = None

    @property
    def native(self) -> bool:
        """Whether the native CPU op evaluates the rates (else one prepared formula per group)."""
        return self._rates.native

    @staticmethod
    def check_step(step: int, name: str) -> None:
        pass  # every int64 step is exact on the host

    def check_groups(self) -> None:
        self._binding.check_counts()

    def advance(self) -> None:
        self.advance_by(1)

    def advance_by(self, amount: int, metric: float | None = None) -> None:
        if self.skip is not None:  # the op's clock rule, read on the host (a sync on an accelerator)
            skip, previous_scale = self.skip.op_inputs()
            skip = None if skip is None else skip.reshape(())  # a GradScaler's scale has one dimension
            delta, advances = clock(1, amount, skip, previous_scale, torch.where)
            if not advances:  # a skipped step leaves every group alone
                return
            amount = int(delta)
        if metric is not None:
            for plateau in self._plateaus.values():
                plateau.update(metric, self.step + amount)
        self.jump(self.step + amount)

    @staticmethod
    def metric_arg(metrics: Any) -> float:
        return float(metric_number(metrics))  # torch's float(metrics): a sync on an accelerator

    def plateau_states(self) -> dict[int, list[float]]:
        return {i: p.state() for i, p in self._plateaus.items()}

    def load_plateau_states(self, states: dict[int, list[float]]) -> None:
        for i, state in states.items():
            self._plateaus[i].load(state)

    def advance_unseen(self, amount: Any = None, metric: Any = None) -> None:  # pragma: no cover - compilable is False
        raise NotImplementedError("host mode evaluates on the host: it has no in-graph step")

    def note_unseen_steps(self) -> None:
        pass  # nothing moves without the host

    def amount_value(self, amount: torch.Tensor) -> int:
        if amount.dtype != torch.int64 or amount.numel() != 1:
            raise ValueError(
                f"amount must be a one-element int64 tensor, got {amount.dtype} of shape {tuple(amount.shape)}"
            )
        check_readable(amount, "amount")
        value = int(amount.item())  # host mode reads it: a sync on an accelerator
        if value < 0:
            raise ValueError(f"amount must be >= 0, got {value}")
        self.check_amount(value)
        return value

    def check_amount(self, amount: int) -> None:
        if self.step + amount > MAX_INT64:
            raise OverflowError(
                f"amount={amount} would take the step from {self.step} past 2**63 - 1 (the counter is an int64)"
            )

    def skip_steps_on(self, source: Any) -> None:
        self.skip = None if source is None else SkipSignal(source, None)

    def jump(self, step: int) -> None:
        values = self._rates(step)
        for i, plateau in self._plateaus.items():
            values[i] = plateau.formula(step)
        for group, lr in zip(self._binding.groups(), values):
            old = group["lr"]
            if type(old) is float or not isinstance(old, torch.Tensor):
                group["lr"] = lr
            else:
                old.fill_(lr)
        if self._binding.rows:
            self._binding.write_rows(values)
        self.values = values
        self.step = step

    def move(self, step: int) -> None:
        self.step = step

    def catch_up(self) -> int:
        return 0  # nothing moves without the host

    def floats(self) -> list[float]:
        return list(self.values[: self.lr_rows])

    def all_floats(self) -> list[float]:
        return list(self.values)

    def recent_rates(self) -> tuple[int, list[float]]:
        return self.step, list(self.values[: self.lr_rows])

    def extra_state(self) -> dict[str, Any]:
        return {}

    def restore(self, step: int) -> None:
        self.step = step
        if self.skip is not None:
            self.skip.resync()
        if step >= 0:
            self.jump(step)

    def rebind(self) -> None:
        if self.step >= 0:
            self.jump(self.step)

    @staticmethod
    def prepare_schedules(configs: list[LearningRate], names: list[tuple[str, str]]) -> tuple[HostRates, dict]:
        """The new rows' evaluator and plateau rows (any size fits)."""
        return HostRates(configs), plateau_rows(configs)

    def replace_schedules(self, prepared: tuple[HostRates, dict[int, PlateauRow]], moves: dict[int, int]) -> None:
        """Evaluate the prepared rows from now on, each plateau keeping its state (``moves``: its row now ->
        its row after), and write the rates at the current step."""
        states = {moves[i]: plateau.state() for i, plateau in self._plateaus.items()}
        self._rates, self.plateau_rows = prepared
        self._plateaus = {i: HostPlateau(row, self._rates.configs[i]) for i, row in self.plateau_rows.items()}
        self.load_plateau_states(states)
        if self.step >= 0:
            self.jump(self.step)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "skip": None}  # the signal is the training loop's: skip_steps_on again

    def __setstate__(self, state: dict[str, Any]) -> None:
        # names of an earlier layout (a pickled scheduler): _groups was the lr rows' count, plateaus the rows
        renamed = {"_groups": "lr_rows", "plateaus": "plateau_rows"}
        self.__dict__.update({renamed.get(k, k): v for k, v in state.items()})

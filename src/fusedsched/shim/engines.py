"""Where an ``LRShim``'s rates live and how they move: :class:`HostEngine` and :class:`DeviceEngine`.

``LRShim`` picks one engine at construction and delegates to it; both implement :class:`Engine`.
The scheduler keeps torch's ``LRScheduler`` contract (``_step_count``, warnings, checkpoints); the
engine keeps the step and every group's rate at that step.

- :class:`HostEngine` (float ``group["lr"]``): each step evaluates every group's rate on the host,
  exactly ``compute_lr``'s float64 value, and writes the floats into the groups. Few groups: one
  prepared formula per group (:func:`fusedsched.schedule.reference.prepare_lr`); many groups: the native CPU
  op over the compiled programs, writing float64, in one call (:func:`fusedsched.ops.host_evaluator`).
- :class:`DeviceEngine` (tensor ``group["lr"]``): the schedules are compiled once into a device
  table (:mod:`fusedsched.schedule.program`), one float32 buffer holds every group's rate and each
  ``group["lr"]`` is a 0-dim view into it (:mod:`fusedsched.shim.binding`). A step is one call of the op
  ``advance_`` (:func:`fusedsched.ops.launcher`): it advances a device int64 step counter and
  rewrites the buffer, with no host sync and nothing allocated, so it runs inside a CUDA graph or a
  ``torch.compile``'d step. The counter is the truth; ``step`` is the host's copy of it.

Logging reads the rates with :meth:`Engine.recent_rates`, which never syncs: the host engine has
them as floats; the device engine, from its first call on, has every eager step also copy the buffer
into pinned host memory without blocking (:class:`RecentRates`) and returns the newest copy the
device has finished.

The clock: :meth:`Engine.advance_by` moves by an amount (an int, or on the device an int64 tensor
read by the op), and an engine given a skip signal (:class:`fusedsched.shim.skipping.SkipSignal`, a
GradScaler or a ``found_inf`` tensor) stays where it was on a skipped step: the device engine passes
the signal's flag to the op (no sync), the host engine reads it. Where the host does not know how
far the counter moved (a tensor amount, a skip flag), ``stale`` is set and ``step`` is taken from
the counter when next read (one sync), as after graph replays.

Rows: ``configs`` holds one schedule per row, every group's ``lr`` first (in group order), then the
scheduled hyperparameters (:mod:`fusedsched.shim.hyperparameters`, the binding's ``rows``), each bound to
its group key: the host engine writes them as floats, the device engine evaluates them in the same
launch and the groups view them. The rates (``floats``, ``recent_rates``) are the lr rows;
``all_floats`` every row. Another input of the op (a metric) is another tensor the device
engine owns and passes in every launch, as the amount and the skip flag are. Neither changes what
``LRShim`` calls.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from .binding import GroupBinding
from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate, PlateauRow, build_table, compile_plateau, with_plateau_value
from ..ops import (
    METRIC_DTYPES,
    check_advance_args,
    check_amount_tensor,
    host_evaluator,
    launcher,
    resolve_backend,
    unavailable_reason,
)
from ..schedule.plateau_state import STATE_COLUMNS, PlateauColumn, plateau_tensor, plateau_update
from ..schedule.program import Column
from ..schedule.reference import prepare_lr
from .skipping import SkipSignal

#: the largest step an int64 counter holds (host mode's bound)
MAX_INT64 = 2**63 - 1

__all__ = ["HOST_NATIVE_MIN_GROUPS", "DeviceEngine", "Engine", "HostEngine", "HostPlateau", "HostRates", "RecentRates"]

#: From this many groups on, host mode evaluates every group with one call of the native CPU op
#: (float64) instead of one prepared formula per group. Measured on the development CPU with the op
#: called through ``fusedsched._C.launch`` (a warm-up to cosine, benchmarks/RESULTS.md): the two cost
#: the same at 2 groups (0.5 us); at 3, 0.53 us against 0.71 us; at 1,000 the op takes 20 us, the
#: formulas 190 us. (Through ``torch.ops`` the op's call alone cost 1.3 us: the threshold was 8.)
HOST_NATIVE_MIN_GROUPS = 3


def _table(configs: list[LearningRate], device: torch.device | str) -> torch.Tensor:
    return build_table(configs, device).table


def _plateau_rows(configs: list[LearningRate]) -> dict[int, PlateauRow]:
    """``{row: its plateau}`` for the rows whose schedule holds one."""
    compiled = [compile_plateau(cfg) for cfg in configs]
    return {i: row for i, row in enumerate(compiled) if row is not None}


class Engine(Protocol):
    """What ``LRShim`` asks of its rates (see the module docstring)."""

    on_device: bool  #: the rates live in a device buffer that the groups view
    compilable: bool  #: :meth:`advance_unseen` may run inside a compiled graph
    step: int  #: the step of the last evaluation, as the host knows it (``last_epoch``)
    ahead: bool  #: the counter moved without the host: ``step`` is stale until :meth:`catch_up`
    stale: bool  #: the host counted its steps but not how far they moved (an amount tensor, a skip flag)
    skip: SkipSignal | None  #: where a step learns that its optimizer step was skipped
    backend: str | None  #: the ``advance_`` backend (None on the host)
    values: Any  #: the current rates: floats (host), the float32 buffer (device)
    counter: torch.Tensor | None  #: the int64 device step counter (None on the host)
    plateaus: dict[int, PlateauRow]  #: the rows whose schedule holds a plateau

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

    def advance(self) -> None:
        """Go one step forward and set every group's rate there."""

    def advance_by(self, amount: Any, metric: Any = None) -> None:
        """Go ``amount`` steps forward (an int >= 0; device: or an int64 tensor), none if skipped;
        ``metric`` (from :meth:`metric_arg`): the plateaus active at the new step take it first."""

    def advance_unseen(self, amount: Any = None, metric: Any = None) -> None:
        """:meth:`advance` (``amount``: :meth:`advance_by`) without touching host state (inside a
        compiled graph); sets ``ahead``."""

    def amount_value(self, amount: torch.Tensor) -> int | None:
        """An amount tensor's value, checked (>= 0, and :meth:`check_amount`), where reading it costs
        no sync (host mode reads it anyway), else None; ``ValueError`` naming ``amount`` for a wrong
        dtype, shape or (device) device."""

    def check_amount(self, amount: int) -> None:
        """Raise ``OverflowError`` naming ``amount`` if advancing by it passes this engine's last exact step."""

    def skip_steps_on(self, signal: SkipSignal | None) -> None:
        """Skip steps on ``signal`` (built for this engine's device), or on nothing (None)."""

    def jump(self, step: int) -> None:
        """Go to ``step`` and set every group's rate there."""

    def move(self, step: int) -> None:
        """Set the step without evaluating (torch's ``last_epoch = k``: the next advance evaluates k + 1)."""

    def catch_up(self) -> int:
        """Take the step from the counter (device: a sync); returns how many steps it moved unseen."""

    def floats(self) -> list[float]:
        """Every group's current rate as Python floats (device: one copy to the host)."""

    def all_floats(self) -> list[float]:
        """Every row's current value (the rates, then the hyperparameters) as Python floats."""

    def recent_rates(self) -> tuple[int, list[float]]:
        """``(step, rates)`` of a recent step, read without a host sync (see :class:`RecentRates`)."""

    def extra_state(self) -> dict[str, Any]:
        """Entries this engine adds to the scheduler's ``state_dict`` (plain data)."""

    def restore(self, step: int) -> None:
        """After a checkpoint load: bind the groups again, go to ``step`` (evaluated when >= 0)."""

    def rebind(self) -> None:
        """Hand every group back to the schedule at the current step."""


# --- host -----------------------------------------------------------------------------------------


class HostRates:
    """Every group's float64 rate at a step, bit for bit ``compute_lr``'s, from prepared programs."""

    def __init__(self, configs: list[LearningRate]) -> None:
        self.configs = configs
        self._formulas = [prepare_lr(cfg) for cfg in configs]
        self.native = len(configs) >= HOST_NATIVE_MIN_GROUPS and unavailable_reason("native", "cpu") is None
        self._native_limit = MAX_STEP
        if self.native:
            table = _table(configs, "cpu")
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


def _metric_number(metrics: Any) -> Any:
    """``metrics`` if it is one real number (a Python int or float, a one-element real tensor), else ``ValueError``."""
    if isinstance(metrics, torch.Tensor):
        if metrics.numel() != 1 or metrics.dtype == torch.bool or metrics.is_complex():
            raise ValueError(
                f"metrics must be one real number (a float or a one-element real tensor), got a "
                f"{metrics.dtype} tensor of shape {tuple(metrics.shape)}"
            )
        return metrics
    if isinstance(metrics, bool) or not isinstance(metrics, (int, float)):
        raise ValueError(f"metrics must be one real number (a float or a one-element real tensor), got {metrics!r}")
    return metrics


class HostPlateau:
    """A row's plateau on the host: its state (Python floats, :mod:`fusedsched.schedule.plateau_state`'s column) and
    the row's formula at the plateau's current value (re-prepared when a reduction changes it)."""

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
    """Host mode: every group's rate, exactly ``compute_lr``'s float64 value, written as a float.

    Any int64 step is evaluated exactly (beyond ``MAX_STEP`` by the Python formulas). A tensor
    ``group["lr"]`` is filled in place, as torch's schedulers do.
    """

    on_device = False
    compilable = False
    ahead = False
    stale = False
    backend = None
    counter = None

    def __init__(self, binding: GroupBinding, configs: list[LearningRate], last_epoch: int) -> None:
        self._binding = binding
        self._rates = HostRates(configs)
        self._groups = len(binding.names)  # the lr rows; the hyperparameter rows follow
        self.plateaus = _plateau_rows(configs)
        self._plateaus = {i: HostPlateau(row, configs[i]) for i, row in self.plateaus.items()}
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
        if self.skip is None or not self.skip.skipped():  # a skipped step leaves the groups alone
            self.jump(self.step + 1)

    def advance_by(self, amount: int, metric: float | None = None) -> None:
        if self.skip is None or not self.skip.skipped():
            if metric is not None:
                for plateau in self._plateaus.values():
                    plateau.update(metric, self.step + amount)
            self.jump(self.step + amount)

    @staticmethod
    def metric_arg(metrics: Any) -> float:
        return float(_metric_number(metrics))  # torch's float(metrics): a sync on an accelerator

    def plateau_states(self) -> dict[int, list[float]]:
        return {i: p.state() for i, p in self._plateaus.items()}

    def load_plateau_states(self, states: dict[int, list[float]]) -> None:
        for i, state in states.items():
            self._plateaus[i].load(state)

    def advance_unseen(self, amount: Any = None, metric: Any = None) -> None:  # pragma: no cover - compilable is False
        raise NotImplementedError("host mode evaluates on the host: it has no in-graph step")

    def amount_value(self, amount: torch.Tensor) -> int:
        if amount.dtype != torch.int64 or amount.numel() != 1:
            raise ValueError(
                f"amount must be a one-element int64 tensor, got {amount.dtype} of shape {tuple(amount.shape)}"
            )
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

    def skip_steps_on(self, signal: SkipSignal | None) -> None:
        self.skip = signal

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
        self.ahead = False  # nothing moves without the host
        return 0

    def floats(self) -> list[float]:
        return list(self.values[: self._groups])

    def all_floats(self) -> list[float]:
        return list(self.values)

    def recent_rates(self) -> tuple[int, list[float]]:
        return self.step, list(self.values[: self._groups])

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

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "skip": None}  # the signal is the training loop's: skip_steps_on again


# --- device ---------------------------------------------------------------------------------------


def buffer_device(binding: GroupBinding, device: Any) -> torch.device:
    """Where the rate buffer lives: ``device``, which must be the parameters' device (their device by default)."""
    params_device = binding.params_device()
    if device is None:
        return params_device or torch.device("cpu")
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch.device or a device string, got {device!r}") from None
    if wanted.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but CUDA is not available here (torch {torch.__version__}); "
                f"omit device to keep the learning rates with the parameters"
            )
        if wanted.index is None:
            wanted = torch.device("cuda", torch.cuda.current_device())
    if params_device is not None and params_device != wanted:
        raise ValueError(
            f"device={device!r} but the optimizer's parameters are on {params_device}: the learning "
            f"rates must live on the parameters' device (omit device to use it)"
        )
    return wanted


class DeviceEngine:
    """Device mode: one float32 buffer of rates that the groups view, advanced by the op ``advance_``.

    Steps go up to ``MAX_STEP`` (2**53 - 2): the device evaluates the step in float64, exact only
    that far, so :meth:`check_step` refuses more (host mode takes any int64 step). A device amount
    tensor is not checked (that would sync): the counter adds it as an int64 (a negative amount
    moves it back; past 2**53 the step is evaluated at the nearest float64).

    Args:
        binding: the groups; they are bound to the buffer once every check has passed.
        configs: one schedule per row: per group, in group order, then the binding's ``rows``.
        last_epoch: the starting step (-1: none yet).
        device: the buffer's device (default: the parameters'); backend: see ``LRShim``.
    """

    on_device = True
    compilable = True

    def __init__(
        self,
        binding: GroupBinding,
        configs: list[LearningRate],
        last_epoch: int,
        device: torch.device | str | None = None,
        backend: str | None = None,
    ) -> None:
        self.check_step(last_epoch, "last_epoch")
        device = buffer_device(binding, device)
        problems = binding.tensor_lr_problems()
        if problems:
            raise ValueError("device mode gives every group a tensor lr, but " + "; ".join(problems))
        self.backend = resolve_backend(device, backend)
        self.table = _table(configs, device)
        self._groups = len(binding.names)  # the lr rows; the hyperparameter rows follow
        self.counter = torch.full((), last_epoch, dtype=torch.int64, device=device)
        self.values = torch.zeros(len(configs), dtype=torch.float32, device=device)
        self.plateaus = _plateau_rows(configs)
        self.plateau: torch.Tensor | None = None  # every row's plateau state, which the op reads and updates
        if self.plateaus:
            self.plateau = plateau_tensor([self.plateaus[i].settings if i in self.plateaus else None
                                           for i in range(len(configs))], device)
        self._metric: torch.Tensor | None = None  # holds a metric that is not already a device tensor
        self._reads_amount = device.type == "cpu"  # an amount tensor on the CPU is read without a sync
        check_advance_args(self.counter, self.table, self.values, 1, plateau=self.plateau)
        self._make_launchers()
        self._binding = binding
        self.step = last_epoch
        self.ahead = False  # the counter moved without the host (graph replay, compiled step)
        self.stale = False  # the host counted its steps but not how far they moved (amount, skip)
        self.skip: SkipSignal | None = None
        self._amount: torch.Tensor | None = None  # holds a Python int amount other than 0 and 1
        self._checked_amount: torch.Tensor | None = None  # the amount tensor last checked (see amount_value)
        self._recent: RecentRates | None = None  # set by the first recent_rates()
        # Every check passed: from here on the optimizer's groups change.
        if last_epoch == -1:  # as torch records it, before binding points the groups at the buffer
            for group in binding.groups():
                lr = group["lr"]
                group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
        binding.bind(self.values)
        binding.attach()

    @staticmethod
    def check_step(step: int, name: str) -> None:
        # Called where a step is set (step(epoch), last_epoch, a load, the constructor). A counter
        # that passes MAX_STEP by advancing one step at a time takes 2**53 steps: unreachable in
        # practice, so the hot path has no check (and the first step past it, 2**53 - 1, is exact).
        if step > MAX_STEP:
            raise OverflowError(
                f"{name} must be <= 2**53 - 2 ({MAX_STEP}) in device mode, got {step}: the device "
                f"evaluates the step in float64, exact only up to there (host mode, device_schedule=False, "
                f"takes steps up to 2**63 - 1)"
            )

    def _make_launchers(self) -> None:
        """``_launch_clock(step, table, values, increment, amount, skip, plateau, metric)``: the op on
        this backend (callers pass ``self.plateau``); ``_launch(step, table, values, increment)``: the
        same with the plateau state when there is one."""
        clock = self._launch_clock = launcher(self.backend, eager=True)
        self._traced_launch = launcher(self.backend)  # what advance_unseen calls, inside compiled code
        if self.plateau is None:
            self._launch = clock
            return
        plateau = self.plateau

        def launch(step, table, values, increment):
            clock(step, table, values, increment, None, None, plateau, None)

        self._launch = launch

    def check_groups(self) -> None:
        self._binding.check()

    def metric_arg(self, metrics: Any) -> torch.Tensor:
        """A float32 or float64 tensor on the counter's device is passed as it is (in a CUDA graph: the
        captured one); anything else is written into a float64 buffer this engine owns (no sync)."""
        if type(metrics) is torch.Tensor and metrics.dtype in METRIC_DTYPES and metrics.numel() == 1:
            if metrics.device == self.counter.device:  # the common case, checked first: the loss, as it is
                return metrics
        metrics = _metric_number(metrics)
        device = self.counter.device
        if self._metric is None:
            self._metric = torch.zeros((), dtype=torch.float64, device=device)
        if isinstance(metrics, torch.Tensor):
            self._metric.copy_(metrics.reshape(()), non_blocking=True)
        else:
            self._metric.fill_(float(metrics))
        return self._metric

    def plateau_states(self) -> dict[int, list[float]]:
        if self.plateau is None:
            return {}
        columns = self.plateau[list(STATE_COLUMNS)].T.tolist()
        return {i: columns[i] for i in self.plateaus}

    def load_plateau_states(self, states: dict[int, list[float]]) -> None:
        if not states:
            return
        host = self.plateau.cpu()
        for i, state in states.items():
            host[list(STATE_COLUMNS), i] = torch.tensor(state, dtype=torch.float64)
        self.plateau.copy_(host)  # in place: a captured graph keeps reading the same tensor

    def advance(self) -> None:
        # The plain step; with a skip signal or recent-rate copies, an instance attribute replaces it
        # (_advance_one), so this path stays one launch.
        self._launch(self.counter, self.table, self.values, 1)
        self.step += 1

    def _advance_one(self) -> None:
        self.advance_by(1)

    def _amount_args(self, amount: int | torch.Tensor, metric: Any = None) -> tuple[int, torch.Tensor | None]:
        """``(increment, amount tensor)`` for the op: 0 and 1 are increments, other ints a buffer filled here
        (0 too when a metric comes with it: a step of increment 1 and amount 0 feeds the plateaus in place)."""
        if isinstance(amount, torch.Tensor):
            return 1, amount
        if amount == 1 or (amount == 0 and metric is None):
            return amount, None
        if self._amount is None:
            self._amount = torch.zeros((), dtype=torch.int64, device=self.counter.device)
        self._amount.fill_(amount)  # in a captured graph this value is frozen: pass a tensor there
        return 1, self._amount

    def advance_by(self, amount: int | torch.Tensor, metric: torch.Tensor | None = None) -> None:
        increment, tensor = self._amount_args(amount, metric)
        skip, previous_scale = self.skip.op_inputs() if self.skip is not None else (None, None)
        if tensor is None and skip is None and metric is None:
            self._launch(self.counter, self.table, self.values, increment)
        else:
            self._launch_clock(self.counter, self.table, self.values, increment, tensor, skip, self.plateau, metric,
                               previous_scale)
        if skip is None and tensor is not amount:  # an int amount: the host knows how far
            self.step += amount
        else:
            self.stale = True  # how far the counter moved is on the device: read it when asked
        if self._recent is not None:
            self._recent.record(self.step)

    def advance_unseen(self, amount: int | torch.Tensor | None = None, metric: torch.Tensor | None = None) -> None:
        increment, tensor, skip, previous_scale = 1, None, None, None
        if amount is not None or self.skip is not None or metric is not None:
            increment, tensor = self._amount_args(1 if amount is None else amount, metric)
            skip, previous_scale = self.skip.op_inputs() if self.skip is not None else (None, None)
        self._traced_launch(self.counter, self.table, self.values, increment, tensor, skip, self.plateau, metric,
                            previous_scale)
        self.ahead = True

    def amount_value(self, amount: torch.Tensor) -> int | None:
        # The same tensor step after step (a captured graph's static amount) is checked once (the
        # check costs about as much as the native launch); one whose dtype, shape or device changed
        # in place since (``.data =``, ``resize_``) is still refused by the native op before it
        # writes; the Triton and reference ops read it as it is.
        if torch.compiler.is_compiling():
            check_amount_tensor(amount, self.counter.device)  # once, when traced
            return None  # reading it would break the graph: the op takes it unchecked
        if amount is not self._checked_amount:
            check_amount_tensor(amount, self.counter.device)
            self._checked_amount = amount
        if not self._reads_amount:
            return None  # reading it would sync: the op takes it unchecked
        value = amount.item()
        if value < 0:
            raise ValueError(f"amount must be >= 0, got {value}")
        self.check_amount(value)
        return value

    def check_amount(self, amount: int) -> None:
        # Only where the host knows the step; a stale one is a lower bound of the counter.
        if self.step + amount > MAX_STEP and not (self.ahead or self.stale):
            raise OverflowError(
                f"amount={amount} would take the step from {self.step} past 2**53 - 2 ({MAX_STEP}) in device "
                f"mode: the device evaluates the step in float64, exact only up to there"
            )

    def skip_steps_on(self, signal: SkipSignal | None) -> None:
        self.skip = signal
        self._select_advance()

    def _select_advance(self) -> None:
        """The plain :meth:`advance` unless a skip signal or recent-rate copies need more: a skip
        signal alone, one launch with its inputs (:meth:`_advance_on_flag` for a ``found_inf`` tensor,
        :meth:`_advance_on_scale` for a GradScaler); else :meth:`advance_by`."""
        if self._recent is None and self.skip is not None and self.skip.constant_flag() is not None:
            self._flag = self.skip.constant_flag()
            self.advance = self._advance_on_flag  # type: ignore[method-assign]
        elif self._recent is None and self.skip is not None:
            self.advance = self._advance_on_scale  # type: ignore[method-assign]
        elif self.skip is not None or self._recent is not None:
            self.advance = self._advance_one  # type: ignore[method-assign]
        else:
            self.__dict__.pop("advance", None)

    def _advance_on_flag(self) -> None:
        self._launch_clock(self.counter, self.table, self.values, 1, None, self._flag, self.plateau)
        self.stale = True  # how far the counter moved is on the device

    def _advance_on_scale(self) -> None:
        skip, previous_scale = self.skip.op_inputs()
        if skip is None:  # a disabled scaler, or no scale() yet: nothing is skipped
            self._launch(self.counter, self.table, self.values, 1)
            self.step += 1
            return
        self._launch_clock(self.counter, self.table, self.values, 1, None, skip, self.plateau, None, previous_scale)
        self.stale = True  # how far the counter moved is on the device

    def jump(self, step: int) -> None:
        self.counter.fill_(step)
        self._launch(self.counter, self.table, self.values, 0)
        self.step, self.stale = step, False
        if self._recent is not None:
            self._recent.record(step)

    def move(self, step: int) -> None:
        self.counter.fill_(step)
        self.step, self.stale = step, False

    def catch_up(self) -> int:
        """Read the counter (a sync); returns the steps it moved unseen (0 once the host lost count)."""
        device_step = int(self.counter.item())
        taken = 0 if self.stale else device_step - self.step
        self.step, self.ahead, self.stale = device_step, False, False
        return taken

    @property
    def lrs(self) -> torch.Tensor:
        """The lr rows: the buffer itself without hyperparameter rows, else a view of its first rows."""
        return self.values if self._groups == len(self.values) else self.values[: self._groups]

    def floats(self) -> list[float]:
        return self.lrs.tolist()

    def all_floats(self) -> list[float]:
        return self.values.tolist()

    def extra_state(self) -> dict[str, Any]:
        return {"device_step": self.step}

    def recent_rates(self) -> tuple[int, list[float]]:
        """``(step, rates)``: the newest rates the device has copied to the host, without a sync.

        The first call reads the buffer (on CUDA, one sync) and from then on every :meth:`advance`
        (and jump or load) also enqueues a copy of the buffer into pinned host memory
        (:class:`RecentRates`); steps taken unseen (CUDA graph replays, compiled steps) make none.
        Until the first call, ``advance`` is the plain one: steps cost nothing more.
        """
        if self._recent is None:
            self._recent = RecentRates(self.values, self.step)
            self._select_advance()
        step, values = self._recent.read()
        return step, values[: self._groups]

    def restore(self, step: int) -> None:
        self.ahead = False
        if self.skip is not None:
            self.skip.resync()
        self.move(step)
        self._binding.bind(self.values)
        if step >= 0:
            self._launch(self.counter, self.table, self.values, 0)
        if self._recent is not None:
            self._recent.record(step)

    def rebind(self) -> None:
        self._binding.reclaim()

    # --- copies: deepcopy, pickle, torch.save --------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_launch"], state["_launch_clock"], state["_traced_launch"]  # rebuilt for this process
        state.pop("advance", None)  # the copy starts without recent-rate copies (events do not pickle)
        state["_recent"] = None
        state["_checked_amount"] = None
        state.pop("_flag", None)
        state["skip"] = None  # the signal is the training loop's, not the schedule's: skip_steps_on again
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_recent": None, **state})
        try:
            self.backend = resolve_backend(self.values.device, self.backend)
        except RuntimeError:  # the saved backend is not available here: take the best one that is
            self.backend = resolve_backend(self.values.device, None)
        self.__dict__.setdefault("plateau", None)
        self.__dict__.setdefault("plateaus", {})
        self.__dict__.setdefault("_metric", None)
        self.__dict__.setdefault("_checked_amount", None)
        self._reads_amount = self.counter.device.type == "cpu"  # a load may have moved the counter
        self._make_launchers()
        self._binding.drop_stale_step_wrappers()
        self._binding.bind(self.values)
        self._binding.attach()


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

"""Device mode: one float32 buffer of values that the groups view, advanced by the op ``advance_``.

The schedules are compiled once into a device table (:mod:`fusedsched.schedule.program`); each
``group["lr"]`` (and each scheduled hyperparameter) is a 0-dim view into the buffer
(:mod:`fusedsched.shim.binding`). A step is one launch of the op, bound once to the engine's
tensors (:func:`fusedsched.ops.bind`): it advances the int64 counter and rewrites the buffer, with
no host sync and nothing allocated, so it runs inside a CUDA graph or a ``torch.compile``'d step.
The counter is the truth; :attr:`DeviceEngine.step` is the host's copy of it.

The table holds ``spare_segments`` padding segments per row beyond the longest program, the room a
switch may use (:mod:`fusedsched.shim.switching`): new schedules are written into the same tensor
(:meth:`DeviceEngine.replace_schedules`), so a captured graph and a compiled step read them by the
address they hold (docs/switching.md).
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops import METRIC_DTYPES, bind, check_amount_tensor, resolve_backend
from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate, PlateauRow, compile_schedule
from ..schedule.plateau_state import STATE_COLUMNS, plateau_tensor
from ..schedule.program import PADDING, Segment, pack_programs
from .binding import GroupBinding
from .engine import Lag, metric_number, plateau_rows
from .recent_rates import RecentRates
from .skipping import SkipSignal

__all__ = ["DeviceEngine", "buffer_device", "padded_table"]


def padded_table(programs: list[tuple[Segment, ...]], segments: int, device: Any = None) -> torch.Tensor:
    """The table of ``programs`` (one per row), each padded to ``segments`` segments (``START = +inf``)."""
    return pack_programs([list(p) + [PADDING] * (segments - len(p)) for p in programs], device)


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
    """Device mode (see the module docstring): :class:`~fusedsched.shim.engine.Engine` on the device.

    Steps go up to ``MAX_STEP`` (2**53 - 2): the device evaluates the step in float64, exact only
    that far, so :meth:`check_step` refuses more (host mode takes any int64 step). A device amount
    tensor is not checked (that would sync): the counter adds it as an int64 (a negative amount
    moves it back; past 2**53 the step is evaluated at the nearest float64).

    Args:
        binding: the groups; they are bound to the buffer once every check has passed.
        configs: one schedule per row: per group, in group order, then the binding's ``rows``.
        last_epoch: the starting step (-1: none yet).
        device: the buffer's device (default: the parameters'); backend: see ``LRShim``.
        spare_segments: padding segments per row beyond the longest program: room for switches.
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
        spare_segments: int = 0,
    ) -> None:
        self.check_step(last_epoch, "last_epoch")
        device = buffer_device(binding, device)
        problems = binding.tensor_lr_problems()
        if problems:
            raise ValueError("device mode gives every group a tensor lr, but " + "; ".join(problems))
        self.backend = resolve_backend(device, backend)
        programs = [compile_schedule(c) for c in configs]
        self.spare_segments = spare_segments
        self.table = padded_table(programs, max(map(len, programs)) + spare_segments, device)
        self.lr_rows = len(binding.names)  # the hyperparameter rows follow
        self.counter = torch.full((), last_epoch, dtype=torch.int64, device=device)
        self.values = torch.zeros(len(configs), dtype=torch.float32, device=device)
        self.plateau_rows = plateau_rows(configs)
        #: every row's plateau state, which the op reads and updates (None without a plateau)
        self.plateau_state: torch.Tensor | None = None
        if self.plateau_rows:
            settings = [self.plateau_rows[i].settings if i in self.plateau_rows else None for i in range(len(configs))]
            self.plateau_state = plateau_tensor(settings, device)
        #: a GradScaler's scale at the previous step, which the op compares and updates (the skip signal's)
        self.previous_scale = torch.zeros((), dtype=torch.float32, device=device)
        self._bind()  # checks the tensors against the op's contract
        self._binding = binding
        self.step = last_epoch
        # Why the host's step may be behind the counter (:attr:`lag`), marked by the steps that cause it
        # and never read by them: a compiled step that read it would be recompiled when it changes.
        self._unseen_steps = False  # the counter took steps the host did not see
        self._unknown_distance = False  # the host counted its steps, not how far they moved
        self.skip: SkipSignal | None = None
        self._metric: torch.Tensor | None = None  # holds a metric that is not already a device tensor
        self._amount: torch.Tensor | None = None  # holds a Python int amount other than 0 and 1
        self._checked_amount: torch.Tensor | None = None  # the amount tensor last checked (see amount_value)
        self._recent: RecentRates | None = None  # set by the first recent_rates()
        self._select_step()
        # Every check passed: from here on the optimizer's groups change.
        if last_epoch == -1:  # as torch records it, before binding points the groups at the buffer
            for group in binding.groups():
                lr = group["lr"]
                group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
        binding.bind(self.values)
        binding.attach()

    def _bind(self) -> None:
        self.launcher = bind(self.backend, self.counter, self.table, self.values, plateau=self.plateau_state,
                             previous_scale=self.previous_scale)
        self._reads_amount = self.counter.device.type == "cpu"  # an amount tensor on the CPU is read without a sync

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

    def check_groups(self) -> None:
        self._binding.check()

    def metric_arg(self, metrics: Any) -> torch.Tensor:
        """A float32 or float64 tensor on the counter's device is passed as it is (in a CUDA graph: the
        captured one); anything else is written into a float64 buffer this engine owns (no sync)."""
        if type(metrics) is torch.Tensor and metrics.dtype in METRIC_DTYPES and metrics.numel() == 1:
            if metrics.device == self.counter.device:  # the common case, checked first: the loss, as it is
                return metrics
        metrics = metric_number(metrics)
        if self._metric is None:
            self._metric = torch.zeros((), dtype=torch.float64, device=self.counter.device)
        if isinstance(metrics, torch.Tensor):
            self._metric.copy_(metrics.reshape(()), non_blocking=True)
        else:
            self._metric.fill_(float(metrics))
        return self._metric

    def plateau_states(self) -> dict[int, list[float]]:
        if self.plateau_state is None:
            return {}
        columns = self.plateau_state[list(STATE_COLUMNS)].T.tolist()
        return {i: columns[i] for i in self.plateau_rows}

    def load_plateau_states(self, states: dict[int, list[float]]) -> None:
        if not states:
            return
        host = self.plateau_state.cpu()
        for i, state in states.items():
            host[list(STATE_COLUMNS), i] = torch.tensor(state, dtype=torch.float64)
        self.plateau_state.copy_(host)  # in place: a captured graph keeps reading the same tensor

    # --- steps ---------------------------------------------------------------------------------

    def _select_step(self) -> None:
        """:attr:`advance`: the plain step unless a skip signal or recent-rate copies need more. A skip
        signal alone takes one launch with its inputs (a ``found_inf`` tensor: fixed; a GradScaler's
        scale: it appears at the scaler's first ``scale()``, fixed while it is the same tensor); recent-rate copies go
        through :meth:`advance_by`."""
        flag = None if self.skip is None else self.skip.constant_flag()
        self._scale_seen = self._scale_launch = None  # the GradScaler's launch, made at its first scale
        if self._recent is not None:
            self.advance = self._advance_one
        elif self.skip is None:
            self._launch = self.launcher.fixed()
            self.advance = self._advance_plain
        elif flag is not None:
            self._launch = self.launcher.fixed(skip=flag)
            self.advance = self._advance_on_flag
        else:
            self.advance = self._advance_on_scale

    def _advance_plain(self) -> None:
        self._launch()
        self.step += 1

    def _advance_on_flag(self) -> None:
        self._launch()
        self._unknown_distance = True  # how far the counter moved is on the device

    def _advance_on_scale(self) -> None:
        scale, _ = self.skip.op_inputs()
        if scale is None:  # a disabled scaler, or no scale() yet: nothing is skipped
            self.launcher.advance()
            self.step += 1
            return
        if scale is not self._scale_seen:  # the scaler keeps one scale tensor, updated in place
            self._scale_seen, self._scale_launch = scale, self.launcher.fixed(scale=scale)
        self._scale_launch()
        self._unknown_distance = True

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

    def _skip_args(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(skip flag, scale)`` for the launcher: a ``found_inf`` tensor, or a GradScaler's scale."""
        if self.skip is None:
            return None, None
        skip, previous_scale = self.skip.op_inputs()
        return (skip, None) if previous_scale is None else (None, skip)

    def advance_by(self, amount: int | torch.Tensor, metric: torch.Tensor | None = None) -> None:
        increment, tensor = self._amount_args(amount, metric)
        skip, scale = self._skip_args()
        self.launcher.advance(increment, amount=tensor, skip=skip, scale=scale, metric=metric)
        if skip is None and scale is None and tensor is not amount:  # an int amount: the host knows how far
            self.step += amount
        else:
            self._unknown_distance = True  # how far the counter moved is on the device: read it when asked
        if self._recent is not None:
            self._recent.record(self.step)

    def advance_unseen(self, amount: int | torch.Tensor | None = None, metric: torch.Tensor | None = None) -> None:
        increment, tensor = self._amount_args(1 if amount is None else amount, metric)
        skip, scale = self._skip_args()
        self.launcher.traced(increment, amount=tensor, skip=skip, scale=scale, metric=metric)
        self.note_unseen_steps()

    def note_unseen_steps(self) -> None:
        self._unseen_steps = True

    @property
    def lag(self) -> Lag:
        return (Lag.STEPS if self._unseen_steps else Lag.NONE) | (Lag.DISTANCE if self._unknown_distance else Lag.NONE)

    def _caught_up(self, step: int) -> None:
        self.step, self._unseen_steps, self._unknown_distance = step, False, False

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
        # Only where the host knows the step; a lagging one is a lower bound of the counter.
        if self.step + amount > MAX_STEP and not self.lag:
            raise OverflowError(
                f"amount={amount} would take the step from {self.step} past 2**53 - 2 ({MAX_STEP}) in device "
                f"mode: the device evaluates the step in float64, exact only up to there"
            )

    def skip_steps_on(self, source: Any) -> None:
        self.skip = None if source is None else SkipSignal(source, self.counter.device, self.previous_scale)
        self._select_step()

    def jump(self, step: int) -> None:
        self.counter.fill_(step)
        self.launcher.advance(0)
        self._caught_up(step)
        if self._recent is not None:
            self._recent.record(step)

    def move(self, step: int) -> None:
        self.counter.fill_(step)
        self._caught_up(step)

    def catch_up(self) -> int:
        """Read the counter (a sync); returns the steps it took unseen (0 once the host lost count)."""
        device_step = int(self.counter.item())
        taken = 0 if self._unknown_distance else device_step - self.step  # also a counter written directly
        self._caught_up(device_step)
        return taken

    @property
    def lrs(self) -> torch.Tensor:
        """The lr rows: the buffer itself without hyperparameter rows, else a view of its first rows."""
        return self.values if self.lr_rows == len(self.values) else self.values[: self.lr_rows]

    def floats(self) -> list[float]:
        return self.lrs.tolist()

    def all_floats(self) -> list[float]:
        return self.values.tolist()

    def extra_state(self) -> dict[str, Any]:
        return {"device_step": self.step}

    def recent_rates(self) -> tuple[int, list[float]]:
        """``(step, rates)``: the newest rates the device has copied to the host, without a sync.

        The first call reads the buffer (on CUDA, one sync) and from then on every step (and jump or
        load) also enqueues a copy of the buffer into pinned host memory (:class:`RecentRates`);
        steps taken unseen (CUDA graph replays, compiled steps) make none. Until the first call,
        :attr:`advance` is the plain one: steps cost nothing more.
        """
        if self._recent is None:
            self._recent = RecentRates(self.values, self.step)
            self._select_step()
        step, values = self._recent.read()
        return step, values[: self.lr_rows]

    def restore(self, step: int) -> None:
        if self.skip is not None:
            self.skip.resync()
        self.move(step)
        self._binding.bind(self.values)
        if step >= 0:
            self.launcher.advance(0)
        if self._recent is not None:
            self._recent.record(step)

    def rebind(self) -> None:
        self._binding.reclaim()

    # --- switches: new schedules in the same table ------------------------------------------------

    def prepare_schedules(self, configs: list[LearningRate], names: list[tuple[str, str]]) -> tuple[torch.Tensor, dict]:
        """The new table on the host (and the plateau rows), or ``ValueError`` naming the row that
        needs more segments than the table holds, and how to get them."""
        programs = [compile_schedule(c) for c in configs]
        held, needed = self.table.shape[0], max(map(len, programs))
        if needed > held:
            row = max(range(len(programs)), key=lambda i: len(programs[i]))
            built = held - self.spare_segments
            raise ValueError(
                f"the new schedule of group {names[row][0]!r} {names[row][1]} needs {needed} segments of the device "
                f"table, which holds {held} a row ({built} for the longest schedule at construction plus "
                f"spare_segments={self.spare_segments}): build the LRShim with spare_segments={needed - built} or "
                f"more (the room a switch may use), or in host mode (device_schedule=False), which has no limit"
            )
        return padded_table(programs, held), plateau_rows(configs)

    def replace_schedules(self, prepared: tuple[torch.Tensor, dict[int, PlateauRow]], moves: dict[int, int]) -> None:
        """Write the prepared table into the device table, in place (a captured graph and a compiled step
        read it there), and set the rates at the current step. The rows keep their places (``moves`` is
        the identity here): the plateau state stays as it is. No host sync (a pinned copy on CUDA)."""
        table, plateau_rows = prepared
        self.plateau_rows.clear()  # the same dict: a compiled step reads it (whether a plateau is held)
        self.plateau_rows.update(plateau_rows)
        if self.table.device.type == "cuda":
            table = table.pin_memory()
        self.table.copy_(table, non_blocking=True)
        if self.step >= 0:
            self.launcher.advance(0)
            if self._recent is not None:
                self._recent.record(self.step)

    # --- copies: deepcopy, pickle, torch.save --------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for rebuilt in ("launcher", "advance", "_launch", "_scale_launch", "_scale_seen", "_reads_amount"):  # rebuilt
            state.pop(rebuilt, None)
        state["_recent"] = None  # the copy starts without recent-rate copies (events do not pickle)
        state["_checked_amount"] = None
        state["skip"] = None  # the signal is the training loop's, not the schedule's: skip_steps_on again
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = _current_layout(state)
        self.__dict__.update(state)
        try:
            self.backend = resolve_backend(self.values.device, self.backend)
        except RuntimeError:  # the saved backend is not available here: take the best one that is
            self.backend = resolve_backend(self.values.device, None)
        self._bind()
        self._select_step()
        self._binding.drop_stale_step_wrappers()
        self._binding.bind(self.values)
        self._binding.attach()


def _current_layout(state: dict[str, Any]) -> dict[str, Any]:
    """A pickled engine's state in this layout: earlier ones named the lr rows' count ``_groups``, the
    plateau tensor ``plateau`` and its rows ``plateaus``, marked :attr:`DeviceEngine.lag`'s reasons
    ``ahead`` and ``stale``, and had no ``previous_scale`` (nor, before plateaus, their entries)."""
    state = dict(state)
    renamed = {"_groups": "lr_rows", "plateau": "plateau_state", "plateaus": "plateau_rows", "ahead": "_unseen_steps",
               "stale": "_unknown_distance"}
    for old, new in renamed.items():
        if old in state:
            state[new] = state.pop(old)
    state.setdefault("plateau_state", None)
    state.setdefault("plateau_rows", {})
    state.setdefault("_metric", None)
    state.setdefault("_amount", None)
    state.setdefault("_recent", None)
    state.setdefault("_checked_amount", None)
    state.setdefault("skip", None)
    state.setdefault("spare_segments", 0)
    if "previous_scale" not in state:
        state["previous_scale"] = torch.zeros((), dtype=torch.float32, device=state["values"].device)
    return state

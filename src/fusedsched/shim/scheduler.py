"""``LRShim``: tml's learning-rate scheduler, a ``torch.optim.lr_scheduler.LRScheduler``.

A thin ``LRScheduler`` over an engine (:mod:`fusedsched.shim.engine`), picked once at construction:

- **host mode** (float ``group["lr"]``, :class:`~fusedsched.shim.host_engine.HostEngine`): each ``step()``
  writes every group's rate, exactly ``compute_lr``'s float64 value.
- **device mode** (tensor ``group["lr"]``, or ``device_schedule=True``,
  :class:`~fusedsched.shim.device_engine.DeviceEngine`): each ``group["lr"]`` is a view of one float32 buffer
  and ``step()`` is one op call that advances a device int64 step counter and rewrites the buffer,
  with no host sync, so it can run inside a CUDA graph or a ``torch.compile``'d step.

In device mode the device counter is the truth: ``last_epoch`` (read and written), ``_step_count``
and ``step(epoch)`` all go through it, so torch's ``SequentialLR`` and ``ChainedScheduler`` drive an
``LRShim`` the same way in both modes. After CUDA graph replays or compiled steps, reading
``last_epoch`` copies the counter back once (a sync).

The clock: ``step(amount=n)`` advances by ``n`` (an int >= 0, or in device mode an int64 device
tensor the op reads: tokens, samples), and :meth:`LRShim.skip_steps_on` (a ``GradScaler`` or a
``found_inf`` tensor) makes a step whose optimizer step was skipped leave every schedule where it
was, decided on the device. ``last_epoch`` counts applied steps in the amount's unit.

Hyperparameters: ``hyperparameters={group: {"weight_decay" | "beta1" | "beta2" | "momentum" | "eps":
schedule}}`` schedules what the optimizer step reads beside ``lr``, and ``multipliers={group: {key:
m}}`` scales a group's schedule by a constant (:mod:`fusedsched.shim.hyperparameters`): host mode writes
floats into those keys, device mode evaluates them in the same launch and binds 0-dim views.

Plateaus: a schedule of kind ``plateau`` (torch's ``ReduceLROnPlateau``) lowers its rate when the
metric given to ``step(metrics)`` stops improving; its state lives beside the rates (device mode:
in device memory, updated by the same launch, no sync) and in checkpoints.

Checkpoints are checked by :func:`fusedsched.shim.checkpoint.parse_state_dict` before anything changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import EPOCH_DEPRECATION_WARNING, LRScheduler

from .binding import GroupBinding, GroupBindingError
from .checkpoint import MAX_EPOCH, ScheduleChangedWarning, check_step, parse_state_dict, plateau_entry, validate_lr_dict
from .device_engine import DeviceEngine, buffer_device
from .engine import Engine, Lag
from .host_engine import HOST_NATIVE_MIN_GROUPS, HostEngine
from .hyperparameters import check_optimizer_reads, rows, scaled, validate_hyperparameters, validate_multipliers
from ..schedule.kinds import LearningRate
from ..schedule.reference import compute_lr
from .skipping import SkipSignal

__all__ = ["HOST_NATIVE_MIN_GROUPS", "LRShim", "MAX_EPOCH", "GroupBindingError", "ScheduleChangedWarning"]


def _float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _warn_if_optimizer_step_skipped(optimizer: Any) -> None:
    # torch's LRScheduler.step() warnings, word for word.
    if not hasattr(optimizer.step, "_wrapped_by_lr_sched"):
        warnings.warn(
            "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
            "initialization. Please, make sure to call `optimizer.step()` before "
            "`lr_scheduler.step()`. See more details at "
            "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
            UserWarning,
            stacklevel=3,
        )
    elif not getattr(optimizer, "_opt_called", False):
        warnings.warn(
            "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
            "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
            "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
            "will result in PyTorch skipping the first value of the learning rate schedule. "
            "See more details at "
            "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
            UserWarning,
            stacklevel=3,
        )


class LRShim(LRScheduler):
    """Schedules every param group from a tml ``LearningRate`` config.

    Args:
        optimizer: a torch optimizer; torchrec's ``KeyedOptimizerWrapper`` or ``CombinedOptimizer``;
            or any object exposing ``_optims`` as ``(name, optimizer)`` pairs or a ``{name:
            optimizer}`` mapping (its param groups are taken flattened, in order).
        lr_dict: one ``LearningRate`` (or a dict that validates as one) per param group, keyed by
            group name. Groups are named by ``group["name"]``, or by their ``_optims`` name when
            that sub-optimizer has one group; named groups take the schedule of their name, and
            only when no group has a name does the order of ``lr_dict`` decide (tml's behaviour).
        last_epoch: the step of the last completed ``step()``; -1 starts a fresh schedule. Device
            mode takes steps up to ``fields.MAX_STEP`` (2**53 - 2, exact in float64) here, in ``step(epoch)``,
            ``last_epoch = k`` and ``load_state_dict``; host mode any step up to ``MAX_EPOCH`` (2**63 - 1).
        verbose: accepted for tml compatibility and ignored (torch no longer takes it).
        device_schedule: ``None`` (default) picks device mode when the groups' lrs are tensors;
            ``True`` forces it (the lrs become float32 views on ``device``); ``False`` forces host mode.
        backend: ``advance_`` backend for device mode (``"auto"``, ``"native"``, ``"triton"``,
            ``"reference"``); ``None`` means ``$FUSEDSCHED_BACKEND`` or ``"auto"``.
        device: where the device-mode buffers live: the parameters' device (the default).
        skip_steps_on: a ``torch.amp.GradScaler`` or a ``found_inf`` tensor: see :meth:`skip_steps_on`.
        hyperparameters: ``{group name: {key: LearningRate or dict}}`` with ``key`` one of
            ``weight_decay``, ``beta1`` (``betas[0]``), ``beta2`` (``betas[1]``), ``momentum``, ``eps``:
            each is scheduled like ``lr`` (host mode: a float written each step; device mode: a
            0-dim view of the same buffer, evaluated in the same launch, which only fusedsched's
            ``GraphSafeAdam`` / ``GraphSafeAdamW`` / ``GraphSafeSGD`` read without a host sync, so
            device mode refuses other optimizers for them). The group must have the key.
        multipliers: ``{group name: {key: m}}``, ``key`` ``lr`` or a scheduled hyperparameter of
            that group, ``m`` a finite float >= 0: the group's value is ``m * schedule(s)``, exactly
            (one schedule, per-group multipliers: layer-wise rates, ``lr_mult`` / ``wd_mult``).

    Raises:
        TypeError / ValueError / OverflowError: a bad argument (a step beyond the mode's range),
            names that do not match (both lists are shown), or (device mode) an optimizer setting
            that cannot take a tensor lr (the message names the setting to change). Nothing is
            changed on the optimizer before these checks pass.

    Example::

        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.0)
        >>> shim = LRShim(opt, {"all": LearningRate(linear_ramp_to_constant={
        ...     "learning_rate": 0.1, "num_ramp_steps": 4})})
        >>> [round(shim.get_last_lr()[0], 3) for _ in range(3) if not shim.step()]
        [0.025, 0.05, 0.075]
    """

    def __init__(
        self,
        optimizer: Any,
        lr_dict: Mapping[str, LearningRate | Mapping[str, Any]],
        last_epoch: int = -1,
        verbose: Any = "deprecated",
        *,
        device_schedule: bool | None = None,
        backend: str | None = None,
        device: torch.device | str | None = None,
        skip_steps_on: Any = None,
        hyperparameters: Mapping[str, Mapping[str, Any]] | None = None,
        multipliers: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        configs = validate_lr_dict(lr_dict)
        binding = GroupBinding(optimizer, list(configs))
        hyper = validate_hyperparameters(hyperparameters, binding.names)
        mults = validate_multipliers(multipliers, binding.names, hyper)
        last_epoch = check_step(last_epoch, "last_epoch", minimum=-1)
        groups = binding.groups()
        if last_epoch >= 0:
            missing = [binding.names[i] for i, g in enumerate(groups) if "initial_lr" not in g]
            if missing:
                raise KeyError(
                    f"param 'initial_lr' is not specified in param groups {missing} when resuming with "
                    f"last_epoch={last_epoch}: load the optimizer's state first, or start with last_epoch=-1"
                )
        if device_schedule is None:
            device_schedule = all(isinstance(g["lr"], torch.Tensor) for g in groups)
        elif not isinstance(device_schedule, bool):
            raise TypeError(f"device_schedule must be None, True or False, got {device_schedule!r}")
        row_configs, extra = rows(binding.names, configs, hyper, mults)
        check_optimizer_reads(extra, groups, binding.group_owners(), binding.names, device_schedule)
        if skip_steps_on is not None:  # checked here, before the engine changes the groups; used from the first step()
            SkipSignal.check(skip_steps_on, buffer_device(binding, device) if device_schedule else None)
        self._binding = binding
        self.lr_dict = {name: configs[name] for name in binding.names}  # in group order
        self.group_names = list(self.lr_dict)
        self.hyperparameters = hyper  #: ``{group: {key: LearningRate}}``, the scheduled hyperparameters
        self.multipliers = mults  #: ``{group: {key: m}}``, the multipliers as given (a missing one is 1)
        self._rows = extra
        self._steps = 0  # torch's _step_count
        binding.rows = [(row.group, row.key, row.index, row.slot) for row in extra]
        self._engine: Engine = (
            DeviceEngine(binding, row_configs, last_epoch, device, backend)
            if device_schedule
            else HostEngine(binding, row_configs, last_epoch)
        )
        super().__init__(binding.optimizer, last_epoch)
        if skip_steps_on is not None:  # after the initial step: it evaluates step 0, skipping nothing
            self._engine.skip_steps_on(skip_steps_on)

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
        """The float32 buffer of every group's current rate (device mode; reading it never syncs).

        With scheduled hyperparameters, a view of the buffer's first rows (:attr:`values_tensor` is all of it).
        """
        return self._device_only("lr_tensor").lrs

    @property
    def values_tensor(self) -> torch.Tensor:
        """The whole float32 buffer (device mode): every group's lr, then the scheduled hyperparameters'
        distinct rows (:attr:`hyperparameter_rows` says which is whose)."""
        return self._device_only("values_tensor").values

    @property
    def step_tensor(self) -> torch.Tensor:
        """The int64 device step counter (device mode)."""
        return self._device_only("step_tensor").counter

    def _device_only(self, what: str) -> Engine:
        if not self._engine.on_device:
            raise RuntimeError(f"{what} exists only in device mode (device_schedule=True)")
        return self._engine

    def skip_steps_on(self, signal: Any) -> None:
        """From now on, a ``step()`` whose optimizer step was skipped leaves every schedule where it was.

        ``signal``: a ``torch.amp.GradScaler`` (the step was skipped iff ``scaler.update()`` lowered
        the scale since the previous ``step()``; a disabled scaler never skips), a one-element
        float32 or bool ``found_inf`` tensor (nonzero: skipped; written by its owner before each
        ``step()``), or None (stop skipping). Device mode passes the flag to the op: no host sync,
        capturable, traceable; host mode reads it (a sync on an accelerator). ``last_epoch`` counts
        applied steps; ``_step_count`` counts ``step()`` calls. ``step(epoch)`` jumps regardless.
        The signal is not checkpoint data: ``load_state_dict`` keeps it (and takes the scaler's
        current scale as the previous one: load the scaler first); a copy or unpickled scheduler has
        none. Checked before anything changes (``TypeError`` / ``ValueError`` naming the value).
        """
        self._engine.skip_steps_on(signal)

    @property
    def skip_signal(self) -> Any:
        """What :meth:`skip_steps_on` was given (a GradScaler or a tensor), or None."""
        skip = self._engine.skip
        return None if skip is None else skip.source

    def mark_device_ahead(self) -> None:
        """Tell the shim its device counter moved without it (e.g. CUDA graph replays)."""
        self._engine.note_unseen_steps()

    def rebind(self) -> None:
        """Hand every group back to the schedule: device mode points each ``lr`` at its view again.

        For after an intentional change of ``group["lr"]`` or ``param_groups`` by hand, or after
        another ``LRShim`` took the groups over; the groups must still be the ones this LRShim was
        built for (same count, same names). Host mode rewrites the current rates.
        """
        self._binding.require_layout(taking_back=True)
        self._engine.rebind()

    # --- step and last_epoch: one truth -----------------------------------------------------------

    def _catch_up(self) -> None:
        """Take the step from a counter that moved unseen (a sync); ``_step_count`` moves by as many steps."""
        if self._engine.lag:
            self._steps += self._engine.catch_up()

    def _check_step(self, value: Any, name: str, minimum: int = 0) -> int:
        value = check_step(value, name, minimum)
        self._engine.check_step(value, name)  # device mode: at most MAX_STEP
        return value

    @property
    def last_epoch(self) -> int:
        """The step of the last ``step()``; in device mode refreshed from the counter when stale (syncs).

        Set it to resume at a step (the next ``step()`` evaluates the one after): -1 or more, at most
        ``MAX_STEP`` in device mode.
        """
        self._catch_up()
        return self._engine.step

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        value = self._check_step(value, "last_epoch", minimum=-1)
        self._catch_up()  # keep _step_count's count of the steps the device took
        self._engine.move(value)

    @property
    def _step_count(self) -> int:
        self._catch_up()
        return self._steps

    @_step_count.setter
    def _step_count(self, value: int) -> None:
        self._steps = value

    def step(
        self, *args: Any, epoch: int | None = None, amount: int | torch.Tensor | None = None, metrics: Any = None
    ) -> None:
        """Advance one step, or ``amount`` steps, (or jump to ``epoch``, deprecated as in torch) and
        update every group; with :meth:`skip_steps_on`, a skipped step advances by nothing.

        ``metrics`` (a float or a one-element tensor: the loss, a validation score) feeds the
        schedules that hold a ``plateau``, as torch's ``ReduceLROnPlateau.step(metrics)``; when some
        schedule holds one, a positional argument is ``metrics`` (``ReduceLROnPlateau.step(metrics)``),
        else ``epoch`` (``LRScheduler.step(epoch)``); the keywords always mean what they say.
        Device mode reads a float32 or float64 tensor on the counter's device where it is (no sync;
        in a CUDA graph, whatever it holds at replay) and copies anything else into a buffer first;
        host mode takes ``float(metrics)``. A step without it leaves every plateau alone.

        ``epoch`` is checked before anything changes: an int >= 0, at most ``MAX_STEP`` (2**53 - 2)
        in device mode (the device evaluates the step in float64), at most 2**63 - 1 in host mode.
        ``amount`` (keyword only; not with ``epoch``): an int >= 0, or a one-element int64 tensor.
        Device mode: the tensor on the counter's device, read by the op (no sync; in a CUDA graph,
        whatever it holds at replay; on CUDA not checked: a negative amount moves the counter back);
        an int other than 0 and 1 is written into a buffer the engine owns (in a captured graph,
        frozen at capture: pass a tensor). Host mode reads a tensor (a sync on an accelerator). An
        int amount that would pass the mode's last step (``MAX_STEP``, 2**63 - 1) raises
        ``OverflowError``. Schedules then count in the amount's unit (e.g. tokens).
        """
        engine = self._engine
        if args:
            if len(args) > 1:
                raise TypeError(f"step() takes at most one positional argument, got {len(args)}")
            name = "metrics" if engine.plateau_rows else "epoch"  # ReduceLROnPlateau.step(metrics)
            if (metrics if engine.plateau_rows else epoch) is not None:
                raise TypeError(f"step() got {name} both as the positional argument and as a keyword")
            if engine.plateau_rows:
                metrics = args[0]
            else:
                epoch = args[0]
        if metrics is not None:
            if not engine.plateau_rows:
                raise ValueError(
                    f"step() got metrics={metrics!r:.100} but no schedule of this LRShim holds a plateau "
                    f"(the kind that reads a metric)"
                )
            if epoch is not None:
                raise TypeError(f"step() takes metrics or epoch, not both; got epoch={epoch!r}")
            self._step_by(amount, engine.metric_arg(metrics))
            return
        if amount is not None:
            if epoch is not None:
                raise TypeError(
                    f"step() takes epoch (a deprecated jump to a step) or amount (how far to advance), "
                    f"not both; got epoch={epoch!r} and amount={amount!r}"
                )
            self._step_by(amount)
            return
        if epoch is None:
            if engine.compilable and torch.compiler.is_compiling():
                # No Python int in the graph (it would recompile every step): the host learns it later.
                engine.advance_unseen()
                return
            engine.check_groups()  # O(optimizers): no per-group work on this path
            if self._steps == 1 and Lag.STEPS not in engine.lag:
                _warn_if_optimizer_step_skipped(self.optimizer)
            self._steps += 1
            engine.advance()
            return
        self._jump(epoch, "epoch")  # checked before anything changes
        if self._steps == 2:  # the first step() call after the constructor's
            _warn_if_optimizer_step_skipped(self.optimizer)
        warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)

    def _jump(self, step: Any, what: str, metric: Any = None, *, counted: bool = True) -> None:
        """Go straight to ``step`` and set every group's rate there, as one ``step()`` call
        (``counted=False``: as none, for a scheduler that starts at ``step``); ``what`` names ``step``.

        ``step`` (an int >= 0, at most ``MAX_STEP`` in device mode), ``metric`` and the groups are
        checked before anything changes. With ``metric``, it is the ``step(metrics=metric)`` taken
        from ``step - 1``: the plateaus active at ``step`` read the metric first. ``step(epoch)`` and
        the stack converters' shims (their own step arguments: timm's ``t``, DeepSpeed's
        ``last_batch_iteration``, Megatron's ``num_steps``) jump with it.
        """
        step = self._check_step(step, what)  # before anything changes
        value = None if metric is None else self._engine.metric_arg(metric)
        self._engine.check_groups()
        self._catch_up()
        if value is not None:
            self._engine.move(step - 1)
            self._step_by(1, value)  # counted there
            return
        if counted:
            self._steps += 1
        self._engine.jump(step)

    def _step_by(self, amount: int | torch.Tensor | None, metric: Any = None) -> None:
        """``step(amount=...)`` (and ``metrics``): check ``amount`` before anything changes, then advance by it."""
        engine = self._engine
        if amount is None:  # a metric's step: one step, as step() takes it
            amount = value = 1
        elif isinstance(amount, torch.Tensor):
            value = engine.amount_value(amount)  # checked; None where reading it would sync
        else:
            value = check_step(amount, "amount")
            engine.check_amount(value)
        if engine.compilable and torch.compiler.is_compiling():
            engine.advance_unseen(amount, metric)
            return
        engine.check_groups()
        if self._steps == 1 and Lag.STEPS not in engine.lag:
            _warn_if_optimizer_step_skipped(self.optimizer)
        engine.advance_by(amount if engine.on_device else value, metric)
        self._steps += 1  # after the op, which refuses a bad tensor before it writes anything

    def _update_lr(self, epoch: int | None = None) -> None:
        """Go to the next step (``epoch`` None) or to ``epoch``, and set every group's rate there."""
        if epoch is None:
            self._engine.advance()
            return
        epoch = self._check_step(epoch, "epoch")
        self._catch_up()
        self._engine.jump(epoch)

    # --- the LRScheduler contract -------------------------------------------------------------

    def get_lr(self) -> list[float]:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                UserWarning,
                stacklevel=2,
            )
        return self._get_closed_form_lr()

    def _get_closed_form_lr(self) -> list[float]:
        step = self.last_epoch
        return [
            compute_lr(scaled(cfg, self.multipliers.get(name, {}).get("lr", 1.0)), step)
            for name, cfg in self.lr_dict.items()
        ]

    def get_last_lr(self) -> list[float]:
        """Every group's current rate as floats. In device mode: one device-to-host copy (a sync)."""
        self._binding.verify()
        return self._engine.floats()

    def get_last_hyperparameters(self) -> dict[str, dict[str, float]]:
        """Every scheduled hyperparameter's current value, ``{group: {key: float}}`` (device mode: a sync).

        ``key`` as given to ``hyperparameters`` (``beta1`` for ``betas[0]``), multipliers applied;
        groups without a scheduled hyperparameter are left out (their lrs: :meth:`get_last_lr`).
        """
        self._binding.verify()
        values = self._engine.all_floats()
        out: dict[str, dict[str, float]] = {}
        for row in self._rows:
            out.setdefault(self.group_names[row.group], {})[row.name] = values[row.slot]
        return out

    @property
    def hyperparameter_rows(self) -> dict[str, dict[str, int]]:
        """``{group: {key: i}}``: where each scheduled hyperparameter's value is in :attr:`values_tensor`
        (groups with the same schedule and multiplier of a key share one ``i``)."""
        out: dict[str, dict[str, int]] = {}
        for row in self._rows:
            out.setdefault(self.group_names[row.group], {})[row.name] = row.slot
        return out

    def get_recent_lr(self) -> list[float]:
        """Every group's rate after a recent step, read without a host sync: for logging.

        Host mode and CPU tensors: the current rates, as :meth:`get_last_lr`. CUDA: the first call
        reads the buffer once (a sync) and from then on each ``step()`` also copies the rates into
        pinned host memory without blocking; a call returns the newest copy the device has finished,
        the current step's or, while the device is still behind, an earlier one's (usually one step
        stale). Steps taken inside a CUDA graph or a compiled step make no copy.
        """
        return self._engine.recent_rates()[1]

    def state_dict(self) -> dict[str, Any]:
        """Plain Python data only (ints, floats, strings, lists, dicts); loads with ``weights_only=True``.

        ``last_epoch`` and ``_step_count`` (device mode: read from the device counter, one sync, and
        also stored as ``device_step``), ``base_lrs`` and ``_last_lr`` as floats, ``lr_dict``: every
        group's schedule by name, in group order, ``hyperparameters`` (``{group: {key: schedule}}``)
        and ``multipliers`` (``{group: {key: float}}``).
        """
        self._binding.verify()
        self._steps += self._engine.catch_up()  # device mode: the counter may have been written directly
        return {
            "last_epoch": self._engine.step,
            "_step_count": self._steps,
            "base_lrs": [_float(lr) for lr in self.base_lrs],
            "_last_lr": self._engine.floats(),
            "lr_dict": {name: cfg.model_dump(exclude_none=True) for name, cfg in self.lr_dict.items()},
            "hyperparameters": {
                name: {key: cfg.model_dump(exclude_none=True) for key, cfg in entry.items()}
                for name, entry in self.hyperparameters.items()
            },
            "multipliers": {name: dict(entry) for name, entry in self.multipliers.items()},
            **self._plateau_state(),
            **self._engine.extra_state(),
        }

    @property
    def has_plateau(self) -> bool:
        """Whether some schedule holds a ``plateau`` (then ``step(x)`` takes ``x`` as its metric)."""
        return bool(self._engine.plateau_rows)

    def plateau_states(self) -> dict[tuple[str, str], list[float]]:
        """``{(group, key): [value, best, bad_epochs, cooldown_left]}`` of every plateau (device mode: a sync).

        ``key`` is ``"lr"`` or a scheduled hyperparameter; ``value`` is the plateau's current rate
        (before a multiplier), ``best`` the best metric so far (``inf`` / ``-inf`` before any)."""
        names = self._row_names()
        return {names[row]: state for row, state in self._engine.plateau_states().items()}

    def load_plateau_states(self, states: Mapping[tuple[str, str], list[float]]) -> None:
        """Set plateaus' states (as :meth:`plateau_states` gives them) and the rates at the current step."""
        row_of = self._row_of()
        unknown = [key for key in states if row_of.get(key) not in self._engine.plateau_rows]
        if unknown:
            names = self._row_names()
            raise ValueError(f"load_plateau_states: no plateau at {unknown}; the plateaus are at "
                             f"{[names[r] for r in self._engine.plateau_rows]}")
        self._engine.load_plateau_states({row_of[key]: list(map(float, s)) for key, s in states.items()})
        if self._engine.step >= 0:
            self._catch_up()
            self._engine.restore(self._engine.step)

    def _row_names(self) -> list[tuple[str, str]]:
        """``(group, key)`` of every row: the lr rows, then each hyperparameter row's first group (a row
        shared by groups with the same schedule and multiplier is named by the first)."""
        owners: dict[int, tuple[str, str]] = {}
        for r in self._rows:
            owners.setdefault(r.slot, (self.group_names[r.group], r.name))
        return [(name, "lr") for name in self.group_names] + [owners[slot] for slot in sorted(owners)]

    def _row_of(self) -> dict[tuple[str, str], int]:
        """Every ``(group, key)``'s row, shared rows included."""
        return {**{(name, "lr"): i for i, name in enumerate(self.group_names)},
                **{(self.group_names[r.group], r.name): r.slot for r in self._rows}}

    def _plateau_state(self) -> dict[str, Any]:
        """``{"plateaus": {group: {key: state}}}`` when a schedule holds a plateau (else nothing)."""
        states = self._engine.plateau_states()
        if not states:
            return {}
        names = self._row_names()
        out: dict[str, dict[str, Any]] = {}
        for row, state in states.items():
            group, key = names[row]
            out.setdefault(group, {})[key] = plateau_entry(state)
        return {"plateaus": out}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = False) -> None:
        """Restore the step from a :meth:`state_dict`; the schedules stay the configured ones.

        Groups are matched by name: a state saved for other names (or another group count) is
        refused with both lists. Where the checkpoint's schedule of a group (its lr, a
        hyperparameter's, or a multiplier) differs from the configured one, the configured one is
        used and one :class:`ScheduleChangedWarning` lists every difference (group and field); ``strict=True`` raises ``ValueError`` instead. Device
        mode refuses a ``last_epoch`` beyond ``MAX_STEP``. Everything is checked before anything
        changes. In device mode the groups are bound to the buffer again.
        """
        names = self._row_names()
        resume = parse_state_dict(
            state_dict, self.group_names, self.lr_dict, strict, self.hyperparameters, self.multipliers,
            [names[row] for row in self._engine.plateau_rows],
        )
        self._engine.check_step(resume.last_epoch, "state_dict['last_epoch']")
        if resume.differences:
            lines = "\n  ".join(resume.differences)
            warnings.warn(
                ScheduleChangedWarning(
                    f"the checkpoint's schedules differ from the configured ones; using the configured "
                    f"schedules from step {resume.last_epoch}:\n  {lines}"
                ),
                stacklevel=2,
            )
        self._binding.require_layout()  # a load repairs replaced lrs, not a changed group layout
        # Everything is checked: change state.
        if resume.step_count is not None:
            self._steps = resume.step_count
        if resume.base_lrs is not None:
            self.base_lrs = list(resume.base_lrs)
        if resume.plateaus:
            row_of = self._row_of()
            self._engine.load_plateau_states({row_of[key]: state for key, state in resume.plateaus.items()})
        self._engine.restore(resume.last_epoch)

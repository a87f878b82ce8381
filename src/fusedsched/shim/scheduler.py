"""``LRShim``: tml's learning-rate scheduler, a thin ``torch.optim.lr_scheduler.LRScheduler`` over an engine.

The engine is picked once at construction (docs/architecture.md, "Modes are objects"): host mode
(float ``group["lr"]``, :mod:`~fusedsched.shim.host_engine`: ``compute_lr``'s float64 values) or
device mode (tensor ``group["lr"]`` or ``device_schedule=True``, :mod:`~fusedsched.shim.device_engine`:
one op launch per ``step()``, no host sync). In device mode the device counter is the truth:
``last_epoch``, ``_step_count`` and ``step(epoch)`` all go through it, so torch's ``SequentialLR``
and ``ChainedScheduler`` drive an ``LRShim`` alike in both modes. The clock (``step(amount=...)``,
:meth:`LRShim.skip_steps_on`), scheduled hyperparameters and multipliers, and plateaus
(``step(metrics)``) are docs/semantics.md's; checkpoints are docs/checkpoints.md's; changing a
running schedule (:meth:`LRShim.switch`, :mod:`~fusedsched.shim.switching`) is docs/switching.md's.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import EPOCH_DEPRECATION_WARNING, LRScheduler

from ..schedule.kinds import LearningRate
from .binding import GroupBindingError
from .checkpoint import MAX_EPOCH, ScheduleChangedWarning, Switch, check_step, parse_state_dict, scheduler_state
from .contract import check_arguments, step_arguments, warn_if_optimizer_step_skipped
from .device_engine import DeviceEngine
from .engine import Engine, Lag
from .host_engine import HOST_NATIVE_MIN_GROUPS, HOST_NATIVE_MIN_ROWS, HostEngine
from .switching import Replacement, Schedules, planned, replacement, resumed
from .views import ScheduleViews

__all__ = ["HOST_NATIVE_MIN_GROUPS", "HOST_NATIVE_MIN_ROWS", "LRShim", "MAX_EPOCH", "GroupBindingError", "ScheduleChangedWarning"]

class LRShim(ScheduleViews, LRScheduler):
    """Schedules every param group from a tml ``LearningRate`` config (docs/semantics.md).

    Args:
        optimizer: a torch optimizer, torchrec's ``KeyedOptimizerWrapper`` / ``CombinedOptimizer``, or
            any object exposing ``_optims`` as ``(name, optimizer)`` pairs or a mapping.
        lr_dict: ``{group name: LearningRate or dict}``; groups are named by ``group["name"]`` (or
            their ``_optims`` name); when none has a name, by ``lr_dict``'s order (tml's behaviour).
        last_epoch: the step of the last completed ``step()``; -1 starts fresh (device mode: at most
            ``MAX_STEP``, 2**53 - 2; host mode: ``MAX_EPOCH``, 2**63 - 1).
        verbose: accepted for tml compatibility and ignored.
        device_schedule: None picks device mode when the groups' lrs are tensors; True / False force it.
        backend: device mode's ``advance_`` backend (``"auto"``, ``"native"``, ``"triton"``,
            ``"reference"``); None: ``$FUSEDSCHED_BACKEND`` or ``"auto"``.
        device: device mode's buffers' device: the parameters' (the default).
        skip_steps_on: a ``torch.amp.GradScaler`` or a ``found_inf`` tensor (:meth:`skip_steps_on`).
        hyperparameters: ``{group: {key: schedule}}``, ``key`` one of ``weight_decay``, ``beta1``,
            ``beta2``, ``momentum``, ``eps``, scheduled like ``lr`` in the same launch.
        multipliers: ``{group: {key: m}}``: the group's value is ``m * schedule(s)``, exactly.
        spare_segments: device mode's room for :meth:`switch`: padding segments per row of the table
            beyond the longest schedule (0: a switch fits only where it adds no segment).

    Raises ``TypeError`` / ``ValueError`` / ``OverflowError`` naming the argument and the value before
    anything changes on the optimizer.

    Example::

        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.0)
        >>> shim = LRShim(opt, {"all": LearningRate(linear_ramp_to_constant={
        ...     "learning_rate": 0.1, "num_ramp_steps": 4})})
        >>> [round(shim.get_last_lr()[0], 3) for _ in range(3) if not shim.step()]
        [0.025, 0.05, 0.075]
    """

    _configured: Schedules | None = None  # the constructor's schedules (None: pickled before switches existed)
    _switches: tuple[Switch, ...] = ()

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
        spare_segments: int = 0,
    ) -> None:
        checked = check_arguments(optimizer, lr_dict, last_epoch, device_schedule, device, skip_steps_on,
                                  hyperparameters, multipliers, spare_segments)
        binding, last_epoch, self._rows = checked.binding, checked.last_epoch, checked.rows
        self._binding = binding
        self.lr_dict = checked.lr_dict  #: ``{group: LearningRate}``, in group order
        self.group_names = list(self.lr_dict)
        self.hyperparameters = checked.hyperparameters  #: ``{group: {key: LearningRate}}``
        self.multipliers = checked.multipliers  #: ``{group: {key: m}}``, as given (a missing one is 1)
        self._configured = self._schedules()  # lr_dict and hyperparameters are those in effect (switches joined in)
        self._steps = 0  # torch's _step_count
        binding.rows = self._rows.hyper  # every check passed: from here on the groups change
        configs = list(self._rows.configs)
        self._engine: Engine = (
            DeviceEngine(binding, configs, last_epoch, device, backend, checked.spare_segments) if checked.device_schedule
            else HostEngine(binding, configs, last_epoch)
        )
        super().__init__(binding.optimizer, last_epoch)
        if skip_steps_on is not None:  # after the initial step: it evaluates step 0, skipping nothing
            self._engine.skip_steps_on(skip_steps_on)

    def skip_steps_on(self, signal: Any) -> None:
        """From now on a ``step()`` whose optimizer step was skipped leaves every schedule where it was.

        ``signal``: a ``torch.amp.GradScaler`` (skipped iff ``update()`` lowered the scale), a
        one-element float32 or bool ``found_inf`` tensor (nonzero: skipped), or None (stop). Device mode
        decides on the device (no sync); host mode reads it. Not checkpoint data: a load keeps it, a
        copy has none (docs/semantics.md, "The clock"). Checked before anything changes.
        """
        self._engine.skip_steps_on(signal)

    def mark_device_ahead(self) -> None:
        """Tell the shim its device counter moved without it (e.g. CUDA graph replays)."""
        self._engine.note_unseen_steps()

    def rebind(self) -> None:
        """Hand every group back to the schedule (after a change of ``group["lr"]`` or ``param_groups`` by
        hand, or another ``LRShim`` took them); the groups must be the ones this LRShim was built for."""
        self._binding.require_layout(taking_back=True)
        self._engine.rebind()

    # --- switches: a running schedule changed without a jump (docs/switching.md) ---------------------

    @property
    def switches(self) -> tuple[Switch, ...]:
        """Every switch of the schedules in effect, in order (made, or resumed from a checkpoint)."""
        return self._switches

    def switch(self, schedules: Mapping[str, Any] | None = None, *,
               hyperparameters: Mapping[str, Mapping[str, Any]] | None = None, at: int | None = None) -> None:
        """From step ``at`` on (default: the current step) follow new schedules, counted from ``at``:
        ``schedules`` ``{group: schedule}`` for ``lr``, ``hyperparameters`` ``{group: {key: schedule}}``;
        a rate field may be ``"current"``, the row's rate at ``at``. Each row's schedule becomes
        ``join([old, new], [at])``. Checked before anything changes; device mode rewrites its table in
        place (room: ``spare_segments``) and syncs at most once, to read the step (docs/switching.md)."""
        self._engine.check_groups()
        self._catch_up()  # the one sync a switch may take: the step of a counter that moved unseen
        self._take(planned(self._engine, self._rows, self._schedules(), self._switches, schedules, hyperparameters, at))

    def _schedules(self) -> Schedules:
        return Schedules(self.lr_dict, self.hyperparameters, self.multipliers)

    def _take(self, change: Replacement) -> None:
        """Follow ``change``'s schedules (checked and prepared) from now on."""
        if change.changed:
            self._binding.rows = change.rows.hyper
            self._engine.replace_schedules(change.prepared, change.moves)
            self._rows, new = change.rows, change.schedules
            self.lr_dict, self.hyperparameters, self.multipliers = new.lr, new.hyperparameters, new.multipliers
        self._switches = change.switches

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
        """The step of the last ``step()`` (device mode: from the counter when it moved unseen, a sync).
        Set it to resume at a step: the next ``step()`` evaluates the one after."""
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

    def step(self, *args: Any, epoch: int | None = None, amount: int | torch.Tensor | None = None,
             metrics: Any = None) -> None:
        """Advance one step (``amount`` steps: an int >= 0 or an int64 tensor), update every group.

        ``metrics`` (a number or a one-element tensor) feeds the schedules that hold a ``plateau``;
        when one does, a positional argument is ``metrics`` (``ReduceLROnPlateau.step(metrics)``), else
        ``epoch`` (a deprecated jump, as in torch). With :meth:`skip_steps_on`, a skipped step advances
        by nothing. Every argument is checked before anything changes (docs/semantics.md, "Steps").
        """
        engine = self._engine
        if args or epoch is not None or metrics is not None:  # not the plain step(): its path stays short
            epoch, metrics = step_arguments(args, epoch, metrics, bool(engine.plateau_rows))
        if metrics is not None:
            self._step_by(amount, engine.metric_arg(metrics))
        elif amount is not None:
            if epoch is not None:
                raise TypeError(f"step() takes epoch (a deprecated jump to a step) or amount (how far to "
                                f"advance), not both; got epoch={epoch!r} and amount={amount!r}")
            self._step_by(amount)
        elif epoch is not None:
            self._jump(epoch, "epoch")  # checked before anything changes
            if self._steps == 2:  # the first step() call after the constructor's
                warn_if_optimizer_step_skipped(self.optimizer)
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        elif engine.compilable and torch.compiler.is_compiling():
            engine.advance_unseen()  # no Python int in the graph (it would recompile): the host learns it later
        else:
            engine.check_groups()  # O(optimizers): no per-group work on this path
            if self._steps == 1 and Lag.STEPS not in engine.lag:
                warn_if_optimizer_step_skipped(self.optimizer)
            self._steps += 1
            engine.advance()

    def _jump(self, step: Any, what: str, metric: Any = None, *, counted: bool = True) -> None:
        """Go straight to ``step`` (named ``what`` in errors) and set every rate there, as one ``step()``
        call (``counted=False``: none, for a scheduler that starts at ``step``). With ``metric``, the
        ``step(metrics=metric)`` taken from ``step - 1``. Used by ``step(epoch)`` and the stack
        converters' shims (timm's ``t``, DeepSpeed's ``last_batch_iteration``, Megatron's ``num_steps``);
        ``step``, ``metric`` and the groups are checked before anything changes."""
        step = self._check_step(step, what)
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
            warn_if_optimizer_step_skipped(self.optimizer)
        engine.advance_by(amount if engine.on_device else value, metric)
        self._steps += 1  # after the op, which refuses a bad tensor before it writes anything

    def _update_lr(self, epoch: int | None = None) -> None:
        """torch's hook: go to the next step (``epoch`` None) or to ``epoch``."""
        if epoch is None:
            self._engine.advance()
        else:
            self._jump(epoch, "epoch", counted=False)

    # --- the LRScheduler contract (get_lr and the rates: ScheduleViews) --------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain Python data only; loads with ``weights_only=True`` (docs/checkpoints.md)."""
        self._binding.verify()
        self._steps += self._engine.catch_up()  # device mode: the counter may have been written directly
        return {**scheduler_state(self._engine.step, self._steps, self.base_lrs, self._engine.floats(),
                                  self.lr_dict, self.hyperparameters, self.multipliers, self.plateau_states(),
                                  self._switches),
                **self._engine.extra_state()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = False, schedules: str = "configured") -> None:
        """Restore the step, and the schedules ``schedules`` names, from a :meth:`state_dict`.

        ``"configured"``: the configured schedules with the checkpoint's switches applied; where the
        checkpoint's differ, one :class:`ScheduleChangedWarning` lists every difference (``strict=True``:
        ``ValueError``). ``"checkpoint"``: the checkpoint's own, switches included. Groups are matched
        by name; everything is checked before anything changes (docs/checkpoints.md).
        """
        target, switches = resumed(state_dict, schedules, self._configured or self._schedules(), self.group_names)
        change = replacement(self._engine, self._rows, self._schedules(), target, switches)
        resume = parse_state_dict(state_dict, self.group_names, target.lr, strict, target.hyperparameters,
                                  target.multipliers, change.plateau_keys())
        self._engine.check_step(resume.last_epoch, "state_dict['last_epoch']")
        if resume.differences:
            warnings.warn(ScheduleChangedWarning.of(resume), stacklevel=2)
        self._binding.require_layout()  # a load repairs replaced lrs, not a changed group layout
        self._take(change)  # everything is checked: change state
        if resume.step_count is not None:
            self._steps = resume.step_count
        if resume.base_lrs is not None:
            self.base_lrs = list(resume.base_lrs)
        if resume.plateaus:
            rows = self._rows.plateau_rows(resume.plateaus, self._engine.plateau_rows)
            self._engine.load_plateau_states({rows[key]: state for key, state in resume.plateaus.items()})
        self._engine.restore(resume.last_epoch)

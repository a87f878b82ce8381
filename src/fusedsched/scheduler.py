"""``LRShim``: tml's learning-rate scheduler, a ``torch.optim.lr_scheduler.LRScheduler``.

Two modes, one class:

- **host mode** (float ``group["lr"]``): each ``step()`` evaluates every group's rate on the host,
  exactly ``compute_lr``'s float64 value, and writes the floats into the groups. Few groups: one
  prepared formula per group (:func:`fusedsched.schedules.prepare_lr`); many groups: the native CPU
  op over the compiled programs, writing float64, in one call.
- **device mode** (tensor ``group["lr"]``, or ``device_schedule=True``): the schedules are compiled
  once into a device table (:mod:`fusedsched.program`), one float32 buffer holds every group's rate
  and each ``group["lr"]`` is a 0-dim view into it (:mod:`fusedsched.binding`). ``step()`` is one
  call of the op ``fusedsched::advance_`` (:mod:`fusedsched.ops`): it advances a device int64 step
  counter and rewrites the buffer, with no host sync and nothing allocated, so it can run inside a
  CUDA graph or a ``torch.compile``'d step.

In device mode the device counter is the truth: ``last_epoch`` (read and written), ``_step_count``
and ``step(epoch)`` all go through it, so torch's ``SequentialLR`` and ``ChainedScheduler`` drive an
``LRShim`` the same way in both modes. After CUDA graph replays or compiled steps, reading
``last_epoch`` copies the counter back once (a sync).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import EPOCH_DEPRECATION_WARNING, LRScheduler

from .binding import GroupBinding, GroupBindingError
from .config import MAX_STEP, LearningRate
from .ops import advance_op, check_advance_args, resolve_backend
from .ops import _native, _reference
from .program import ScheduleTable
from .schedules import compute_lr, prepare_lr

__all__ = ["HOST_NATIVE_MIN_GROUPS", "LRShim", "MAX_EPOCH", "GroupBindingError", "ScheduleChangedWarning"]

#: The largest step the int64 device counter holds.
MAX_EPOCH = 2**63 - 1

#: From this many groups on, host mode evaluates every group with one call of the native CPU op
#: (float64) instead of one prepared formula per group. Measured on the development CPU: the two
#: cost the same at about 8 groups (1.3 us); at 1,000 groups the op takes 20 us, the formulas 190 us.
HOST_NATIVE_MIN_GROUPS = 8


class ScheduleChangedWarning(UserWarning):
    """A checkpoint's schedules differ from the configured ones; the configured ones are used."""


def _check_epoch(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > MAX_EPOCH:
        raise OverflowError(f"{name} must be < 2**63 (the step counter is an int64), got {value}")
    return value


def _validate_lr_dict(lr_dict: Any, what: str = "lr_dict") -> dict[str, LearningRate]:
    if not isinstance(lr_dict, Mapping):
        raise TypeError(
            f"{what} must be a mapping of group name to LearningRate (e.g. {{'ALL_PARAMS': cfg}}), "
            f"got {type(lr_dict).__name__}"
        )
    configs = {}
    for name, cfg in lr_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"{what} keys must be group names (str), got {name!r} ({type(name).__name__})")
        if isinstance(cfg, LearningRate):
            configs[name] = cfg
            continue
        if not isinstance(cfg, Mapping):
            raise TypeError(f"{what}[{name!r}] must be a LearningRate or a mapping, got {type(cfg).__name__}")
        try:
            configs[name] = LearningRate.model_validate(cfg)
        except ValueError as exc:
            raise ValueError(f"{what}[{name!r}] is not a valid LearningRate: {exc}") from None
    if not configs:
        raise ValueError(f"{what} is empty: give one schedule per param group")
    return configs


def _differences(path: str, saved: Any, configured: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(saved, dict) and isinstance(configured, dict):
        out = []
        for key in list(saved) + [k for k in configured if k not in saved]:
            sub = f"{path}.{key}" if path else str(key)
            out += _differences(sub, saved.get(key), configured.get(key))
        return out
    return [] if saved == configured else [(path, saved, configured)]


def schedule_differences(name: str, saved: LearningRate, configured: LearningRate) -> list[str]:
    """One line per field where the checkpoint's schedule of group ``name`` differs from the configured one."""
    if saved.kind != configured.kind:
        return [f"group {name!r}: schedule kind is {saved.kind} in the checkpoint, {configured.kind} configured"]
    diffs = _differences("", saved.model_dump(exclude_none=True), configured.model_dump(exclude_none=True))
    return [f"group {name!r}: {path} is {a!r} in the checkpoint, {b!r} configured" for path, a, b in diffs]


def _float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


class _HostRates:
    """Every group's float64 rate at a step, bit for bit ``compute_lr``'s, from prepared programs."""

    def __init__(self, configs: list[LearningRate]) -> None:
        self.configs = configs
        self._formulas = [prepare_lr(cfg) for cfg in configs]
        self.native = len(configs) >= HOST_NATIVE_MIN_GROUPS and _native.unavailable_reason(torch.device("cpu")) is None
        if self.native:
            table = ScheduleTable.build(configs, "cpu").table
            step = torch.zeros((), dtype=torch.int64)
            lrs = torch.zeros(len(configs), dtype=torch.float64)
            op = torch.ops.fusedsched.advance_native_.default
            self._tensors = (step, table, lrs, 0)
            self._op, self._step_np, self._lrs_np = op, step.numpy(), lrs.numpy()

    def __call__(self, step: int) -> list[float]:
        if self.native and step <= MAX_STEP:  # beyond, a float64 step is inexact: only Python ints are
            self._step_np[()] = step
            self._op(*self._tensors)
            return self._lrs_np.tolist()
        return [formula(step) for formula in self._formulas]

    def __getstate__(self) -> dict[str, Any]:
        return {"configs": self.configs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["configs"])


def _launcher(backend: str):
    """``launch(step, table, lrs, increment)`` for ``backend``: the C++ op directly for ``native``, the
    numpy evaluation directly for ``reference`` on CPU in eager mode (both skip ``advance_``'s dispatch)."""
    if backend == "native":
        return torch.ops.fusedsched.advance_native_.default
    if backend == "reference":
        return _reference.eager_launch

    def launch(step: torch.Tensor, table: torch.Tensor, lrs: torch.Tensor, increment: int) -> None:
        advance_op(step, table, lrs, increment, backend)

    return launch


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
        last_epoch: the step of the last completed ``step()``; -1 starts a fresh schedule.
        verbose: accepted for tml compatibility and ignored (torch no longer takes it).
        device_schedule: ``None`` (default) picks device mode when the groups' lrs are tensors;
            ``True`` forces it (the lrs become float32 views on ``device``); ``False`` forces host mode.
        backend: ``advance_`` backend for device mode (``"auto"``, ``"native"``, ``"triton"``,
            ``"reference"``); ``None`` means ``$FUSEDSCHED_BACKEND`` or ``"auto"``.
        device: where the device-mode buffers live: the parameters' device (the default).

    Raises:
        TypeError / ValueError: a bad argument, names that do not match (both lists are shown),
            or (device mode) an optimizer setting that cannot take a tensor lr (the message names
            the setting to change). Nothing is changed on the optimizer before these checks pass.

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
    ) -> None:
        configs = _validate_lr_dict(lr_dict)
        binding = GroupBinding(optimizer, list(configs))
        last_epoch = _check_epoch(last_epoch, "last_epoch", minimum=-1)
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
        self._binding = binding
        self.lr_dict = {name: configs[name] for name in binding.names}  # in group order
        self.group_names = list(self.lr_dict)
        self.device_schedule = device_schedule
        self._last_epoch = last_epoch
        self._steps = 0
        self._device_ahead = False  # device counter moved without the host (graph replay, compile)
        if device_schedule:
            self._setup_device(binding, self._buffer_device(binding, device), backend, last_epoch)
        else:
            self._rates = _HostRates(list(self.lr_dict.values()))
        super().__init__(binding.optimizer, last_epoch)

    # --- device mode ---------------------------------------------------------------------------

    @staticmethod
    def _buffer_device(binding: GroupBinding, device: Any) -> torch.device:
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

    def _setup_device(self, binding: GroupBinding, device: torch.device, backend: str | None, last_epoch: int) -> None:
        problems = binding.tensor_lr_problems()
        if problems:
            raise ValueError("device mode gives every group a tensor lr, but " + "; ".join(problems))
        self.backend = resolve_backend(device, backend)
        self._table = ScheduleTable.build(list(self.lr_dict.values()), device).table
        self._step = torch.full((), last_epoch, dtype=torch.int64, device=device)
        self._lrs = torch.zeros(len(self.lr_dict), dtype=torch.float32, device=device)
        check_advance_args(self._step, self._table, self._lrs, 1)
        self._advance = _launcher(self.backend)
        # Every check passed: from here on the optimizer's groups change.
        if last_epoch == -1:  # as torch records it, before binding points the groups at the buffer
            for group in binding.groups():
                lr = group["lr"]
                group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
        binding.bind(self._lrs)
        binding.attach()

    @property
    def lr_tensor(self) -> torch.Tensor:
        """The float32 buffer of every group's current rate (device mode; reading it never syncs)."""
        self._require_device_mode("lr_tensor")
        return self._lrs

    @property
    def step_tensor(self) -> torch.Tensor:
        """The int64 device step counter (device mode)."""
        self._require_device_mode("step_tensor")
        return self._step

    def _require_device_mode(self, what: str) -> None:
        if not self.device_schedule:
            raise RuntimeError(f"{what} exists only in device mode (device_schedule=True)")

    def mark_device_ahead(self) -> None:
        """Tell the shim its device counter moved without it (e.g. CUDA graph replays)."""
        self._device_ahead = True

    def _refresh(self) -> None:
        """Take the step from the device counter (a sync); ``_step_count`` moves by as many steps."""
        device_step = int(self._step.item())
        self._steps += device_step - self._last_epoch
        self._last_epoch = device_step
        self._device_ahead = False

    def rebind(self) -> None:
        """Hand every group back to the schedule: device mode points each ``lr`` at its view again.

        For after an intentional change of ``group["lr"]`` or ``param_groups`` by hand, or after
        another ``LRShim`` took the groups over; the groups must still be the ones this LRShim was
        built for (same count, same names). Host mode rewrites the current rates.
        """
        self._binding.require_layout(taking_back=True)
        if self.device_schedule:
            self._binding.reclaim()
        elif self._last_epoch >= 0:
            self._write_host(self._rates(self._last_epoch))

    # --- step and last_epoch: one truth -----------------------------------------------------------

    @property
    def last_epoch(self) -> int:
        """The step of the last ``step()``; in device mode refreshed from the counter when stale (syncs)."""
        if self._device_ahead:
            self._refresh()
        return self._last_epoch

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        value = _check_epoch(value, "last_epoch", minimum=-1)
        if self.device_schedule:
            if self._device_ahead:
                self._refresh()  # keep _step_count's count of the steps the device took
            self._step.fill_(value)
        self._last_epoch = value

    @property
    def _step_count(self) -> int:
        if self._device_ahead:
            self._refresh()
        return self._steps

    @_step_count.setter
    def _step_count(self, value: int) -> None:
        self._steps = value

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to ``epoch``, deprecated as in torch) and update every group."""
        if epoch is None and self.device_schedule:
            if torch.compiler.is_compiling():
                # No Python int in the graph (it would recompile every step): the host learns it later.
                self._advance(self._step, self._table, self._lrs, 1)
                self._device_ahead = True
                return
            self._binding.check()  # O(optimizers): no per-group work on this path
            if self._steps == 1 and not self._device_ahead:
                self._warn_if_optimizer_step_skipped()
            self._steps += 1
            self._advance(self._step, self._table, self._lrs, 1)
            self._last_epoch += 1
            return
        if epoch is not None:
            epoch = _check_epoch(epoch, "epoch")  # before any state changes, in both modes
        if self.device_schedule:
            self._binding.check()
        else:
            self._binding.check_counts()
        if self._step_count == 1:
            self._warn_if_optimizer_step_skipped()
        self._steps += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _warn_if_optimizer_step_skipped(self) -> None:
        # torch's LRScheduler.step() warnings, word for word.
        if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
            warnings.warn(
                "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
                "initialization. Please, make sure to call `optimizer.step()` before "
                "`lr_scheduler.step()`. See more details at "
                "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
                UserWarning,
                stacklevel=3,
            )
        elif not getattr(self.optimizer, "_opt_called", False):
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

    def _update_lr(self, epoch: int | None = None) -> None:
        """Go to the next step (``epoch`` None) or to ``epoch``, and set every group's rate there."""
        if epoch is not None:
            epoch = _check_epoch(epoch, "epoch")
        if self.device_schedule:
            if epoch is None:
                self._advance(self._step, self._table, self._lrs, 1)
                self._last_epoch += 1
            else:
                if self._device_ahead:
                    self._refresh()
                self._step.fill_(epoch)
                self._advance(self._step, self._table, self._lrs, 0)
                self._last_epoch = epoch
            return
        step = self._last_epoch + 1 if epoch is None else epoch
        self._write_host(self._rates(step))
        self._last_epoch = step

    def _write_host(self, values: list[float]) -> None:
        """Set every group's lr; a tensor lr is filled in place, as torch's schedulers do."""
        for group, lr in zip(self._binding.groups(), values):
            old = group["lr"]
            if type(old) is float or not isinstance(old, torch.Tensor):
                group["lr"] = lr
            else:
                old.fill_(lr)
        self._last_lr = values

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
        return [compute_lr(cfg, self.last_epoch) for cfg in self.lr_dict.values()]

    def get_last_lr(self) -> list[float]:
        """Every group's current rate as floats. In device mode: one device-to-host copy (a sync)."""
        self._binding.verify()
        if self.device_schedule:
            return self._lrs.tolist()
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Plain Python data only (ints, floats, strings, lists, dicts); loads with ``weights_only=True``.

        ``last_epoch`` and ``_step_count`` (device mode: read from the device counter, one sync, and
        also stored as ``device_step``), ``base_lrs`` and ``_last_lr`` as floats, and ``lr_dict``: every
        group's schedule by name, in group order.
        """
        self._binding.verify()
        if self.device_schedule:
            self._refresh()
        state: dict[str, Any] = {
            "last_epoch": self._last_epoch,
            "_step_count": self._steps,
            "base_lrs": [_float(lr) for lr in self.base_lrs],
            "_last_lr": self._lrs.tolist() if self.device_schedule else list(self._last_lr),
            "lr_dict": {name: cfg.model_dump(exclude_none=True) for name, cfg in self.lr_dict.items()},
        }
        if self.device_schedule:
            state["device_step"] = self._last_epoch
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = False) -> None:
        """Restore the step from a :meth:`state_dict`; the schedules stay the configured ones.

        Groups are matched by name: a state saved for other names (or another group count) is
        refused with both lists. Where the checkpoint's schedule of a group differs from the
        configured one, the configured one is used and one :class:`ScheduleChangedWarning` lists
        every difference (group and field); ``strict=True`` raises ``ValueError`` instead. Everything
        is checked before anything changes. In device mode the groups are bound to the buffer again.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping (from LRShim.state_dict()), got {type(state_dict).__name__}")
        if "last_epoch" not in state_dict:
            raise ValueError(f"state_dict has no 'last_epoch' (keys: {sorted(state_dict)})")
        last_epoch = _check_epoch(state_dict["last_epoch"], "state_dict['last_epoch']", minimum=-1)
        if state_dict.get("device_step") is not None:
            device_step = _check_epoch(state_dict["device_step"], "state_dict['device_step']", minimum=-1)
            if device_step != last_epoch:
                raise ValueError(
                    f"state_dict['device_step'] ({device_step}) != state_dict['last_epoch'] ({last_epoch}): "
                    f"the state is inconsistent"
                )
        steps = state_dict.get("_step_count")
        steps = None if steps is None else _check_epoch(steps, "state_dict['_step_count']")
        names = self.group_names
        order = list(range(len(names)))
        differences: list[str] = []
        if state_dict.get("lr_dict") is not None:
            saved = _validate_lr_dict(state_dict["lr_dict"], "state_dict['lr_dict']")
            if sorted(saved) != sorted(names):
                raise ValueError(
                    f"the state's groups {list(saved)} do not match this LRShim's groups {names}: "
                    f"no schedule in the state for {[n for n in names if n not in saved]}, "
                    f"not in this LRShim: {[n for n in saved if n not in names]}"
                )
            saved_names = list(saved)
            order = [saved_names.index(n) for n in names]
            for name in names:
                differences += schedule_differences(name, saved[name], self.lr_dict[name])
        base_lrs = state_dict.get("base_lrs")
        if base_lrs is not None:
            if not isinstance(base_lrs, (list, tuple)) or len(base_lrs) != len(names):
                raise ValueError(
                    f"state_dict['base_lrs'] must be a list of {len(names)} numbers (one per group), "
                    f"got {base_lrs!r:.200}"
                )
            try:
                base_lrs = [_float(base_lrs[i]) for i in order]
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"state_dict['base_lrs'] must hold numbers, got {base_lrs!r:.200}") from None
        if differences:
            lines = "\n  ".join(differences)
            if strict:
                raise ValueError(
                    f"the checkpoint's schedules differ from the configured ones (strict=True):\n  {lines}"
                )
            warnings.warn(
                ScheduleChangedWarning(
                    f"the checkpoint's schedules differ from the configured ones; using the configured "
                    f"schedules from step {last_epoch}:\n  {lines}"
                ),
                stacklevel=2,
            )
        self._binding.require_layout()  # a load repairs replaced lrs, not a changed group layout
        # Everything is checked: change state.
        if steps is not None:
            self._steps = steps
        if base_lrs is not None:
            self.base_lrs = base_lrs
        self._device_ahead = False
        self.last_epoch = last_epoch
        if self.device_schedule:
            self._binding.bind(self._lrs)
            if last_epoch >= 0:
                self._advance(self._step, self._table, self._lrs, 0)
        elif last_epoch >= 0:
            self._write_host(self._rates(last_epoch))

    # --- copies: deepcopy, pickle, torch.save ------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_advance", None)  # the launcher is rebuilt for this process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.device_schedule:
            try:
                self._advance = _launcher(resolve_backend(self._lrs.device, self.backend))
            except RuntimeError:  # the saved backend is not available here: take the best one that is
                self.backend = resolve_backend(self._lrs.device, None)
                self._advance = _launcher(self.backend)
            _drop_stale_step_wrappers(self._binding)
            self._binding.bind(self._lrs)
            self._binding.attach()


def _drop_stale_step_wrappers(binding: GroupBinding) -> None:
    """Remove a copied ``step`` that LRScheduler patched onto the original (torchrec copies keep it).

    torch's scheduler wraps ``optimizer.step`` in an instance attribute that holds a weak reference
    to the *original* optimizer; torchrec's optimizers copy their whole ``__dict__``, so a copy would
    step the original. Without the attribute the class's own ``step`` runs.
    """
    objects = [binding.client, binding.optimizer] + [obj for _, chain in binding._leaves for obj in chain]
    for obj in objects:
        step = getattr(obj, "__dict__", {}).get("step")
        if step is None or not getattr(step, "_wrapped_by_lr_sched", False):
            continue
        for cell in step.__closure__ or ():
            target = cell.cell_contents
            if isinstance(target, weakref.ReferenceType) and target() is not obj:
                del obj.__dict__["step"]
                break

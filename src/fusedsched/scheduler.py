"""``LRShim``: tml's learning-rate scheduler, a ``torch.optim.lr_scheduler.LRScheduler``.

Two modes, one class:

- **host mode** (float ``group["lr"]``): each ``step()`` computes every group's rate on the host
  with :func:`fusedsched.compute_lr`, exactly as tml did.
- **device mode** (tensor ``group["lr"]``, or ``device_schedule=True``): the schedules are compiled
  once into a device table (:mod:`fusedsched.program`), one float32 buffer holds every group's rate
  and each ``group["lr"]`` is a 0-dim view into it. ``step()`` is one call of the op
  ``fusedsched::advance_`` (:mod:`fusedsched.ops`): it advances a device int64 step counter and
  rewrites the buffer, with no host sync and nothing allocated, so it can run inside a CUDA graph
  or a ``torch.compile``'d step.

In device mode the device counter is the truth. ``last_epoch`` follows it in eager use; after CUDA
graph replays or compiled steps, reading ``last_epoch`` copies the counter back once (a sync).
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from .config import LearningRate
from .ops import advance_op, check_advance_args, resolve_backend
from .program import ScheduleTable
from .schedules import check_step, compute_lr


class _CombinedGroups(Optimizer):
    """An ``Optimizer``-shaped view over a combined optimizer's ``_optims`` (name, optimizer) list.

    ``LRScheduler`` needs an ``Optimizer``; this presents the sub-optimizers' param groups,
    flattened in order, without copying them.
    """

    def __init__(self, combined: Any) -> None:  # noqa: D107 (no Optimizer.__init__: nothing to own)
        self.combined = combined
        self.optims = [opt for _, opt in combined._optims]
        self.defaults, self.state = {}, {}
        self._opt_called = True  # the combined optimizer's step is not observable from here

    @property
    def param_groups(self) -> list[dict]:  # type: ignore[override]
        return [group for opt in self.optims for group in opt.param_groups]

    def step(self, closure=None):  # pragma: no cover - the combined optimizer is stepped directly
        return self.combined.step(closure)


def _sub_optimizers(optimizer: Any) -> list[Optimizer]:
    return optimizer.optims if isinstance(optimizer, _CombinedGroups) else [optimizer]


def _params_device(groups: list[dict]) -> torch.device:
    for group in groups:
        if isinstance(group["lr"], torch.Tensor):
            return group["lr"].device
        for param in group["params"]:
            return param.device
    return torch.device("cpu")


class LRShim(LRScheduler):
    """Schedules every param group from a tml ``LearningRate`` config.

    Args:
        optimizer: a torch optimizer, or a combined optimizer exposing ``_optims`` as a list of
            ``(name, optimizer)`` (its param groups are taken flattened, in order).
        lr_dict: one ``LearningRate`` (or a dict that validates as one) per param group, in
            param-group order. If every group has a ``"name"``, the names must equal the keys.
        last_epoch: the step of the last completed ``step()``; -1 starts a fresh schedule.
        verbose: accepted for tml compatibility and ignored (torch no longer takes it).
        device_schedule: ``None`` (default) picks device mode when the groups' lrs are tensors;
            ``True`` forces it (the lrs become float32 views on ``device``); ``False`` forces host mode.
        backend: ``advance_`` backend for device mode (``"auto"``, ``"native"``, ``"triton"``,
            ``"reference"``); ``None`` means ``$FUSEDSCHED_BACKEND`` or ``"auto"``.
        device: where the device-mode buffers live; default the groups' lr tensors' or params' device.

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
        if not isinstance(optimizer, Optimizer) and hasattr(optimizer, "_optims"):
            optimizer = _CombinedGroups(optimizer)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or expose _optims, got {type(optimizer).__name__}"
            )
        self.lr_dict = {name: LearningRate.model_validate(cfg) for name, cfg in lr_dict.items()}
        self.group_names = list(self.lr_dict)
        groups = optimizer.param_groups
        if len(groups) != len(self.lr_dict):
            raise ValueError(
                f"the optimizer has {len(groups)} param groups but lr_dict has "
                f"{len(self.lr_dict)} entries ({', '.join(self.group_names)}); give one schedule per group"
            )
        names = [group.get("name") for group in groups]
        if all(n is not None for n in names) and sorted(map(str, names)) != sorted(self.group_names):
            raise ValueError(f"param group names {names} do not match lr_dict keys {self.group_names}")
        if all(n is not None for n in names):
            self.lr_dict = {str(n): self.lr_dict[str(n)] for n in names}
            self.group_names = list(self.lr_dict)
        if not isinstance(last_epoch, int) or isinstance(last_epoch, bool) or last_epoch < -1:
            raise ValueError(f"last_epoch must be an int >= -1, got {last_epoch!r}")
        if device_schedule is None:
            device_schedule = all(isinstance(g["lr"], torch.Tensor) for g in groups)
        self.device_schedule = bool(device_schedule)
        self._device_ahead = False  # device counter moved without the host (graph replay, compile)
        self._last_epoch = last_epoch
        if self.device_schedule:
            if last_epoch == -1:  # as torch records it, before binding points the groups at the (empty) buffer
                for group in groups:
                    lr = group["lr"]
                    group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
            self._setup_device(optimizer, torch.device(device) if device else _params_device(groups), backend)
        super().__init__(optimizer, last_epoch)

    # --- device mode ---------------------------------------------------------------------------

    def _setup_device(self, optimizer: Optimizer, device: torch.device, backend: str | None) -> None:
        self.backend = resolve_backend(device, backend)
        self._table = ScheduleTable.build(list(self.lr_dict.values()), device).table
        self._step = torch.full((), self._last_epoch, dtype=torch.int64, device=device)
        self._lrs = torch.zeros(len(self.lr_dict), dtype=torch.float32, device=device)
        check_advance_args(self._step, self._table, self._lrs, 1)
        self._lr_views = list(self._lrs.unbind(0))
        if self.backend == "native":  # the C++ op directly: no Python between the call and the kernel
            self._advance = lambda step, table, lrs, inc, backend: torch.ops.fusedsched.advance_native_.default(
                step, table, lrs, inc
            )
        else:
            self._advance = advance_op
        self._bind(optimizer)
        for opt in _sub_optimizers(optimizer):
            opt.register_load_state_dict_post_hook(lambda _opt: self._bind(self.optimizer))

    def _bind(self, optimizer: Optimizer) -> None:
        """Point every ``group["lr"]`` at its view of the shared buffer (again after a load)."""
        for group, view in zip(optimizer.param_groups, self._lr_views):
            group["lr"] = view

    def _advance_device(self, increment: int) -> None:
        self._advance(self._step, self._table, self._lrs, increment, self.backend)

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

    @property
    def last_epoch(self) -> int:
        """The step of the last ``step()``; in device mode refreshed from the counter when stale (syncs)."""
        if self._device_ahead:
            self._last_epoch = int(self._step.item())
            self._device_ahead = False
        return self._last_epoch

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        self._last_epoch = value
        self._device_ahead = False

    # --- the LRScheduler contract -------------------------------------------------------------

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to ``epoch``, deprecated as in torch) and update every group."""
        if epoch is not None:
            epoch = check_step(epoch)  # before any state changes: a negative step is rejected in both modes
        if not self.device_schedule:
            return super().step(epoch)
        if epoch is not None:
            warnings.warn("passing epoch to step() is deprecated, as in torch", UserWarning, stacklevel=2)
            self._step.fill_(epoch)
            self._advance_device(0)
            self.last_epoch = epoch
            return None
        self._advance_device(1)
        if torch.compiler.is_compiling():
            self._device_ahead = True  # no Python int in the graph: it would recompile every step
        else:
            self._last_epoch += 1
            self._step_count += 1
        return None

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
        if self.device_schedule:
            return self._lrs.tolist()
        return list(self._last_lr)

    _DEVICE_STATE = ("_table", "_step", "_lrs", "_lr_views", "_advance")

    def state_dict(self) -> dict[str, Any]:
        """Plain data only (loads with ``torch.load(weights_only=True)``); device mode adds the counter."""
        state = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("optimizer", "lr_dict", "_device_ahead", "_last_epoch") + self._DEVICE_STATE
        }
        state["last_epoch"] = self.last_epoch
        state["lr_dict"] = {name: cfg.model_dump(exclude_none=True) for name, cfg in self.lr_dict.items()}
        if self.device_schedule:
            state["_last_lr"] = self.get_last_lr()
            state["device_step"] = int(self._step.item())
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`; schedules, counter and bindings follow it."""
        state = dict(state_dict)
        lr_dict = {n: LearningRate.model_validate(c) for n, c in state.pop("lr_dict", {}).items()} or self.lr_dict
        if len(lr_dict) != len(self.lr_dict):
            raise ValueError(f"state has {len(lr_dict)} schedules but this LRShim has {len(self.lr_dict)} groups")
        device_step = state.pop("device_step", None)
        last_epoch = state.pop("last_epoch")
        for key in ("device_schedule", "backend"):
            state.pop(key, None)  # the mode and backend belong to this instance, not to the state
        self.__dict__.update(state)
        self.lr_dict, self.group_names = lr_dict, list(lr_dict)
        self.last_epoch = last_epoch
        if self.device_schedule:
            table = ScheduleTable.build(list(lr_dict.values()), self._table.device).table
            if table.shape == self._table.shape:  # in place: a captured graph keeps reading this address
                self._table.copy_(table)
            else:
                self._table = table
            self._step.fill_(last_epoch if device_step is None else device_step)
            self._advance_device(0)
            self._bind(self.optimizer)
        else:
            for group, lr in zip(self.optimizer.param_groups, self._get_closed_form_lr()):
                group["lr"] = lr
            self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

"""Which param groups an ``LRShim`` drives, by name, and (device mode) their views of one LR buffer.

A *client* is what ``LRShim`` is given: a torch optimizer, torchrec's ``KeyedOptimizerWrapper`` or
``CombinedOptimizer``, or any object exposing ``_optims`` as ``(name, optimizer)`` pairs (or a
``{name: optimizer}`` mapping). Its *leaves* are the optimizers that own param groups, in order;
a wrapper's groups are those of the optimizer it wraps (``_optimizer``), which its ``step()`` reads.

:class:`GroupBinding`

- names every group: ``group["name"]`` where set, else the ``_optims`` name of a sub-optimizer with
  exactly one group; matches the names to the schedule names (all named: by name; none named: by
  position; anything else is an error that lists both sides);
- in device mode owns the float32 LR buffer's views: ``group["lr"] = buffer[i]``, one view per
  group, then one view per scheduled hyperparameter (:attr:`GroupBinding.rows`, e.g.
  ``group["betas"] = (buffer[slot], ...)``; groups whose rows share a slot view the same element;
  host mode writes floats there, :meth:`GroupBinding.write_rows`), and binds them again after any
  ``load_state_dict`` of the client, its sub-optimizers or
  the optimizers they wrap (torch's post-load hook where the optimizer has the registry, otherwise
  by standing in for that object's ``load_state_dict``);
- detects a group that was added, removed, re-bound by another ``LRShim`` or given another ``lr``:
  :meth:`GroupBinding.check` is O(number of optimizers), for every ``step()``; a replaced ``lr`` is
  seen there through a weak-reference callback on the view (when nothing else holds the old view),
  and always by :meth:`GroupBinding.verify`, O(groups), which ``get_last_lr()`` and ``state_dict()``
  run;
- after a copy, drops a ``step`` wrapper copied from the original optimizer
  (:meth:`GroupBinding.drop_stale_step_wrappers`), so the copy steps itself.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import torch
from torch.optim import Optimizer

from .hyperparameters import KEYS, Row

__all__ = ["CombinedGroups", "GroupBinding", "GroupBindingError", "leaves"]


class GroupBindingError(ValueError):
    """The optimizer's param groups no longer match the groups the scheduler was built for."""


# Device-mode bindings by the optimizer whose groups they bind (weakly on both sides), so that a
# second LRShim on the same optimizer is seen by the first.
_OWNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_LR = itemgetter("lr")


class CombinedGroups(Optimizer):
    """An ``Optimizer``-shaped view of an object that is not an optimizer but exposes ``_optims``.

    ``LRScheduler`` needs an ``Optimizer``; this presents the sub-optimizers' param groups,
    flattened in order, without copying them.
    """

    def __init__(self, combined: Any, optims: list[Any]) -> None:  # noqa: D107 (nothing of its own to init)
        self.combined = combined
        self.optims = optims
        self.defaults, self.state = {}, {}
        self._opt_called = True  # the combined optimizer's step is not observable from here

    @property
    def param_groups(self) -> list[dict]:  # type: ignore[override]
        return [group for opt in self.optims for group in opt.param_groups]

    def step(self, closure=None):  # pragma: no cover - the combined optimizer is stepped directly
        return self.combined.step(closure)

    def __getstate__(self) -> dict[str, Any]:
        return {"combined": self.combined, "optims": self.optims}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["combined"], state["optims"])


class _RebindAfterLoad:
    """Stands in for one object's ``load_state_dict`` (torchrec's have no hooks): load, then re-bind."""

    def __init__(self, owner: Any, previous: Any = None) -> None:
        self.owner = owner
        self.previous = previous  # an instance-level load_state_dict that was there before, if any
        self.binding: GroupBinding | None = None

    def __call__(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        load = self.previous if self.previous is not None else type(self.owner).load_state_dict.__get__(self.owner)
        result = load(state_dict, *args, **kwargs)
        if self.binding is not None:
            self.binding.after_load()
        return result

    def __reduce__(self):
        # A copy never drives the original's binding: LRShim's copy attaches its own binding.
        return (_RebindAfterLoad, (self.owner, self.previous))


def _is_sequence_of_groups(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(g, dict) for g in value)


def _chain(optimizer: Any, where: str) -> list[Any]:
    """``optimizer`` and the optimizers it wraps (``_optimizer``), outermost first."""
    chain = [optimizer]
    while True:
        inner = getattr(chain[-1], "_optimizer", None)
        if inner is None or not hasattr(inner, "param_groups") or any(inner is c for c in chain):
            break
        chain.append(inner)
    if not _is_sequence_of_groups(getattr(chain[-1], "param_groups", None)):
        raise TypeError(f"{where} must be an optimizer with param_groups, got {type(optimizer).__name__}")
    return chain


def leaves(client: Any, prefix: str = "", where: str = "optimizer") -> list[tuple[str | None, list[Any]]]:
    """``(name, chain)`` for every optimizer that owns groups, in order (``_optims`` flattened)."""
    optims = getattr(client, "_optims", None)
    if optims is None:
        return [(prefix or None, _chain(client, where))]
    if isinstance(optims, Mapping):
        items = list(optims.items())
    elif isinstance(optims, (list, tuple)):
        items = list(optims)
    else:
        raise TypeError(
            f"{where}._optims must be a list of (name, optimizer) pairs or a {{name: optimizer}} mapping, "
            f"got {type(optims).__name__}"
        )
    found: list[tuple[str | None, list[Any]]] = []
    for i, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"{where}._optims[{i}] must be a (name, optimizer) pair with a str name, got {item!r:.80}"
            )
        name, opt = item
        full = f"{prefix}.{name}" if prefix and name else (prefix or name)
        found.extend(leaves(opt, full, f"{where}._optims[{i}] ({name!r})"))
    return found


def _lr_repr(lr: Any) -> str:
    if isinstance(lr, torch.Tensor) and lr.numel() == 1:
        return f"a {lr.dtype} tensor on {lr.device} holding {lr.item():g}"
    return repr(lr)


def _row(row: Any) -> Row:
    """``row``, or a pickled binding's ``(group, key, index, slot)`` tuple as the :class:`Row` it was."""
    if isinstance(row, Row):
        return row
    group, key, index, slot = row
    name = next(n for n, k in KEYS.items() if (k.key, k.index) == (key, index))
    return Row(group, name, slot)


class GroupBinding:
    """The param groups one scheduler drives: their names, their order and, in device mode, their lrs.

    Args:
        client: the optimizer (see the module docstring for what is accepted).
        schedule_names: the schedules' names (``lr_dict`` keys), in the caller's order.

    Attributes:
        optimizer: the ``torch.optim.Optimizer`` to give ``LRScheduler`` (``client`` itself, or a
            :class:`CombinedGroups` view of it).
        names: the schedule name of every group, in group order.
    """

    def __init__(self, client: Any, schedule_names: list[str]) -> None:
        if not isinstance(client, Optimizer) and getattr(client, "_optims", None) is None:
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or expose _optims, got {type(client).__name__}"
            )
        self.client = client
        self._leaves = leaves(client)
        if isinstance(client, Optimizer):
            self.optimizer: Optimizer = client
        else:
            self.optimizer = CombinedGroups(client, [chain[-1] for _, chain in self._leaves])
        self._owners = [chain[-1] for _, chain in self._leaves]
        self.names = self._match(self.group_names(), list(schedule_names), self._unnamed_labels())
        self._counts = [len(owner.param_groups) for owner in self._owners]
        self._lrs: torch.Tensor | None = None  # device mode: the buffer the groups read
        #: the scheduled hyperparameters (:class:`~fusedsched.shim.hyperparameters.Row`): each group's key
        #: and its ``slot``, the buffer element (after the lr rows) holding the value, shared by groups
        self.rows: Sequence[Row] = ()
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._watched: list[tuple[Any, list, int]] = []
        self._view_refs: list[weakref.ref] = []
        self._view_ids: list[int] = []
        self._generation = 0
        self._problem: str | None = None  # set when a group is found detached; raised by check()
        self._superseded = False
        self._hooked: dict[int, Any] = {}  # id(optimizer) -> its load_state_dict post-hook handle

    def __getstate__(self) -> dict[str, Any]:
        keep = ("client", "_leaves", "optimizer", "_owners", "names", "_counts", "_lrs", "rows")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.rows = [_row(r) for r in self.rows]
        self._init_runtime()  # hooks, views and watches are attached again by attach() / bind()

    # --- groups and names -----------------------------------------------------------------------

    def groups(self) -> list[dict]:
        """Every group, flattened in order (the live list itself when there is one optimizer)."""
        if len(self._owners) == 1:
            return self._owners[0].param_groups
        return [g for owner in self._owners for g in owner.param_groups]

    def group_owners(self) -> list[Any]:
        """The optimizer that owns (and steps) each group, in group order."""
        return [owner for owner in self._owners for _ in owner.param_groups]

    def write_rows(self, values: list[float]) -> None:
        """Host mode: write each row's value (``values[slot]``) into its group; a tensor is filled in place."""
        groups = self.groups()
        for row in self.rows:
            row.group_key.set(groups[row.group], values[row.slot], in_place=True)

    def group_names(self) -> list[str | None]:
        """Each group's name: ``group["name"]``, else its sub-optimizer's ``_optims`` name if it has one group."""
        names: list[str | None] = []
        for (leaf_name, _), owner in zip(self._leaves, self._owners):
            groups = owner.param_groups
            for group in groups:
                name = group.get("name")
                if name is None and leaf_name and len(groups) == 1:
                    name = leaf_name
                names.append(None if name is None else str(name))
        return names

    def shown_names(self) -> list[str]:
        """Every group's name, or ``<unnamed #i>`` (for messages)."""
        return [n if n is not None else label for n, label in zip(self.group_names(), self._unnamed_labels())]

    def _unnamed_labels(self) -> list[str]:
        """How to show each group when it has no name: its index, and its sub-optimizer's name."""
        labels: list[str] = []
        for (leaf_name, _), owner in zip(self._leaves, self._owners):
            for _group in owner.param_groups:
                where = f" in {leaf_name!r}" if leaf_name else ""
                labels.append(f"<unnamed #{len(labels)}{where}>")
        return labels

    @staticmethod
    def _match(group_names: list[str | None], schedule_names: list[str], labels: list[str]) -> list[str]:
        shown = [n if n is not None else label for n, label in zip(group_names, labels)]
        if all(n is None for n in group_names):  # tml's behaviour: by position
            if len(group_names) != len(schedule_names):
                raise ValueError(
                    f"the optimizer has {len(group_names)} param groups but lr_dict has "
                    f"{len(schedule_names)} entries ({', '.join(schedule_names)}); give one schedule per group"
                )
            return list(schedule_names)
        if any(n is None for n in group_names):
            raise ValueError(
                f"some param groups have names and some do not ({shown}): name every group "
                f"(group['name'], or the _optims name of a sub-optimizer with one group) or none, to match "
                f"lr_dict keys {schedule_names}"
            )
        duplicates = sorted({n for n in group_names if group_names.count(n) > 1})
        if duplicates:
            raise ValueError(f"param group names must be unique, got {shown} (repeated: {duplicates})")
        if sorted(group_names) != sorted(schedule_names):
            no_schedule = [n for n in group_names if n not in schedule_names]
            no_group = [n for n in schedule_names if n not in group_names]
            raise ValueError(
                f"param group names {group_names} do not match lr_dict keys {schedule_names}: "
                f"no schedule for {no_schedule}, no group for {no_group}"
            )
        return list(group_names)  # type: ignore[arg-type]

    def params_device(self) -> torch.device | None:
        """The device of the first parameter (or, without parameters, the first tensor lr)."""
        groups = self.groups()
        for group in groups:
            for param in group["params"]:
                return param.device
        for group in groups:
            if isinstance(group["lr"], torch.Tensor):
                return group["lr"].device
        return None

    def tensor_lr_problems(self) -> list[str]:
        """Why a group's optimizer cannot step with a tensor ``lr`` on its configured path (empty: it can).

        torch's Adam / AdamW with ``foreach=True`` and neither ``capturable`` nor ``fused`` raise
        "lr as a Tensor is not supported" at their first step. The flags are the user's explicit
        choice and each alternative changes the numerics or where the state lives, so this is
        reported, not changed.
        """
        problems = []
        index = 0
        for owner in self._owners:
            for group in owner.param_groups:
                if (
                    isinstance(owner, torch.optim.Adam)
                    and group.get("foreach")
                    and not group.get("capturable")
                    and not group.get("fused")
                ):
                    cls = type(owner).__name__
                    problems.append(
                        f"param group {self.names[index]!r} ({cls} with foreach=True, capturable=False) cannot "
                        f"take a tensor lr (torch: 'lr as a Tensor is not supported for capturable=False and "
                        f"foreach=True'): build the {cls} with fused=True (plus capturable=True on CUDA, for "
                        f"graphs), or capturable=True, or foreach=False"
                    )
                index += 1
        return problems

    # --- device mode: the views ------------------------------------------------------------------

    def bind(self, lrs: torch.Tensor) -> None:
        """Point every group's ``lr`` at its own view of ``lrs`` (one element per group)."""
        self._lrs = lrs
        self._generation += 1
        generation = self._generation
        groups = self.groups()
        refs, ids = [], []
        for i, group in enumerate(groups):
            view = lrs[i]
            group["lr"] = view
            refs.append(weakref.ref(view, functools.partial(self._view_released, generation, i)))
            ids.append(id(view))
        self._view_refs, self._view_ids = refs, ids
        for row in self.rows:
            row.group_key.set(groups[row.group], lrs[row.slot])
        self._watch()
        self._problem = None

    def _view_released(self, generation: int, index: int, _ref: weakref.ref) -> None:
        # The group let go of its view: its lr was replaced (by hand, by another scheduler, or by
        # a load that after_load() is about to repair, which starts a new generation).
        if generation == self._generation and self._problem is None:
            self._problem = f"replaced:{index}"

    def _watch(self) -> None:
        self._watched = [(owner, owner.param_groups, len(owner.param_groups)) for owner in self._owners]

    def attach(self) -> None:
        """Re-bind after every load of the client or what it wraps; take ownership of the groups."""
        objects: list[Any] = []
        if getattr(self.client, "_optims", None) is not None:
            objects.append(self.client)
        for _, chain in self._leaves:
            objects.extend(chain)
        for obj in objects:
            if "_optimizer_load_state_dict_post_hooks" in getattr(obj, "__dict__", {}):
                handle = self._hooked.get(id(obj))
                if handle is None or handle.id not in obj._optimizer_load_state_dict_post_hooks:
                    self._hooked[id(obj)] = obj.register_load_state_dict_post_hook(_RebindHook(self))
            elif callable(getattr(obj, "load_state_dict", None)):
                current = obj.__dict__.get("load_state_dict") if hasattr(obj, "__dict__") else None
                if isinstance(current, _RebindAfterLoad):
                    current.binding = self
                else:
                    wrapper = _RebindAfterLoad(obj, current)
                    wrapper.binding = self
                    obj.load_state_dict = wrapper
        for owner in self._owners:
            previous = _OWNERS.get(owner)
            binding = previous() if previous is not None else None
            if binding is not None and binding is not self:
                binding._superseded = True
            _OWNERS[owner] = weakref.ref(self)

    def after_load(self) -> None:
        """Called after any load of the client: the groups may be new dicts; bind them again."""
        if self._superseded:
            return
        for _, chain in self._leaves:  # torchrec wrappers keep a reference to the wrapped list
            for outer, inner in zip(chain, chain[1:]):
                attrs = getattr(outer, "__dict__", {})
                if "param_groups" in attrs and attrs["param_groups"] is not inner.param_groups:
                    outer.param_groups = inner.param_groups
        counts = [len(owner.param_groups) for owner in self._owners]
        names = self.group_names()
        if counts != self._counts or (any(n is not None for n in names) and names != self.names):
            self._problem = (
                f"loaded:after optimizer.load_state_dict the param groups are {self.shown_names()} "
                f"({sum(counts)} groups) but this LRShim was built for {self.names}"
            )
            raise GroupBindingError(self._message())
        if self._lrs is not None:
            self.bind(self._lrs)

    def drop_stale_step_wrappers(self) -> None:
        """Remove a copied ``step`` that ``LRScheduler`` patched onto the original (torchrec copies keep it).

        torch's scheduler wraps ``optimizer.step`` in an instance attribute that holds a weak reference
        to the *original* optimizer; torchrec's optimizers copy their whole ``__dict__``, so a copy would
        step the original. Without the attribute the class's own ``step`` runs.
        """
        objects = [self.client, self.optimizer] + [obj for _, chain in self._leaves for obj in chain]
        for obj in objects:
            step = getattr(obj, "__dict__", {}).get("step")
            if step is None or not getattr(step, "_wrapped_by_lr_sched", False):
                continue
            for cell in step.__closure__ or ():
                target = cell.cell_contents
                if isinstance(target, weakref.ReferenceType) and target() is not obj:
                    del obj.__dict__["step"]
                    break

    def reclaim(self) -> None:
        """Device mode: take the groups back (from another LRShim, or after a hand-made change)."""
        self._superseded = False
        self.bind(self._lrs)
        self.attach()

    # --- detection ----------------------------------------------------------------------------------

    def require_layout(self, taking_back: bool = False) -> None:
        """Raise :class:`GroupBindingError` unless the groups are still the ones named at construction.

        Unless ``taking_back``, also raises when another LRShim owns the groups (a scheduler load
        must not take them back silently; :meth:`reclaim` does it on request).
        """
        if self._superseded and not taking_back:
            raise GroupBindingError(self._message())
        counts = [len(owner.param_groups) for owner in self._owners]
        if counts != self._counts:
            self._diagnose()
        names = self.group_names()
        if any(n is not None for n in names) and names != self.names:
            raise GroupBindingError(
                f"the param groups are now named {self.shown_names()} but the schedules are for {self.names}"
            )

    def check(self) -> None:
        """O(optimizers): raise :class:`GroupBindingError` if a group was added, removed or detached."""
        if self._problem is not None or self._superseded:
            raise GroupBindingError(self._message())
        for owner, groups, count in self._watched:
            if owner.param_groups is not groups or len(groups) != count:
                self._diagnose()

    def check_counts(self) -> None:
        """Host mode's check: the groups may be replaced (loads do that), but not added or removed."""
        if self._problem is not None:
            raise GroupBindingError(self._message())
        for owner, count in zip(self._owners, self._counts):
            if len(owner.param_groups) != count:
                self._diagnose()

    def verify(self) -> None:
        """O(groups): :meth:`check`, and (device mode) every group still holds its own view."""
        if self._lrs is None:
            self.check_counts()
            return
        self.check()
        if list(map(id, map(_LR, self.groups()))) != self._view_ids:
            ids = list(map(id, map(_LR, self.groups())))
            index = next(i for i, (a, b) in enumerate(zip(ids, self._view_ids)) if a != b)
            self._problem = f"replaced:{index}"
            raise GroupBindingError(self._message())

    def _diagnose(self) -> None:
        counts = [len(owner.param_groups) for owner in self._owners]
        if counts != self._counts:
            total, built = sum(counts), sum(self._counts)
            what = "added" if total > built else "removed"
            self._problem = (
                f"count:{total} param groups now, {built} when this LRShim was built ({what} after it: "
                f"groups are now {self.shown_names()}, schedules are for {self.names})"
            )
        else:
            self._problem = "list:optimizer.param_groups was replaced by a new list (not by load_state_dict)"
        raise GroupBindingError(self._message())

    def _message(self) -> str:
        if self._superseded:
            return (
                "another LRShim in device mode was built on this optimizer and now owns its param groups' lr; "
                "this one no longer drives them. Use one LRShim per optimizer (one schedule can ramp, hold "
                "and decay); to hand the groups back to this one, call its rebind()"
            )
        kind, _, detail = (self._problem or "").partition(":")
        if kind == "replaced":
            index = int(detail)
            groups = self.groups()
            now = _lr_repr(groups[index]["lr"]) if index < len(groups) else "gone"
            return (
                f"param group {self.names[index]!r} no longer reads this LRShim's learning rate: its lr was "
                f"replaced (now {now}) by hand or by another scheduler. In device mode the LRShim owns every "
                f"group's lr (a view of one device buffer); change the schedule, not group['lr'], or call "
                f"rebind() to hand the group back to the schedule"
            )
        if kind == "count":
            return (
                f"the optimizer's param groups changed: {detail}. Build a new LRShim with one schedule per "
                f"group (an LRShim schedules exactly the groups it was built with)"
            )
        if kind == "list":
            return f"{detail}; call rebind() to drive the new groups, or build a new LRShim"
        return detail


class _RebindHook:
    """torch's load_state_dict post-hook for one binding (a class, so a copy never drives the original)."""

    def __init__(self, binding: GroupBinding) -> None:
        self.binding = weakref.ref(binding)

    def __call__(self, optimizer: Optimizer) -> None:
        binding = self.binding()
        if binding is not None:
            binding.after_load()


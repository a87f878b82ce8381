"""The package's old flat module paths, kept for imports and pickles made before the wings.

Until 0.1's layout moved into subpackages (docs/architecture.md), every module sat in
``fusedsched/`` itself: ``fusedsched.scheduler``, ``fusedsched.kinds.cosine``, ``fusedsched.config``.
User code imports those paths, and ``torch.save`` stores them with every pickled object (a
scheduler's class is ``fusedsched.scheduler.LRShim`` in a checkpoint written then). :data:`MOVED`
maps each old path to where its names live now; importing an old path gives a module that finds
each name there, so ``from fusedsched.scheduler import LRShim`` and ``torch.load`` of an old
checkpoint both work. An old package path (``fusedsched.kinds``) covers its submodules too.

Importing ``fusedsched`` installs the finder; nothing else in the package imports this module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

#: old module path -> the modules that now hold its names, searched in order
MOVED: dict[str, tuple[str, ...]] = {
    "fusedsched.fields": ("fusedsched.schedule.fields",),
    "fusedsched.program": ("fusedsched.schedule.program",),
    "fusedsched.plateau": ("fusedsched.schedule.plateau_state",),
    "fusedsched.errors": ("fusedsched.schedule.errors",),
    "fusedsched.schedules": ("fusedsched.schedule.reference", "fusedsched.ops.host"),
    "fusedsched.kinds": ("fusedsched.schedule.kinds",),
    "fusedsched.graphsafe": ("fusedsched.optimizers.graphsafe",),
    "fusedsched.adam": ("fusedsched.optimizers.adam",),
    "fusedsched.sgd": ("fusedsched.optimizers.sgd",),
    "fusedsched.adagrad": ("fusedsched.optimizers.adagrad",),
    "fusedsched.binding": ("fusedsched.shim.binding",),
    "fusedsched.engines": ("fusedsched.shim.engine", "fusedsched.shim.host_engine", "fusedsched.shim.device_engine",
                           "fusedsched.shim.recent_rates"),
    "fusedsched.skipping": ("fusedsched.shim.skipping",),
    "fusedsched.hyperparameters": ("fusedsched.shim.hyperparameters",),
    "fusedsched.checkpoint": ("fusedsched.shim.checkpoint",),
    "fusedsched.scheduler": ("fusedsched.shim.scheduler",),
    "fusedsched.graphs": ("fusedsched.shim.graphs",),
    "fusedsched.config": ("fusedsched.tml.config",),
    "fusedsched.optim": ("fusedsched.tml.builders",),
    "fusedsched.conversion": ("fusedsched.convert.common",),
    "fusedsched.convert_stacks": ("fusedsched.convert.timm", "fusedsched.convert.deepspeed", "fusedsched.convert.megatron",
                                  "fusedsched.convert.stack_shim", "fusedsched.convert.builders"),
    "fusedsched.plotting": ("fusedsched.tools.plotting",),
    "fusedsched.cli": ("fusedsched.tools.cli",),
    "fusedsched.ops.dispatch": ("fusedsched.ops.backends",),
    "fusedsched.ops.advance": ("fusedsched.ops.launcher", "fusedsched.ops.schema", "fusedsched.ops.backends",
                               "fusedsched.ops.host"),
}


def targets(name: str) -> tuple[str, ...] | None:
    """Where the names of the old module ``name`` live now (None: ``name`` is not an old path)."""
    if name in MOVED:
        return MOVED[name]
    package, _, rest = name.rpartition(".")
    while package:
        if package in MOVED and len(MOVED[package]) == 1:  # a moved package: its submodules moved with it
            return (f"{MOVED[package][0]}.{name[len(package) + 1:]}",)
        package, _, tail = package.rpartition(".")
        rest = f"{tail}.{rest}"
    return None


class _Alias(types.ModuleType):
    """An old path: each attribute is looked up in the new modules, in order."""

    def __init__(self, name: str, modules: tuple[str, ...]) -> None:
        super().__init__(name, f"Moved: the names of {name} now live in {', '.join(modules)}.")
        self.__moved_to__ = modules

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for module in self.__moved_to__:
            found = importlib.import_module(module)
            if hasattr(found, attr):
                return getattr(found, attr)
        raise AttributeError(f"module {self.__name__!r} (moved to {', '.join(self.__moved_to__)}) has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        return sorted({a for m in self.__moved_to__ for a in dir(importlib.import_module(m))})


class _Loader(importlib.abc.Loader):
    def __init__(self, modules: tuple[str, ...]) -> None:
        self.modules = modules
        self.own_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if len(self.modules) > 1:
            return _Alias(spec.name, self.modules)
        module = importlib.import_module(self.modules[0])  # the module itself: its classes and submodules
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if self.own_spec is not None:  # importlib gave the module the old path's spec: give its own back
            module.__spec__ = self.own_spec


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not name.startswith("fusedsched."):
            return None
        modules = targets(name)
        if modules is None:
            return None
        return importlib.machinery.ModuleSpec(name, _Loader(modules))


def install() -> None:
    """Put the old paths' finder at the head of ``sys.meta_path`` (once); it answers old paths only."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        # first: an old package path's submodule must not be found again, as a copy, in its new directory
        sys.meta_path.insert(0, _Finder())

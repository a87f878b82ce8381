"""The flat module paths of earlier versions still import, and objects pickled under them still load.

``fusedsched._aliases.MOVED`` maps each old path to its new modules; tests/data/pickles.pt was
written by tests/data/make_pickles.py at commit dd64f98, before the move, so its classes carry the
old paths (``fusedsched.scheduler.LRShim``, ``fusedsched.engines.DeviceEngine``, ...).
"""

from __future__ import annotations

import copy
import importlib
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import fusedsched
from fusedsched import _aliases

PICKLES = Path(__file__).with_name("data") / "pickles.pt"


@pytest.mark.parametrize("old", sorted(_aliases.MOVED))
def test_every_old_path_imports_and_names_what_it_held(old):
    module = importlib.import_module(old)
    for new in _aliases.MOVED[old]:
        public = getattr(importlib.import_module(new), "__all__", None) or [
            n for n in vars(importlib.import_module(new)) if not n.startswith("_")
        ]
        for name in public:
            assert getattr(module, name) is getattr(importlib.import_module(new), name), (old, name)


def test_an_old_path_is_the_new_module_itself():
    import fusedsched.scheduler
    import fusedsched.shim.scheduler

    assert fusedsched.scheduler is fusedsched.shim.scheduler
    assert fusedsched.scheduler.__spec__.name == "fusedsched.shim.scheduler"  # importlib's alias spec undone
    from fusedsched.scheduler import LRShim

    assert LRShim is fusedsched.LRShim


def test_an_old_package_path_reaches_its_submodules_without_a_second_copy():
    import fusedsched.kinds.cosine as old
    import fusedsched.schedule.kinds.cosine as new

    assert old is new and old.CosineAnnealing is fusedsched.CosineAnnealing
    assert "fusedsched.kinds.cosine" in sys.modules
    assert not [m for m in sys.modules.values() if getattr(m, "__file__", None) == new.__file__ and m is not new]


def test_an_unknown_name_or_module_under_an_old_path_is_still_an_error():
    import fusedsched.scheduler

    with pytest.raises(AttributeError):
        fusedsched.scheduler.no_such_name  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("fusedsched.no_such_module")


def test_the_old_paths_work_in_a_fresh_interpreter():
    code = (
        "from fusedsched.scheduler import LRShim\n"
        "from fusedsched.kinds import LearningRate\n"
        "from fusedsched.config import load_config\n"
        "import fusedsched.engines, fusedsched.convert_stacks\n"
        "print(LRShim.__module__, LearningRate.__module__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["fusedsched.shim.scheduler", "fusedsched.schedule.kinds.compose"]


def _saved_class_paths() -> set[str]:
    with zipfile.ZipFile(PICKLES) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    import re

    return {m.decode().replace("\n", ".") for m in re.findall(rb"fusedsched[\w.]*\n\w+", data)}


def test_the_pickles_were_written_under_the_old_paths():
    paths = _saved_class_paths()
    assert {"fusedsched.scheduler.LRShim", "fusedsched.engines.DeviceEngine", "fusedsched.engines.HostEngine",
            "fusedsched.kinds.compose.LearningRate", "fusedsched.convert_stacks.TimmShim"} <= paths
    assert not any(p.startswith(("fusedsched.shim.", "fusedsched.schedule.")) for p in paths)


@pytest.mark.usefixtures("quiet_user_warnings")
def test_objects_pickled_under_the_old_paths_load_and_keep_stepping():
    saved = torch.load(PICKLES, weights_only=False)
    for name, (now, after, last_epoch) in saved["expected"].items():
        shim = saved[name]
        assert isinstance(shim, fusedsched.LRShim), name
        assert shim.get_last_lr() == now, name
        for _ in range(2):
            shim.optimizer.step()
            shim.step(torch.tensor(0.99)) if shim.has_plateau else shim.step()
        assert shim.get_last_lr() == after and shim.last_epoch == last_epoch, name
        copy.deepcopy(shim).step()  # a loaded scheduler copies and pickles again, under the new paths
    assert isinstance(saved["config"], fusedsched.OptimizerConfig)
    assert isinstance(saved["sgd"], fusedsched.GraphSafeSGD) and isinstance(saved["adagrad"], fusedsched.FusedAdagrad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved["sgd"].step()

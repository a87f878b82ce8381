"""How the converter modules meet the rest of the package: ``LRShim`` only through its public API
and its one protected jump, and the flat path ``fusedsched.convert_stacks`` of the single module the
stack converters were, still naming what it held (user code and pickles name it)."""

import ast
import pickle
from pathlib import Path

import pytest
import torch

from fusedsched import LearningRate, LRShim
from fusedsched.convert import deepspeed, megatron, timm

CONVERT = Path(__file__).resolve().parents[2] / "src" / "fusedsched" / "convert"  # read from the source, as test_layering
ALLOWED = {"_jump"}  # LRShim's protected jump: step(epoch) and the stack shims share it


def lrshim_private_members():
    """Every private name an ``LRShim`` has: its class's (and torch's ``LRScheduler``'s) and those
    its constructor sets on the instance (dunders aside)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    shim = LRShim(optimizer, {"g": LearningRate(constant=0.1)}, device_schedule=True)
    names = set(dir(LRShim)) | set(vars(shim))
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def private_accesses(source, private):
    """``(line, name)`` of every ``x.name`` and ``getattr(x, "name", ...)`` (also ``setattr`` /
    ``hasattr`` / ``delattr``) in ``source`` whose ``name`` is in ``private``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append((node.lineno, node.attr))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in private):
            found.append((node.lineno, node.args[1].value))
    return sorted(found)


def test_the_check_finds_private_accesses():
    private = {"_engine", "_steps"}
    source = "shim._engine.jump(3)\nx = getattr(shim, '_steps', 0)\nshim._jump(3, 'epoch')\nother._schedulers\n"
    assert sorted(private_accesses(source, private)) == [(1, "_engine"), (2, "_steps")]
    assert {"_engine", "_steps", "_catch_up", "_check_step", "_step_by", "_jump"} <= lrshim_private_members()


def test_no_converter_touches_a_private_member_of_lrshim_but_its_protected_jump():
    private = lrshim_private_members() - ALLOWED
    modules = sorted(CONVERT.glob("*.py"))
    assert {"torch.py", "timm.py", "deepspeed.py", "megatron.py", "stack_shim.py"} <= {p.name for p in modules}
    found = {p.name: private_accesses(p.read_text(), private) for p in modules}
    assert not any(found.values()), {name: hits for name, hits in found.items() if hits}


# The public names of the single module fusedsched.convert_stacks (0.1's layout), and where they live now.
OLD_NAMES = {
    timm: ["TIMM_SUPPORTED", "TimmShim", "from_timm", "timm_learning_rates"],
    deepspeed: ["DEEPSPEED_PARAMS", "DEEPSPEED_SUPPORTED", "Decay", "DeepSpeedShim", "deepspeed_config_to_hyperparameters",
                "deepspeed_config_to_schedules", "from_deepspeed", "from_deepspeed_config"],
    megatron: ["MEGATRON_STYLES", "MEGATRON_WSD_STYLES", "MegatronShim", "from_megatron", "megatron_learning_rates",
               "megatron_weight_decays"],
}


@pytest.mark.parametrize("module", list(OLD_NAMES), ids=lambda m: m.__name__)
def test_the_flat_path_still_names_what_the_single_module_held(module):
    import fusedsched.convert_stacks as old

    for name in OLD_NAMES[module]:
        assert getattr(old, name) is getattr(module, name), name


@pytest.mark.parametrize("name, cls", [("TimmShim", timm.TimmShim), ("DeepSpeedShim", deepspeed.DeepSpeedShim),
                                       ("MegatronShim", megatron.MegatronShim)])
def test_a_pickle_naming_a_shim_class_under_the_flat_path_loads_it(name, cls):
    assert pickle.loads(f"cfusedsched.convert_stacks\n{name}\n.".encode()) is cls  # protocol 0's GLOBAL

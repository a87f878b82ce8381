"""``import fusedsched`` stays cheap: nothing it imports pulls in ``torch._dynamo`` (about 1.5 s).

Checked in a fresh interpreter, since this test process has long imported dynamo; every public
name is resolved too, so a module that imports dynamo at import time fails the test whichever
name loads it. The import time itself is measured, not asserted (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import fusedsched
import fusedsched.schedule.kinds

PROGRAM = """
import sys
import typing
import fusedsched
import fusedsched.schedule.kinds
assert "torch._dynamo" not in sys.modules, "import fusedsched imported torch._dynamo"
values = [getattr(fusedsched, name) for name in fusedsched.__all__]
import fusedsched.shim.graphs, fusedsched.ops, fusedsched.shim.binding
loaded = sorted(m for m in sys.modules if m.startswith("torch._dynamo"))
print("DYNAMO" if loaded else "CLEAN", len(values), loaded[:3])
"""


def _run(program: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(fusedsched.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_importing_fusedsched_and_every_public_name_does_not_import_dynamo():
    out = _run(PROGRAM)
    assert out.startswith("CLEAN"), out
    assert f" {len(fusedsched.__all__)} " in out


def test_the_check_sees_dynamo_when_something_imports_it():
    """Positive control: the same program reports a module that does import torch._dynamo."""
    out = _run(PROGRAM.replace("import fusedsched.shim.graphs", "import torch._dynamo, fusedsched.shim.graphs"))
    assert out.startswith("DYNAMO"), out


def test_unknown_names_are_attribute_errors_and_public_names_are_listed():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fusedsched.nope  # noqa: B018
    assert set(fusedsched.__all__) <= set(dir(fusedsched))
    assert fusedsched.LRShim.__module__ == "fusedsched.shim.scheduler"


KIND_MODELS = [
    "PiecewiseConstant", "LinearRampToConstant", "LinearRampToCosine", "ExponentialDecay", "PolynomialDecay",
    "WarmupStableDecay", "CosineAnnealing", "CosineWithRestarts", "OneCycle", "InverseSqrt", "LogWarmup", "Cyclic",
    "TanhDecay", "ReduceOnPlateau", "Join", "Product", "Offset",
]


def test_every_kind_model_and_learning_rate_are_exported_from_kinds():
    from fusedsched import (  # the statement users write
        CosineAnnealing,
        CosineWithRestarts,
        Cyclic,
        ExponentialDecay,
        InverseSqrt,
        Join,
        LearningRate,
        LinearRampToConstant,
        LinearRampToCosine,
        LogWarmup,
        Offset,
        OneCycle,
        PiecewiseConstant,
        PolynomialDecay,
        Product,
        ReduceOnPlateau,
        TanhDecay,
        WarmupStableDecay,
    )

    imported = [PiecewiseConstant, LinearRampToConstant, LinearRampToCosine, ExponentialDecay, PolynomialDecay,
                WarmupStableDecay, CosineAnnealing, CosineWithRestarts, OneCycle, InverseSqrt, LogWarmup, Cyclic,
                TanhDecay, ReduceOnPlateau, Join, Product, Offset]
    # The kind models are LearningRate's field types, one per kind but the float "constant".
    fields = [typing.get_args(LearningRate.model_fields[kind].annotation) for kind in LearningRate.KINDS if kind != "constant"]
    models = [next(t for t in args if t is not type(None)) for args in fields]
    assert [m.__name__ for m in models] == KIND_MODELS and imported == models
    for name in [*KIND_MODELS, "LearningRate"]:
        assert name in fusedsched.__all__ and name in dir(fusedsched)
        assert getattr(fusedsched, name) is getattr(fusedsched.schedule.kinds, name), name
        assert getattr(fusedsched, name).__module__.startswith("fusedsched.schedule.kinds."), name


def _type_checking_imports() -> dict[str, str]:
    """``{name: module}`` imported in ``fusedsched/__init__.py``'s ``if TYPE_CHECKING:`` block."""
    import ast

    tree = ast.parse(Path(fusedsched.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    return {alias.asname or alias.name: node.module.lstrip(".") for node in block.body
            if isinstance(node, ast.ImportFrom) for alias in node.names}


def test_the_lazy_exports_and_the_type_checking_block_name_the_same_things():
    """Type checkers read the ``TYPE_CHECKING`` imports, the interpreter ``_EXPORTS``: one may not drift."""
    assert _type_checking_imports() == fusedsched._EXPORTS
    assert fusedsched.__all__ == sorted(fusedsched._EXPORTS)
    import importlib

    for name, module in fusedsched._EXPORTS.items():
        assert getattr(fusedsched, name) is getattr(importlib.import_module(f"fusedsched.{module}"), name), name

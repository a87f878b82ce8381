"""``import fusedsched`` stays cheap: nothing it imports pulls in ``torch._dynamo`` (about 1.5 s).

Checked in a fresh interpreter, since this test process has long imported dynamo; every public
name is resolved too, so a module that imports dynamo at import time fails the test whichever
name loads it. The import time itself is measured, not asserted (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fusedsched

PROGRAM = """
import sys
import fusedsched
assert "torch._dynamo" not in sys.modules, "import fusedsched imported torch._dynamo"
values = [getattr(fusedsched, name) for name in fusedsched.__all__]
import fusedsched.graphs, fusedsched.ops, fusedsched.binding
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
    out = _run(PROGRAM.replace("import fusedsched.graphs", "import torch._dynamo, fusedsched.graphs"))
    assert out.startswith("DYNAMO"), out


def test_unknown_names_are_attribute_errors_and_public_names_are_listed():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fusedsched.nope  # noqa: B018
    assert set(fusedsched.__all__) <= set(dir(fusedsched))
    assert fusedsched.LRShim.__module__ == "fusedsched.scheduler"

"""Test session set-up: the Triton interpreter must be on before any kernel module is imported.

CI and developers' machines have no GPU; with ``TRITON_INTERPRET=1`` the Triton kernel runs on
CPU tensors. Tests that need CUDA carry ``@pytest.mark.cuda`` and skip with a reason without it.
"""

import importlib
import os
import warnings

import pytest
import torch
from _interpreter import keep_the_launch_patches
from _pytest.python import pytest_pyfunc_call as _call_test_function
from hypothesis import HealthCheck, Phase, settings

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    keep_the_launch_patches()  # the interpreter's helper calls, without re-patching (tests/_interpreter.py)

# Property tests: the same examples on every run and in CI (derandomized, no example database),
# sized to keep tests/shim/test_properties.py well under a minute on two CPU cores. A longer random
# search: FUSEDSCHED_HYPOTHESIS_PROFILE=thorough; a failure prints a @reproduce_failure blob.
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,  # the Triton interpreter's speed varies with machine load
    derandomize=True,
    database=None,
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no "explain": it traces every line
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=500, derandomize=False)
settings.load_profile(os.environ.get("FUSEDSCHED_HYPOTHESIS_PROFILE", "ci"))


# Room on the frame stack. CPython (3.11 and later) keeps Python frames in chunks of at least 16 KiB
# and frees a chunk as soon as the frame at its start returns, so a loop whose calls cross a chunk's
# start maps and unmaps memory on every call. Under pytest and hypothesis the Triton interpreter's
# launches sat on such a start in some tests and ran three to six times slower (the property tests
# of tests/shim/test_properties.py: 280 s, 73 s with this). Every test therefore runs above one
# frame of _ROOM_SLOTS slots: pushing it always starts a chunk of twice its size, which leaves the
# test about 256 KiB of frames before the next chunk, whatever the depth pytest calls it at.
_ROOM_SLOTS = 32768


def _caller_with_room():
    names = " = ".join(f"_{i}" for i in range(_ROOM_SLOTS))
    source = (
        "def call_with_room(call):\n"
        "    if False:  # never runs: the names only reserve the frame's slots\n"
        f"        {names} = None\n"
        "    return call()\n"
    )
    namespace: dict = {}
    exec(compile(source, "<conftest: call_with_room>", "exec"), namespace)
    return namespace["call_with_room"]


call_with_room = _caller_with_room()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """pytest's own call of the test function, above the frame that gives it room."""
    return call_with_room(lambda: _call_test_function(pyfuncitem))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is available on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def quiet_user_warnings():
    """Ignore UserWarnings (torch's step-order warning, the epoch deprecation) in a test; a module
    that drives schedulers by hand takes it for every test with ``pytest.mark.usefixtures``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.fixture
def cpu_capturable(monkeypatch):
    """torch's capturable Adam asserts a CUDA-like device; its operations run on the CPU as they are."""
    monkeypatch.setattr(importlib.import_module("torch.optim.adam"), "_get_capturable_supported_devices",
                        lambda supports_xla=True: ["cpu"])

"""Test session set-up: the Triton interpreter must be on before any kernel module is imported.

CI and developers' machines have no GPU; with ``TRITON_INTERPRET=1`` the Triton kernel runs on
CPU tensors. Tests that need CUDA carry ``@pytest.mark.cuda`` and skip with a reason without it.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is available on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)

"""The engines behind ``LRShim`` and the ``ops`` seam they use, driven directly.

Both engines answer the same calls (:class:`fusedsched.shim.engine.Engine`); each is checked against
``compute_lr`` (host: exactly; device: ``float32(compute_lr)``), for what moves the step and what
does not, and for copies.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from _compare import CONFIGS, assert_lrs_match, expected_f32

from fusedsched import LRShim, compute_lr, ops
from fusedsched.shim.binding import GroupBinding
from fusedsched.shim.device_engine import DeviceEngine
from fusedsched.shim.engine import Engine, Lag
from fusedsched.shim.host_engine import HostEngine
from fusedsched.tml.config import MAX_STEP

NATIVE = ops.unavailable_reason("native", "cpu") is None
BACKENDS = [b for b in ops.BACKENDS if ops.unavailable_reason(b, "cpu") is None]


def _binding(n: int = len(CONFIGS), lr=0.5) -> tuple[torch.optim.SGD, GroupBinding]:
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(n)], lr=lr)
    return optimizer, GroupBinding(optimizer, [f"g{i}" for i in range(n)])


def _engine(mode: str, backend: str | None = None, last_epoch: int = -1):
    optimizer, binding = _binding()
    if mode == "host":
        return optimizer, HostEngine(binding, CONFIGS, last_epoch)
    return optimizer, DeviceEngine(binding, CONFIGS, last_epoch, backend=backend)


def _want(step: int, mode: str) -> list[float]:
    if mode == "host":
        return [compute_lr(c, step) for c in CONFIGS]
    return expected_f32(CONFIGS, step).tolist()


LANES = [("host", None)] + [("device", b) for b in BACKENDS]


@pytest.mark.parametrize("mode, backend", LANES)
def test_every_engine_answers_the_engine_protocol(mode, backend):
    _, engine = _engine(mode, backend)
    members = [name for name in vars(Engine) if not name.startswith("_")] + list(Engine.__annotations__)
    missing = [name for name in members if not hasattr(engine, name)]
    assert not missing, f"{type(engine).__name__} lacks {missing}"
    assert engine.on_device is (mode == "device") and engine.compilable is (mode == "device")


@pytest.mark.parametrize("mode, backend", LANES)
def test_advance_jump_and_move(mode, backend):
    optimizer, engine = _engine(mode, backend)
    for s in range(0, 12):
        engine.advance()
        assert engine.step == s
        if mode == "host":
            assert engine.floats() == _want(s, mode) == [g["lr"] for g in optimizer.param_groups]
        else:
            assert_lrs_match(np.array(engine.floats(), dtype=np.float32), expected_f32(CONFIGS, s), f"step {s}")
            assert engine.counter.item() == s
    engine.jump(250)
    assert engine.step == 250
    if mode == "host":
        assert engine.floats() == _want(250, mode)
    else:
        assert_lrs_match(engine.values, expected_f32(CONFIGS, 250))
    before = engine.floats()
    engine.move(40)  # last_epoch = 40: the rates stay until the next advance, which evaluates 41
    assert engine.step == 40 and engine.floats() == before
    engine.advance()
    assert engine.step == 41
    if mode == "host":
        assert engine.floats() == _want(41, mode)
    else:
        assert_lrs_match(engine.values, expected_f32(CONFIGS, 41))
    assert engine.catch_up() == 0 and engine.step == 41 and engine.lag is Lag.NONE


@pytest.mark.parametrize("backend", BACKENDS)
def test_device_steps_taken_unseen_are_counted_at_catch_up(backend):
    _, engine = _engine("device", backend, last_epoch=-1)
    engine.advance()
    for _ in range(5):
        engine.advance_unseen()
    assert engine.lag is Lag.STEPS and engine.step == 0  # the host has not looked
    assert engine.catch_up() == 5
    assert engine.step == 5 and engine.lag is Lag.NONE
    assert engine.extra_state() == {"device_step": 5}
    assert_lrs_match(engine.values, expected_f32(CONFIGS, 5))


def test_host_engine_has_no_device_state():
    _, engine = _engine("host")
    engine.advance()
    assert engine.counter is None and engine.backend is None and engine.extra_state() == {}
    assert isinstance(engine.values, list) and all(type(v) is float for v in engine.values)


def test_device_engine_refuses_a_start_beyond_max_step_before_touching_the_groups():
    optimizer, binding = _binding(n=2)
    for group in optimizer.param_groups:
        group["initial_lr"] = 0.5
    with pytest.raises(OverflowError, match=r"last_epoch must be <= 2\*\*53 - 2 \(9007199254740990\) in device mode"):
        DeviceEngine(binding, CONFIGS[:2], MAX_STEP + 1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.5]
    engine = DeviceEngine(binding, CONFIGS[:2], MAX_STEP)  # the largest is taken
    engine.advance()
    assert_lrs_match(engine.values, expected_f32(CONFIGS[:2], MAX_STEP + 1))
    HostEngine.check_step(2**63 - 1, "step")  # host mode: any int64 step


@pytest.mark.parametrize("mode, backend", LANES)
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_engine_drives_its_own_groups(mode, backend, how):
    optimizer, engine = _engine(mode, backend)
    for _ in range(3):
        engine.advance()
    twin = copy.deepcopy(engine) if how == "deepcopy" else pickle.loads(pickle.dumps(engine))
    twin.advance()
    twin_groups = twin._binding.groups()
    assert twin.step == 3 and engine.step == 2
    if mode == "host":
        assert [g["lr"] for g in twin_groups] == _want(3, mode)
        assert [g["lr"] for g in optimizer.param_groups] == _want(2, mode)
    else:
        assert twin.values.data_ptr() != engine.values.data_ptr()
        assert all(g["lr"].data_ptr() == v.data_ptr() for g, v in zip(twin_groups, twin.values.unbind(0)))
        assert_lrs_match(twin.values, expected_f32(CONFIGS, 3))
        assert_lrs_match(engine.values, expected_f32(CONFIGS, 2))


# --- GroupBinding.drop_stale_step_wrappers ----------------------------------------------------------


def test_a_step_wrapper_copied_from_another_optimizer_is_dropped():
    original, _ = _binding(n=1)
    LRShim(original, {"g0": CONFIGS[0]})  # torch wraps original.step, holding a weak reference to it
    assert getattr(original.__dict__["step"], "_wrapped_by_lr_sched", False)
    clone, clone_binding = _binding(n=1)
    clone.__dict__["step"] = original.__dict__["step"]  # what a copy of the whole __dict__ does
    clone_binding.drop_stale_step_wrappers()
    assert "step" not in clone.__dict__  # the class's own step runs: the clone steps itself
    GroupBinding(original, ["g0"]).drop_stale_step_wrappers()
    assert "step" in original.__dict__  # its own wrapper stays


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_lost_distance_is_not_counted_as_steps_even_after_unseen_steps(backend):
    _, engine = _engine("device", backend, last_epoch=0)
    engine.advance_by(torch.tensor(7))  # the host counts one step but not its size
    engine.advance_unseen()
    assert engine.lag == Lag.STEPS | Lag.DISTANCE and engine.step == 0
    assert engine.catch_up() == 0  # the counter's 8 steps are not 8 step() calls
    assert engine.step == 8 and engine.lag is Lag.NONE

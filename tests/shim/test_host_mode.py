"""Host mode (float ``group["lr"]``): every rate is ``compute_lr``'s float64 value, bit for bit.

Host mode evaluates prepared formulas (:func:`fusedsched.schedule.reference.prepare_lr`) for few groups and
the native CPU op writing float64 for many; both must equal ``compute_lr`` exactly, for every
config the other tests use (whatever kinds they hold) and at every step, the far ones included.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from _compare import BIG_STEPS, CONFIGS

from fusedsched import LRShim, compute_lr, ops
from fusedsched.ops import unavailable_reason
from fusedsched.shim import scheduler as scheduler_module

NATIVE = unavailable_reason("native", "cpu") is None
FAR_STEPS = BIG_STEPS + [2**53 - 3, 2**53 - 2, 2**53 - 1, 2**53, 2**53 + 1, 2**62 + 7, 2**63 - 1]


def _shim(configs, copies: int = 1) -> tuple[torch.optim.SGD, LRShim, list]:
    configs = [c for c in configs for _ in range(copies)]
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in configs], lr=0.0)
    return optimizer, LRShim(optimizer, {f"g{i}": c for i, c in enumerate(configs)}), configs


def _assert_exact(optimizer, shim: LRShim, configs, step: int) -> None:
    want = [compute_lr(c, step) for c in configs]
    got = [g["lr"] for g in optimizer.param_groups]
    assert all(type(v) is float for v in got)
    assert got == want, f"step {step}: {got} != {want}"
    assert shim.get_last_lr() == want
    assert shim.last_epoch == step


def _check_path(optimizer, shim, configs) -> None:
    for s in range(0, 260):  # every ramp end, boundary and decay end of CONFIGS below 260
        if s:
            optimizer.step()
            shim.step()
        _assert_exact(optimizer, shim, configs, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # step(epoch) is deprecated, as in torch
        for s in FAR_STEPS:
            shim.step(s)
            _assert_exact(optimizer, shim, configs, s)
            shim.last_epoch = s - 1
            shim.step()
            _assert_exact(optimizer, shim, configs, s)


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_one_group_uses_prepared_formulas_and_is_exact(index):
    optimizer, shim, configs = _shim([CONFIGS[index]])
    assert not shim._engine.native
    _check_path(optimizer, shim, configs)


def test_many_groups_use_the_native_op_and_are_exact():
    if not NATIVE:
        pytest.skip(f"the native extension is not available: {unavailable_reason('native', 'cpu')}")
    optimizer, shim, configs = _shim(CONFIGS, copies=3)
    assert len(configs) >= scheduler_module.HOST_NATIVE_MIN_ROWS
    assert shim._engine.native
    _check_path(optimizer, shim, configs)


def test_many_groups_without_the_native_op_fall_back_to_prepared_formulas(monkeypatch):
    monkeypatch.setattr(ops._native, "unavailable_reason", lambda device: "disabled for this test")
    optimizer, shim, configs = _shim(CONFIGS, copies=3)
    assert not shim._engine.native
    _check_path(optimizer, shim, configs)


@pytest.mark.parametrize("copies", [1, 3])
def test_state_dict_round_trip_keeps_host_rates_exact(copies):
    optimizer, shim, configs = _shim(CONFIGS, copies)
    for _ in range(17):
        optimizer.step()
        shim.step()
    other, copy, _ = _shim(CONFIGS, copies)
    copy.load_state_dict(shim.state_dict())
    _assert_exact(other, copy, configs, 17)
    for s in range(18, 40):
        other.step()
        copy.step()
        _assert_exact(other, copy, configs, s)


def test_a_tensor_lr_is_filled_in_place_as_torch_schedulers_do():
    lr = torch.tensor(0.5, dtype=torch.float64)
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr},
                                 {"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=0.5)
    shim = LRShim(optimizer, {"a": CONFIGS[6], "b": CONFIGS[4]}, device_schedule=False)
    for s in range(1, 12):
        optimizer.step()
        shim.step()
        assert optimizer.param_groups[0]["lr"] is lr
        assert [float(g["lr"]) for g in optimizer.param_groups] == [compute_lr(CONFIGS[6], s), compute_lr(CONFIGS[4], s)]

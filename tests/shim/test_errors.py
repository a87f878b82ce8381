"""Bad input to a running ``LRShim`` gets an error that names the argument, and nothing changes.

Inputs a fuzzer found escaping as torch's own errors: a meta tensor (shape and dtype, no data) as an
amount or a metric, and a plateau state whose counts are infinite.
"""

from __future__ import annotations

import math

import pytest
import torch

from fusedsched import LRShim

WARMUP_PLATEAU = {"join": {"schedules": [{"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 2}},
                                         {"plateau": {"learning_rate": 0.1, "patience": 1}}], "boundaries": [2]}}
MODES = [False, True]  # device_schedule


def _shim(device_schedule: bool, schedule=WARMUP_PLATEAU) -> LRShim:
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([{"params": [param], "name": "g"}], lr=torch.tensor(0.0) if device_schedule else 0.0)
    return LRShim(optimizer, {"g": schedule}, device_schedule=device_schedule)


def _state(shim: LRShim):
    return shim.last_epoch, shim.get_last_lr(), shim.plateau_states()


@pytest.mark.usefixtures("quiet_user_warnings")
@pytest.mark.parametrize("device_schedule", MODES)
def test_a_meta_tensor_is_refused_as_an_amount_naming_amount(device_schedule):
    shim = _shim(device_schedule, {"constant": 0.1})
    before = shim.last_epoch, shim.get_last_lr()
    with pytest.raises(ValueError, match="amount must"):
        shim.step(amount=torch.tensor(3, device="meta"))
    assert (shim.last_epoch, shim.get_last_lr()) == before


@pytest.mark.usefixtures("quiet_user_warnings")
@pytest.mark.parametrize("device_schedule", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_meta_tensor_is_refused_as_a_metric_naming_metrics(device_schedule, dtype):
    shim = _shim(device_schedule)
    for loss in (1.0, 0.9, 0.95):
        shim.step(torch.tensor(loss))
    before = _state(shim)
    with pytest.raises(ValueError, match="metrics must hold a value, got a tensor on the meta device"):
        shim.step(torch.tensor(0.5, dtype=dtype, device="meta"))
    assert _state(shim) == before
    shim.step(torch.tensor(0.5))  # and it still steps


@pytest.mark.usefixtures("quiet_user_warnings")
@pytest.mark.parametrize("device_schedule", MODES)
@pytest.mark.parametrize("field, bad", [("bad_epochs", math.inf), ("cooldown_left", math.inf),
                                        ("bad_epochs", math.nan), ("cooldown_left", -1), ("bad_epochs", 1.5)])
def test_a_plateau_state_with_a_count_that_is_not_a_whole_number_is_refused_naming_it(device_schedule, field, bad):
    shim = _shim(device_schedule)
    for loss in (1.0, 0.9, 0.95):
        shim.step(torch.tensor(loss))
    state = shim.state_dict()
    state["plateaus"]["g"]["lr"][field] = bad
    before = _state(shim)
    with pytest.raises(ValueError, match=f"{field} must be a whole number >= 0, got {bad!r}"):
        shim.load_state_dict(state)
    states = {key: list(v) for key, v in shim.plateau_states().items()}
    states[("g", "lr")][2 if field == "bad_epochs" else 3] = bad
    with pytest.raises(ValueError, match=f"load_plateau_states: .*{field} must be a whole number >= 0"):
        shim.load_plateau_states(states)
    assert _state(shim) == before


@pytest.mark.parametrize("device_schedule", MODES)
def test_load_plateau_states_refuses_a_value_or_a_length_it_cannot_hold(device_schedule):
    shim = _shim(device_schedule)
    with pytest.raises(ValueError, match="value must be finite and >= 0, got inf"):
        shim.load_plateau_states({("g", "lr"): [math.inf, 1.0, 0, 0]})
    with pytest.raises(TypeError, match="must hold 4 numbers"):
        shim.load_plateau_states({("g", "lr"): [0.1, 1.0, 0]})
    with pytest.raises(ValueError, match=r"no plateau at \[\('g', 'beta1'\)\]"):
        shim.load_plateau_states({("g", "beta1"): [0.1, 1.0, 0, 0]})

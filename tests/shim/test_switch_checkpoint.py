"""Switches in checkpoints: ``state_dict()`` records them as plain data, and ``load_state_dict``
resumes them under both policies (docs/checkpoints.md, docs/switching.md).

- ``"configured"`` (the default): the configured schedules with the checkpoint's switches applied;
  with the same config the run resumes bit-exactly and nothing is reported; with a changed config
  the switches apply to it and ``ScheduleChangedWarning`` names every difference.
- ``"checkpoint"``: the checkpoint's schedules in effect, switches included, whatever is configured.
- A state without switch entries (every state written before switches, and every state of a run
  that never switched) loads as before; a malformed entry is refused before anything changes.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from _compare import CPU_BACKENDS

from fusedsched import LearningRate, LRShim, ScheduleChangedWarning
from fusedsched.shim.checkpoint import Switch, parse_switches
from fusedsched.shim.switching import joined

pytestmark = pytest.mark.usefixtures("quiet_user_warnings")

COSINE = LearningRate(linear_ramp_to_cosine={"learning_rate": 3e-3, "final_learning_rate": 3e-5, "num_ramp_steps": 10,
                                             "final_num_steps": 200})
LONGER = LearningRate(linear_ramp_to_cosine={"learning_rate": 3e-3, "final_learning_rate": 3e-5, "num_ramp_steps": 10,
                                             "final_num_steps": 300})
STAGE = LearningRate(warmup_stable_decay={"learning_rate": 2e-3, "final_learning_rate": 1e-4, "num_ramp_steps": 8,
                                          "num_stable_steps": 40, "num_decay_steps": 30, "decay_shape": "1-sqrt"})
COOLDOWN = {"warmup_stable_decay": {"learning_rate": "current", "final_learning_rate": 1e-5, "num_ramp_steps": 0,
                                    "num_stable_steps": 0, "num_decay_steps": 30, "decay_shape": "linear"}}
MODES = [pytest.param(False, None, id="host")] + [pytest.param(True, b, id=f"device-{b}") for b in CPU_BACKENDS]


def make(schedules: dict, device: bool, backend=None, spare: int = 3) -> LRShim:
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(2))], "name": n} for n in schedules],
                                lr=0.1)
    return LRShim(optimizer, schedules, device_schedule=device, backend=backend, spare_segments=spare)


def advance(shim: LRShim, steps: int) -> None:
    for _ in range(steps):
        shim.optimizer.step()
        shim.step()


def rates(shim: LRShim) -> list[float]:
    return shim.lr_tensor.tolist() if shim.device_schedule else [g["lr"] for g in shim.optimizer.param_groups]


def saved(shim: LRShim) -> dict:
    """``shim.state_dict()`` through ``torch.save`` and ``torch.load(weights_only=True)``."""
    buffer = io.BytesIO()
    torch.save(shim.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def switched_run(device: bool, backend=None) -> LRShim:
    """COSINE and STAGE to step 30, a cooldown of ``a`` from there, one of ``b`` planned at 50, then to 40."""
    shim = make({"a": COSINE, "b": STAGE}, device, backend)
    advance(shim, 30)
    shim.switch({"a": COOLDOWN})
    shim.switch({"b": {"constant": "current"}}, at=50)
    advance(shim, 10)
    return shim


@pytest.mark.parametrize("policy", ["configured", "checkpoint"])
@pytest.mark.parametrize("device, backend", MODES)
def test_a_switched_run_resumes_bit_exactly(device, backend, policy):
    source = switched_run(device, backend)
    state = saved(source)
    assert [entry["at"] for entry in state["switches"]] == [30, 50]
    # "configured": the same config; "checkpoint": another config, which the checkpoint overrides
    resumed = make({"a": COSINE if policy == "configured" else LONGER, "b": STAGE}, device, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ScheduleChangedWarning
        resumed.load_state_dict(state, schedules=policy)
    assert resumed.lr_dict == source.lr_dict and resumed.switches == source.switches
    assert resumed.state_dict() == source.state_dict()
    assert rates(resumed) == rates(source)
    for _ in range(30 if backend != "triton" else 12):  # past the planned switch at 50
        advance(source, 1)
        advance(resumed, 1)
        assert rates(resumed) == rates(source), resumed.last_epoch


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_a_changed_config_takes_the_checkpoint_s_switches_and_is_reported(device):
    state = saved(switched_run(device))
    resumed = make({"a": LONGER, "b": STAGE}, device)
    before = resumed.state_dict()
    with pytest.raises(ValueError, match=r"join\.schedules\[0\]\.linear_ramp_to_cosine\.final_num_steps is 200 in "
                                         r"the checkpoint, 300 configured"):
        resumed.load_state_dict(state, strict=True)
    assert resumed.state_dict() == before and resumed.switches == ()
    with pytest.warns(ScheduleChangedWarning, match=r"group 'a': join\.schedules\[0\]\.linear_ramp_to_cosine\."
                                                    r"final_num_steps is 200 in the checkpoint, 300 configured"):
        resumed.load_state_dict(state)
    switches = parse_switches(state["switches"], ["a", "b"])
    assert resumed.switches == switches
    assert resumed.lr_dict == {"a": joined(LONGER, switches[0].lr["a"], 30), "b": joined(STAGE, switches[1].lr["b"], 50)}
    assert resumed.last_epoch == 40


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_a_state_without_switches_loads_as_before(device):
    plain = make({"a": COSINE, "b": STAGE}, device)
    advance(plain, 12)
    state = saved(plain)
    assert "switches" not in state  # a run that never switched writes the state it always wrote
    target = switched_run(device)  # its switches are not the checkpoint's: they go
    for policy in ("configured", "checkpoint"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            target.load_state_dict(state, schedules=policy)
        assert target.switches == () and target.lr_dict == {"a": COSINE, "b": STAGE}
        assert target.state_dict() == plain.state_dict()
    oldest = {"last_epoch": 12, "_step_count": 13, "base_lrs": [0.1, 0.1]}  # no schedules at all
    for policy in ("configured", "checkpoint"):
        target = switched_run(device)
        target.load_state_dict(oldest, schedules=policy)
        assert target.switches == () and target.lr_dict == {"a": COSINE, "b": STAGE} and target.last_epoch == 12
        assert rates(target) == rates(plain)


def test_a_state_dict_with_switches_is_plain_data():
    state = switched_run(True).state_dict()

    def plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return isinstance(value, (int, float, str, bool)) or value is None

    assert plain(state)
    assert state["switches"][0]["lr"]["a"]["warmup_stable_decay"]["learning_rate"] == LearningRate(
        join=state["lr_dict"]["a"]["join"]).join.schedules[1].warmup_stable_decay.learning_rate


GOOD = {"at": 30, "lr": {"a": {"constant": 0.1}}}


@pytest.mark.parametrize("switches, error, match", [
    ({"at": 3}, TypeError, r"^state_dict\['switches'\] must be a list of \{at, lr, hyperparameters\}"),
    ([{"lr": {"a": {"constant": 0.1}}}], ValueError, r"^state_dict\['switches'\]\[0\] must be a mapping with 'at'"),
    ([GOOD, {**GOOD, "when": 3}], ValueError, r"^state_dict\['switches'\]\[1\] must be a mapping with 'at'"),
    ([{**GOOD, "at": -1}], ValueError, r"^state_dict\['switches'\]\[0\]\['at'\] must be >= 0, got -1$"),
    ([{**GOOD, "at": 2.0}], TypeError, r"^state_dict\['switches'\]\[0\]\['at'\] must be an integer, got 2.0"),
    ([{**GOOD, "at": 2**53}], OverflowError, r"^state_dict\['switches'\]\[0\]\['at'\] must be <= 2\*\*53 - 2"),
    ([{**GOOD, "lr": {"z": {"constant": 0.1}}}], ValueError,
     r"^state_dict\['switches'\]\[0\]\['lr'\] names \['z'\], not among this LRShim's groups \['a', 'b'\]$"),
    ([{**GOOD, "lr": {"a": {"constant": -1.0}}}], ValueError,
     r"^state_dict\['switches'\]\[0\]\['lr'\]\['a'\] is not a valid LearningRate"),
    ([{**GOOD, "hyperparameters": {"a": {"gamma": {"constant": 0.1}}}}], ValueError,
     r"^state_dict\['switches'\]\[0\]\['hyperparameters'\]\['a'\] has unknown hyperparameter 'gamma'"),
    ([{**GOOD, "hyperparameters": {"a": {"weight_decay": {"constant": 0.1}}}}], ValueError,
     r"^state_dict\['switches'\]\[0\] switches weight_decay of group 'a', which has no weight_decay schedule here"),
])
@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_a_malformed_switch_entry_is_refused_before_anything_changes(device, switches, error, match):
    target = switched_run(device)
    state = {**saved(target), "last_epoch": 5, "device_step": 5, "switches": switches}
    before = (target.state_dict(), rates(target), target.switches)
    with pytest.raises(error, match=match):
        target.load_state_dict(state)
    assert (target.state_dict(), rates(target), target.switches) == before


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_the_policy_is_checked(device):
    target = switched_run(device)
    for policy in ("yaml", None, True):
        with pytest.raises(ValueError, match=rf"^schedules must be 'configured' .* or 'checkpoint' .*, got {policy!r}$"):
            target.load_state_dict(target.state_dict(), schedules=policy)


def test_a_load_that_does_not_fit_the_device_table_is_refused_before_anything_changes():
    source = switched_run(True)
    source.switch({"a": {"join": {"schedules": [{"constant": c} for c in (1e-3, 2e-3, 3e-3)], "boundaries": [5, 9]}}})
    state = saved(source)
    small = make({"a": COSINE, "b": STAGE}, True, spare=0)
    advance(small, 3)
    before = (small.state_dict(), rates(small))
    with pytest.raises(ValueError, match=r"^the new schedule of group 'a' lr needs 6 segments of the device table, "
                                         r"which holds 4 a row \(4 for the longest schedule at construction plus "
                                         r"spare_segments=0\): build the LRShim with spare_segments=2 or more"):
        small.load_state_dict(state)
    assert (small.state_dict(), rates(small)) == before


def test_switch_records_round_trip():
    switch = Switch(7, {"a": LearningRate(constant=0.5)}, {"b": {"weight_decay": LearningRate(constant=0.1)}})
    assert parse_switches([switch.entry()], ["a", "b"]) == (switch,)
    assert parse_switches(None, ["a"]) == ()

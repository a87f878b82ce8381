"""``LRShim`` never reports one learning rate while the optimizer uses another; bad input gets a message.

Each test is one scenario a careful user runs: resuming with groups in another order, setting
``last_epoch``, composing with torch's schedulers, changing the groups behind the scheduler's back,
copying and pickling, loading broken or changed checkpoints. Every scenario ends correct or in a
clear ``TypeError`` / ``ValueError`` / ``OverflowError`` raised before anything changed.
"""

from __future__ import annotations

import copy
import io
import pickle
import re
import sys
import warnings

import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import ChainedScheduler, ExponentialLR, LambdaLR, SequentialLR

from fusedsched import FusedAdagrad, GroupBindingError, LearningRate, LRShim, ScheduleChangedWarning, compute_lr
from fusedsched.ops import advance_, unavailable_reason
from fusedsched.tml.config import MAX_STEP

MODES = ["host", "device"]
RAMP = LearningRate(linear_ramp_to_constant={"learning_rate": 0.1, "num_ramp_steps": 7})
COSINE = LearningRate(
    linear_ramp_to_cosine={"learning_rate": 0.5, "final_learning_rate": 0.01, "num_ramp_steps": 3, "final_num_steps": 30}
)
PIECEWISE = LearningRate(piecewise_constant={"learning_rate_boundaries": [4, 9], "learning_rate_values": [0.3, 0.2, 0.05]})


def _backends() -> list[str]:
    return [b for b in ("native", "reference", "triton") if unavailable_reason(b, "cpu") is None]


def _optimizer(names=None, lr: float = 0.5, n: int = 2) -> torch.optim.SGD:
    groups = [{"params": [torch.nn.Parameter(torch.full((2,), float(i)))]} for i in range(n if names is None else len(names))]
    for group, name in zip(groups, names or []):
        group["name"] = name
    return torch.optim.SGD(groups, lr=lr)


def _shim(optimizer, lr_dict, mode: str, **kwargs) -> LRShim:
    return LRShim(optimizer, lr_dict, device_schedule=(mode == "device"), **kwargs)


def _lrs(optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]


def _want(configs, step: int, mode: str) -> list[float]:
    values = [compute_lr(c, step) for c in configs]
    return values if mode == "host" else [float(np.float32(v)) for v in values]


def _run(optimizer, shim, steps: int) -> None:
    for _ in range(steps):
        optimizer.step()
        shim.step()


def _save_load(obj, weights_only: bool = True):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=weights_only)


# --- groups are matched by name ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_resume_with_groups_declared_in_another_order_matches_by_name(mode):
    optimizer = _optimizer(["encoder", "head"])
    shim = _shim(optimizer, {"encoder": RAMP, "head": COSINE}, mode)
    _run(optimizer, shim, 5)
    state = _save_load(shim.state_dict())

    rebuilt = _optimizer(["head", "encoder"])
    resumed = _shim(rebuilt, {"head": COSINE, "encoder": RAMP}, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleChangedWarning)  # same schedules by name: nothing changed
        resumed.load_state_dict(state)
    assert resumed.last_epoch == 5
    for s in range(5, 40):
        assert _lrs(rebuilt) == _want([COSINE, RAMP], s, mode), f"step {s}"
        assert resumed.get_last_lr() == _want([COSINE, RAMP], s, mode)
        _run(rebuilt, resumed, 1)


@pytest.mark.parametrize("mode", MODES)
def test_a_state_for_other_group_names_or_counts_is_refused_with_both_lists(mode):
    optimizer = _optimizer(["encoder", "head"])
    shim = _shim(optimizer, {"encoder": RAMP, "head": COSINE}, mode)
    _run(optimizer, shim, 3)
    before = (shim.last_epoch, _lrs(optimizer))
    other = _shim(_optimizer(["encoder", "decoder"]), {"encoder": RAMP, "decoder": COSINE}, mode).state_dict()
    with pytest.raises(ValueError, match=r"\['encoder', 'decoder'\].*\['encoder', 'head'\]"):
        shim.load_state_dict(other)
    three = _shim(_optimizer(n=3), {"a": RAMP, "b": COSINE, "c": PIECEWISE}, mode).state_dict()
    with pytest.raises(ValueError, match=r"\['a', 'b', 'c'\].*\['encoder', 'head'\]"):
        shim.load_state_dict(three)
    assert (shim.last_epoch, _lrs(optimizer)) == before


@pytest.mark.parametrize("mode", MODES)
def test_constructor_matches_named_groups_by_name(mode):
    optimizer = _optimizer(["head", "encoder"])
    shim = _shim(optimizer, {"encoder": RAMP, "head": COSINE}, mode)
    assert shim.group_names == ["head", "encoder"]
    _run(optimizer, shim, 4)
    assert _lrs(optimizer) == _want([COSINE, RAMP], 4, mode)


def test_some_named_and_some_unnamed_groups_is_an_error():
    optimizer = _optimizer(n=2)
    optimizer.param_groups[0]["name"] = "encoder"
    with pytest.raises(ValueError, match=r"\['encoder', '<unnamed #1>'\]"):
        LRShim(optimizer, {"encoder": RAMP, "head": COSINE})


# --- one truth for the step --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_setting_last_epoch_moves_the_schedule(mode):
    optimizer = _optimizer(n=1)
    shim = _shim(optimizer, {"g": COSINE}, mode)
    _run(optimizer, shim, 50)
    shim.last_epoch = 10
    assert shim.last_epoch == 10
    if mode == "device":
        assert shim.step_tensor.item() == 10
    shim.step()
    assert shim.last_epoch == 11
    assert _lrs(optimizer) == shim.get_last_lr() == _want([COSINE], 11, mode)
    assert shim._step_count == 52


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bad, error", [(-2, ValueError), (1.5, TypeError), (True, TypeError), (2**63, OverflowError)])
def test_setting_last_epoch_to_a_bad_value_is_refused(mode, bad, error):
    optimizer = _optimizer(n=1)
    shim = _shim(optimizer, {"g": COSINE}, mode)
    _run(optimizer, shim, 3)
    with pytest.raises(error, match="last_epoch"):
        shim.last_epoch = bad
    assert shim.last_epoch == 3 and _lrs(optimizer) == _want([COSINE], 3, mode)


def test_device_counter_and_step_count_agree_after_replays_and_jumps():
    optimizer = _optimizer(n=1)
    shim = LRShim(optimizer, {"g": COSINE}, device_schedule=True)
    _run(optimizer, shim, 2)
    assert (shim.last_epoch, shim._step_count, shim.step_tensor.item()) == (2, 3, 2)
    for _ in range(4):  # as CUDA graph replays do: only the device moves
        advance_(shim.step_tensor, shim._engine.table, shim.lr_tensor, 1, shim.backend)
    shim.mark_device_ahead()
    assert shim._step_count == 7 and shim.last_epoch == 6
    with pytest.warns(UserWarning, match="deprecated"):
        shim.step(20)
    assert (shim.last_epoch, shim._step_count, shim.step_tensor.item()) == (20, 8, 20)
    assert shim.get_last_lr() == _want([COSINE], 20, "device")


def _composite(kind: str, mode: str, milestone: int = 5, shim_first: bool = True):
    optimizer = _optimizer(n=2, lr=1.0)
    if mode == "torch":  # the same schedule as torch users write it: LambdaLR over compute_lr, base lr 1
        first = LambdaLR(optimizer, [lambda s: compute_lr(COSINE, s), lambda s: compute_lr(PIECEWISE, s)])
    else:
        first = _shim(optimizer, {"a": COSINE, "b": PIECEWISE}, mode)
    second = ExponentialLR(optimizer, gamma=0.9)
    if not shim_first:
        first, second = second, first
    if kind == "sequential":
        composite = SequentialLR(optimizer, [first, second], milestones=[milestone])
    else:
        composite = ChainedScheduler([first, second])
    lrs = []
    for _ in range(14):
        optimizer.step()
        composite.step()
        lrs.append(_lrs(optimizer) + [float(v) for v in composite.get_last_lr()])
    return np.array(lrs)


@pytest.mark.parametrize("shim_first", [True, False], ids=["lrshim_first", "lrshim_second"])
@pytest.mark.parametrize("kind", ["sequential", "chained"])
def test_torch_composites_give_the_same_numbers_in_both_modes_and_as_torch(kind, shim_first):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch_lrs, host, device = (_composite(kind, mode, shim_first=shim_first) for mode in ("torch", "host", "device"))
    assert np.array_equal(host, torch_lrs)
    # device mode stores float32 (and ExponentialLR multiplies the float32 rate): within float32 rounding
    np.testing.assert_allclose(device, torch_lrs, rtol=3e-7, atol=0)


# --- no silent detachment -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_group_added_after_construction_is_an_error_at_the_next_step(mode):
    optimizer = _optimizer(["encoder", "head"])
    shim = _shim(optimizer, {"encoder": RAMP, "head": COSINE}, mode)
    _run(optimizer, shim, 2)
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "name": "extra", "lr": 0.3})
    for call in (shim.step, shim.get_last_lr, shim.state_dict):
        with pytest.raises(GroupBindingError, match=r"3 param groups now, 2 when this LRShim was built .*'extra'"):
            call()
    assert shim.last_epoch == 2


def test_an_lr_replaced_by_hand_is_an_error_at_the_next_step():
    optimizer = _optimizer(["encoder", "head"])
    shim = LRShim(optimizer, {"encoder": RAMP, "head": COSINE}, device_schedule=True)
    _run(optimizer, shim, 2)
    optimizer.param_groups[1]["lr"] = 0.5
    with pytest.raises(GroupBindingError, match=r"param group 'head' .* replaced \(now 0.5\)"):
        shim.step()
    with pytest.raises(GroupBindingError, match="'head'"):
        shim.get_last_lr()
    assert shim.step_tensor.item() == 2  # nothing advanced
    shim.rebind()  # handing the group back is explicit
    _run(optimizer, shim, 1)
    assert _lrs(optimizer) == _want([RAMP, COSINE], 3, "device")


def test_an_lr_replaced_while_the_old_view_is_still_referenced_is_caught_by_get_last_lr_and_state_dict():
    """step() sees a replaced lr when the group held the last reference to its view; otherwise the
    O(groups) identity check in get_last_lr() and state_dict() does."""
    optimizer = _optimizer(["encoder", "head"])
    shim = LRShim(optimizer, {"encoder": RAMP, "head": COSINE}, device_schedule=True)
    kept = optimizer.param_groups[0]["lr"]
    optimizer.param_groups[0]["lr"] = torch.tensor(0.25)
    for call in (shim.get_last_lr, shim.state_dict):
        with pytest.raises(GroupBindingError, match=r"'encoder' .* replaced"):
            call()
    with pytest.raises(GroupBindingError):
        shim.step()  # known from now on
    del kept


def test_a_second_lrshim_on_the_same_optimizer_is_an_error_for_the_first():
    optimizer = _optimizer(n=2)
    first = LRShim(optimizer, {"a": RAMP, "b": COSINE}, device_schedule=True)
    second = LRShim(optimizer, {"a": PIECEWISE, "b": PIECEWISE}, device_schedule=True)
    for call in (first.step, first.get_last_lr, first.state_dict):
        with pytest.raises(GroupBindingError, match="another LRShim in device mode was built on this optimizer"):
            call()
    _run(optimizer, second, 3)
    assert _lrs(optimizer) == second.get_last_lr() == _want([PIECEWISE, PIECEWISE], 3, "device")
    first.rebind()  # taking the groups back is explicit; now the second one is the detached one
    _run(optimizer, first, 1)
    assert _lrs(optimizer) == first.get_last_lr() == _want([RAMP, COSINE], 1, "device")
    with pytest.raises(GroupBindingError):
        second.step()


def test_a_host_mode_scheduler_over_device_mode_lrs_writes_into_them_like_any_torch_scheduler():
    """No detachment: a host-mode LRShim (or ExponentialLR) fills the tensor lrs in place, so what the
    device-mode LRShim reports stays what the optimizer uses."""
    optimizer = _optimizer(n=2)
    first = LRShim(optimizer, {"a": RAMP, "b": COSINE}, device_schedule=True)
    second = LRShim(optimizer, {"a": PIECEWISE, "b": PIECEWISE}, device_schedule=False)
    _run(optimizer, second, 2)
    assert _lrs(optimizer) == first.get_last_lr() == _want([PIECEWISE, PIECEWISE], 2, "device")
    _run(optimizer, first, 1)
    assert _lrs(optimizer) == first.get_last_lr() == _want([RAMP, COSINE], 1, "device")


def test_the_detachment_check_adds_no_python_work_per_group_to_a_device_step():
    """Counted, not timed: the Python lines and calls of one device-mode step() do not grow with the groups."""

    def events_per_step(num_groups: int) -> list[str]:
        optimizer = _optimizer(n=num_groups)
        shim = LRShim(optimizer, {f"g{i}": RAMP for i in range(num_groups)}, device_schedule=True)
        _run(optimizer, shim, 2)
        events: list[str] = []

        def trace(frame, event, arg):
            events.append(f"{event} {frame.f_code.co_name}:{frame.f_lineno}")
            return trace

        sys.settrace(trace)
        try:
            shim.step()
        finally:
            sys.settrace(None)
        return events

    one, many = events_per_step(1), events_per_step(1000)
    assert any("check" in e for e in one), one  # the trace sees the check run
    assert many == one


# --- copies --------------------------------------------------------------------------------------------


def _modes_and_backends():
    return [("host", None)] + [("device", b) for b in _backends()]


@pytest.mark.parametrize("mode, backend", _modes_and_backends())
def test_deepcopy_drives_its_own_optimizer_copy(mode, backend):
    optimizer = _optimizer(["encoder", "head"])
    shim = _shim(optimizer, {"encoder": RAMP, "head": COSINE}, mode, backend=backend)
    _run(optimizer, shim, 3)
    twin = copy.deepcopy(shim)
    assert twin.optimizer is not optimizer
    twin.optimizer.load_state_dict(twin.optimizer.state_dict())  # the copy re-binds its own groups
    _run(twin.optimizer, twin, 4)
    assert twin.last_epoch == 7 and shim.last_epoch == 3
    assert _lrs(twin.optimizer) == twin.get_last_lr() == _want([RAMP, COSINE], 7, mode)
    assert _lrs(optimizer) == shim.get_last_lr() == _want([RAMP, COSINE], 3, mode)
    if mode == "device":
        for group, view in zip(twin.optimizer.param_groups, twin.lr_tensor.unbind(0)):
            assert group["lr"].data_ptr() == view.data_ptr()
        assert twin.lr_tensor.data_ptr() != shim.lr_tensor.data_ptr()
    _run(optimizer, shim, 1)
    assert shim.get_last_lr() == _want([RAMP, COSINE], 4, mode)


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
@pytest.mark.parametrize("mode, backend", _modes_and_backends())
def test_pickle_and_torch_save_of_the_scheduler(mode, backend, how):
    optimizer = _optimizer(["encoder", "head"])
    shim = _shim(optimizer, {"encoder": RAMP, "head": COSINE}, mode, backend=backend)
    _run(optimizer, shim, 3)
    twin = pickle.loads(pickle.dumps(shim)) if how == "pickle" else _save_load(shim, weights_only=False)
    assert twin.last_epoch == 3 and twin.get_last_lr() == _want([RAMP, COSINE], 3, mode)
    _run(twin.optimizer, twin, 2)
    assert _lrs(twin.optimizer) == twin.get_last_lr() == _want([RAMP, COSINE], 5, mode)
    assert shim.last_epoch == 3


# --- checkpoints ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "patch, error, match",
    [
        ({"last_epoch": -5}, ValueError, r"last_epoch'\] must be >= -1, got -5"),
        ({"last_epoch": 12.0}, TypeError, r"last_epoch'\] must be an integer, got 12.0"),
        ({"last_epoch": 2**63}, OverflowError, r"last_epoch'\] must be < 2\*\*63"),
        ({"last_epoch": 5, "device_step": 20}, ValueError, r"device_step'\] \(20\) != .*last_epoch'\] \(5\)"),
        ({"device_step": -7}, ValueError, r"device_step'\] must be >= -1, got -7"),
        ({"_step_count": "3"}, TypeError, r"_step_count'\] must be an integer"),
        ({"base_lrs": [0.5]}, ValueError, r"base_lrs'\] must be a list of 2 numbers"),
        ({"lr_dict": {"encoder": {"constant": -1.0}, "head": {"constant": 0.1}}}, ValueError, r"lr_dict'\]\['encoder'\]"),
        ({"lr_dict": ["x"]}, TypeError, r"lr_dict'\] must be a mapping"),
    ],
)
def test_a_broken_state_is_refused_before_anything_changes(mode, patch, error, match):
    optimizer = _optimizer(["encoder", "head"])
    shim = _shim(optimizer, {"encoder": RAMP, "head": COSINE}, mode)
    _run(optimizer, shim, 4)
    state = shim.state_dict()
    if "device_step" in patch or mode == "host":
        state.pop("device_step", None)
    state.update(patch)
    before = (shim.last_epoch, shim._step_count, list(shim.base_lrs), _lrs(optimizer))
    with pytest.raises(error, match=match):
        shim.load_state_dict(state)
    assert (shim.last_epoch, shim._step_count, list(shim.base_lrs), _lrs(optimizer)) == before
    if mode == "device":
        assert shim.step_tensor.item() == 4


@pytest.mark.parametrize("mode, largest", [("host", 2**63 - 1), ("device", MAX_STEP)])
def test_step_beyond_int64_is_a_clear_error(mode, largest):
    optimizer = _optimizer(n=1)
    shim = _shim(optimizer, {"g": RAMP}, mode)
    _run(optimizer, shim, 2)
    with pytest.raises(OverflowError, match=r"epoch must be < 2\*\*63"):
        shim.step(2**63)
    assert shim.last_epoch == 2 and shim._step_count == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        shim.step(largest)  # host: the largest step the counter holds; device: the largest exact in float64
    assert shim.last_epoch == largest and shim.get_last_lr() == _want([RAMP], largest, mode)


COSINE_17 = LearningRate(cosine_annealing={"learning_rate": 0.01, "num_steps": 17})
BEYOND = r"must be <= 2\*\*53 - 2 \(9007199254740990\) in device mode, got {}"


def test_device_mode_refuses_a_step_beyond_float64_exact_steps_before_anything_changes():
    """The device evaluates the step in float64: at 2**62 it would give 0.0099999998 where compute_lr
    gives 0.0086950446. Every way of setting a step refuses it, naming the value and the limit."""
    host = _shim(_optimizer(n=1), {"g": COSINE_17}, "host")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        host.step(2**62)  # host mode evaluates exact Python at any int64 step
    assert host.get_last_lr() == [compute_lr(COSINE_17, 2**62)]
    far_state = host.state_dict()

    optimizer = _optimizer(n=1)
    shim = LRShim(optimizer, {"g": COSINE_17}, device_schedule=True)
    _run(optimizer, shim, 3)
    before = (shim.last_epoch, shim._step_count, shim.step_tensor.item(), _lrs(optimizer))
    attempts = {
        "epoch": lambda: shim.step(2**62),
        "last_epoch": lambda: setattr(shim, "last_epoch", 2**62),
        "state_dict['last_epoch']": lambda: shim.load_state_dict(far_state),
    }
    for name, attempt in attempts.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with pytest.raises(OverflowError, match=re.escape(name) + " " + BEYOND.format(2**62)):
                attempt()
        assert (shim.last_epoch, shim._step_count, shim.step_tensor.item(), _lrs(optimizer)) == before, name
    shim.last_epoch = MAX_STEP  # the largest is taken, and the step after it is still exact
    _run(optimizer, shim, 1)
    assert shim.get_last_lr() == _want([COSINE_17], MAX_STEP + 1, "device")

    resumed = _optimizer(n=1)
    resumed.param_groups[0]["initial_lr"] = 0.5
    with pytest.raises(OverflowError, match="last_epoch " + BEYOND.format(MAX_STEP + 1)):
        LRShim(resumed, {"g": COSINE_17}, last_epoch=MAX_STEP + 1, device_schedule=True)
    assert resumed.param_groups[0]["lr"] == 0.5  # still the float: nothing was bound


FINAL_30 = LearningRate(
    linear_ramp_to_cosine={"learning_rate": 0.5, "final_learning_rate": 0.01, "num_ramp_steps": 3, "final_num_steps": 30}
)
FINAL_60 = LearningRate(
    linear_ramp_to_cosine={"learning_rate": 0.5, "final_learning_rate": 0.01, "num_ramp_steps": 3, "final_num_steps": 60}
)


@pytest.mark.parametrize("mode", MODES)
def test_resume_with_a_changed_config_uses_the_configured_schedule_and_says_so(mode):
    optimizer = _optimizer(["encoder", "head"])
    shim = _shim(optimizer, {"encoder": RAMP, "head": FINAL_30}, mode)
    _run(optimizer, shim, 10)
    state = _save_load(shim.state_dict())

    rebuilt = _optimizer(["encoder", "head"])
    resumed = _shim(rebuilt, {"encoder": RAMP, "head": FINAL_60}, mode)
    with pytest.warns(ScheduleChangedWarning) as record:
        resumed.load_state_dict(state)
    assert len(record) == 1
    message = str(record[0].message)
    assert "group 'head': linear_ramp_to_cosine.final_num_steps is 30 in the checkpoint, 60 configured" in message
    assert "encoder" not in message
    assert resumed.last_epoch == 10
    for s in range(10, 70):
        assert _lrs(rebuilt) == _want([RAMP, FINAL_60], s, mode), f"step {s}"
        _run(rebuilt, resumed, 1)
    assert resumed.state_dict()["lr_dict"]["head"]["linear_ramp_to_cosine"]["final_num_steps"] == 60

    strict = _shim(_optimizer(["encoder", "head"]), {"encoder": RAMP, "head": FINAL_60}, mode)
    with pytest.raises(ValueError, match=r"(?s)strict=True.*'head': linear_ramp_to_cosine.final_num_steps is 30"):
        strict.load_state_dict(state, strict=True)
    assert strict.last_epoch == 0


def _join(decay_rate: float) -> LearningRate:
    return LearningRate(
        join={
            "schedules": [
                {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 5}},
                {"product": {"schedules": [
                    {"exponential_decay": {"learning_rate": 1.0, "decay_rate": decay_rate, "decay_steps": 10}},
                    {"constant": 0.1},
                ]}},
            ],
            "boundaries": [5],
        }
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_change_inside_join_and_product_is_reported_by_its_field_path(mode):
    optimizer = _optimizer(n=1)
    shim = _shim(optimizer, {"g": _join(0.5)}, mode)
    _run(optimizer, shim, 6)
    state = _save_load(shim.state_dict())

    rebuilt = _optimizer(n=1)
    resumed = _shim(rebuilt, {"g": _join(0.9)}, mode)
    with pytest.warns(ScheduleChangedWarning) as record:
        resumed.load_state_dict(state)
    assert len(record) == 1
    message = str(record[0].message)
    assert (
        "group 'g': join.schedules[1].product.schedules[0].exponential_decay.decay_rate is 0.5 in the checkpoint, "
        "0.9 configured" in message
    ), message
    assert "join.schedules is" not in message  # not the whole list
    assert resumed.last_epoch == 6 and _lrs(rebuilt) == _want([_join(0.9)], 6, mode)


# --- construction errors --------------------------------------------------------------------------------


def test_a_list_of_schedules_is_a_type_error_with_a_hint():
    with pytest.raises(TypeError, match=r"lr_dict must be a mapping of group name to LearningRate .*got list"):
        LRShim(_optimizer(n=1), [RAMP])


@pytest.mark.parametrize("mode", MODES)
def test_optims_as_a_mapping_is_taken_by_name(mode):
    class Combined:
        def __init__(self, optims):
            self._optims = optims

    a, b = _optimizer(n=1), _optimizer(n=1)
    shim = _shim(Combined({"head": b, "encoder": a}), {"encoder": RAMP, "head": COSINE}, mode)
    assert shim.group_names == ["head", "encoder"]
    _run(a, shim, 3)
    assert _lrs(a) + _lrs(b) == _want([RAMP, COSINE], 3, mode)


@pytest.mark.parametrize(
    "optims, match",
    [
        (42, r"_optims must be a list of \(name, optimizer\) pairs or a \{name: optimizer\} mapping, got int"),
        ([("a", 1)], r"_optims\[0\] \('a'\) must be an optimizer with param_groups, got int"),
        (["a"], r"_optims\[0\] must be a \(name, optimizer\) pair"),
    ],
)
def test_a_malformed_optims_is_a_type_error(optims, match):
    class Combined:
        _optims = optims

    with pytest.raises(TypeError, match=match):
        LRShim(Combined(), {"a": RAMP})


def test_device_cuda_without_cuda_is_a_value_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    optimizer = _optimizer(n=1)
    with pytest.raises(ValueError, match=r"device='cuda' but CUDA is not available"):
        LRShim(optimizer, {"g": RAMP}, device_schedule=True, device="cuda")
    assert optimizer.param_groups[0]["lr"] == 0.5 and "initial_lr" not in optimizer.param_groups[0]


def test_a_device_other_than_the_parameters_is_a_value_error():
    with pytest.raises(ValueError, match=r"device=.*meta.* but the optimizer's parameters are on cpu"):
        LRShim(_optimizer(n=1), {"g": RAMP}, device_schedule=True, device="meta")
    with pytest.raises(ValueError, match="device must be a torch.device or a device string, got 'nonsense'"):
        LRShim(_optimizer(n=1), {"g": RAMP}, device_schedule=True, device="nonsense")


def test_adam_foreach_without_capturable_is_refused_in_device_mode_with_the_setting_to_change():
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.Adam([{"params": params, "name": "dense"}], lr=0.01, foreach=True)
    with pytest.raises(ValueError, match=r"'dense' \(Adam with foreach=True, capturable=False\).*fused=True.*foreach=False"):
        LRShim(optimizer, {"dense": RAMP}, device_schedule=True)
    assert optimizer.param_groups[0]["lr"] == 0.01
    for fixed in ({"fused": True}, {"foreach": False}):
        optimizer = torch.optim.Adam([{"params": params, "name": "dense"}], lr=0.01, **fixed)
        shim = LRShim(optimizer, {"dense": RAMP}, device_schedule=True)
        params[0].grad = torch.ones(2)
        _run(optimizer, shim, 2)


def test_adagrad_add_param_group_then_step_matches_torch():
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2))
    a2, b2 = torch.nn.Parameter(a.detach().clone()), torch.nn.Parameter(b.detach().clone())
    fused = FusedAdagrad([a], lr=torch.tensor(0.1), initial_accumulator_value=0.1)
    plain = torch.optim.Adagrad([a2], lr=0.1, initial_accumulator_value=0.1)
    fused.add_param_group({"params": [b], "lr_decay": 0.01})
    plain.add_param_group({"params": [b2], "lr_decay": 0.01})
    for _ in range(4):
        for p in (a, b, a2, b2):
            p.grad = p.detach().sin()
        fused.step()
        plain.step()
    torch.testing.assert_close(a, a2)
    torch.testing.assert_close(b, b2)


# --- plain data ------------------------------------------------------------------------------------------


def _assert_plain(value, where="state") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), f"{where}: key {k!r}"
            _assert_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _assert_plain(v, f"{where}[{i}]")
    else:
        assert value is None or type(value) in (int, float, str, bool), f"{where} is {type(value).__name__}"


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_is_plain_python_data_in_every_mode(mode):
    optimizer = _optimizer(n=2)
    optimizer.param_groups[0]["lr"] = torch.tensor(0.5)  # a tensor base lr in both modes
    shim = _shim(optimizer, {"a": RAMP, "b": PIECEWISE}, mode)
    _run(optimizer, shim, 3)
    state = shim.state_dict()
    _assert_plain(state)
    assert state["base_lrs"] == [0.5, 0.5]
    assert _save_load(state) == state


def _adam_run(model, optimizer, shim, batches):
    for x in batches:
        model(x).square().mean().backward()
        optimizer.step()
        shim.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("order", ["optimizer_then_scheduler", "scheduler_then_optimizer", "optimizer_before_scheduler_is_built"])
@pytest.mark.parametrize("mode", MODES)
def test_resume_in_any_load_order_is_bit_identical(mode, order):
    gen = torch.Generator().manual_seed(3)
    batches = [torch.randn(4, 3, generator=gen) for _ in range(12)]
    lr_dict = {"layer": COSINE}

    def build(seed):
        torch.manual_seed(seed)
        model = torch.nn.Linear(3, 2)
        lr = torch.tensor(0.0) if mode == "device" else 0.0
        return model, torch.optim.Adam([{"params": model.parameters(), "name": "layer"}], lr=lr, fused=True)

    model, optimizer = build(0)
    _adam_run(model, optimizer, _shim(optimizer, lr_dict, mode), batches)

    first, first_opt = build(0)
    first_shim = _shim(first_opt, lr_dict, mode)
    _adam_run(first, first_opt, first_shim, batches[:5])
    checkpoint = _save_load({"model": first.state_dict(), "opt": first_opt.state_dict(), "sched": first_shim.state_dict()})

    resumed, opt = build(1)
    resumed.load_state_dict(checkpoint["model"])
    if order == "optimizer_before_scheduler_is_built":
        opt.load_state_dict(checkpoint["opt"])
    shim = _shim(opt, lr_dict, mode)
    if order == "optimizer_then_scheduler":
        opt.load_state_dict(checkpoint["opt"])
    shim.load_state_dict(checkpoint["sched"])
    if order == "scheduler_then_optimizer":
        opt.load_state_dict(checkpoint["opt"])
    if mode == "device":
        assert opt.param_groups[0]["lr"].data_ptr() == shim.lr_tensor.data_ptr()
    _adam_run(resumed, opt, shim, batches[5:])
    assert shim.last_epoch == 12
    for got, want in zip(resumed.parameters(), model.parameters()):
        assert torch.equal(got, want)

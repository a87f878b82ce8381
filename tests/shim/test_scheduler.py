"""``LRShim`` against the torch ``LRScheduler`` contract, in host mode and in device mode.

Tested the way PyTorch tests its schedulers (test/optim/test_lrscheduler.py): per-step targets,
closed form against stepping, and a ``state_dict`` round trip into a differently configured
scheduler. Host mode must give ``compute_lr`` exactly (float64); device mode gives
``float32(compute_lr)`` (the precision goal of docs/precision.md: at most 1 ulp, identical for >= 99.99%).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from _compare import CONFIGS, assert_lrs_match, expected_f32
from torch.utils._python_dispatch import TorchDispatchMode

from fusedsched import LearningRate, LRShim, ScheduleChangedWarning, compute_lr
from fusedsched.ops import advance_, unavailable_reason

# Small ends, so stepping through every edge is cheap: step 0, the last ramp step, each boundary
# (and the step before it), the end of the decay, and well past the end.
EDGE_CONFIGS = {
    "constant": LearningRate(constant=0.1),
    "piecewise": LearningRate(
        piecewise_constant={"learning_rate_boundaries": [3, 10, 25], "learning_rate_values": [0.3, 0.1, 0.03, 0.001]}
    ),
    "ramp": LearningRate(linear_ramp_to_constant={"learning_rate": 0.1, "num_ramp_steps": 7}),
    "cosine": LearningRate(
        linear_ramp_to_cosine={
            "learning_rate": 0.1,
            "final_learning_rate": 0.001,
            "num_ramp_steps": 5,
            "final_num_steps": 30,
        }
    ),
}
# name -> the edge steps it must be checked on (all lie within LAST_STEP)
EDGE_STEPS = {
    "constant": [0, 1, 40],
    "piecewise": [0, 2, 3, 9, 10, 24, 25, 26, 40],
    "ramp": [0, 1, 6, 7, 8, 40],
    "cosine": [0, 4, 5, 6, 17, 29, 30, 31, 40],
}
LAST_STEP = 40
MODES = ["host", "device"]


def _params(n: int = 1) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.full((2,), float(i))) for i in range(n)]


def _sgd(num_groups: int, lr: float = 0.5, names: list[str] | None = None) -> torch.optim.SGD:
    groups = [{"params": [p]} for p in _params(num_groups)]
    if names is not None:
        for group, name in zip(groups, names):
            group["name"] = name
    return torch.optim.SGD(groups, lr=lr)


def _shim(optimizer, lr_dict, mode: str, **kwargs) -> LRShim:
    return LRShim(optimizer, lr_dict, device_schedule=(mode == "device"), **kwargs)


def _check_lrs(shim: LRShim, configs: list[LearningRate], step: int, mode: str, what: str = "") -> int:
    """``get_last_lr()`` and the groups' lrs against the oracle; returns the 1-ulp count (device)."""
    got = shim.get_last_lr()
    groups = [float(g["lr"]) for g in shim.optimizer.param_groups]
    if mode == "host":
        want = [compute_lr(c, step) for c in configs]
        assert got == want, f"{what} step {step}: get_last_lr {got} != compute_lr {want}"
        assert groups == want, f"{what} step {step}: group lrs {groups} != compute_lr {want}"
        return 0
    assert groups == got, f"{what} step {step}: group lrs {groups} != get_last_lr {got}"
    return assert_lrs_match(np.array(got, dtype=np.float32), expected_f32(configs, step), f"{what} step {step}")


def _step(optimizer, shim: LRShim) -> None:
    optimizer.step()
    shim.step()


class _CountOps(TorchDispatchMode):
    """Records every aten/custom op that reaches the Python dispatcher."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.name()))
        return func(*args, **(kwargs or {}))

    def count(self, *names: str) -> int:
        return sum(self.ops.count(n) for n in names)


ADVANCE_OPS = ("fusedsched::advance_", "fusedsched::advance_native_")
SYNC_OPS = ("aten::_local_scalar_dense", "aten::item")


# --- tml's original tests ----------------------------------------------------------------------


def test_get_lr_of_a_constant_warns_outside_step_as_torch_does():
    optimizer = _sgd(1)
    shim = LRShim(optimizer, {"ALL_PARAMS": LearningRate(constant=0.1)})
    with pytest.warns(UserWarning, match="get_last_lr"):
        assert shim.get_lr() == [0.1]
    assert shim.get_last_lr() == [0.1]
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_get_lr_of_a_constant_in_device_mode():
    optimizer = _sgd(1)
    shim = LRShim(optimizer, {"ALL_PARAMS": LearningRate(constant=0.1)}, device_schedule=True)
    with pytest.warns(UserWarning, match="get_last_lr"):
        assert shim.get_lr() == [0.1]
    assert shim.get_last_lr() == [float(np.float32(0.1))]


# --- per-step targets, closed form, last_epoch -------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(EDGE_CONFIGS))
def test_per_step_targets_at_every_edge(mode, kind):
    cfg = EDGE_CONFIGS[kind]
    optimizer = _sgd(1)
    shim = _shim(optimizer, {"g": cfg}, mode)
    assert shim.device_schedule is (mode == "device")
    seen = {}
    off = _check_lrs(shim, [cfg], 0, mode, kind)
    assert shim.last_epoch == 0
    seen[0] = shim.get_last_lr()[0]
    for s in range(1, LAST_STEP + 1):
        _step(optimizer, shim)
        assert shim.last_epoch == s
        off += _check_lrs(shim, [cfg], s, mode, kind)
        seen[s] = shim.get_last_lr()[0]
    assert off == 0, f"{off} values 1 ulp off float32(compute_lr)"
    # The edges, spelled out (the loop above covers them; this pins what "edge" means here).
    for s in EDGE_STEPS[kind]:
        want = compute_lr(cfg, s) if mode == "host" else float(np.float32(compute_lr(cfg, s)))
        assert seen[s] == want, f"{kind} step {s}: {seen[s]} != {want}"


@pytest.mark.parametrize("mode", MODES)
def test_every_shared_config_in_one_optimizer(mode):
    """The shared configs (inexact L / R, far ends, a boundary at 0) side by side, 60 steps."""
    optimizer = _sgd(len(CONFIGS))
    shim = _shim(optimizer, {f"g{i}": c for i, c in enumerate(CONFIGS)}, mode)
    off = _check_lrs(shim, CONFIGS, 0, mode)
    for s in range(1, 60):
        _step(optimizer, shim)
        assert shim.last_epoch == s
        off += _check_lrs(shim, CONFIGS, s, mode)
    assert off <= 1e-4 * len(CONFIGS) * 60


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_device_mode_explicit_backends(backend):
    reason = unavailable_reason(backend, "cpu")
    if reason is not None:
        pytest.skip(f"backend {backend!r} cannot run on cpu here: {reason}")
    configs = list(EDGE_CONFIGS.values())
    optimizer = _sgd(len(configs))
    shim = LRShim(optimizer, {f"g{i}": c for i, c in enumerate(configs)}, device_schedule=True, backend=backend)
    assert shim.backend == backend
    off = _check_lrs(shim, configs, 0, "device", backend)
    for s in range(1, 9):  # through the ramp end (7) and the boundaries at 3
        _step(optimizer, shim)
        assert shim.last_epoch == s
        off += _check_lrs(shim, configs, s, "device", backend)
    assert off == 0


@pytest.mark.parametrize("mode", MODES)
def test_closed_form_matches_stepping(mode):
    configs = list(EDGE_CONFIGS.values())
    optimizer = _sgd(len(configs))
    shim = _shim(optimizer, dict(EDGE_CONFIGS), mode)
    for s in range(LAST_STEP + 1):
        if s:
            _step(optimizer, shim)
        closed = shim._get_closed_form_lr()
        assert closed == [compute_lr(c, s) for c in configs]
        stepped = shim.get_last_lr()
        if mode == "host":
            assert stepped == closed
        else:
            assert stepped == [float(np.float32(v)) for v in closed], f"step {s}"


@pytest.mark.parametrize("mode", MODES)
def test_step_with_epoch_jumps_like_torch(mode):
    cfg = EDGE_CONFIGS["cosine"]
    optimizer = _sgd(1)
    shim = _shim(optimizer, {"g": cfg}, mode)
    optimizer.step()
    with pytest.warns(UserWarning, match="deprecated"):
        shim.step(17)
    assert shim.last_epoch == 17
    _check_lrs(shim, [cfg], 17, mode)
    _step(optimizer, shim)
    assert shim.last_epoch == 18
    _check_lrs(shim, [cfg], 18, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("epoch, error", [(-3, ValueError), (True, TypeError), (2.0, TypeError)])
def test_step_with_an_invalid_epoch_is_rejected_and_changes_nothing(mode, epoch, error):
    cfg = EDGE_CONFIGS["ramp"]
    optimizer = _sgd(1)
    shim = _shim(optimizer, {"g": cfg}, mode)
    _step(optimizer, shim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the epoch deprecation warning
        with pytest.raises(error, match="epoch must be"):
            shim.step(epoch)
    assert shim.last_epoch == 1
    _check_lrs(shim, [cfg], 1, mode)
    if mode == "device":
        assert shim.step_tensor.item() == 1


@pytest.mark.parametrize("mode", MODES)
def test_resume_with_last_epoch(mode):
    """``last_epoch=k`` (with ``initial_lr`` in the groups, as torch requires) starts at step k + 1."""
    cfg = EDGE_CONFIGS["cosine"]
    optimizer = _sgd(1)
    optimizer.param_groups[0]["initial_lr"] = 0.5
    shim = _shim(optimizer, {"g": cfg}, mode, last_epoch=11)
    assert shim.last_epoch == 12
    _check_lrs(shim, [cfg], 12, mode)
    fresh = _sgd(1)
    with pytest.raises(KeyError, match="initial_lr"):
        _shim(fresh, {"g": cfg}, mode, last_epoch=11)


@pytest.mark.parametrize("mode", MODES)
def test_initial_lr_is_the_lr_before_the_scheduler(mode):
    """torch records each group's lr at construction as ``initial_lr`` / ``base_lrs``."""
    optimizer = _sgd(2, lr=0.5)
    shim = _shim(optimizer, {"a": EDGE_CONFIGS["ramp"], "b": EDGE_CONFIGS["cosine"]}, mode)
    assert [float(lr) for lr in shim.base_lrs] == [0.5, 0.5]
    assert [float(g["initial_lr"]) for g in optimizer.param_groups] == [0.5, 0.5]


# --- optimizers, groups and arguments ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_group_count_mismatch_names_both_counts(mode):
    optimizer = _sgd(3)
    with pytest.raises(ValueError, match=r"3 param groups.*2 entries"):
        _shim(optimizer, {"a": EDGE_CONFIGS["ramp"], "b": EDGE_CONFIGS["cosine"]}, mode)
    with pytest.raises(ValueError, match=r"3 param groups.*4 entries"):
        _shim(optimizer, dict(EDGE_CONFIGS), mode)


class _Combined:
    """A torchrec-style combined optimizer: a plain object exposing ``_optims``."""

    def __init__(self, optims: list[tuple[str, torch.optim.Optimizer]]) -> None:
        self._optims = optims

    def step(self) -> None:
        for _, opt in self._optims:
            opt.step()


@pytest.mark.parametrize("mode", MODES)
def test_combined_optimizer_groups_flattened_in_order(mode):
    p = _params(3)
    first = torch.optim.SGD([{"params": [p[0]]}, {"params": [p[1]]}], lr=0.5)
    second = torch.optim.Adam([p[2]], lr=0.5)
    combined = _Combined([("", first), ("", second)])  # no names: the order decides, as in tml
    assert not isinstance(combined, torch.optim.Optimizer)
    configs = [EDGE_CONFIGS["piecewise"], EDGE_CONFIGS["ramp"], EDGE_CONFIGS["cosine"]]
    shim = _shim(combined, {"a": configs[0], "b": configs[1], "c": configs[2]}, mode)
    groups = first.param_groups + second.param_groups
    for s in range(12):
        if s:
            combined.step()
            shim.step()
        got = [float(g["lr"]) for g in groups]
        want = [compute_lr(c, s) for c in configs]
        if mode == "device":
            want = [float(np.float32(v)) for v in want]
        assert got == want, f"step {s}"
        assert shim.get_last_lr() == want


def test_not_an_optimizer_is_rejected():
    with pytest.raises(TypeError, match="Optimizer"):
        LRShim(object(), {"a": EDGE_CONFIGS["ramp"]})


@pytest.mark.parametrize("mode", MODES)
def test_group_names_must_match_lr_dict_keys(mode):
    optimizer = _sgd(2, names=["tower", "backbone"])
    with pytest.raises(ValueError, match=r"\['tower', 'backbone'\].*\['tower', 'other'\]"):
        _shim(optimizer, {"tower": EDGE_CONFIGS["ramp"], "other": EDGE_CONFIGS["cosine"]}, mode)


@pytest.mark.parametrize("mode", MODES)
def test_named_groups_take_their_schedule_by_name_not_position(mode):
    optimizer = _sgd(2, names=["cosine", "ramp"])
    shim = _shim(optimizer, {"ramp": EDGE_CONFIGS["ramp"], "cosine": EDGE_CONFIGS["cosine"]}, mode)
    configs = [EDGE_CONFIGS["cosine"], EDGE_CONFIGS["ramp"]]  # the groups' order
    for s in range(10):
        if s:
            _step(optimizer, shim)
        _check_lrs(shim, configs, s, mode)


@pytest.mark.parametrize("mode", MODES)
def test_lr_dict_accepts_plain_dicts_and_verbose(mode):
    optimizer = _sgd(1)
    shim = _shim(optimizer, {"g": {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 7}}}, mode,
                 verbose=False)
    _step(optimizer, shim)
    _check_lrs(shim, [EDGE_CONFIGS["ramp"]], 1, mode)
    LRShim(_sgd(1), {"g": EDGE_CONFIGS["ramp"]}, -1, True)  # tml passed verbose positionally


# --- state_dict --------------------------------------------------------------------------------


def _save_load(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _assert_same_state(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key == "base_lrs":
            assert [float(v) for v in got[key]] == [float(v) for v in value]
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("copy_mode", MODES)
@pytest.mark.parametrize("mode", MODES)
def test_state_dict_round_trip_restores_the_run(mode, copy_mode):
    """As pytorch's test_lrscheduler: after loading, the copy produces the original's values."""
    configs = [EDGE_CONFIGS["piecewise"], EDGE_CONFIGS["cosine"]]
    optimizer = _sgd(2)
    shim = _shim(optimizer, {"a": configs[0], "b": configs[1]}, mode)
    for _ in range(8):
        _step(optimizer, shim)
    state = _save_load(shim.state_dict())
    if mode == "device":
        assert state["device_step"] == 8
    assert state["last_epoch"] == 8

    other = _sgd(2, lr=0.01)  # another base lr: the state restores the original's
    copy = _shim(other, {"a": configs[0], "b": configs[1]}, copy_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same schedules: nothing to report
        copy.load_state_dict(state)
    assert copy.last_epoch == 8
    assert copy.base_lrs == [0.5, 0.5]
    assert copy.device_schedule is (copy_mode == "device")  # the mode belongs to the instance
    if copy_mode == "device":
        assert copy.step_tensor.item() == 8
        for group, view in zip(other.param_groups, copy.lr_tensor.unbind(0)):
            assert group["lr"].data_ptr() == view.data_ptr()
    _check_lrs(copy, configs, 8, copy_mode, "copy")
    if mode == copy_mode:  # as pytorch checks: the copy's state is now the original's
        _assert_same_state(copy.state_dict(), shim.state_dict())
    for s in range(9, LAST_STEP + 1):
        _step(optimizer, shim)
        _step(other, copy)
        assert copy.last_epoch == shim.last_epoch == s
        if mode == copy_mode:
            assert copy.get_last_lr() == shim.get_last_lr(), f"step {s}"
        _check_lrs(copy, configs, s, copy_mode, "copy")


@pytest.mark.parametrize("copy_mode", MODES)
@pytest.mark.parametrize("mode", MODES)
def test_state_dict_round_trip_into_a_differently_configured_shim(mode, copy_mode):
    """The configured schedules win, the checkpoint gives the step, each difference is reported."""
    optimizer = _sgd(2)
    shim = _shim(optimizer, {"a": EDGE_CONFIGS["piecewise"], "b": EDGE_CONFIGS["cosine"]}, mode)
    for _ in range(8):
        _step(optimizer, shim)
    state = _save_load(shim.state_dict())

    configured = [EDGE_CONFIGS["constant"], EDGE_CONFIGS["ramp"]]
    other = _sgd(2, lr=0.01)
    copy = _shim(other, {"a": configured[0], "b": configured[1]}, copy_mode)
    with pytest.warns(ScheduleChangedWarning) as record:
        copy.load_state_dict(state)
    assert len(record) == 1
    message = str(record[0].message)
    assert "group 'a': schedule kind is piecewise_constant in the checkpoint, constant configured" in message
    assert "group 'b': schedule kind is linear_ramp_to_cosine in the checkpoint, linear_ramp_to_constant configured" in message
    assert copy.last_epoch == 8
    assert copy.lr_dict == {"a": configured[0], "b": configured[1]}
    _check_lrs(copy, configured, 8, copy_mode, "copy")
    for s in range(9, 20):
        _step(other, copy)
        _check_lrs(copy, configured, s, copy_mode, "copy")
    assert copy.state_dict()["lr_dict"] == {"a": {"constant": 0.1}, "b": EDGE_CONFIGS["ramp"].model_dump(exclude_none=True)}


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_is_plain_data(mode):
    optimizer = _sgd(2)
    shim = _shim(optimizer, {"a": EDGE_CONFIGS["piecewise"], "b": EDGE_CONFIGS["cosine"]}, mode)
    state = shim.state_dict()
    assert "optimizer" not in state
    loaded = _save_load(state)  # weights_only=True refuses anything but plain data and tensors
    assert loaded["lr_dict"] == state["lr_dict"]
    assert ("device_step" in state) is (mode == "device")


def test_load_state_dict_keeps_device_buffers_in_place():
    """A captured graph or compiled step reads the buffers by address: a load must not move them."""
    optimizer = _sgd(2)
    shim = LRShim(optimizer, {"a": EDGE_CONFIGS["piecewise"], "b": EDGE_CONFIGS["cosine"]}, device_schedule=True)
    source = LRShim(_sgd(2), {"a": EDGE_CONFIGS["piecewise"], "b": EDGE_CONFIGS["cosine"]}, device_schedule=True)
    for _ in range(5):
        source.step()
    ptrs = [t.data_ptr() for t in (shim._engine.table, shim.step_tensor, shim.lr_tensor)]
    views = [g["lr"] for g in optimizer.param_groups]
    shim.load_state_dict(source.state_dict())
    assert [t.data_ptr() for t in (shim._engine.table, shim.step_tensor, shim.lr_tensor)] == ptrs
    assert [g["lr"].data_ptr() for g in optimizer.param_groups] == [v.data_ptr() for v in views]
    _check_lrs(shim, [EDGE_CONFIGS["piecewise"], EDGE_CONFIGS["cosine"]], 5, "device")


# --- device mode specifics ----------------------------------------------------------------------


def test_device_mode_groups_are_views_of_one_buffer():
    optimizer = _sgd(5)
    shim = LRShim(optimizer, {f"g{i}": CONFIGS[i] for i in range(5)}, device_schedule=True)
    buffer = shim.lr_tensor
    assert buffer.dtype == torch.float32 and buffer.shape == (5,)
    for i, group in enumerate(optimizer.param_groups):
        lr = group["lr"]
        assert isinstance(lr, torch.Tensor) and lr.dtype == torch.float32 and lr.dim() == 0
        assert lr.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()
        assert lr.data_ptr() == buffer.data_ptr() + i * buffer.element_size()
    buffer.fill_(0.25)  # writes through: the groups read the buffer, not copies
    assert [float(g["lr"]) for g in optimizer.param_groups] == [0.25] * 5


def test_host_mode_has_no_device_tensors():
    shim = LRShim(_sgd(1), {"g": EDGE_CONFIGS["ramp"]})
    assert not shim.device_schedule
    with pytest.raises(RuntimeError, match="device mode"):
        _ = shim.lr_tensor
    with pytest.raises(RuntimeError, match="device mode"):
        _ = shim.step_tensor


def test_tensor_lrs_pick_device_mode_by_default():
    p = _params(1)
    optimizer = torch.optim.SGD(p, lr=torch.tensor(0.5), fused=True)
    shim = LRShim(optimizer, {"g": EDGE_CONFIGS["ramp"]})
    assert shim.device_schedule
    assert optimizer.param_groups[0]["lr"].data_ptr() == shim.lr_tensor.data_ptr()


@pytest.mark.parametrize("num_groups", [1, 100, 1000])
def test_device_step_is_one_op_call_and_no_sync(num_groups):
    optimizer = _sgd(num_groups)
    configs = [CONFIGS[i % len(CONFIGS)] for i in range(num_groups)]
    shim = LRShim(optimizer, {f"g{i}": c for i, c in enumerate(configs)}, device_schedule=True)
    ptrs = (shim.lr_tensor.data_ptr(), shim.step_tensor.data_ptr())
    views = [g["lr"] for g in optimizer.param_groups]
    for s in range(1, 4):
        with _CountOps() as mode:
            shim.step()
        assert mode.count(*SYNC_OPS) == 0, mode.ops
        assert mode.count(*ADVANCE_OPS) == 1, mode.ops
        assert len(mode.ops) == 1, f"step() ran more than the one op: {mode.ops}"
        assert (shim.lr_tensor.data_ptr(), shim.step_tensor.data_ptr()) == ptrs
        assert all(g["lr"] is v for g, v in zip(optimizer.param_groups, views))
        assert_lrs_match(shim.lr_tensor, expected_f32(configs, s), f"step {s}")
    # Positive control: a stale last_epoch refresh IS a sync, and the mode sees it.
    shim.mark_device_ahead()
    with _CountOps() as mode:
        assert shim.last_epoch == 3
    assert mode.count(*SYNC_OPS) == 1, mode.ops


def test_optimizer_load_state_dict_rebinds_groups_to_the_buffer():
    p = _params(2)
    optimizer = torch.optim.Adam([{"params": [p[0]]}, {"params": [p[1]]}], lr=torch.tensor(0.5), fused=True)
    configs = [EDGE_CONFIGS["ramp"], EDGE_CONFIGS["cosine"]]
    shim = LRShim(optimizer, {"a": configs[0], "b": configs[1]})
    for q in p:
        q.grad = torch.ones_like(q)
    for _ in range(3):
        _step(optimizer, shim)
    saved = optimizer.state_dict()
    optimizer.load_state_dict(saved)  # deep-copies the groups: the lrs would be detached copies
    views = shim.lr_tensor.unbind(0)
    for group, view in zip(optimizer.param_groups, views):
        assert group["lr"].data_ptr() == view.data_ptr()
    for s in range(4, 12):
        _step(optimizer, shim)
        assert_lrs_match(np.array([float(g["lr"]) for g in optimizer.param_groups]), expected_f32(configs, s))


def test_combined_optimizer_load_state_dict_rebinds_every_sub_optimizer():
    p = _params(2)
    first = torch.optim.SGD([p[0]], lr=0.5)
    second = torch.optim.SGD([p[1]], lr=0.5)
    combined = _Combined([("b", second), ("a", first)])
    configs = [EDGE_CONFIGS["cosine"], EDGE_CONFIGS["ramp"]]  # the groups' order: b, a
    shim = LRShim(combined, {"a": configs[1], "b": configs[0]}, device_schedule=True)
    second.load_state_dict(second.state_dict())
    for s in range(1, 6):
        shim.step()
        got = [float(g["lr"]) for g in second.param_groups + first.param_groups]
        assert_lrs_match(np.array(got), expected_f32(configs, s), f"step {s}")


def test_mark_device_ahead_refreshes_last_epoch_from_the_counter():
    configs = [EDGE_CONFIGS["piecewise"], EDGE_CONFIGS["cosine"]]
    optimizer = _sgd(2)
    shim = LRShim(optimizer, {"a": configs[0], "b": configs[1]}, device_schedule=True)
    _step(optimizer, shim)
    assert shim.last_epoch == 1
    for _ in range(7):  # what 7 replays of a captured step do: only the device counter moves
        advance_(shim.step_tensor, shim._engine.table, shim.lr_tensor, 1, shim.backend)
    assert shim.last_epoch == 1  # not told: the host value is stale (and reading it does not sync)
    shim.mark_device_ahead()
    assert shim.last_epoch == 8
    assert_lrs_match(shim.lr_tensor, expected_f32(configs, 8))
    assert shim.get_last_lr() == [float(v) for v in shim.lr_tensor]
    _step(optimizer, shim)
    assert shim.last_epoch == 9
    assert shim.state_dict()["device_step"] == 9
    _check_lrs(shim, configs, 9, "device")


def test_step_count_warning_follows_torch_in_host_mode():
    """torch warns when scheduler.step() comes before any optimizer.step(); so does host mode."""
    optimizer = _sgd(1)
    shim = LRShim(optimizer, {"g": EDGE_CONFIGS["ramp"]})
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        shim.step()
    optimizer = _sgd(1)
    shim = LRShim(optimizer, {"g": EDGE_CONFIGS["ramp"]})
    optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shim.step()

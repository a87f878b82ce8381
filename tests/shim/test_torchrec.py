"""torchrec's ``CombinedOptimizer`` and ``KeyedOptimizerWrapper`` driven by ``LRShim``.

torchrec's ``KeyedOptimizer`` subclasses ``torch.optim.Optimizer`` but skips its ``__init__`` (no
hook registries) and, with ``save_param_groups(True)``, copies every saved group entry (``lr``
included) into the live groups on load. Whatever the load order, the groups must read the shared
LR buffer again afterwards, at the same address, and a resumed run must equal an uninterrupted one
bit for bit.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest
import torch
from _compare import assert_lrs_match, expected_f32
from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper

from fusedsched import GroupBindingError, LearningRate, LRShim, compute_lr

NAMES = ["backbone", "tower_a", "tower_b"]
SCHEDULES = {  # each changes at most steps below 14
    "backbone": LearningRate(
        linear_ramp_to_cosine={"learning_rate": 0.05, "final_learning_rate": 0.001, "num_ramp_steps": 4, "final_num_steps": 12}
    ),
    "tower_a": LearningRate(piecewise_constant={"learning_rate_boundaries": [3, 7], "learning_rate_values": [0.03, 0.02, 0.01]}),
    "tower_b": LearningRate(linear_ramp_to_constant={"learning_rate": 0.04, "num_ramp_steps": 9}),
}
TOTAL, RESUME_AT = 14, 6


def _model(seed: int = 0) -> torch.nn.ModuleDict:
    torch.manual_seed(seed)
    return torch.nn.ModuleDict({name: torch.nn.Linear(3, 3) for name in NAMES})


def _batches() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return [torch.randn(5, 3, generator=gen) for _ in range(TOTAL)]


def _loss(model: torch.nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
    h = model["backbone"](x).tanh()
    return model["tower_a"](h).square().mean() + model["tower_b"](h).abs().mean()


def _adam(device_mode: bool, **options):
    lr = torch.tensor(0.0) if device_mode else 0.0
    return lambda params: torch.optim.Adam(params, lr=lr, **({"fused": True} if device_mode else {}), **options)


def _combined(model: torch.nn.ModuleDict, device_mode: bool = True, save_param_groups: bool = False, order=NAMES):
    optims = []
    for name in order:
        params = {f"{name}.{k}": p for k, p in model[name].named_parameters()}
        optims.append((name, KeyedOptimizerWrapper(params, _adam(device_mode))))
    combined = CombinedOptimizer(optims)
    combined.save_param_groups(save_param_groups)
    return combined


def _train(model, optimizer, scheduler, batches) -> None:
    for x in batches:
        _loss(model, x).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def _save_load(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _assert_bound(optimizer, shim: LRShim, buffer_ptr: int) -> None:
    assert shim.lr_tensor.data_ptr() == buffer_ptr, "the buffer moved: a captured graph would read the old one"
    for i, group in enumerate(optimizer.param_groups):
        assert isinstance(group["lr"], torch.Tensor), f"group {i}: lr is {group['lr']!r}"
        assert group["lr"].data_ptr() == buffer_ptr + 4 * i, f"group {i} does not read the shared buffer"


LOAD_ORDERS = ["optimizer_then_scheduler", "scheduler_then_optimizer", "optimizer_before_scheduler_is_built"]


CASES = [(order, saved) for order in LOAD_ORDERS for saved in (False, True)
         if not (order == "optimizer_before_scheduler_is_built" and saved)]  # see the test after this one


@pytest.mark.parametrize("order, save_param_groups", CASES, ids=[f"{o}-{'groups_saved' if s else 'groups_not_saved'}" for o, s in CASES])
def test_resume_through_torch_save_is_bit_identical(order, save_param_groups):
    batches = _batches()
    # The uninterrupted run.
    model = _model()
    optimizer = _combined(model, save_param_groups=save_param_groups)
    shim = LRShim(optimizer, SCHEDULES)
    assert shim.device_schedule
    _train(model, optimizer, shim, batches)
    assert shim.last_epoch == TOTAL

    # The same run, stopped after RESUME_AT steps and saved.
    first = _model()
    first_opt = _combined(first, save_param_groups=save_param_groups)
    first_shim = LRShim(first_opt, SCHEDULES)
    _train(first, first_opt, first_shim, batches[:RESUME_AT])
    checkpoint = _save_load(
        {"model": first.state_dict(), "optimizer": first_opt.state_dict(), "scheduler": first_shim.state_dict()}
    )
    del first, first_opt, first_shim

    # Resumed in a fresh process-alike: new model, optimizer (its state initialised, as torchrec needs), LRShim.
    resumed = _model(seed=1)
    resumed.load_state_dict(checkpoint["model"])
    optimizer = _combined(resumed, save_param_groups=save_param_groups)
    optimizer.init_state()
    if order == "optimizer_before_scheduler_is_built":
        optimizer.load_state_dict(checkpoint["optimizer"])
    shim = LRShim(optimizer, SCHEDULES)
    buffer_ptr = shim.lr_tensor.data_ptr()
    if order == "optimizer_then_scheduler":
        optimizer.load_state_dict(checkpoint["optimizer"])
        _assert_bound(optimizer, shim, buffer_ptr)
        shim.load_state_dict(checkpoint["scheduler"])
    elif order == "scheduler_then_optimizer":
        shim.load_state_dict(checkpoint["scheduler"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    else:
        shim.load_state_dict(checkpoint["scheduler"])
    _assert_bound(optimizer, shim, buffer_ptr)
    assert shim.last_epoch == RESUME_AT
    assert_lrs_match(shim.lr_tensor, expected_f32(list(SCHEDULES.values()), RESUME_AT))
    _train(resumed, optimizer, shim, batches[RESUME_AT:])
    _assert_bound(optimizer, shim, buffer_ptr)
    assert shim.last_epoch == TOTAL

    for (name, got), want in zip(resumed.named_parameters(), model.parameters()):
        assert torch.equal(got, want), f"{name} differs from the uninterrupted run"
    moved = max((a - b).abs().max().item() for a, b in zip(model.parameters(), _model().parameters()))
    assert moved > 1e-3, "the run barely trained: the comparison would prove nothing"


def test_saved_groups_cannot_load_into_an_optimizer_without_a_scheduler_yet():
    """torchrec's limit, not fusedsched's: saved groups carry 'initial_lr' (every torch scheduler adds
    it), a fresh optimizer's groups do not, and KeyedOptimizer.load_state_dict wants equal group sizes.
    With save_param_groups(True), build the LRShim before loading the optimizer."""
    model = _model()
    optimizer = _combined(model, save_param_groups=True)
    shim = LRShim(optimizer, SCHEDULES)
    _train(model, optimizer, shim, _batches()[:2])
    fresh = _combined(_model(), save_param_groups=True)
    fresh.init_state()
    with pytest.raises(ValueError, match="Different param_group size"):
        fresh.load_state_dict(optimizer.state_dict())


def test_torch_load_of_a_wrapped_optimizer_rebinds_its_groups():
    """Loading the torch optimizer inside a KeyedOptimizerWrapper (torch's own load) re-binds too."""
    model = _model()
    optimizer = _combined(model)
    shim = LRShim(optimizer, SCHEDULES)
    buffer_ptr = shim.lr_tensor.data_ptr()
    _train(model, optimizer, shim, _batches()[:3])
    for _, wrapper in optimizer._optims:
        inner = wrapper._optimizer
        inner.load_state_dict(copy.deepcopy(inner.state_dict()))  # new group dicts, detached lrs
        assert wrapper.param_groups is inner.param_groups  # the wrapper follows the new groups
    _assert_bound(optimizer, shim, buffer_ptr)
    _train(model, optimizer, shim, _batches()[3:6])
    assert_lrs_match(np.array([float(g["lr"]) for g in optimizer.param_groups]), expected_f32(list(SCHEDULES.values()), 6))


@pytest.mark.parametrize("mode", ["host", "device"])
def test_optims_names_are_matched_to_lr_dict_keys(mode):
    """lr_dict in another order than _optims: each group still gets the schedule of its name."""
    model = _model()
    optimizer = _combined(model, device_mode=(mode == "device"), order=["tower_b", "backbone", "tower_a"])
    lr_dict = {name: SCHEDULES[name] for name in ["tower_a", "backbone", "tower_b"]}
    shim = LRShim(optimizer, lr_dict)
    assert shim.device_schedule is (mode == "device")
    assert shim.group_names == ["tower_b", "backbone", "tower_a"]
    configs = [SCHEDULES[name] for name in shim.group_names]
    for s in range(TOTAL):
        lrs = [float(g["lr"]) for g in optimizer.param_groups]
        if mode == "host":
            assert lrs == [compute_lr(c, s) for c in configs], f"step {s}"
        else:
            assert_lrs_match(np.array(lrs), expected_f32(configs, s), f"step {s}")
        _train(model, optimizer, shim, _batches()[s : s + 1])


def test_a_name_without_schedule_and_a_schedule_without_group_name_both_lists():
    optimizer = _combined(_model())
    lr_dict = {"backbone": SCHEDULES["backbone"], "tower_a": SCHEDULES["tower_a"], "tower_c": SCHEDULES["tower_b"]}
    with pytest.raises(ValueError) as error:
        LRShim(optimizer, lr_dict)
    message = str(error.value)
    assert "['backbone', 'tower_a', 'tower_b']" in message and "['backbone', 'tower_a', 'tower_c']" in message
    assert "no schedule for ['tower_b']" in message and "no group for ['tower_c']" in message
    assert not any(isinstance(g["lr"], torch.Tensor) and g["lr"].data_ptr() == 0 for g in optimizer.param_groups)


def test_a_missing_schedule_is_an_error_naming_both_lists():
    optimizer = _combined(_model())
    with pytest.raises(ValueError, match=r"\['backbone', 'tower_a', 'tower_b'\].*\['backbone', 'tower_a'\]"):
        LRShim(optimizer, {"backbone": SCHEDULES["backbone"], "tower_a": SCHEDULES["tower_a"]})


def test_device_mode_refuses_adam_foreach_without_capturable_before_touching_the_groups():
    model = _model()
    optims = [
        (name, KeyedOptimizerWrapper(dict(model[name].named_parameters()), lambda ps: torch.optim.Adam(ps, lr=0.01, foreach=True)))
        for name in NAMES
    ]
    optimizer = CombinedOptimizer(optims)
    with pytest.raises(ValueError, match=r"'backbone' \(Adam with foreach=True, capturable=False\).*fused=True"):
        LRShim(optimizer, SCHEDULES, device_schedule=True)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01] * 3  # nothing changed
    assert all("initial_lr" not in g for g in optimizer.param_groups)
    LRShim(optimizer, SCHEDULES)  # host mode takes it as it is


def test_deepcopy_drives_its_own_optimizer_copy():
    """torch's scheduler patches optimizer.step with a weak reference to the original; torchrec
    copies that attribute with its __dict__, so a copy would step the original. LRShim's copy steps itself."""
    model = _model()
    optimizer = _combined(model)
    shim = LRShim(optimizer, SCHEDULES)
    _train(model, optimizer, shim, _batches()[:2])
    twin = copy.deepcopy(shim)
    before = [p.detach().clone() for p in model.parameters()]
    twin_params = list(twin.optimizer.params.values())
    twin_before = [p.detach().clone() for p in twin_params]
    for p in twin_params:
        p.grad = torch.ones_like(p)
    twin.optimizer.step()
    twin.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "the copy stepped the original"
    assert not any(torch.equal(a, b) for a, b in zip(twin_before, twin_params)), "the copy did not step its own"
    assert twin.last_epoch == 3 and shim.last_epoch == 2
    twin.optimizer.load_state_dict(twin.optimizer.state_dict())
    _assert_bound(twin.optimizer, twin, twin.lr_tensor.data_ptr())
    _assert_bound(optimizer, shim, shim.lr_tensor.data_ptr())


def test_a_group_added_to_a_wrapped_optimizer_is_detected():
    model = _model()
    optimizer = _combined(model)
    shim = LRShim(optimizer, SCHEDULES)
    extra = torch.nn.Parameter(torch.zeros(2))
    optimizer._optims[1][1]._optimizer.add_param_group({"params": [extra]})
    with pytest.raises(GroupBindingError, match="4 param groups now, 3 when this LRShim was built"):
        shim.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(GroupBindingError):
            shim.state_dict()


@pytest.mark.parametrize("save_param_groups", [False, True], ids=["groups_not_saved", "groups_saved"])
def test_a_keyed_optimizer_wrapper_alone_is_a_client(save_param_groups):
    model = _model()
    params = {k: p for k, p in model.named_parameters()}
    optimizer = KeyedOptimizerWrapper(params, _adam(True))
    optimizer.save_param_groups(save_param_groups)
    shim = LRShim(optimizer, {"all": SCHEDULES["backbone"]})
    buffer_ptr = shim.lr_tensor.data_ptr()
    _train(model, optimizer, shim, _batches()[:4])
    state = _save_load(optimizer.state_dict())
    optimizer.load_state_dict(state)
    _assert_bound(optimizer, shim, buffer_ptr)
    _train(model, optimizer, shim, _batches()[4:7])
    assert_lrs_match(np.array([float(optimizer.param_groups[0]["lr"])]), expected_f32([SCHEDULES["backbone"]], 7))

"""``build_optimizer(..., combined=True)``: recap's torchrec layout, one ``KeyedOptimizerWrapper`` per
group in a ``CombinedOptimizer``, so optimizer state is keyed by parameter name as in tml checkpoints.

"recap's own layout" below is built the way recap's ``build_optimizer`` builds it (wrappers over
``{name: parameter}`` dicts, unnamed inside the ``CombinedOptimizer``), with tml's ``LRShim`` role
played by ``fusedsched.LRShim`` in host mode.
"""

from __future__ import annotations

import functools
import io

import pytest
import torch
import torchrec.optim.keyed as keyed  # a test dependency (make test installs it): missing, these tests fail
from test_recap import TASKS, _batch, _embedding_config, _Outer, _recap_config, _schedules

from fusedsched import LRShim, build_optimizer, compute_lr, recap_param_groups
from fusedsched.tml.builders import BACKBONE, DENSE_EBC


def _recaps_own_layout(model, cfg, schedules):
    groups = recap_param_groups(model, list(cfg.multi_task_learning_rates.tower_learning_rates))
    adam = functools.partial(torch.optim.Adam, lr=24601.0, betas=(cfg.adam.beta_1, cfg.adam.beta_2),
                             eps=cfg.adam.epsilon, maximize=False)
    sgd = functools.partial(torch.optim.SGD, lr=24601.0, maximize=False, momentum=False)
    wrappers = [keyed.KeyedOptimizerWrapper(ps, sgd if name == DENSE_EBC else adam) for name, ps in groups.items()]
    optimizer = keyed.CombinedOptimizer(wrappers)
    return optimizer, LRShim(optimizer, schedules)


def _ours(model, cfg):
    return build_optimizer(model, cfg, _embedding_config(), combined=True, device_schedule=False)


def _steps(model, optimizer, scheduler, start, stop):
    for s in range(start, stop):
        x, ids = _batch(s)
        model(x, ids).square().mean().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def _round_trip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_combined_layout_is_recaps():
    model = _Outer()
    optimizer, scheduler = _ours(model, _recap_config())
    assert type(optimizer) is keyed.CombinedOptimizer
    names = TASKS + [BACKBONE, DENSE_EBC]
    assert [key for key, _ in optimizer._optims] == [""] * len(names)  # unnamed: state keys are parameter names
    groups = recap_param_groups(model, TASKS)
    for (_, wrapper), name in zip(optimizer._optims, names):
        assert type(wrapper) is keyed.KeyedOptimizerWrapper
        assert list(wrapper.params) == list(groups[name])
        assert len(wrapper.param_groups) == 1 and wrapper.param_groups[0]["name"] == name
        inner = wrapper._optimizer
        if name == DENSE_EBC:
            assert type(inner) is torch.optim.SGD and inner.param_groups[0]["momentum"] == 0
        else:
            assert type(inner) is torch.optim.Adam
            assert tuple(inner.param_groups[0]["betas"]) == (0.95, 0.999) and inner.param_groups[0]["eps"] == 1e-7
    assert scheduler.group_names == names


def test_state_is_keyed_by_parameter_name_like_recaps():
    cfg, schedules = _recap_config(), _schedules(_recap_config(), True)
    ours_model, theirs_model = _Outer(), _Outer()
    ours, ours_sched = _ours(ours_model, cfg)
    theirs, theirs_sched = _recaps_own_layout(theirs_model, cfg, schedules)
    _steps(ours_model, ours, ours_sched, 0, 3)
    _steps(theirs_model, theirs, theirs_sched, 0, 3)
    ours_state, theirs_state = ours.state_dict()["state"], theirs.state_dict()["state"]
    assert list(ours_state) == list(theirs_state)
    adam_params = [n for n, _ in ours_model.named_parameters() if "embedding_bags" not in n]
    assert sorted(ours_state) == sorted(adam_params)  # SGD without momentum keeps no state
    assert set(ours_state["model.backbone.0.weight"]) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("direction", ["recap checkpoint into ours", "our checkpoint into recap's layout"])
def test_checkpoints_load_across_layouts_and_training_goes_on_identically(direction):
    """Resume after 130 steps (past several ramp ends and boundaries), then 70 more: bit-identical."""
    cfg = _recap_config()
    schedules = _schedules(cfg, True)
    first, second = (_recaps_own_layout, _ours) if direction.startswith("recap") else (_ours, _recaps_own_layout)
    build = lambda layout, model: layout(model, cfg, schedules) if layout is _recaps_own_layout else _ours(model, cfg)  # noqa: E731

    straight_model = _Outer()
    straight, straight_sched = build(first, straight_model)
    _steps(straight_model, straight, straight_sched, 0, 200)

    model = _Outer()
    optimizer, scheduler = build(first, model)
    _steps(model, optimizer, scheduler, 0, 130)
    checkpoint = _round_trip({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "scheduler": scheduler.state_dict()})

    resumed_model = _Outer()
    resumed_model.load_state_dict(checkpoint["model"])
    resumed, resumed_sched = build(second, resumed_model)
    resumed.init_state()  # torchrec loads into initialized state only
    resumed.load_state_dict(checkpoint["optimizer"])
    resumed_sched.load_state_dict(checkpoint["scheduler"])
    assert resumed_sched.last_epoch == 130
    want = [compute_lr(c, 130) for c in schedules.values()]
    assert resumed_sched.get_last_lr() == want and [g["lr"] for g in resumed.param_groups] == want
    _steps(resumed_model, resumed, resumed_sched, 130, 200)

    assert resumed_sched.get_last_lr() == straight_sched.get_last_lr()
    for (name, got), want in zip(resumed_model.named_parameters(), straight_model.parameters()):
        assert torch.equal(got, want), name


def test_combined_works_for_tml_core_configs_too():
    from fusedsched import OptimizerConfig

    model = _Outer()
    optimizer, scheduler = build_optimizer(
        model, OptimizerConfig(sgd={"lr": 0.1, "momentum": 0.9}), combined=True, device_schedule=False
    )
    assert type(optimizer) is keyed.CombinedOptimizer and len(optimizer._optims) == 1
    (_, wrapper), = optimizer._optims
    assert list(wrapper.params) == [n for n, p in model.named_parameters() if p.requires_grad]
    assert wrapper.param_groups[0]["momentum"] == 0.9 and scheduler.get_last_lr() == [0.1]


def test_combined_must_be_a_bool():
    with pytest.raises(TypeError, match="combined must be True or False, got 'yes'"):
        build_optimizer(_Outer(), _recap_config(), _embedding_config(), combined="yes")


def test_combined_device_mode_builds_graph_safe_wrappers():
    model = _Outer()
    optimizer, scheduler = build_optimizer(model, _recap_config(), _embedding_config(), combined=True,
                                           device_schedule=True)
    assert scheduler.device_schedule
    for i, (_, wrapper) in enumerate(optimizer._optims):
        group = wrapper._optimizer.param_groups[0]
        assert group["fused"] is True
        assert isinstance(group["lr"], torch.Tensor) and group["lr"].dtype == torch.float32
        assert group["lr"].data_ptr() == scheduler.lr_tensor[i].data_ptr()

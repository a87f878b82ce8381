"""``build_optimizer``, ``get_optimizer_class``, ``FusedAdagrad`` and the multi-task builder.

The training tests compare whole runs: a model trained through ``build_optimizer`` in device mode
(tensor learning rates written by the ``advance_`` op) must end where the same model ends when a
plain torch optimizer gets ``group["lr"] = compute_lr(cfg, step)`` by hand before every step.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from _compare import assert_lrs_match, expected_f32

import fusedsched
from fusedsched import (
    ALL_PARAMS,
    FusedAdagrad,
    LearningRate,
    LRShim,
    OptimizerConfig,
    build_multi_task_optimizer,
    build_optimizer,
    compute_lr,
    get_optimizer_class,
    load_config,
    multi_task_param_groups,
)

EXAMPLE_YAML = Path(fusedsched.__file__).parent / "examples" / "recap_multitask.yaml"

# Distinct values for every hyperparameter, so reading the wrong optimizer's config shows.
HYPER = {
    "adam": {"lr": 0.003, "betas": (0.8, 0.95), "eps": 1e-6},
    "sgd": {"lr": 0.05, "momentum": 0.7},
    "adagrad": {"lr": 0.02, "eps": 1e-5},
}
TORCH_CLASS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad}
COSINE = LearningRate(
    linear_ramp_to_cosine={
        "learning_rate": 0.05, "final_learning_rate": 0.005, "num_ramp_steps": 10, "final_num_steps": 45
    }
)
PIECEWISE = LearningRate(
    piecewise_constant={"learning_rate_boundaries": [5, 20, 40], "learning_rate_values": [0.01, 0.05, 0.02, 0.004]}
)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _batches(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 5, generator=gen), torch.randn(8, 3, generator=gen)) for _ in range(n)]


def _loss(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


def _group_lrs(optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]


# --- tml's original tests ----------------------------------------------------------------------


def test_build_optimizer_sgd_returns_sgd_and_lrshim():
    model = _model()
    optimizer, scheduler = build_optimizer(model, OptimizerConfig(sgd={"lr": 0.1}))
    assert type(optimizer) is torch.optim.SGD
    assert isinstance(scheduler, LRShim)
    assert scheduler.optimizer is optimizer
    assert not scheduler.device_schedule  # CPU model: host mode by default
    assert _group_lrs(optimizer) == [0.1]


def test_spare_segments_give_a_built_scheduler_room_to_switch():
    """``spare_segments`` reaches the LRShim: a new rate from step 3 on (a second segment), which the
    table of a constant schedule alone has no room for."""
    config = OptimizerConfig(sgd={"lr": 0.1}, learning_rate={"constant": 0.1})
    cooldown = {"constant": 0.02}
    for models in (lambda: build_optimizer(_model(), config, device_schedule=True, spare_segments=1),
                   lambda: build_multi_task_optimizer(
                       _Recap(), config, _rates(dict.fromkeys(("is_clicked", "is_replied", "is_favorited"),
                                                              LearningRate(constant=0.1)), LearningRate(constant=0.1)),
                       device_schedule=True, spare_segments=1)):
        optimizer, scheduler = models()
        for _ in range(3):
            optimizer.step()
            scheduler.step()
        scheduler.switch(dict.fromkeys(scheduler.lr_dict, cooldown))
        for _ in range(2):
            optimizer.step()
            scheduler.step()
        assert scheduler.last_epoch == 5 and scheduler.get_last_lr() == pytest.approx([0.02] * len(optimizer.param_groups))
    _, no_room = build_optimizer(_model(), config, device_schedule=True)
    for _ in range(3):
        no_room.step()
    with pytest.raises(ValueError, match="build the LRShim with spare_segments=1 or more"):
        no_room.switch({ALL_PARAMS: cooldown})
    with pytest.raises(ValueError, match=r"^spare_segments must be >= 0, got -1$"):
        build_optimizer(_model(), config, device_schedule=True, spare_segments=-1)


@pytest.mark.parametrize("name", list(HYPER))
def test_get_optimizer_class_is_the_chosen_one(name):
    assert get_optimizer_class(OptimizerConfig(**{name: HYPER[name]})) is TORCH_CLASS[name]


@pytest.mark.parametrize("device_schedule", [False, True])
def test_hyperparameters_come_from_the_chosen_optimizer(device_schedule):
    """The seed read ``optimizer_config.sgd`` whatever was chosen; each must read its own."""
    for name, hyper in HYPER.items():
        optimizer, scheduler = build_optimizer(
            _model(), OptimizerConfig(**{name: hyper}), device_schedule=device_schedule
        )
        assert isinstance(optimizer, TORCH_CLASS[name])
        group = optimizer.param_groups[0]
        if name == "adam":
            assert tuple(group["betas"]) == (0.8, 0.95) and group["eps"] == 1e-6
        elif name == "sgd":
            assert group["momentum"] == 0.7
        else:
            assert group["eps"] == 1e-5
        # Unset learning_rate: a constant at the chosen optimizer's lr (float32 in device mode).
        want = hyper["lr"] if not device_schedule else float(np.float32(hyper["lr"]))
        assert scheduler.get_last_lr() == [want] and _group_lrs(optimizer) == [want]
        assert float(group["initial_lr"]) == pytest.approx(hyper["lr"])


def test_one_group_named_all_params_with_every_trainable_parameter():
    model = _model()
    model[0].bias.requires_grad_(False)
    optimizer, scheduler = build_optimizer(model, OptimizerConfig(adam={"lr": 0.1}))
    assert len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group["name"] == ALL_PARAMS
    assert scheduler.group_names == [ALL_PARAMS]
    want = [p for p in model.parameters() if p.requires_grad]
    assert len(group["params"]) == len(want) == 3
    assert all(a is b for a, b in zip(group["params"], want))


def test_model_without_trainable_parameters_is_rejected():
    model = _model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model, OptimizerConfig(sgd={"lr": 0.1}))


@pytest.mark.parametrize("device_schedule", [False, True])
def test_unset_learning_rate_is_a_constant_at_the_optimizer_lr(device_schedule):
    model = _model()
    optimizer, scheduler = build_optimizer(model, OptimizerConfig(sgd={"lr": 0.3}), device_schedule=device_schedule)
    assert scheduler.lr_dict == {ALL_PARAMS: LearningRate(constant=0.3)}
    want = 0.3 if not device_schedule else float(np.float32(0.3))
    for x, y in _batches(5):
        _loss(model, x, y).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        assert scheduler.get_last_lr() == [want] and _group_lrs(optimizer) == [want]


def test_learning_rate_schedule_drives_the_group():
    model = _model()
    optimizer, scheduler = build_optimizer(model, OptimizerConfig(sgd={"lr": 0.3}, learning_rate=COSINE))
    for s in range(60):
        if s:
            optimizer.step()
            scheduler.step()
        assert _group_lrs(optimizer) == [compute_lr(COSINE, s)]


# --- device-mode construction --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(HYPER))
def test_device_schedule_builds_graph_safe_optimizers(name):
    optimizer, scheduler = build_optimizer(_model(), OptimizerConfig(**{name: HYPER[name]}), device_schedule=True)
    assert scheduler.device_schedule
    group = optimizer.param_groups[0]
    assert isinstance(group["lr"], torch.Tensor) and group["lr"].dtype == torch.float32
    assert group["lr"].data_ptr() == scheduler.lr_tensor.data_ptr()
    if name == "adagrad":
        assert type(optimizer) is FusedAdagrad
    else:
        assert type(optimizer) is TORCH_CLASS[name] and group["fused"] is True


def test_fused_adagrad_refuses_other_implementations():
    params = list(_model().parameters())
    for key in ("fused", "foreach", "differentiable"):
        with pytest.raises(ValueError, match=key):
            FusedAdagrad(params, lr=0.1, **{key: True})


def test_fused_adagrad_state_survives_a_load():
    model = _model()
    optimizer = FusedAdagrad(model.parameters(), lr=torch.tensor(0.1), eps=1e-5)
    for x, y in _batches(3):
        _loss(model, x, y).backward()
        optimizer.step()
        optimizer.zero_grad()
    steps = [optimizer.state[p]["step"] for p in model.parameters()]
    assert all(float(s) == 3.0 and s.dtype == torch.float32 for s in steps)
    optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    steps = [optimizer.state[p]["step"] for p in model.parameters()]
    assert all(float(s) == 3.0 and s.dtype == torch.float32 and s.device == p.device
               for s, p in zip(steps, model.parameters()))


# --- training equivalence ------------------------------------------------------------------------


def _train_shim(model, optimizer, scheduler, batches, cfgs=None):
    for i, (x, y) in enumerate(batches):
        if cfgs is not None:  # the schedule the shim set for this step, checked on the way
            assert_lrs_match(np.array(_group_lrs(optimizer)), expected_f32(cfgs, i), f"step {i}")
        _loss(model, x, y).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def _train_by_hand(model, optimizer, cfgs, batches, offset=0):
    for i, (x, y) in enumerate(batches):
        for group, cfg in zip(optimizer.param_groups, cfgs):
            group["lr"] = compute_lr(cfg, i + offset)
        _loss(model, x, y).backward()
        optimizer.step()
        optimizer.zero_grad()


def _plain(name, params, hyper):
    hyper = dict(hyper)
    if name == "adam":
        return torch.optim.Adam(params, **hyper)
    if name == "sgd":
        return torch.optim.SGD(params, **hyper)
    return torch.optim.Adagrad(params, **hyper)


@pytest.mark.parametrize("schedule", [COSINE, PIECEWISE], ids=["cosine", "piecewise"])
@pytest.mark.parametrize("name", list(HYPER))
def test_device_mode_training_matches_a_plain_optimizer_fed_by_hand(name, schedule):
    batches = _batches(60)
    cfg = OptimizerConfig(**{name: HYPER[name]}, learning_rate=schedule)

    model = _model()
    optimizer, scheduler = build_optimizer(model, cfg, device_schedule=True)
    assert scheduler.device_schedule
    _train_shim(model, optimizer, scheduler, batches, [schedule])
    assert scheduler.last_epoch == 60

    reference = _model()
    _train_by_hand(reference, _plain(name, reference.parameters(), HYPER[name]), [schedule], batches)

    start = _model()
    moved = max((a - b).abs().max().item() for a, b in zip(reference.parameters(), start.parameters()))
    assert moved > 1e-2, "the reference run barely trained: the comparison would prove nothing"
    for (pname, got), want in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=lambda m, pname=pname: f"{name} {pname}: {m}")


@pytest.mark.parametrize("name", list(HYPER))
def test_host_mode_training_matches_a_plain_optimizer_fed_by_hand(name):
    """Host mode writes compute_lr itself: the same floats, so the same parameters, exactly."""
    batches = _batches(60)
    cfg = OptimizerConfig(**{name: HYPER[name]}, learning_rate=COSINE)
    model = _model()
    optimizer, scheduler = build_optimizer(model, cfg, device_schedule=False)
    _train_shim(model, optimizer, scheduler, batches)
    reference = _model()
    _train_by_hand(reference, _plain(name, reference.parameters(), HYPER[name]), [COSINE], batches)
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(HYPER))
def test_training_comparison_sees_a_schedule_one_step_off(name):
    """The tolerance above is tight enough to catch an off-by-one schedule (the comparison can fail)."""
    batches = _batches(60)
    model = _model()
    optimizer, scheduler = build_optimizer(
        model, OptimizerConfig(**{name: HYPER[name]}, learning_rate=COSINE), device_schedule=True
    )
    _train_shim(model, optimizer, scheduler, batches)
    shifted = _model()
    _train_by_hand(shifted, _plain(name, shifted.parameters(), HYPER[name]), [COSINE], batches, offset=1)
    with pytest.raises(AssertionError):
        for got, want in zip(model.parameters(), shifted.parameters()):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# --- multi-task ----------------------------------------------------------------------------------


class _Recap(torch.nn.Module):
    """A backbone and one head per task, named as recap names its towers."""

    def __init__(self, towers=("is_clicked", "is_replied", "is_favorited")) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 12))
        self.towers = torch.nn.ModuleDict({t: torch.nn.Linear(12, 1) for t in towers})
        self.frozen = torch.nn.Linear(2, 2).requires_grad_(False)

    def forward(self, x):
        h = self.shared(x)
        return torch.cat([tower(h) for tower in self.towers.values()], dim=1)


def _rates(towers: dict[str, LearningRate], backbone: LearningRate) -> dict:
    return {"tower_learning_rates": towers, "backbone_learning_rate": backbone}


def test_multi_task_param_groups_split_by_dotted_name():
    model = _Recap()
    groups = multi_task_param_groups(model, ["is_clicked", "is_replied", "is_favorited"])
    assert list(groups) == ["is_clicked", "is_replied", "is_favorited", "backbone"]
    by_id = {id(p): n for n, p in model.named_parameters()}
    names = {g: sorted(by_id[id(p)] for p in ps) for g, ps in groups.items()}
    assert names["is_clicked"] == ["towers.is_clicked.bias", "towers.is_clicked.weight"]
    assert names["is_favorited"] == ["towers.is_favorited.bias", "towers.is_favorited.weight"]
    assert names["backbone"] == ["shared.0.bias", "shared.0.weight", "shared.2.bias", "shared.2.weight"]
    assert not any(n.startswith("frozen") for ns in names.values() for n in ns)


def test_multi_task_tower_must_be_a_whole_name_component():
    """``click`` is not ``is_clicked``: a tower matches only a whole dotted component."""
    model = _Recap()
    with pytest.raises(ValueError, match="click"):
        multi_task_param_groups(model, ["click"])  # matches nothing: an empty group


def test_multi_task_tower_at_the_start_or_end_of_a_name():
    model = torch.nn.Module()
    model.clicked = torch.nn.Linear(2, 2)  # "clicked.weight": tower first in the name
    model.body = torch.nn.Linear(2, 2)
    groups = multi_task_param_groups(model, ["clicked"])
    assert [len(groups["clicked"]), len(groups["backbone"])] == [2, 2]


def test_multi_task_param_in_two_towers_is_an_error():
    model = torch.nn.Module()
    model.a = torch.nn.Module()
    model.a.b = torch.nn.Linear(2, 2)
    model.body = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"'a.b.weight' matches more than one tower: \['a', 'b'\]"):
        multi_task_param_groups(model, ["a", "b"])


def test_multi_task_empty_groups_are_errors():
    with pytest.raises(ValueError, match=r"\['is_shared'\]"):
        multi_task_param_groups(_Recap(), ["is_clicked", "is_shared"])
    towers_only = torch.nn.Module()
    towers_only.t = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"\['backbone'\]"):
        multi_task_param_groups(towers_only, ["t"])


def test_multi_task_backbone_is_a_reserved_tower_name():
    cfg = OptimizerConfig(adam={"lr": 0.1}, multi_task_learning_rates=_rates(
        {"backbone": LearningRate(constant=0.1)}, LearningRate(constant=0.2)))
    with pytest.raises(ValueError, match="reserved"):
        build_multi_task_optimizer(_Recap(), cfg)


def test_multi_task_builder_needs_rates():
    with pytest.raises(ValueError, match="multi_task_learning_rates"):
        build_multi_task_optimizer(_Recap(), OptimizerConfig(adam={"lr": 0.1}))


def test_multi_task_rates_argument_overrides_the_config():
    rates = fusedsched.MultiTaskLearningRates(**_rates(
        {"is_clicked": COSINE, "is_replied": PIECEWISE, "is_favorited": LearningRate(constant=0.01)},
        LearningRate(constant=0.02),
    ))
    optimizer, scheduler = build_multi_task_optimizer(_Recap(), OptimizerConfig(sgd={"lr": 0.1}), rates)
    assert [g["name"] for g in optimizer.param_groups] == ["is_clicked", "is_replied", "is_favorited", "backbone"]
    assert _group_lrs(optimizer) == [compute_lr(c, 0) for c in (COSINE, PIECEWISE)] + [0.01, 0.02]


@pytest.mark.parametrize("device_schedule", [False, True])
def test_example_yaml_drives_a_multi_task_optimizer(device_schedule):
    cfg = load_config(EXAMPLE_YAML, section="optimizer")
    assert cfg.optimizer_name == "adam" and cfg.multi_task_learning_rates is not None
    model = _Recap()
    optimizer, scheduler = build_optimizer(model, cfg, device_schedule=device_schedule)
    assert type(optimizer) is torch.optim.Adam
    rates = cfg.multi_task_learning_rates
    names = [g["name"] for g in optimizer.param_groups]
    assert names == ["is_clicked", "is_replied", "is_favorited", "backbone"]
    cfgs = [rates.tower_learning_rates[n] for n in names[:-1]] + [rates.backbone_learning_rate]
    assert len({c.kind for c in cfgs}) == 3  # cosine, ramp and piecewise: every path is exercised
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    off = 0
    for s in range(260):  # past every ramp end (30, 40, 50), boundary (60, 150, 240) and decay end
        lrs = _group_lrs(optimizer)
        if device_schedule:
            off += assert_lrs_match(np.array(lrs), expected_f32(cfgs, s), f"step {s}")
        else:
            assert lrs == [compute_lr(c, s) for c in cfgs], f"step {s}"
        model(x).square().mean().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    assert off <= 1e-4 * 4 * 260
    assert scheduler.last_epoch == 260


@pytest.mark.parametrize("options", [{}, {"lr_decay": 0.05, "weight_decay": 0.01}, {"maximize": True},
                                     {"initial_accumulator_value": 0.3}])
def test_fused_adagrad_matches_torch_adagrad(options):
    batches = _batches(20)
    model, reference = _model(), _model()
    optimizer = FusedAdagrad(model.parameters(), lr=torch.tensor(0.02), eps=1e-5, **options)
    plain = torch.optim.Adagrad(reference.parameters(), lr=0.02, eps=1e-5, **options)
    for m, opt in ((model, optimizer), (reference, plain)):
        for x, y in batches:
            _loss(m, x, y).backward()
            opt.step()
            opt.zero_grad()
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)

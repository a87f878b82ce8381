"""Hyperparameter schedules and per-group multipliers in the tml core config (``OptimizerConfig``).

- ``hyperparameter_schedules`` (every group, ``per_group`` replacing it key by key) and
  ``multipliers`` (``{group: {lr | hyperparameter: m}}``) load from YAML and round-trip;
- bad input is refused at validation, the message naming the field and the value;
- ``build_optimizer`` keeps torch's optimizers in host mode, and in device mode picks
  ``GraphSafeAdam`` / ``GraphSafeAdamW`` / ``GraphSafeSGD`` once a hyperparameter besides lr is
  scheduled (Adagrad refused);
- a short training run: every group's values are ``compute_lr(schedule, step) * m`` at every step.
"""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch
from _compare import assert_lrs_match

import fusedsched
from fusedsched import (
    ALL_PARAMS,
    FusedAdagrad,
    GraphSafeAdam,
    GraphSafeAdamW,
    GraphSafeSGD,
    HyperparameterSchedules,
    LearningRate,
    OptimizerConfig,
    build_optimizer,
    compute_lr,
    dump_config,
    load_config,
    read_config_file,
)
from fusedsched.shim.hyperparameters import KEYS
from fusedsched.tml.config import AdamConfig, SgdConfig

MULTI_TASK_YAML = """
optimizer:
  adam: {lr: 0.001, betas: [0.9, 0.99], weight_decay: 0.01}
  multi_task_learning_rates:
    tower_learning_rates:
      tower_a: {linear_ramp_to_cosine: {learning_rate: 0.05, final_learning_rate: 0.005, num_ramp_steps: 3, final_num_steps: 20}}
      tower_b: {constant: 0.02}
    backbone_learning_rate: {constant: 0.01}
  hyperparameter_schedules:
    weight_decay: {polynomial_decay: {learning_rate: 0.01, end_learning_rate: 0.1, final_num_steps: 12}}
    beta1: {linear_ramp_to_constant: {learning_rate: 0.85, num_ramp_steps: 4}}
    per_group:
      tower_b:
        beta1: {one_cycle: {max_learning_rate: 0.95, total_steps: 15, div_factor: 1.1, final_div_factor: 1.0}}
        beta2: {constant: 0.98}
  multipliers:
    tower_a: {lr: 0.5, weight_decay: 2.0}
    backbone: {beta1: 0.9}
"""

SINGLE_YAML = """
adam: {lr: 0.001}
learning_rate: {constant: 0.003}
hyperparameter_schedules:
  eps: {exponential_decay: {learning_rate: 1.0e-6, decay_rate: 0.5, decay_steps: 4}}
multipliers:
  ALL_PARAMS: {lr: 3.0, eps: 0.25}
"""


def _sched(text: str) -> LearningRate:
    return load_config(text, LearningRate)


# --- loading ---------------------------------------------------------------------------------------


def test_yaml_loads_every_group_and_per_group_schedules_and_multipliers(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(MULTI_TASK_YAML)
    cfg = load_config(path, section="optimizer")
    assert cfg == load_config(read_config_file(path)["optimizer"])
    assert cfg.group_names == ("tower_a", "tower_b", "backbone")
    wd = _sched("{polynomial_decay: {learning_rate: 0.01, end_learning_rate: 0.1, final_num_steps: 12}}")
    beta1 = _sched("{linear_ramp_to_constant: {learning_rate: 0.85, num_ramp_steps: 4}}")
    own = cfg.hyperparameter_schedules.per_group["tower_b"]
    assert cfg.hyperparameters_by_group() == {
        "tower_a": {"weight_decay": wd, "beta1": beta1},
        "tower_b": {"weight_decay": wd, "beta1": own.beta1, "beta2": _sched("{constant: 0.98}")},  # own beta1 wins
        "backbone": {"weight_decay": wd, "beta1": beta1},
    }
    assert own.beta1 != beta1
    assert cfg.multipliers_by_group() == {"tower_a": {"lr": 0.5, "weight_decay": 2.0}, "backbone": {"beta1": 0.9}}
    assert cfg.adam.weight_decay == 0.01 and cfg.adam.decoupled_weight_decay is None


@pytest.mark.parametrize("text", [MULTI_TASK_YAML, SINGLE_YAML])
@pytest.mark.parametrize("fmt", ["dict", "yaml", "json"])
def test_round_trip(text, fmt, tmp_path):
    cfg = load_config(text, section="optimizer" if "optimizer:" in text else None)
    assert load_config(dump_config(cfg, fmt)) == cfg
    path = tmp_path / f"cfg.{'json' if fmt == 'json' else 'yaml'}"
    path.write_text(dump_config(cfg, "yaml" if fmt == "dict" else fmt))
    assert load_config(path) == cfg


def test_single_group_config_names_all_params():
    cfg = load_config(SINGLE_YAML)
    assert cfg.group_names == (ALL_PARAMS,)
    assert list(cfg.hyperparameters_by_group()) == [ALL_PARAMS]
    assert cfg.multipliers_by_group() == {ALL_PARAMS: {"lr": 3.0, "eps": 0.25}}


def test_existing_configs_keep_their_meaning_and_their_dump():
    cfg = OptimizerConfig(adam={"lr": 0.1}, learning_rate={"constant": 0.2})
    assert cfg.hyperparameter_schedules is None and cfg.multipliers is None
    assert cfg.hyperparameters_by_group() == {} and cfg.multipliers_by_group() == {}
    assert dump_config(cfg) == {"learning_rate": {"constant": 0.2}, "adam": {"lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-7}}
    assert AdamConfig(lr=0.1).weight_decay is None and SgdConfig(lr=0.1).weight_decay is None
    optimizer, scheduler = build_optimizer(torch.nn.Linear(2, 2), cfg)
    assert type(optimizer) is torch.optim.Adam and optimizer.param_groups[0]["weight_decay"] == 0
    assert scheduler.hyperparameters == {} and scheduler.multipliers == {}


def test_schedulable_names_are_the_schedulers_keys():
    assert list(HyperparameterSchedules.model_fields) == list(KEYS)
    assert set(OptimizerConfig.READS["adam"]) | set(OptimizerConfig.READS["sgd"]) == set(KEYS)


# --- bad input -------------------------------------------------------------------------------------

BASE = {"adam": {"lr": 0.001}, "multi_task_learning_rates": {
    "tower_learning_rates": {"tower_a": {"constant": 0.1}}, "backbone_learning_rate": {"constant": 0.1}}}
WD = {"constant": 0.1}

BAD = [
    # (extra fields, words the message must hold: the field and the value)
    ({"hyperparameter_schedule": {"weight_decay": WD}}, ["hyperparameter_schedule", "Extra inputs"]),
    ({"hyperparameter_schedules": {"wd": WD}}, ["hyperparameter_schedules.wd", "Extra inputs"]),
    ({"hyperparameter_schedules": {"per_group": {"tower_a": {"betas": WD}}}},
     ["hyperparameter_schedules.per_group.tower_a.betas", "Extra inputs"]),
    ({"hyperparameter_schedules": {"weight_decay": {"constant": -0.1}}}, ["constant", "-0.1"]),
    ({"hyperparameter_schedules": {"momentum": WD}}, ["momentum", "adam", "hyperparameter_schedules"]),
    ({"hyperparameter_schedules": {"per_group": {"backbone": {"momentum": WD}}}}, ["momentum", "'backbone'", "adam"]),
    ({"hyperparameter_schedules": {"per_group": {"tower_c": {"beta1": WD}}}},
     ["hyperparameter_schedules.per_group", "'tower_c'", "tower_a"]),
    ({"multipliers": {"tower_c": {"lr": 0.5}}}, ["multipliers", "'tower_c'", "tower_a"]),
    ({"multipliers": {"ALL_PARAMS": {"lr": 0.5}}}, ["multipliers", "'ALL_PARAMS'"]),
    ({"multipliers": {"tower_a": {"lr": -0.5}}}, ["multipliers.tower_a.lr", "-0.5"]),
    ({"multipliers": {"tower_a": {"lr": float("inf")}}}, ["multipliers.tower_a.lr", "inf"]),
    ({"multipliers": {"tower_a": {"lr": True}}}, ["multipliers.tower_a.lr", "True"]),
    ({"multipliers": {"tower_a": {"wd": 2.0}}}, ["multipliers.tower_a.wd", "Extra inputs"]),
    ({"multipliers": {"tower_a": {"weight_decay": 2.0}}}, ["multipliers.tower_a.weight_decay", "2.0", "no schedule"]),
    ({"hyperparameter_schedules": {"per_group": {"tower_a": {"weight_decay": WD}}},
      "multipliers": {"backbone": {"weight_decay": 2.0}}}, ["multipliers.backbone.weight_decay", "no schedule"]),
]


@pytest.mark.parametrize("extra, words", BAD, ids=lambda x: str(x)[:60])
def test_bad_input_is_refused_naming_field_and_value(extra, words):
    with pytest.raises(pydantic.ValidationError) as info:
        load_config({**BASE, **extra})
    for word in words:
        assert word in str(info.value)


#: a schedule times its multiplier that leaves its range at some step (docs/semantics.md): the
#: message names the field's path, the group, the worst value and the range
OUT_OF_RANGE = [
    ({"hyperparameter_schedules": {"beta1": {"constant": 1.2}}},
     ["hyperparameter_schedules.beta1 (group 'tower_a')", "highest value is 1.2, not below 1", "[0, 1)"]),
    ({"hyperparameter_schedules": {"beta2": {"constant": 0.9}}, "multipliers": {"backbone": {"beta2": 1.5}}},
     ["hyperparameter_schedules.beta2 (group 'backbone'), times multipliers.backbone.beta2 = 1.5",
      "highest value is 1.35", "beta2 (betas[1]) must lie in [0, 1)"]),
    ({"hyperparameter_schedules": {"beta1": {"constant": 0.9}, "per_group": {
        "tower_a": {"beta1": {"one_cycle": {"max_learning_rate": 0.95, "total_steps": 100}}}}},
      "multipliers": {"tower_a": {"beta1": 1.1}}},
     ["hyperparameter_schedules.per_group.tower_a.beta1 (group 'tower_a'), times multipliers.tower_a.beta1 = 1.1",
      "1.045"]),
    ({"hyperparameter_schedules": {"beta2": {"constant": 0.999999999}}}, ["0.999999999 is 1.0 in float32"]),
    ({"hyperparameter_schedules": {"eps": {"exponential_decay": {"learning_rate": 1e-8, "decay_rate": 2.0, "decay_steps": 5}}}},
     ["hyperparameter_schedules.eps (group 'tower_a')", "highest value is inf", "eps (eps) must lie in [0, inf)"]),
]


@pytest.mark.parametrize("extra, words", OUT_OF_RANGE, ids=lambda x: str(x)[:60])
def test_a_schedule_out_of_its_range_is_refused_naming_its_path(extra, words):
    with pytest.raises(pydantic.ValidationError) as info:
        load_config({**BASE, **extra})
    for word in words:
        assert word in str(info.value)


def test_a_yaml_beta_above_one_is_refused_at_load_config(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(SINGLE_YAML.replace("eps: {exponential_decay", "beta1: {constant: 1.2}\n  eps: {exponential_decay"))
    with pytest.raises(pydantic.ValidationError, match=r"hyperparameter_schedules\.beta1 \(group 'ALL_PARAMS'\): its highest value is 1\.2"):
        load_config(path)


@pytest.mark.parametrize("optimizer, key", [
    ({"sgd": {"lr": 0.1}}, "beta1"), ({"sgd": {"lr": 0.1}}, "eps"), ({"adagrad": {"lr": 0.1}}, "momentum"),
])
def test_a_hyperparameter_the_optimizer_does_not_read_is_refused(optimizer, key):
    with pytest.raises(pydantic.ValidationError, match=f"{key} \\(group 'ALL_PARAMS'\\) is not read by {next(iter(optimizer))}"):
        OptimizerConfig(**optimizer, hyperparameter_schedules={key: WD})


@pytest.mark.parametrize("adam, words", [
    ({"lr": 0.1, "weight_decay": -1}, ["weight_decay", "-1"]),
    ({"lr": 0.1, "decoupled_weight_decay": "yes"}, ["decoupled_weight_decay", "yes"]),
    ({"lr": 0.1, "decoupled_weight_decay": 1}, ["decoupled_weight_decay", "1"]),
])
def test_bad_adam_weight_decay_fields(adam, words):
    with pytest.raises(pydantic.ValidationError) as info:
        OptimizerConfig(adam=adam)
    for word in words:
        assert word in str(info.value)


def test_a_recap_section_refuses_the_new_fields():
    recap = {"adam": {"beta_1": 0.9}, "single_task_learning_rate": {"constant": 0.1}}
    with pytest.raises(pydantic.ValidationError, match="hyperparameter_schedules"):
        load_config({**recap, "hyperparameter_schedules": {"weight_decay": WD}})


def test_towers_given_to_the_builder_must_match_the_per_group_names():
    """A ``multi_task_learning_rates`` argument naming other towers: the per-group entries are not dropped."""
    cfg = load_config({**BASE, "multipliers": {"tower_a": {"lr": 0.5}}})
    model = _TwoTowers()
    other = {"tower_learning_rates": {"tower_b": {"constant": 0.1}}, "backbone_learning_rate": {"constant": 0.1}}
    with pytest.raises(ValueError, match="'tower_a'"):
        fusedsched.build_multi_task_optimizer(model, cfg, other)


# --- which optimizer -------------------------------------------------------------------------------

CLASSES = [
    # (optimizer, scheduled key, host-mode class, device-mode class)
    ({"adam": {"lr": 0.01}}, "weight_decay", torch.optim.Adam, GraphSafeAdam),
    ({"adam": {"lr": 0.01, "decoupled_weight_decay": False}}, "beta2", torch.optim.Adam, GraphSafeAdam),
    ({"adam": {"lr": 0.01, "decoupled_weight_decay": True}}, "weight_decay", torch.optim.AdamW, GraphSafeAdamW),
    ({"sgd": {"lr": 0.01, "momentum": 0.5}}, "momentum", torch.optim.SGD, GraphSafeSGD),
    ({"adagrad": {"lr": 0.01}}, "eps", torch.optim.Adagrad, None),
]


@pytest.mark.parametrize("optimizer, key, host, device", CLASSES, ids=lambda x: str(x)[:40])
def test_build_optimizer_picks_the_class(optimizer, key, host, device):
    value = 0.95 if key.startswith("beta") else 0.2
    cfg = OptimizerConfig(**optimizer, hyperparameter_schedules={key: {"constant": value}})
    opt, scheduler = build_optimizer(torch.nn.Linear(3, 2), cfg, device_schedule=False)
    assert type(opt) is host
    assert scheduler.get_last_hyperparameters() == {ALL_PARAMS: {key: value}}
    if device is None:
        with pytest.raises(ValueError, match="Adagrad.*only lr as a tensor.*device_schedule=False"):
            build_optimizer(torch.nn.Linear(3, 2), cfg, device_schedule=True)
        return
    opt, scheduler = build_optimizer(torch.nn.Linear(3, 2), cfg, device_schedule=True)
    assert type(opt) is device
    group = opt.param_groups[0]
    scheduled = group["betas"][int(key[-1]) - 1] if key.startswith("beta") else group[key]
    assert isinstance(scheduled, torch.Tensor) and float(scheduled) == float(np.float32(value))


@pytest.mark.parametrize("optimizer, cls", [
    ({"adam": {"lr": 0.01}}, torch.optim.Adam),
    ({"adam": {"lr": 0.01, "decoupled_weight_decay": True}}, torch.optim.AdamW),
    ({"sgd": {"lr": 0.01}}, torch.optim.SGD),
    ({"adagrad": {"lr": 0.01}}, FusedAdagrad),
])
def test_lr_multipliers_alone_keep_the_usual_device_optimizers(optimizer, cls):
    cfg = OptimizerConfig(**optimizer, multipliers={ALL_PARAMS: {"lr": 0.5}})
    opt, scheduler = build_optimizer(torch.nn.Linear(3, 2), cfg, device_schedule=True)
    assert type(opt) is cls
    assert scheduler.get_last_lr() == [float(np.float32(0.005))]


def test_adam_weight_decay_and_decoupling_reach_the_optimizer():
    opt, _ = build_optimizer(torch.nn.Linear(3, 2), OptimizerConfig(adam={"lr": 0.01, "weight_decay": 0.03}))
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["weight_decay"] == 0.03
    assert not opt.param_groups[0]["decoupled_weight_decay"]
    # AdamW with weight_decay unset: 0, as the config says, not AdamW's own default of 1e-2.
    opt, _ = build_optimizer(torch.nn.Linear(3, 2), OptimizerConfig(adam={"lr": 0.01, "decoupled_weight_decay": True}))
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["weight_decay"] == 0.0
    opt, _ = build_optimizer(torch.nn.Linear(3, 2), OptimizerConfig(sgd={"lr": 0.01, "weight_decay": 0.04}))
    assert opt.param_groups[0]["weight_decay"] == 0.04


# --- training --------------------------------------------------------------------------------------


class _TwoTowers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared = torch.nn.Linear(4, 6)
        self.towers = torch.nn.ModuleDict({"tower_a": torch.nn.Linear(6, 1), "tower_b": torch.nn.Linear(6, 1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.shared(x))
        return self.towers["tower_a"](h) + self.towers["tower_b"](h)


def _value(group: dict, key: str):
    return group["betas"][int(key[-1]) - 1] if key.startswith("beta") else group[key]


@pytest.mark.parametrize("device_schedule", [False, True])
def test_training_run_sets_every_group_to_compute_lr_times_multiplier(device_schedule):
    cfg = load_config(MULTI_TASK_YAML, section="optimizer")
    model = _TwoTowers()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer, scheduler = build_optimizer(model, cfg, device_schedule=device_schedule)
    assert type(optimizer) is (GraphSafeAdam if device_schedule else torch.optim.Adam)
    assert [g["name"] for g in optimizer.param_groups] == ["tower_a", "tower_b", "backbone"]
    lrs = {name: cfg.multi_task_learning_rates.tower_learning_rates.get(name) for name in ("tower_a", "tower_b")}
    lrs["backbone"] = cfg.multi_task_learning_rates.backbone_learning_rate
    hyper, mults = cfg.hyperparameters_by_group(), cfg.multipliers_by_group()
    gen = torch.Generator().manual_seed(1)
    off = checked = 0
    for step in range(16):
        got, want = [], []
        for group in optimizer.param_groups:
            name, m = group["name"], mults.get(group["name"], {})
            got.append(float(group["lr"]))
            want.append(compute_lr(lrs[name], step) * m.get("lr", 1.0))
            for key, schedule in hyper[name].items():
                got.append(float(_value(group, key)))
                want.append(compute_lr(schedule, step) * m.get(key, 1.0))
        if device_schedule:
            off += assert_lrs_match(np.array(got, dtype=np.float32), np.array(want, dtype=np.float32), f"step {step}")
        else:
            assert got == want, f"step {step}"
        checked += len(got)
        x = torch.randn(8, 4, generator=gen)
        torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True)).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    assert checked == 16 * (3 + 2 + 3 + 2) and off <= 1
    # the multiplier shows: tower_a's weight decay is twice backbone's at every step
    assert scheduler.get_last_hyperparameters()["tower_a"]["weight_decay"] == pytest.approx(
        2 * scheduler.get_last_hyperparameters()["backbone"]["weight_decay"])
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("device_schedule, cls", [(False, torch.optim.Adam), (True, GraphSafeAdam)])
def test_combined_layout_schedules_each_wrapped_group(device_schedule, cls):
    pytest.importorskip("torchrec")
    cfg = load_config(MULTI_TASK_YAML, section="optimizer")
    optimizer, scheduler = build_optimizer(_TwoTowers(), cfg, device_schedule=device_schedule, combined=True)
    inner = [opt for _, opt in optimizer.optimizers]
    assert [type(opt._optimizer) for opt in inner] == [cls] * 3
    last = scheduler.get_last_hyperparameters()
    assert list(last) == ["tower_a", "tower_b", "backbone"]
    wd = compute_lr(cfg.hyperparameter_schedules.weight_decay, 0)
    assert last["tower_a"]["weight_decay"] == pytest.approx(2 * wd) and last["backbone"]["weight_decay"] == pytest.approx(wd)


# --- plot -----------------------------------------------------------------------------------------


def test_plot_draws_one_panel_per_scheduled_hyperparameter(tmp_path, capsys):
    # the lr panel and its CSV are the rates the groups get (times their lr multipliers); each
    # scheduled hyperparameter gets a panel of its own, its schedules times their multipliers
    import csv

    from fusedsched.tools.cli import _hyperparameter_panels, load_schedules, main

    path = tmp_path / "train.yaml"
    path.write_text(MULTI_TASK_YAML)
    schedules, model = load_schedules(path)
    panels = _hyperparameter_panels(model, list(schedules))
    assert list(panels) == ["weight_decay", "beta1", "beta2"]  # KEYS order, scheduled ones only
    assert list(panels["beta2"]) == ["tower_b"] and list(panels["beta1"]) == ["tower_a", "tower_b", "backbone"]
    for s in (0, 5, 11, 30):
        assert compute_lr(panels["weight_decay"]["tower_a"], s) == compute_lr(
            model.hyperparameter_schedules.weight_decay, s) * 2.0
        assert compute_lr(panels["beta1"]["backbone"], s) == compute_lr(model.hyperparameter_schedules.beta1, s) * 0.9
    png, data = tmp_path / "p.png", tmp_path / "p.csv"
    assert main(["plot", str(path), "--steps", "25", "-o", str(png), "--csv", str(data)]) == 0
    out = capsys.readouterr().out
    assert "weight_decay: 3 group(s); beta1: 3 group(s); beta2: 1 group(s)" in out and png.stat().st_size > 0
    rows = list(csv.DictReader(data.open()))
    lr = {name: cfg for name, cfg in load_config(read_config_file(path)["optimizer"]).multi_task_learning_rates
          .tower_learning_rates.items()}
    assert [float(r["tower_a"]) for r in rows] == [compute_lr(lr["tower_a"], s) * 0.5 for s in range(25)]
    assert [float(r["tower_b"]) for r in rows] == [compute_lr(lr["tower_b"], s) for s in range(25)]

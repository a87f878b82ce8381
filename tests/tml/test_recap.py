"""recap's optimizer schema and grouping rules: configs load unchanged and every parameter gets its
task's schedule, as recap's own ``build_optimizer`` assigns it (``projects/home/recap/optimizer``).

The model below is recap-shaped: towers in a ``ModuleDict`` keyed by sanitized task names, an
``embedding_bags`` part, all inside an outer module (as DDP or a wrapper adds a prefix).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydantic
import pytest
import torch
from _compare import assert_lrs_match, expected_f32
from torch import nn

import fusedsched
from fusedsched import (
    EmbeddingOptimizerConfig,
    LearningRate,
    OptimizerConfig,
    RecapAdamConfig,
    RecapOptimizerConfig,
    build_multi_task_optimizer,
    build_optimizer,
    compute_lr,
    load_config,
    recap_param_groups,
    schedules_by_group,
    validate_optimizer_config,
)
from fusedsched.tml.builders import BACKBONE, DENSE_EBC, SINGLE_TASK, sanitize

EXAMPLES = Path(fusedsched.__file__).parent / "examples"
RECAP_YAML = EXAMPLES / "recap_optimizer.yaml"
TASKS = [
    "recap.engagement.is_favorited",
    "recap.engagement.is_replied",
    "recap.engagement.is_retweeted",
    "recap.engagement.is_video_playback_50",
]
# Every ramp end, cosine end and boundary of the example (and the embedding schedule's boundary 120).
EDGES = [0, 1, 49, 50, 51, 79, 80, 81, 99, 100, 101, 119, 120, 121, 159, 160, 161, 199, 200, 201, 249, 250, 251]


def _recap_config() -> RecapOptimizerConfig:
    return load_config(RECAP_YAML, section="optimizer")


def _embedding_config() -> EmbeddingOptimizerConfig:
    return load_config(RECAP_YAML, EmbeddingOptimizerConfig, section="model.large_embeddings.optimizer")


class _Ranker(nn.Module):
    """A backbone, an embedding-bag collection and one tower per task (keyed by sanitized name)."""

    def __init__(self, tasks=TASKS, embeddings: bool = True, backbone: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        width = (8 if backbone else 0) + (4 if embeddings else 0) or 6  # towers read x when alone
        self.backbone = nn.Sequential(nn.Linear(6, 8), nn.ReLU()) if backbone else None
        self.embedding_bags = nn.ModuleDict({"user_id": nn.EmbeddingBag(20, 4, mode="sum")}) if embeddings else None
        self.towers = nn.ModuleDict(
            {sanitize(t): nn.Sequential(nn.Linear(width, 4), nn.ReLU(), nn.Linear(4, 1)) for t in tasks}
        )

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.backbone is not None:
            parts.append(self.backbone(x))
        if self.embedding_bags is not None:
            parts.append(self.embedding_bags["user_id"](ids))
        h = torch.cat(parts, dim=1) if parts else x
        return torch.cat([tower(h) for tower in self.towers.values()], dim=1)


class _Outer(nn.Module):
    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.model = _Ranker(**kwargs)

    def forward(self, x, ids):
        return self.model(x, ids)


def _batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(5, 6, generator=gen), torch.randint(0, 20, (5, 3), generator=gen)


def _train_step(model, optimizer, scheduler, seed: int) -> None:
    x, ids = _batch(seed)
    model(x, ids).square().mean().backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def _lr_by_parameter(model, optimizer) -> dict[str, float]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: float(g["lr"]) for g in optimizer.param_groups for p in g["params"]}


def _task_of(name: str, tasks=TASKS) -> str:
    for task in tasks:
        if f".{sanitize(task)}." in name:
            return task
    return DENSE_EBC if "embedding_bags" in name else BACKBONE


# --- the schema ----------------------------------------------------------------------------------


def test_example_loads_as_recap_with_dotted_task_names():
    cfg = _recap_config()
    assert type(cfg) is RecapOptimizerConfig
    assert cfg.adam == RecapAdamConfig(beta_1=0.95, beta_2=0.999, epsilon=1e-7)
    assert cfg.single_task_learning_rate is None
    rates = cfg.multi_task_learning_rates
    assert list(rates.tower_learning_rates) == TASKS
    kinds = [lr.kind for lr in rates.tower_learning_rates.values()]
    assert kinds == ["linear_ramp_to_constant", "linear_ramp_to_cosine", "piecewise_constant", "constant"]
    assert rates.backbone_learning_rate.kind == "linear_ramp_to_constant"
    emb = _embedding_config()
    assert emb.init_learning_rate == 0.01 and emb.learning_rate.kind == "piecewise_constant"


def test_adam_defaults_are_recaps():
    text = "optimizer:\n  adam: {}\n  single_task_learning_rate:\n    constant: 0.1\n"
    cfg = load_config(text, section="optimizer")
    assert type(cfg) is RecapOptimizerConfig
    assert (cfg.adam.beta_1, cfg.adam.beta_2, cfg.adam.epsilon) == (0.9, 0.999, 1e-7)
    optimizer, _ = build_optimizer(_Outer(), cfg)
    assert tuple(optimizer.param_groups[0]["betas"]) == (0.9, 0.999) and optimizer.param_groups[0]["eps"] == 1e-7
    # YAML 1.1 reads 1e-8 (no dot) as a string; it still means the number.
    partial = load_config("adam: {beta_2: 0.98, epsilon: 1e-8}\nsingle_task_learning_rate: {constant: 0.1}\n")
    assert (partial.adam.beta_1, partial.adam.beta_2, partial.adam.epsilon) == (0.9, 0.98, 1e-8)


@pytest.mark.parametrize("fmt", ["dict", "yaml", "json"])
def test_recap_configs_round_trip_through_dump_config(fmt):
    single = load_config({"adam": {"epsilon": 1e-6}, "single_task_learning_rate": {"constant": 0.1}})
    no_backbone = load_config({"adam": {}, "multi_task_learning_rates": {"tower_learning_rates": {"a.b": {"constant": 0.1}}}})
    for cfg in (_recap_config(), single, no_backbone):
        assert load_config(fusedsched.dump_config(cfg, fmt)) == cfg


def test_single_task_yaml_loads():
    text = """
optimizer:
  adam: {beta_1: 0.9, beta_2: 0.99, epsilon: 1.0e-06}
  multi_task_learning_rates: null
  single_task_learning_rate:
    linear_ramp_to_cosine: {learning_rate: 0.01, final_learning_rate: 0.001, num_ramp_steps: 10, final_num_steps: 40}
"""
    cfg = load_config(text, section="optimizer")
    assert type(cfg) is RecapOptimizerConfig and cfg.multi_task_learning_rates is None
    assert schedules_by_group(cfg) == {SINGLE_TASK: cfg.single_task_learning_rate}


def test_backbone_learning_rate_may_be_null_or_absent():
    for backbone in ("backbone_learning_rate: null\n    ", ""):
        text = f"adam: {{}}\nmulti_task_learning_rates:\n  {backbone}tower_learning_rates:\n    a.b: {{constant: 0.1}}\n"
        cfg = load_config(text.replace("\n    tower", "\n  tower"))
        assert cfg.multi_task_learning_rates.backbone_learning_rate is None
        assert schedules_by_group(cfg) == {"a.b": LearningRate(constant=0.1)}


@pytest.mark.parametrize(
    "data, words",
    [
        ({"adam": {}}, ["exactly one of multi_task_learning_rates, single_task_learning_rate", "got: none"]),
        (
            {"adam": {}, "single_task_learning_rate": {"constant": 0.1},
             "multi_task_learning_rates": {"tower_learning_rates": {"t": {"constant": 0.1}}}},
            ["exactly one of", "got: multi_task_learning_rates, single_task_learning_rate"],
        ),
        ({"adam": {"beta_1": 1.0}, "single_task_learning_rate": {"constant": 0.1}}, ["beta_1", "1.0"]),
        ({"adam": {"beta_2": -0.5}, "single_task_learning_rate": {"constant": 0.1}}, ["beta_2", "-0.5"]),
        ({"adam": {"epsilon": -1e-8}, "single_task_learning_rate": {"constant": 0.1}}, ["epsilon", "-1e-08"]),
        ({"adam": {"beta1": 0.9}, "single_task_learning_rate": {"constant": 0.1}}, ["beta1", "Extra inputs"]),
        ({"single_task_learning_rate": {"constant": 0.1}}, ["adam", "Field required"]),
        ({"adam": {}, "multi_task_learning_rates": {"tower_learning_rates": {}}}, ["at least one task"]),
        ({"adam": {}, "multi_task_learning_rates": {"tower_learning_rates": {"": {"constant": 0.1}}}}, ["non-empty"]),
        ({"adam": {}, "single_task_learning_rate": {"constant": -1.0}}, ["constant", "-1.0"]),
    ],
)
def test_invalid_recap_config_names_the_field(data, words):
    with pytest.raises(pydantic.ValidationError) as info:
        validate_optimizer_config(data)
    assert info.value.title == "RecapOptimizerConfig"
    for word in words:
        assert word in str(info.value)


# --- telling the two schemas apart ---------------------------------------------------------------


def test_tml_core_configs_still_load_as_core():
    cfg = load_config(EXAMPLES / "recap_multitask.yaml", section="optimizer")
    assert type(cfg) is OptimizerConfig and cfg.optimizer.lr == 0.001
    assert type(load_config("sgd: {lr: 0.1}")) is OptimizerConfig
    assert type(load_config("adam: {lr: 0.1}\nlearning_rate: {constant: 0.1}")) is OptimizerConfig


@pytest.mark.parametrize(
    "text, words",
    [
        ("adam: {lr: 0.1, beta_1: 0.9}\n", ["adam.lr", "adam.beta_1", "mixes"]),
        ("adam: {beta_1: 0.9}\nlearning_rate: {constant: 0.1}\n", ["learning_rate", "adam.beta_1"]),
        ("sgd: {lr: 0.1}\nsingle_task_learning_rate: {constant: 0.1}\n", ["sgd", "single_task_learning_rate"]),
        ("adam: {eps: 1.0e-8, epsilon: 1.0e-8}\nsingle_task_learning_rate: null\n",
         ["adam.eps", "adam.epsilon", "single_task_learning_rate"]),
    ],
)
def test_a_mixed_section_is_an_error_naming_the_fields(text, words):
    with pytest.raises(ValueError) as info:
        load_config("optimizer:\n" + "".join("  " + line + "\n" for line in text.splitlines()), section="optimizer")
    assert not isinstance(info.value, pydantic.ValidationError)
    for word in words + ["section 'optimizer'"]:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        {"multi_task_learning_rates": {"tower_learning_rates": {"t": {"constant": 0.1}}}},
        {"adam": None, "multi_task_learning_rates": None},
        {"constant": 0.1},
    ],
)
def test_an_ambiguous_section_is_an_error_naming_the_fields(data):
    with pytest.raises(ValueError, match="cannot tell the optimizer schema") as info:
        load_config(data)
    for key in data:
        assert key in str(info.value)


def test_the_schema_is_chosen_only_without_an_explicit_model():
    """An explicit ``cls`` is validated as given: recap fields in OptimizerConfig are unknown fields."""
    with pytest.raises(pydantic.ValidationError, match="beta_1"):
        load_config({"adam": {"beta_1": 0.9}, "single_task_learning_rate": {"constant": 0.1}}, OptimizerConfig)


def test_validate_optimizer_config_takes_models_and_mappings_only():
    cfg = _recap_config()
    assert validate_optimizer_config(cfg) is cfg
    assert validate_optimizer_config({"sgd": {"lr": 0.5}}) == OptimizerConfig(sgd={"lr": 0.5})
    for bad in ("sgd: {lr: 0.5}", [("sgd", {"lr": 0.5})], None, LearningRate(constant=0.1)):
        with pytest.raises(TypeError, match=type(bad).__name__):
            validate_optimizer_config(bad)


def test_core_tower_names_still_refuse_dots():
    """tml core's own multi-task schema is unchanged: towers named without '.'."""
    with pytest.raises(pydantic.ValidationError, match="'a.b'"):
        load_config({"adam": {"lr": 0.1}, "multi_task_learning_rates": {
            "tower_learning_rates": {"a.b": {"constant": 0.1}}, "backbone_learning_rate": {"constant": 0.1}}})


def test_twhin_sections_load_by_list_index():
    """twhin writes tml core optimizers per embedding table, in a list: a digit in the section indexes it."""
    text = """
model:
  translation_optimizer:
    sgd: {lr: 0.05}
    learning_rate: {constant: 0.05}
  embeddings:
    tables:
      - name: user
        optimizer:
          sgd: {lr: 0.01}
          learning_rate: {constant: 0.01}
      - name: tweet
        optimizer:
          adagrad: {lr: 0.01}
          learning_rate: {constant: 0.01}
"""
    assert load_config(text, section="model.translation_optimizer") == OptimizerConfig(
        sgd={"lr": 0.05}, learning_rate={"constant": 0.05})
    tweet = load_config(text, section="model.embeddings.tables.1.optimizer")
    assert tweet == OptimizerConfig(adagrad={"lr": 0.01}, learning_rate={"constant": 0.01})
    with pytest.raises(ValueError, match=r"no key '2' at model.embeddings.tables; a list of 2"):
        load_config(text, section="model.embeddings.tables.2.optimizer")


# --- the grouping rules --------------------------------------------------------------------------


def test_sanitize_replaces_every_dot():
    assert sanitize("recap.engagement.is_favorited") == "recap__engagement__is_favorited"
    assert sanitize("plain") == "plain"


def test_groups_follow_recap_rules():
    model = _Outer()
    model.model.backbone[0].bias.requires_grad_(False)  # frozen parameters are grouped too, as in recap
    groups = recap_param_groups(model, TASKS)
    assert list(groups) == TASKS + [BACKBONE, DENSE_EBC]
    for task in TASKS:
        prefix = f"model.towers.{sanitize(task)}."
        assert list(groups[task]) == [n for n, _ in model.named_parameters() if n.startswith(prefix)]
    assert list(groups[BACKBONE]) == ["model.backbone.0.weight", "model.backbone.0.bias"]
    assert list(groups[DENSE_EBC]) == ["model.embedding_bags.user_id.weight"]
    named = dict(model.named_parameters())
    assert all(p is named[n] for g in groups.values() for n, p in g.items())
    assert sum(len(g) for g in groups.values()) == len(named)


def test_a_task_matches_only_its_sanitized_name_between_dots():
    """The name is not padded: a task module at the top level of the model owns nothing."""
    bare = _Ranker(tasks=["a.b"])
    bare.add_module("a__b", nn.Linear(2, 2))  # "a__b.weight": no leading dot
    groups = recap_param_groups(bare, ["a.b"])
    assert list(groups["a.b"]) == ["towers.a__b.0.weight", "towers.a__b.0.bias", "towers.a__b.2.weight", "towers.a__b.2.bias"]
    assert "a__b.weight" in groups[BACKBONE]
    top = nn.Module()
    top.a__b = nn.Linear(2, 2)
    top.body = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"no parameter name contains '\.a__b\.'.*\['a\.b'\]"):
        recap_param_groups(top, ["a.b"])


def test_the_raw_dotted_name_does_not_match():
    model = nn.Module()
    model.x = nn.Module()
    model.x.add_module("a", nn.Module())
    model.x.a.add_module("b", nn.Linear(2, 2))  # "x.a.b.weight" contains ".a.b." but not ".a__b."
    with pytest.raises(ValueError, match="own no parameters"):
        recap_param_groups(model, ["a.b"])


def test_a_parameter_matching_two_tasks_is_an_error():
    model = nn.Module()
    model.t = nn.ModuleDict({"a": nn.ModuleDict({"b": nn.Linear(2, 2)})})  # "t.a.b.weight"
    with pytest.raises(ValueError, match=r"'t.a.b.weight' matches more than one task: 'a' and 'b'"):
        recap_param_groups(model, ["a", "b"])


def test_a_task_parameter_named_embedding_bags_stays_with_its_task():
    model = nn.Module()
    model.towers = nn.ModuleDict({"t": nn.ModuleDict({"embedding_bags": nn.EmbeddingBag(4, 2)})})
    model.body = nn.Linear(2, 2)
    groups = recap_param_groups(model, ["t"])
    assert list(groups) == ["t", BACKBONE]
    assert list(groups["t"]) == ["towers.t.embedding_bags.weight"]


def test_builder_groups_are_named_by_raw_task_names_with_recap_adam():
    model = _Outer(embeddings=False)
    optimizer, scheduler = build_optimizer(model, _recap_config())
    assert type(optimizer) is torch.optim.Adam
    assert [g["name"] for g in optimizer.param_groups] == TASKS + [BACKBONE]
    assert scheduler.group_names == TASKS + [BACKBONE]
    for group in optimizer.param_groups:
        assert tuple(group["betas"]) == (0.95, 0.999) and group["eps"] == 1e-7 and group["maximize"] is False
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        assert all(_task_of(names[id(p)]) == group["name"] for p in group["params"])
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(names)


def test_build_multi_task_optimizer_takes_recap_configs_and_rates():
    cfg = _recap_config()
    model = _Outer(embeddings=False)
    rates = {"tower_learning_rates": {t: {"constant": 0.01 * (i + 1)} for i, t in enumerate(TASKS)},
             "backbone_learning_rate": {"constant": 0.5}}
    optimizer, scheduler = build_multi_task_optimizer(model, cfg, rates)
    assert [float(g["lr"]) for g in optimizer.param_groups] == [0.01, 0.02, 0.03, 0.04, 0.5]
    single = load_config({"adam": {}, "single_task_learning_rate": {"constant": 0.1}})
    with pytest.raises(ValueError, match="needs multi_task_learning_rates"):
        build_multi_task_optimizer(model, single)
    # tml core's multi-task model is read as recap's when the config is recap's.
    core_rates = fusedsched.MultiTaskLearningRates(
        tower_learning_rates={"t": {"constant": 0.2}}, backbone_learning_rate={"constant": 0.3})
    optimizer, scheduler = build_multi_task_optimizer(_Outer(tasks=["t"], embeddings=False), single, core_rates)
    assert [g["name"] for g in optimizer.param_groups] == ["t", BACKBONE] and scheduler.get_last_lr() == [0.2, 0.3]


def test_null_backbone_learning_rate_with_backbone_parameters_is_an_error():
    cfg = load_config({"adam": {}, "multi_task_learning_rates": {
        "tower_learning_rates": {t: {"constant": 0.1} for t in TASKS}, "backbone_learning_rate": None}})
    with pytest.raises(ValueError, match=r"backbone_learning_rate is null but 2 parameter\(s\).*model.backbone.0.weight"):
        build_optimizer(_Outer(embeddings=False), cfg)
    # Without backbone parameters a null backbone schedule is what the model needs.
    optimizer, _ = build_optimizer(_Outer(embeddings=False, backbone=False), cfg)
    assert [g["name"] for g in optimizer.param_groups] == TASKS


def test_a_backbone_schedule_without_backbone_parameters_is_an_error():
    with pytest.raises(ValueError, match="backbone_learning_rate is set but no parameter falls to the backbone"):
        build_optimizer(_Outer(embeddings=False, backbone=False), _recap_config())


def test_a_task_without_parameters_is_an_error():
    with pytest.raises(ValueError, match=r"\['recap.engagement.is_retweeted'\] own no parameters"):
        build_optimizer(_Outer(tasks=TASKS[:2] + TASKS[3:], embeddings=False), _recap_config())


@pytest.mark.parametrize("reserved", [BACKBONE, DENSE_EBC])
def test_group_names_are_reserved(reserved):
    cfg = load_config({"adam": {}, "multi_task_learning_rates": {"tower_learning_rates": {reserved: {"constant": 0.1}}}})
    with pytest.raises(ValueError, match=f"'{reserved}'.*reserved"):
        build_optimizer(_Outer(tasks=[reserved]), cfg)


@pytest.mark.parametrize("emb", [None, EmbeddingOptimizerConfig(init_learning_rate=0.01)],
                         ids=["no embedding config", "embedding config without learning_rate"])
def test_embedding_bags_without_their_schedule_are_an_error(emb):
    with pytest.raises(ValueError, match=r"'model.embedding_bags.user_id.weight'.*'dense_ebc'.*emb_optimizer_config"):
        build_optimizer(_Outer(), _recap_config(), emb, combined=True)


def test_an_embedding_schedule_without_embedding_bags_is_unused():
    optimizer, scheduler = build_optimizer(_Outer(embeddings=False), _recap_config(), _embedding_config())
    assert DENSE_EBC not in scheduler.group_names


def test_embedding_bags_need_the_combined_layout():
    """Adam for the towers and SGD for dense_ebc cannot share one torch optimizer."""
    with pytest.raises(ValueError, match=r"SGD for \['dense_ebc'\].*combined=True"):
        build_optimizer(_Outer(), _recap_config(), _embedding_config())


def test_embedding_config_forms():
    schedule = _embedding_config().learning_rate
    for emb in (_embedding_config(), schedule, {"init_learning_rate": 0.01, "learning_rate": schedule.model_dump()}):
        _, scheduler = build_optimizer(_Outer(), _recap_config(), emb, combined=True)
        assert scheduler.lr_dict[DENSE_EBC] == schedule
    with pytest.raises(TypeError, match="emb_optimizer_config.*float"):
        build_optimizer(_Outer(), _recap_config(), 0.01, combined=True)
    with pytest.raises(ValueError, match="applies to a recap config"):
        build_optimizer(_Outer(), OptimizerConfig(adam={"lr": 0.1}), schedule)


def test_single_task_learning_rate_is_one_group_of_every_parameter():
    model = _Outer()
    model.model.backbone[0].bias.requires_grad_(False)
    cfg = load_config({"adam": {"beta_1": 0.8}, "single_task_learning_rate": {"constant": 0.02}})
    optimizer, scheduler = build_optimizer(model, cfg, _embedding_config())
    assert type(optimizer) is torch.optim.Adam and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group["name"] == SINGLE_TASK and scheduler.group_names == [SINGLE_TASK]
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters()]
    assert tuple(group["betas"]) == (0.8, 0.999) and group["lr"] == 0.02


# --- every parameter's learning rate, step by step -------------------------------------------------


def _schedules(cfg: RecapOptimizerConfig, with_embeddings: bool) -> dict[str, LearningRate]:
    out = schedules_by_group(cfg)
    if with_embeddings:
        out[DENSE_EBC] = _embedding_config().learning_rate
    return out


def _check_every_parameter(model, optimizer, scheduler, schedules, device_schedule):
    by_param = _lr_by_parameter(model, optimizer)
    order = list(schedules)
    ones = 0
    for s in range(max(EDGES) + 1):
        if s in EDGES:
            got = _lr_by_parameter(model, optimizer)
            want_group = expected_f32(list(schedules.values()), s) if device_schedule else [
                compute_lr(c, s) for c in schedules.values()]
            got_by_name = [got[name] for name in by_param]
            want_by_name = [want_group[order.index(_task_of(name))] for name in by_param]
            if device_schedule:
                ones += assert_lrs_match(np.array(got_by_name), np.array(want_by_name, dtype=np.float32), f"step {s}")
            else:
                assert got_by_name == want_by_name, f"step {s}"
            assert scheduler.last_epoch == s
        _train_step(model, optimizer, scheduler, s)
    assert ones <= 1e-4 * len(by_param) * len(EDGES) + 1


@pytest.mark.parametrize("device_schedule", [False, True], ids=["host", "device"])
def test_every_parameter_follows_its_task_schedule(device_schedule):
    model = _Outer(embeddings=False)
    cfg = _recap_config()
    optimizer, scheduler = build_optimizer(model, cfg, device_schedule=device_schedule)
    assert scheduler.device_schedule is device_schedule
    _check_every_parameter(model, optimizer, scheduler, _schedules(cfg, False), device_schedule)


def test_every_parameter_follows_its_task_schedule_combined_host():
    model = _Outer()
    cfg = _recap_config()
    optimizer, scheduler = build_optimizer(model, cfg, _embedding_config(), combined=True, device_schedule=False)
    _check_every_parameter(model, optimizer, scheduler, _schedules(cfg, True), False)


def test_every_parameter_follows_its_task_schedule_combined_device():
    model = _Outer()
    cfg = _recap_config()
    optimizer, scheduler = build_optimizer(model, cfg, _embedding_config(), combined=True, device_schedule=True)
    assert scheduler.device_schedule
    _check_every_parameter(model, optimizer, scheduler, _schedules(cfg, True), True)


def _adam_by_hand(model, cfg: RecapOptimizerConfig, schedules, steps: int):
    """recap's optimizer written out: torch Adam, one group per task, lrs set from compute_lr."""
    groups = recap_param_groups(model, list(cfg.multi_task_learning_rates.tower_learning_rates))
    adam = cfg.adam
    optimizer = torch.optim.Adam([{"params": list(ps.values())} for ps in groups.values()],
                                 lr=1.0, betas=(adam.beta_1, adam.beta_2), eps=adam.epsilon)
    for s in range(steps):
        for group, schedule in zip(optimizer.param_groups, schedules.values()):
            group["lr"] = compute_lr(schedule, s)
        x, ids = _batch(s)
        model(x, ids).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("device_schedule", [False, True], ids=["host", "device"])
def test_training_matches_adam_with_recaps_betas_and_eps_by_hand(device_schedule):
    """betas and eps reach the optimizer's arithmetic, not just its group dicts (beta_1 0.95 shows)."""
    cfg = _recap_config()
    model, reference = _Outer(embeddings=False), _Outer(embeddings=False)
    optimizer, scheduler = build_optimizer(model, cfg, device_schedule=device_schedule)
    for s in range(120):
        _train_step(model, optimizer, scheduler, s)
    _adam_by_hand(reference, cfg, _schedules(cfg, False), 120)
    moved = max((a - b).abs().max().item() for a, b in zip(reference.parameters(), _Outer(embeddings=False).parameters()))
    assert moved > 1e-3
    tol = {"rtol": 0, "atol": 0} if not device_schedule else {"rtol": 1e-5, "atol": 1e-7}
    for (name, got), want in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, **tol, msg=lambda m, name=name: f"{name}: {m}")


def test_training_sees_other_betas():
    """The comparison above can fail: Adam with tml core's default betas ends elsewhere."""
    cfg = _recap_config()
    other = cfg.model_copy(update={"adam": RecapAdamConfig(beta_1=0.9, beta_2=0.999, epsilon=1e-7)})
    model, reference = _Outer(embeddings=False), _Outer(embeddings=False)
    optimizer, scheduler = build_optimizer(model, other)
    for s in range(120):
        _train_step(model, optimizer, scheduler, s)
    _adam_by_hand(reference, cfg, _schedules(cfg, False), 120)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))


# --- building from a mapping ----------------------------------------------------------------------


def test_build_optimizer_accepts_a_mapping_in_either_schema():
    recap = {"adam": {"beta_1": 0.85}, "single_task_learning_rate": {"constant": 0.03}}
    optimizer, scheduler = build_optimizer(_Outer(), recap)
    assert tuple(optimizer.param_groups[0]["betas"]) == (0.85, 0.999) and scheduler.get_last_lr() == [0.03]
    optimizer, scheduler = build_optimizer(_Outer(), {"sgd": {"lr": 0.2, "momentum": 0.5}})
    assert type(optimizer) is torch.optim.SGD and scheduler.get_last_lr() == [0.2]
    with pytest.raises(pydantic.ValidationError, match="lr"):
        build_optimizer(_Outer(), {"adam": {"lr": -1.0}})


@pytest.mark.parametrize("bad", ["optimizer.yaml", None, 0.1, [("sgd", {"lr": 0.1})]])
def test_build_optimizer_rejects_other_config_types(bad):
    with pytest.raises(TypeError, match=f"optimizer config must be .* got {type(bad).__name__}"):
        build_optimizer(_Outer(), bad)


def test_build_optimizer_rejects_a_non_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got dict"):
        build_optimizer({"w": torch.zeros(2)}, {"sgd": {"lr": 0.1}})


def test_a_sharded_models_fused_optimizer_needs_the_embedding_schedule():
    """recap appends ``model.fused_optimizer`` to its CombinedOptimizer, scheduled by the embedding
    schedule (tests/tml/test_recap_embedding.py drives a real sharded model)."""
    model = _Outer(embeddings=False)
    model.fused_optimizer = SimpleNamespace(optimizers=[("ebc", object())])
    with pytest.raises(ValueError, match="fused_optimizer.*pass emb_optimizer_config"):
        build_optimizer(model, _recap_config())
    model.fused_optimizer = SimpleNamespace(optimizers=[])  # a dense model's: empty, as recap checks
    build_optimizer(model, _recap_config())

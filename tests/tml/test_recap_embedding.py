"""Recap's embedding learning rate: a sharded model's ``fused_optimizer`` in recap's layout.

A real torchrec model sharded on CPU (``DistributedModelParallel`` over a gloo group of world size
1, tables forced to ``table_wise`` sharding with the ``fused`` kernel, whose fbgemm SGD updates the
tables inside the backward): ``build_optimizer(model, recap_config, emb, combined=True)`` appends
``model.fused_optimizer`` after the dense groups and schedules it with the embedding schedule.
"""

from __future__ import annotations

import io
import logging
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

# torchrec is a test dependency (make test installs it): missing, these tests fail
from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor, PoolingType
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
from torchrec.distributed.planner.types import ParameterConstraints
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from torchrec.optim.keyed import CombinedOptimizer

import fusedsched
from fusedsched import EmbeddingOptimizerConfig, LearningRate, build_optimizer, compute_lr, load_config
from fusedsched.tml.builders import BACKBONE, sanitize

TASKS = ["recap.engagement.is_favorited", "recap.engagement.is_replied"]
CONFIG = {
    "adam": {"beta_1": 0.95, "beta_2": 0.999, "epsilon": 1.0e-7},
    "multi_task_learning_rates": {
        "backbone_learning_rate": {"linear_ramp_to_constant": {"learning_rate": 0.001, "num_ramp_steps": 5}},
        "tower_learning_rates": {
            TASKS[0]: {"constant": 0.0005},
            TASKS[1]: {"piecewise_constant": {"learning_rate_boundaries": [3], "learning_rate_values": [0.002, 0.001]}},
        },
    },
}
# Distinct at every step tested, so that an update at another step's rate is seen.
EMBEDDING = LearningRate(linear_ramp_to_cosine={
    "learning_rate": 0.5, "final_learning_rate": 0.05, "num_ramp_steps": 3, "final_num_steps": 9})
STEPS, SPLIT = 8, 3


@pytest.fixture(scope="module", autouse=True)
def process_group():
    """One gloo group of world size 1 for this module, on a free port; destroyed at the end."""
    if dist.is_initialized():
        pytest.fail("a process group is already initialized; these tests need their own")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    previous = logging.getLogger("torchrec").level
    logging.getLogger("torchrec").setLevel(logging.ERROR)  # the planner's advice on a CPU topology
    try:
        yield
    finally:
        logging.getLogger("torchrec").setLevel(previous)
        dist.destroy_process_group()


class _Recap(nn.Module):
    """A backbone, one tower per task and the sharded tables under ``large_embeddings.ebc``."""

    def __init__(self, tasks=TASKS, pooling=(PoolingType.SUM, PoolingType.SUM)) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 4)
        self.towers = nn.ModuleDict({sanitize(t): nn.Linear(12, 1) for t in tasks})
        self.large_embeddings = nn.Module()
        self.large_embeddings.ebc = EmbeddingBagCollection(
            tables=[EmbeddingBagConfig(name=f"t{i}", embedding_dim=4, num_embeddings=6, feature_names=[f"f{i}"],
                                       pooling=p) for i, p in enumerate(pooling)],
            device=torch.device("meta"),
        )

    def forward(self, x, kjt):
        emb = self.large_embeddings.ebc(kjt).values()
        h = torch.cat([self.backbone(x), emb], dim=1)
        return torch.cat([tower(h) for tower in self.towers.values()], dim=1).sum()


def _sharded(**kwargs) -> DistributedModelParallel:
    torch.manual_seed(0)
    module = _Recap(**kwargs)
    apply_optimizer_in_backward(torch.optim.SGD, module.large_embeddings.ebc.parameters(), {"lr": 0.1})
    tables = [c.name for c in module.large_embeddings.ebc.embedding_bag_configs()]
    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=1, compute_device="cpu"),
        constraints={t: ParameterConstraints(sharding_types=["table_wise"], compute_kernels=["fused"]) for t in tables},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = planner.collective_plan(module, [EmbeddingBagCollectionSharder()], dist.GroupMember.WORLD)
        model = DistributedModelParallel(module, device=torch.device("cpu"), plan=plan)
    with torch.no_grad():  # the same tables in every model built here, so runs compare exactly
        for i, name in enumerate(("t0", "t1")):
            _table(model, name).copy_(torch.rand(6, 4, generator=torch.Generator().manual_seed(i)))
    return model


def _table(model, name: str) -> torch.Tensor:
    weight = model.state_dict()[f"large_embeddings.ebc.embedding_bags.{name}.weight"]
    return weight.local_shards()[0].tensor


def _batch(step: int):
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(2, 3, generator=gen)
    # Each id once per step, so the SGD gradient of a looked-up row is d(loss)/d(pooled row).
    ids = torch.randperm(6, generator=gen)[:4]
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1"], values=ids, lengths=torch.tensor([1, 1, 1, 1]))
    return x, kjt, ids


def _build(model, device_schedule, emb=EMBEDDING):
    return build_optimizer(model, CONFIG, emb, combined=True, device_schedule=device_schedule)


def _train(model, optimizer, scheduler, start, stop):
    """Recap's loop (zero_grad, forward, backward, step, scheduler.step) from ``start`` to ``stop``.

    Returns every group's rate at each step and each step's table updates ``w_before - w_after``
    with their SGD gradients.
    """
    rates, updates = [], []
    for step in range(start, stop):
        x, kjt, ids = _batch(step)
        optimizer.zero_grad()
        rates.append([float(g["lr"]) for g in optimizer.param_groups])
        # loss = sum over samples and towers: d(loss)/d(pooled table i) is the towers' weights on its columns
        tower_w = sum(t.weight[0, 4:] for t in model.module.towers.values()).detach().clone()
        before = {t: _table(model, t).clone() for t in ("t0", "t1")}
        model(x, kjt).backward()
        step_updates = {}
        for i, t in enumerate(("t0", "t1")):
            grad = torch.zeros(6, 4)
            grad[ids[[2 * i, 2 * i + 1]]] = tower_w[4 * i:4 * i + 4]  # feature f<i> of samples 0 and 1
            step_updates[t] = (before[t] - _table(model, t), grad)
        updates.append(step_updates)
        optimizer.step()
        scheduler.step()
    return rates, updates


def _schedules():
    rates = CONFIG["multi_task_learning_rates"]
    towers = [LearningRate.model_validate(rates["tower_learning_rates"][t]) for t in TASKS]
    return [*towers, LearningRate.model_validate(rates["backbone_learning_rate"]), EMBEDDING]


def _f32(value: float) -> float:
    return float(torch.tensor(value, dtype=torch.float32))


@pytest.mark.parametrize("device_schedule", [False, True], ids=["host", "device"])
def test_the_fused_tables_follow_the_embedding_schedule_and_the_dense_groups_theirs(device_schedule):
    model = _sharded()
    optimizer, scheduler = _build(model, device_schedule)
    assert type(optimizer) is CombinedOptimizer and optimizer._optims[-1][1] is model.fused_optimizer
    # The fused tables are listed by named_parameters() too, and left to the fused optimizer: no dense_ebc.
    assert scheduler.group_names == [*TASKS, BACKBONE, "large_embeddings.ebc"]
    fused_group = model.fused_optimizer.param_groups[0]
    assert isinstance(fused_group["lr"], torch.Tensor) == device_schedule
    rates, updates = _train(model, optimizer, scheduler, 0, STEPS)
    for step in range(STEPS):
        want = [compute_lr(s, step) for s in _schedules()]
        if device_schedule:  # float32 views of the LR buffer
            want = [_f32(w) for w in want]
        assert rates[step] == want, step
        for t, (update, grad) in updates[step].items():  # fbgemm's SGD: w -= float32(lr) * grad
            torch.testing.assert_close(update, _f32(want[-1]) * grad, rtol=1e-5, atol=1e-7, msg=f"{t} at {step}")


def _round_trip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("device_schedule", [False, True], ids=["host", "device"])
def test_resume_matches_the_uninterrupted_run_exactly(device_schedule):
    straight_model = _sharded()
    straight_rates, straight_updates = _train(straight_model, *_build(straight_model, device_schedule), 0, STEPS)

    model = _sharded()
    optimizer, scheduler = _build(model, device_schedule)
    _train(model, optimizer, scheduler, 0, SPLIT)
    checkpoint = _round_trip({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "scheduler": scheduler.state_dict()})

    resumed_model = _sharded()
    resumed_model.load_state_dict(checkpoint["model"])
    resumed, resumed_sched = _build(resumed_model, device_schedule)
    resumed.init_state()  # torchrec loads into initialized state only
    resumed.load_state_dict(checkpoint["optimizer"])  # recap's order: optimizer, then scheduler
    resumed_sched.load_state_dict(checkpoint["scheduler"])
    assert resumed_sched.last_epoch == SPLIT
    rates, updates = _train(resumed_model, resumed, resumed_sched, SPLIT, STEPS)

    assert rates == straight_rates[SPLIT:]
    for got, want in zip(updates, straight_updates[SPLIT:]):
        for t in got:
            assert torch.equal(got[t][0], want[t][0]) and torch.equal(got[t][1], want[t][1]), t
    for t in ("t0", "t1"):
        assert torch.equal(_table(resumed_model, t), _table(straight_model, t)), t
    for (name, got), want in zip(resumed_model.named_parameters(), straight_model.parameters()):
        if "embedding_bags" not in name:
            assert torch.equal(got, want), name


def test_every_fused_group_of_a_module_is_scheduled():
    """Tables of different pooling fall into two fbgemm kernels: two groups, named ``<module>#i``
    (recap zips rates with groups and would schedule only the first)."""
    model = _sharded(pooling=(PoolingType.SUM, PoolingType.MEAN))
    assert len(model.fused_optimizer.param_groups) == 2
    optimizer, scheduler = _build(model, False)
    assert scheduler.group_names[-2:] == ["large_embeddings.ebc#0", "large_embeddings.ebc#1"]
    for step in range(3):
        optimizer.zero_grad()
        assert [g["lr"] for g in model.fused_optimizer.param_groups] == [compute_lr(EMBEDDING, step)] * 2
        optimizer.step()
        scheduler.step()


def test_a_fused_optimizer_without_an_embedding_schedule_is_refused():
    model = _sharded()
    with pytest.raises(ValueError, match="fused_optimizer.*pass emb_optimizer_config"):
        build_optimizer(model, CONFIG, None, combined=True)
    group = model.fused_optimizer.param_groups[0]
    assert "name" not in group and "initial_lr" not in group  # refused before anything was built


def test_a_fused_optimizer_needs_the_combined_layout():
    with pytest.raises(ValueError, match="fused_optimizer.*pass combined=True"):
        build_optimizer(_sharded(), CONFIG, EMBEDDING, combined=False)


def test_a_fused_group_named_like_a_task_is_refused():
    """The sharded module ``large_embeddings.ebc`` and a task of that name (its tower keyed by the name)."""
    task = "large_embeddings.ebc"
    config = {**CONFIG, "multi_task_learning_rates": {
        "backbone_learning_rate": CONFIG["multi_task_learning_rates"]["backbone_learning_rate"],
        "tower_learning_rates": {task: {"constant": 0.001}}}}
    model = _sharded(tasks=[task])
    with pytest.raises(ValueError, match=r"collide.*'large_embeddings\.ebc' \(the task 'large_embeddings\.ebc'\)"):
        build_optimizer(model, config, EMBEDDING, combined=True)


def test_the_recap_example_builds_on_a_sharded_model():
    """The example's own embedding section (``model.large_embeddings.optimizer``) drives the tables."""
    path = Path(fusedsched.__file__).parent / "examples" / "recap_optimizer.yaml"
    emb = load_config(path, EmbeddingOptimizerConfig, section="model.large_embeddings.optimizer")
    model = _sharded()
    _, scheduler = build_optimizer(model, CONFIG, emb, combined=True, device_schedule=False)
    assert model.fused_optimizer.param_groups[0]["lr"] == compute_lr(emb.learning_rate, 0) == 0.01


def test_a_single_task_config_schedules_the_fused_tables_too():
    """recap appends the fused optimizer under single_task_learning_rate as well."""
    config = {"adam": CONFIG["adam"], "single_task_learning_rate": {"constant": 0.001}}
    model = _sharded()
    optimizer, scheduler = build_optimizer(model, config, EMBEDDING, combined=True, device_schedule=False)
    assert scheduler.group_names == ["single_task", "large_embeddings.ebc"]
    assert not any("embedding_bags" in name for name in optimizer._optims[0][1].params)
    rates, updates = _train(model, optimizer, scheduler, 0, 4)
    for step in range(4):
        assert rates[step] == [0.001, compute_lr(EMBEDDING, step)]
        for t, (update, grad) in updates[step].items():
            torch.testing.assert_close(update, _f32(rates[step][-1]) * grad, rtol=1e-5, atol=1e-7, msg=t)

"""``LRShim.switch``: a running schedule changed without a jump (docs/switching.md).

- The three recipes (a WSD cooldown from any step, a cosine run extended, a rewarm for continual
  pretraining) give, in host and device mode on every backend that runs here, the rates of an
  ``LRShim`` built from the same hand-written ``join`` config, bit for bit at every step compared;
  the hand-written config resolves ``"current"`` with ``compute_lr`` itself.
- Continuity: the float32 rate at ``at`` is the same before and after the switch.
- The schedule in effect is shown as the join; switches stack, and a switch at an earlier step
  than a planned one replaces it.
- Device mode rewrites the table in place (same tensor, same address), syncs at most once (to read
  a counter that moved unseen), and a compiled ``scheduler.step`` follows without recompiling.
- Bad input is refused before anything changes, naming the argument (or field) and the value.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from _compare import CPU_BACKENDS, CountSyncs, f32
from torch._dynamo.testing import CompileCounterWithBackend

from fusedsched import GraphSafeAdamW, LearningRate, LRShim, compute_lr
from fusedsched.schedule.reference import schedule_marks
from fusedsched.shim.switching import joined

pytestmark = pytest.mark.usefixtures("quiet_user_warnings")

# A warm-up then a stable rate with no end in sight (WSD's stable phase): cooled down from any step.
STABLE = LearningRate(warmup_stable_decay={"learning_rate": 2e-3, "num_ramp_steps": 8, "num_stable_steps": 10**9,
                                           "num_decay_steps": 0})
COSINE = LearningRate(linear_ramp_to_cosine={"learning_rate": 3e-3, "final_learning_rate": 3e-5, "num_ramp_steps": 10,
                                             "final_num_steps": 200})
# A finished stage: warm-up, stable, a 1-sqrt cooldown to 1e-4.
STAGE = LearningRate(warmup_stable_decay={"learning_rate": 2e-3, "final_learning_rate": 1e-4, "num_ramp_steps": 8,
                                          "num_stable_steps": 40, "num_decay_steps": 30, "decay_shape": "1-sqrt"})
OTHERS = {"b": COSINE, "c": LearningRate(constant=5e-4)}


def wsd(learning_rate, final, ramp, stable, decay, shape):
    return {"warmup_stable_decay": {"learning_rate": learning_rate, "final_learning_rate": final,
                                    "num_ramp_steps": ramp, "num_stable_steps": stable, "num_decay_steps": decay,
                                    "decay_shape": shape}}


# name: (configured schedule, the step the switch is made at, its at (None: that step), the new schedule)
RECIPES = {
    "WSD cooldown from any step": (STABLE, 57, None, wsd("current", 3e-5, 0, 0, 40, "linear")),
    "a cosine run extended": (COSINE, 120, 150, wsd("current", 3e-5, 0, 0, 300, "cosine")),
    "a rewarm for continual pretraining": (STAGE, 90, None, wsd(1.5e-3, "current", 12, 20, 25, "1-sqrt")),
}


def resolved(data, value):
    """``data`` with every ``"current"`` replaced by ``value``: the hand-written config's numbers."""
    if isinstance(data, dict):
        return {k: resolved(v, value) for k, v in data.items()}
    return value if data == "current" else data


def by_hand(configured: LearningRate, new: dict, at: int) -> LearningRate:
    """The join config one writes by hand for a switch at ``at``, "current" read from ``compute_lr``."""
    current = compute_lr(configured, at)
    return LearningRate(join={"schedules": [configured.model_dump(exclude_none=True), resolved(new, current)],
                              "boundaries": [at]})


def make(schedules: dict, device: bool, backend=None, spare: int = 0, **kwargs) -> LRShim:
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(2))], "name": n} for n in schedules],
                                lr=0.1)
    return LRShim(optimizer, schedules, device_schedule=device, backend=backend, spare_segments=spare, **kwargs)


def rates(shim: LRShim) -> list[float]:
    """Every group's rate as it is held: float32 (device, read from the buffer) or float64 (host)."""
    return shim.lr_tensor.tolist() if shim.device_schedule else [g["lr"] for g in shim.optimizer.param_groups]


def go_to(shim: LRShim, step: int) -> None:
    """One ``step()`` to ``step`` (from the step before, set directly when it is not the current one)."""
    if shim.last_epoch != step - 1:
        shim.last_epoch = step - 1
    shim.optimizer.step()
    shim.step()


MODES = [pytest.param(False, None, id="host")] + [pytest.param(True, b, id=f"device-{b}") for b in CPU_BACKENDS]


def compared_steps(backend, effective: LearningRate, at: int, switch_step: int, stop: int) -> list[int]:
    """Every step to ``stop``; under the Triton interpreter (a launch costs ~0.1 s) the steps around
    the switch and each change of the schedule in effect."""
    if backend != "triton":
        return list(range(1, stop + 1))
    marks = [m + d for m in (at, switch_step, *schedule_marks(effective)) for d in (-1, 0, 1, 2)]
    return sorted({s for s in (1, 2, *marks, stop) if 1 <= s <= stop})


# host mode with one group (prepared formulas) and three (the native evaluator); device mode with three
GROUPS_AND_MODES = [pytest.param(1, False, None, id="host-one group"), pytest.param(3, False, None, id="host-three groups")]
GROUPS_AND_MODES += [pytest.param(3, True, b, id=f"device-{b}") for b in CPU_BACKENDS]


@pytest.mark.parametrize("groups, device, backend", GROUPS_AND_MODES)
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_a_recipe_is_its_hand_written_join_bit_for_bit(recipe, device, backend, groups):
    configured, switch_step, at, new = RECIPES[recipe]
    at = switch_step if at is None else at
    others = dict(list(OTHERS.items())[: groups - 1])
    shim = make({"a": configured, **others}, device, backend, spare=4)
    hand = make({"a": by_hand(configured, new, at), **others}, device, backend)
    plain = make({"a": configured, **others}, device, backend)  # never switched: the rate at `at` before
    stop = at + 90
    before = None
    for s in compared_steps(backend, hand.lr_dict["a"], at, switch_step, stop):
        for x in (shim, hand, plain):
            go_to(x, s)
        if s == switch_step:
            before = rates(shim)
            shim.switch({"a": new}, at=None if at == switch_step else at)
            assert shim.last_epoch == switch_step
            if at == switch_step:  # continuity: the same float32 rate before and after, every group
                assert [f32(r) for r in rates(shim)] == [f32(r) for r in before], f"{recipe}: a jump at {at}"
            else:  # a future switch changes nothing yet
                assert rates(shim) == before
        if s == at:
            assert [f32(r) for r in rates(shim)] == [f32(r) for r in rates(plain)], f"{recipe}: a jump at {at}"
        assert rates(shim) == rates(hand), f"{recipe}: step {s}"
    assert before is not None and shim.last_epoch == stop
    # the schedule in effect is the join: compute_lr of it is the hand-written one's value, exactly
    assert all(compute_lr(shim.lr_dict["a"], s) == compute_lr(hand.lr_dict["a"], s) for s in range(0, stop, 7))


@pytest.mark.parametrize("device, backend", MODES)
def test_continuity_holds_from_every_step_of_every_kind(device, backend):
    """"current" as the start of a linear decay: host mode's float64 rate is unchanged exactly, device
    mode's float32 rate too, at any step, whatever the schedule switched from."""
    from _compare import CONFIGS

    configs = [c for c in CONFIGS if c.kind != "plateau"][:: 3 if backend == "triton" else 1]
    shim = make({f"g{i}": c for i, c in enumerate(configs)}, device, backend, spare=5)  # 4 switches, 5 segments more
    for step in (3, 11, 64, 173):
        go_to(shim, step)
        before = rates(shim)
        shim.switch({f"g{i}": wsd("current", 1e-5, 0, 0, 50, "linear") for i in range(len(configs))})
        assert rates(shim) == before, f"step {step}"


def test_the_schedule_in_effect_is_the_join_and_switches_stack():
    shim = make({"a": COSINE}, device=False)
    for _ in range(20):
        go_to(shim, shim.last_epoch + 1)
    decay = LearningRate(**wsd(1e-3, 1e-5, 0, 0, 100, "linear"))
    shim.switch({"a": decay}, at=50)  # planned ahead
    assert shim.lr_dict["a"] == LearningRate(join={"schedules": [COSINE, decay], "boundaries": [50]})
    assert [(s.at, list(s.lr)) for s in shim.switches] == [(50, ["a"])]
    hold = LearningRate(constant=7e-4)
    shim.switch({"a": hold}, at=30)  # earlier than the planned one: it replaces it
    assert shim.lr_dict["a"] == LearningRate(join={"schedules": [COSINE, hold], "boundaries": [30]})
    shim.switch({"a": decay}, at=40)  # after it: kept flat, one join
    assert shim.lr_dict["a"] == LearningRate(join={"schedules": [COSINE, hold, decay], "boundaries": [30, 40]})
    assert [s.at for s in shim.switches] == [50, 30, 40]
    assert [compute_lr(shim.lr_dict["a"], s) for s in (29, 30, 39, 40, 41)] == [
        compute_lr(COSINE, 29), 7e-4, 7e-4, 1e-3, compute_lr(decay, 1)]
    state = shim.state_dict()
    assert state["lr_dict"]["a"] == shim.lr_dict["a"].model_dump(exclude_none=True)
    assert [entry["at"] for entry in state["switches"]] == [50, 30, 40]


def test_joined_keeps_the_pieces_before_at_and_drops_the_rest():
    ramp, hold = LearningRate(constant=1.0), LearningRate(constant=2.0)
    old = LearningRate(join={"schedules": [ramp, hold, ramp], "boundaries": [10, 20]})
    new = LearningRate(constant=3.0)
    assert joined(old, new, 15) == LearningRate(join={"schedules": [ramp, hold, new], "boundaries": [10, 15]})
    assert joined(old, new, 10) == LearningRate(join={"schedules": [ramp, new], "boundaries": [10]})
    assert joined(old, new, 25) == LearningRate(join={"schedules": [ramp, hold, ramp, new], "boundaries": [10, 20, 25]})
    assert joined(ramp, new, 0) == LearningRate(join={"schedules": [ramp, new], "boundaries": [0]})
    nested = LearningRate(join={"schedules": [old, new], "boundaries": [15]})
    assert all(compute_lr(joined(old, new, 15), s) == compute_lr(nested, s) for s in range(30))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_device_mode_rewrites_the_table_in_place(backend):
    shim = make({"a": COSINE, "b": STAGE}, True, backend, spare=3)
    table, ptr, version = shim._engine.table, shim._engine.table.data_ptr(), shim._engine.table._version
    shape = tuple(table.shape)
    go_to(shim, 5)
    shim.switch({"a": wsd("current", 0.0, 0, 0, 10, "linear"), "b": {"constant": "current"}})
    assert shim._engine.table is table and table.data_ptr() == ptr and tuple(table.shape) == shape
    assert table._version > version
    assert shim.lr_tensor.data_ptr() == shim.values_tensor.data_ptr()
    # padding segments start at +inf, whatever the programs' lengths
    start = table[:, 0]
    assert torch.isinf(start[-1]).all()
    go_to(shim, 15)
    assert shim.lr_tensor.tolist() == [0.0, f32(compute_lr(STAGE, 5))]


def test_device_mode_syncs_only_to_read_a_counter_that_moved_unseen():
    shim = make({"a": COSINE, "b": STAGE}, True, "native", spare=2)
    go_to(shim, 10)
    with CountSyncs() as counted:
        shim.switch({"a": wsd("current", 0.0, 0, 0, 30, "linear")}, at=20)
    assert counted.count == 0  # the host knows the step: "current" comes from compute_lr, on the host
    shim.mark_device_ahead()  # as after graph replays
    with CountSyncs() as counted:
        shim.switch({"b": {"constant": "current"}})
    assert counted.count == 1  # the counter, read once
    with CountSyncs() as counted:
        for _ in range(5):
            shim.step()
    assert counted.count == 0  # and steps after a switch sync no more than before


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_compiled_step_follows_a_switch_without_recompiling(backend):
    torch._dynamo.reset()
    shim = make({"a": COSINE, "b": STAGE}, True, backend, spare=2)
    compiler = CompileCounterWithBackend("inductor")

    @torch.compile(fullgraph=True, backend=compiler)
    def advance(scheduler):
        scheduler.step()

    new = wsd("current", 1e-5, 0, 0, 8, "linear")
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(4):
            advance(shim)
        shim.switch({"a": new})  # reads the step the compiled steps took (one sync)
        for _ in range(6):
            advance(shim)
    assert compiler.frame_count == 1
    hand = by_hand(COSINE, new, 4)
    assert shim.last_epoch == 10
    assert shim.lr_tensor.tolist() == [f32(compute_lr(hand, 10)), f32(compute_lr(STAGE, 10))]
    torch._dynamo.reset()


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_a_hyperparameter_switches_with_current(device, cpu_capturable):
    model = torch.nn.Linear(2, 1)
    lr = torch.tensor(1e-3) if device else 1e-3
    optimizer = GraphSafeAdamW([{"params": [model.weight], "name": "w"}, {"params": [model.bias], "name": "b"}],
                               lr=lr, capturable=device)
    decay = LearningRate(linear_ramp_to_constant={"learning_rate": 0.1, "num_ramp_steps": 40})
    shim = LRShim(optimizer, {"w": COSINE, "b": COSINE}, device_schedule=device, spare_segments=2,
                  hyperparameters={"w": {"weight_decay": decay}}, multipliers={"w": {"weight_decay": 0.5}})
    for s in range(1, 13):
        go_to(shim, s)
    before = shim.get_last_hyperparameters()
    shim.switch(hyperparameters={"w": {"weight_decay": wsd(0.3, "current", 10, 100, 0, "linear")}})  # rise to 0.3
    assert shim.get_last_hyperparameters() == before  # from where it is: 0.5 * 0.1 * 12 / 40
    effective = shim.hyperparameters["w"]["weight_decay"]
    hand = LearningRate(join={"schedules": [decay, wsd(0.3, compute_lr(decay, 12), 10, 100, 0, "linear")],
                              "boundaries": [12]})
    assert effective == hand
    for s in range(13, 30):
        go_to(shim, s)
        value = 0.5 * compute_lr(hand, s)
        assert shim.get_last_hyperparameters()["w"]["weight_decay"] == (f32(value) if device else value)
    assert shim.state_dict()["hyperparameters"]["w"]["weight_decay"] == hand.model_dump(exclude_none=True)


def test_a_shared_hyperparameter_row_splits_in_host_mode_and_stays_one_in_device_mode(cpu_capturable):
    beta = LearningRate(constant=0.9)
    for device in (False, True):
        model = torch.nn.Linear(2, 1)
        optimizer = GraphSafeAdamW([{"params": [model.weight], "name": "w"}, {"params": [model.bias], "name": "b"}],
                                   lr=torch.tensor(1e-3) if device else 1e-3, capturable=device)
        shim = LRShim(optimizer, {"w": COSINE, "b": COSINE}, device_schedule=device,
                      hyperparameters={"w": {"beta1": beta}, "b": {"beta1": beta}})
        assert shim.hyperparameter_rows == {"w": {"beta1": 2}, "b": {"beta1": 2}}
        one = {"w": {"beta1": {"constant": 0.95}}}
        if device:
            before = shim.state_dict()
            with pytest.raises(ValueError, match=r"hyperparameters\['b'\]\['beta1'\] shares its row of the device "
                                                 r"table with \('w', 'beta1'\)"):
                shim.switch(hyperparameters=one)
            assert shim.state_dict() == before
            shim.switch(hyperparameters={**one, "b": {"beta1": {"constant": 0.95}}})  # together: one row still
            assert shim.hyperparameter_rows == {"w": {"beta1": 2}, "b": {"beta1": 2}}
        else:
            shim.switch(hyperparameters=one)
            assert shim.hyperparameter_rows == {"w": {"beta1": 2}, "b": {"beta1": 3}}
            assert shim.get_last_hyperparameters() == {"w": {"beta1": 0.95}, "b": {"beta1": 0.9}}
            assert [g["betas"][0] for g in optimizer.param_groups] == [0.95, 0.9]


PLATEAU = LearningRate(join={"schedules": [
    {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 5}},
    {"plateau": {"learning_rate": 0.1, "patience": 1, "factor": 0.5}},
], "boundaries": [5]})


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_a_plateau_that_started_is_cut_and_keeps_its_state(device):
    shim = make({"a": PLATEAU}, device, spare=2)
    for _ in range(1, 10):
        shim.optimizer.step()
        shim.step(1.0)  # the same metric: no improvement, the rate halves after patience
    reduced = shim.plateau_states()[("a", "lr")]
    assert reduced[0] < 0.1
    with pytest.raises(ValueError, match=r"schedules\['a'\]: 'current' at step 9, where the schedule in effect is "
                                         r"a plateau"):
        shim.switch({"a": {"constant": "current"}})
    shim.switch({"a": {"constant": 0.02}}, at=12)
    assert shim.plateau_states()[("a", "lr")] == reduced
    for _ in (10, 11):
        shim.optimizer.step()
        shim.step(1.0)
    assert shim.plateau_states()[("a", "lr")] != reduced  # still active before 12
    shim.optimizer.step()
    shim.step(1.0)
    assert shim.get_last_lr() == [f32(0.02) if device else 0.02]
    state = shim.plateau_states()
    shim.optimizer.step()
    shim.step(1.0)
    assert shim.plateau_states() == state  # no longer active


def test_refusals_name_the_argument_and_change_nothing():
    shim = make({"a": PLATEAU, "b": COSINE}, True, "native", spare=1)
    for s in range(1, 4):
        go_to(shim, s)
    future = make({"a": PLATEAU, "b": COSINE}, True, "native", spare=0)
    cases = [
        (shim, dict(schedules={"c": {"constant": 0.1}}), ValueError,
         r"^schedules names group 'c', which is not one of the groups \['a', 'b'\]$"),
        (shim, dict(schedules={"b": {"constant": 0.1}}, at=2), ValueError,
         r"^at=2 is before the current step 3 \(last_epoch\): a switch changes the schedule from a step on"),
        (shim, dict(schedules={"b": wsd("current", 0.0, 0, 0, "current", "linear")}), ValueError,
         r"^schedules\['b'\]\.warmup_stable_decay\.num_decay_steps is 'current', but only a rate field"),
        (shim, dict(schedules={"b": {"cosine_annealing": {"learning_rate": "current", "num_steps": 10,
                                                          "num_cycles": "current"}}}), ValueError,
         r"cosine_annealing\.num_cycles is 'current', but only a rate field"),
        (shim, dict(schedules={"b": {"join": {"schedules": [{"constant": "current"}, {"constant": 0.1}],
                                              "boundaries": ["current"]}}}), ValueError,
         r"^schedules\['b'\]\.join\.boundaries\[0\] is 'current'"),
        (shim, dict(schedules={"b": {"constant": "now"}}), ValueError, r"^schedules\['b'\] is not a valid LearningRate"),
        (shim, dict(schedules={"b": 0.1}), TypeError, r"^schedules\['b'\] must be a LearningRate or a mapping, got float$"),
        (shim, dict(schedules=[("b", {"constant": 0.1})]), TypeError, r"^schedules must be a mapping"),
        (shim, dict(), ValueError, r"^switch\(\) got nothing to switch"),
        (shim, dict(schedules={"b": {"constant": 0.1}}, at=-1), ValueError, r"^at must be >= 0, got -1$"),
        (shim, dict(schedules={"b": {"constant": 0.1}}, at=True), TypeError, r"^at must be an integer, got True"),
        (shim, dict(schedules={"b": {"constant": 0.1}}, at=2**53), OverflowError, r"^at must be <= 2\*\*53 - 2"),
        (shim, dict(hyperparameters={"b": {"weight_decay": {"constant": 0.1}}}), ValueError,
         r"^hyperparameters\['b'\]\['weight_decay'\]: group 'b' has no weight_decay schedule to switch"),
        (shim, dict(hyperparameters={"b": {"gamma": {"constant": 0.1}}}), ValueError,
         r"^hyperparameters\['b'\]\['gamma'\]: unknown hyperparameter 'gamma'"),
        (shim, dict(hyperparameters={"z": {}}), ValueError, r"^hyperparameters names group 'z'"),
        (shim, dict(schedules={"b": PLATEAU}), ValueError, r"^schedules\['b'\] holds a plateau: a switch cannot bring one"),
        (shim, dict(schedules={"a": {"constant": 0.1}}, at=4), ValueError,
         r"^the plateaus must stay where they are"),  # its plateau started at 5: cut away before it starts
        (shim, dict(schedules={"b": {"join": {"schedules": [{"constant": c} for c in (0.1, 0.2, 0.3, 0.4)],
                                              "boundaries": [5, 9, 12]}}}), ValueError,
         r"^the new schedule of group 'b' lr needs 5 segments of the device table, which holds 4 a row \(3 for the "
         r"longest schedule at construction plus spare_segments=1\): build the LRShim with spare_segments=2 or more"),
        (future, dict(schedules={"b": wsd("current", 0.0, 0, 0, 9, "linear")}, at=12), ValueError,
         r"spare_segments=0\): build the LRShim with spare_segments=1 or more \(the room a switch may use\), or in "
         r"host mode \(device_schedule=False\), which has no limit$"),
    ]
    for target, kwargs, error, match in cases:
        before = (target.state_dict(), target.lr_tensor.tolist(), target._engine.table.clone(), target.switches)
        with pytest.raises(error, match=match):
            target.switch(**kwargs)
        after = (target.state_dict(), target.lr_tensor.tolist(), target._engine.table, target.switches)
        assert before[0] == after[0] and before[1] == after[1] and before[3] == after[3], kwargs
        assert torch.equal(before[2], after[2]), kwargs


def test_host_mode_has_no_limit():
    shim = make({"a": COSINE}, False)
    for k in range(1, 30):
        shim.switch({"a": {"constant": k * 1e-4}}, at=shim.last_epoch + 1)
        go_to(shim, shim.last_epoch + 1)
        assert shim.get_last_lr() == [k * 1e-4]
    assert len(shim.lr_dict["a"].join.schedules) == 30


def test_spare_segments_is_checked():
    with pytest.raises(ValueError, match=r"^spare_segments must be >= 0, got -1$"):
        make({"a": COSINE}, True, spare=-1)
    with pytest.raises(TypeError, match=r"^spare_segments must be an integer, got 2.0 \(float\)$"):
        make({"a": COSINE}, True, spare=2.0)
    shim = make({"a": COSINE}, True, spare=4)
    assert shim._engine.table.shape[0] == 3 + 4


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_keeps_the_switches(device, how):
    shim = make({"a": COSINE}, device, spare=2)
    go_to(shim, 5)
    shim.switch({"a": wsd("current", 0.0, 0, 0, 10, "linear")})
    copied = copy.deepcopy(shim) if how == "deepcopy" else pickle.loads(pickle.dumps(shim))
    assert copied.switches == shim.switches and copied.lr_dict == shim.lr_dict
    for s in range(6, 20):
        go_to(shim, s)
        go_to(copied, s)
        assert rates(copied) == rates(shim)
    copied.switch({"a": {"constant": 1e-3}})
    assert len(copied.switches) == 2 and len(shim.switches) == 1


def test_a_switched_schedule_is_compute_lr_of_the_join_in_host_mode_exactly():
    shim = make({"a": COSINE, "b": STAGE, "c": STABLE}, False)  # three rows: the native evaluator
    go_to(shim, 33)
    shim.switch({"b": wsd("current", 0.0, 0, 0, 17, "cosine"), "c": {"constant": "current"}})
    for s in range(34, 80):
        go_to(shim, s)
        assert rates(shim) == [compute_lr(cfg, s) for cfg in shim.lr_dict.values()]
    assert rates(shim)[2] == compute_lr(STABLE, 33)  # "current", held

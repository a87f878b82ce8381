"""Property tests: random valid configs and random step sequences, every mode side by side.

Each example draws one to four configs (any kind, ``strategies.KIND_STRATEGIES``) and a sequence of
operations, and drives the same sequence through several *lanes* at once: host mode, and device mode
on every backend that runs on this machine (native, reference, and Triton under the interpreter that
conftest.py turns on). After every operation each lane is checked against a model of torch's
``LRScheduler`` semantics and against ``compute_lr``:

- ``step()``: ``last_epoch`` goes up by one and every group's rate is ``lr(last_epoch)``;
- ``step(epoch)``: ``last_epoch = epoch`` and the rates are ``lr(epoch)`` (torch's closed form);
- ``last_epoch = k``: the next ``step()`` evaluates step ``k + 1`` (until then the rates are left
  as they were, as torch leaves them);
- ``state_dict()`` saved with ``torch.save`` and loaded (``weights_only=True``) into a fresh
  optimizer and scheduler, in torch's order (scheduler built, then ``optimizer.load_state_dict``,
  then ``scheduler.load_state_dict``): the run continues as if nothing happened, rates ``lr(last_epoch)``;
- every ``step`` call, with or without an epoch, adds one to ``_step_count``; a load restores it.

At every point the rates the optimizer uses are the ones ``get_last_lr()`` reports, and in device
mode the device counter equals ``last_epoch``. Precision (docs/precision.md): host mode equals
``compute_lr`` exactly (float64); device mode is within one float32 ulp of
``float32(compute_lr)``.

Each test uses its own mix of operations, so a failure points at the operation that breaks.

Then the kinds beyond tml's four (``strategies.NEW_KIND_STRATEGIES``), op by op, at steps beside
their edges and far away: the native CPU op's float64 equals ``compute_lr`` bit for bit; every
backend is within one float32 ulp; the vectorized form and the compiled program agree with
``compute_lr``; configs survive a dump / load round trip.
"""

from __future__ import annotations

import io
import math
import random
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from _compare import assert_lrs_match, expected_f32
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import KIND_STRATEGIES, NEW_KIND_STRATEGIES, interesting_steps, ints_in, learning_rates

from fusedsched import LearningRate, LRShim, compute_lr, compute_lr_array
from fusedsched.ops import BACKENDS, _native, advance_, unavailable_reason
from fusedsched.schedule.kinds import build_table
from fusedsched.schedule.program import evaluate_table
from fusedsched.schedule.reference import schedule_marks
from fusedsched.tml.config import MAX_STEP, dump_config, load_config

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # rates beyond float32

DEVICE_BACKENDS = [b for b in BACKENDS if unavailable_reason(b, "cpu") is None]
LANES = ["host"] + DEVICE_BACKENDS


# --- strategies of step sequences --------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn, ops: tuple[str, ...], max_ops: int = 10):
    """``(configs, operations)``: one to four configs and a list of operations drawn from ``ops``.

    Operations: ``("step", n)`` calls ``optimizer.step(); scheduler.step()`` n times,
    ``("jump", e)`` calls ``scheduler.step(epoch=e)``, ``("set", k)`` assigns ``last_epoch = k``,
    ``("save",)`` checkpoints and resumes into a fresh optimizer and scheduler.
    """
    configs = draw(st.lists(learning_rates, min_size=1, max_size=4))
    epochs = interesting_steps(configs)
    choices = {
        "step": st.tuples(st.just("step"), st.integers(1, 4)),
        "jump": st.tuples(st.just("jump"), epochs),
        "set": st.tuples(st.just("set"), epochs),
        "save": st.just(("save",)),
    }
    operations = draw(st.lists(st.one_of(*(choices[op] for op in ops)), min_size=1, max_size=max_ops))
    return configs, operations


# --- lanes: one optimizer and scheduler per mode/backend --------------------------------------


def _through_torch_save(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@dataclass
class Expected:
    """What torch's ``LRScheduler`` semantics say the scheduler's state is now."""

    epoch: int = 0
    step_count: int = 1
    lrs_known: bool = True  # False after a last_epoch assignment, until the next step or load


class Lane:
    """One scheduler (host mode, or device mode on one backend) over named SGD param groups.

    ``schedules`` maps group name -> config (the ``lr_dict`` order); ``declared`` is the order the
    optimizer's groups are declared in.
    """

    def __init__(self, lane: str, schedules: dict[str, LearningRate], declared: list[str]) -> None:
        self.lane, self.schedules, self.declared = lane, schedules, declared
        self.optimizer, self.shim = self._build()

    def _build(self) -> tuple[torch.optim.Optimizer, LRShim]:
        groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "name": name} for name in self.declared]
        optimizer = torch.optim.SGD(groups, lr=0.0)
        if self.lane == "host":
            return optimizer, LRShim(optimizer, self.schedules, device_schedule=False)
        return optimizer, LRShim(optimizer, self.schedules, device_schedule=True, backend=self.lane)

    def apply(self, operation: tuple) -> None:
        kind = operation[0]
        if kind == "step":
            self.optimizer.step()
            self.shim.step()
        elif kind == "jump":
            self.optimizer.step()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torch's epoch deprecation warning
                self.shim.step(epoch=operation[1])  # positional: a plateau's metric
        elif kind == "set":
            self.shim.last_epoch = operation[1]
        elif kind == "save":
            self.resume(self.declared, self.schedules, with_optimizer=True)
        else:  # pragma: no cover
            raise AssertionError(operation)

    def resume(self, declared: list[str], schedules: dict[str, LearningRate], with_optimizer: bool) -> None:
        """Save this lane's state and load it into a fresh optimizer and scheduler built as given."""
        state = _through_torch_save(self.shim.state_dict())
        optimizer_state = _through_torch_save(self.optimizer.state_dict())
        self.declared, self.schedules = declared, schedules
        self.optimizer, self.shim = self._build()
        if with_optimizer:
            self.optimizer.load_state_dict(optimizer_state)
        self.shim.load_state_dict(state)

    def check(self, expected: Expected, what: str) -> None:
        shim, where = self.shim, f"{self.lane} lane, {what}"
        assert shim.last_epoch == expected.epoch, f"{where}: last_epoch {shim.last_epoch} != {expected.epoch}"
        assert shim._step_count == expected.step_count, (
            f"{where}: _step_count {shim._step_count} != {expected.step_count}"
        )
        if self.lane != "host":
            counter = int(shim.step_tensor.item())
            assert counter == expected.epoch, f"{where}: device counter {counter} != last_epoch {expected.epoch}"
        reported = shim.get_last_lr()
        used = [float(group["lr"]) for group in self.optimizer.param_groups]
        # NaN equals NaN here (a rate that overflows to inf - inf), which float == does not say
        assert np.array_equal(used, reported, equal_nan=True), f"{where}: the optimizer uses {used} but get_last_lr() reports {reported}"
        if not expected.lrs_known:
            return
        want = [compute_lr(self.schedules[name], expected.epoch) for name in self.declared]
        if self.lane == "host":
            assert np.array_equal(reported, want, equal_nan=True), f"{where}, step {expected.epoch}: {reported} != compute_lr {want}"
        else:
            with np.errstate(over="ignore"):  # rates beyond float32's range round to inf, as on the device
                want32 = np.array(want, dtype=np.float64).astype(np.float32)
            assert_lrs_match(np.array(reported, dtype=np.float32), want32, f"{where}, step {expected.epoch}")


def _advance_model(expected: Expected, operation: tuple) -> list[Expected]:
    """The expected state after each scheduler call that ``operation`` makes."""
    kind = operation[0]
    if kind == "step":
        states = []
        for _ in range(operation[1]):
            expected = Expected(expected.epoch + 1, expected.step_count + 1, True)
            states.append(expected)
        return states
    if kind == "jump":
        return [Expected(operation[1], expected.step_count + 1, True)]
    if kind == "set":
        return [Expected(operation[1], expected.step_count, False)]
    return [Expected(expected.epoch, expected.step_count, True)]  # save and resume


def _run(configs: list[LearningRate], operations: list[tuple]) -> None:
    names = [f"g{i}" for i in range(len(configs))]
    schedules = dict(zip(names, configs))
    lanes = [Lane(lane, schedules, names) for lane in LANES]
    expected = Expected()
    for lane in lanes:
        lane.check(expected, "after construction")
    for i, operation in enumerate(operations):
        states = _advance_model(expected, operation)
        if operation[0] == "step":  # check after every single step
            for n, state in enumerate(states, 1):
                for lane in lanes:
                    lane.apply(("step", 1))
                    lane.check(state, f"operation {i} {operation}, step {n}")
        else:
            for lane in lanes:
                lane.apply(operation)
                lane.check(states[-1], f"operation {i} {operation}")
        expected = states[-1]


# --- the strategies cover every kind ----------------------------------------------------------


def test_every_kind_has_a_strategy():
    """A new schedule kind needs its strategy in tests/strategies.py, or it goes untested here."""
    missing = [kind for kind in LearningRate.KINDS if kind not in KIND_STRATEGIES]
    assert not missing, f"no strategy in tests/strategies.py KIND_STRATEGIES for kind(s) {missing}"
    unknown = [kind for kind in KIND_STRATEGIES if kind not in LearningRate.KINDS]
    assert not unknown, f"KIND_STRATEGIES names kind(s) that LearningRate does not have: {unknown}"


@given(st.data())
def test_each_strategy_draws_its_own_kind(data):
    kind = data.draw(st.sampled_from(sorted(KIND_STRATEGIES)))
    assert data.draw(KIND_STRATEGIES[kind]).kind == kind


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_is_driven_here(backend):
    """The lanes include each backend that runs on this machine; say so when one does not."""
    reason = unavailable_reason(backend, "cpu")
    if reason is not None:
        pytest.skip(f"device mode on {backend!r} is not in the property tests here: {reason}")
    assert backend in LANES


# --- the properties -----------------------------------------------------------------------------


@given(scenarios(ops=("step",)))
def test_stepping(scenario):
    _run(*scenario)


@given(scenarios(ops=("step", "jump")))
def test_step_with_epoch_jumps(scenario):
    _run(*scenario)


@given(scenarios(ops=("step", "set")))
def test_last_epoch_assignments(scenario):
    _run(*scenario)


@given(scenarios(ops=("step", "save")))
def test_checkpoint_and_resume_at_random_points(scenario):
    _run(*scenario)


@given(scenarios(ops=("step", "jump", "set", "save"), max_ops=14))
def test_every_operation_mixed(scenario):
    _run(*scenario)


@given(
    scenarios(ops=("step", "jump"), max_ops=4),
    st.randoms(use_true_random=False),
)
def test_load_matches_groups_by_name(scenario, rng: random.Random):
    """Save with groups declared in one order; resume with the groups and ``lr_dict`` in others.

    Each group keeps its own schedule: the state is matched to the groups by name, not position.
    """
    configs, operations = scenario
    names = [f"g{i}" for i in range(len(configs))]
    schedules = dict(zip(names, configs))
    saved = rng.sample(names, len(names))
    lanes = [Lane(lane, schedules, saved) for lane in LANES]
    expected = Expected()
    for operation in operations:
        states = _advance_model(expected, operation)
        for lane in lanes:
            for _ in states:
                lane.apply(operation if operation[0] == "jump" else ("step", 1))
        expected = states[-1]
    declared, keys = rng.sample(names, len(names)), rng.sample(names, len(names))
    for lane in lanes:
        # The optimizer's own load_state_dict matches groups by position (torch's rule), so only
        # the scheduler's state is carried over here.
        lane.resume(declared, {name: schedules[name] for name in keys}, with_optimizer=False)
        lane.check(expected, f"saved with groups {saved}, resumed with groups {declared} and lr_dict keys {keys}")
    for lane in lanes:
        lane.apply(("step", 1))
        lane.check(Expected(expected.epoch + 1, expected.step_count + 1, True), "one step after resuming")


# --- the kinds beyond tml's four, op by op ------------------------------------------------------

EXTREME = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow to inf, 0 * inf in extreme draws
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _scale(cfg: LearningRate) -> float:
    """The config's largest finite rate: rounding in a formula is relative to its terms, not its result."""
    def floats(data):
        if isinstance(data, float):
            yield data
        elif isinstance(data, dict):
            for v in data.values():
                yield from floats(v)
        elif isinstance(data, list):
            for v in data:
                yield from floats(v)

    return max((abs(v) for v in floats(cfg.model_dump(exclude_none=True)) if math.isfinite(v)), default=0.0)


@st.composite
def configs_and_steps(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(NEW_KIND_STRATEGIES)), min_size=1, max_size=4))
    configs = [draw(NEW_KIND_STRATEGIES[k]) for k in kinds]
    edges = sorted({0} | set(m for c in configs for m in schedule_marks(c))
                   | set().union(*(ints_in(c.model_dump(exclude_none=True)) for c in configs)))
    near = st.builds(lambda m, d: min(max(m + d, 0), MAX_STEP), st.sampled_from(edges), st.integers(-2, 2))
    steps = draw(st.lists(st.one_of(near, st.integers(0, 300), st.integers(0, MAX_STEP)), min_size=1, max_size=6))
    return configs, steps


@EXTREME
@pytest.mark.skipif(_native._C is None, reason=f"native extension not available: {_native.REASON}")
@SETTINGS
@given(configs_and_steps())
def test_native_float64_is_compute_lr(case):
    configs, steps = case
    table = build_table(configs).table
    step, lrs = torch.zeros((), dtype=torch.int64), torch.zeros(len(configs), dtype=torch.float64)
    for s in steps:
        step.fill_(s)
        torch.ops.fusedsched.advance_native_.default(step, table, lrs, 0)
        for got, cfg in zip(lrs.tolist(), configs):
            want = compute_lr(cfg, s)
            assert got == want or (math.isnan(got) and math.isnan(want)), (cfg, s, got, want)


@EXTREME
@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
@SETTINGS
@given(case=configs_and_steps())
def test_every_backend_within_one_ulp(backend, case):
    configs, steps = case
    table = build_table(configs).table
    for s in steps:
        step, lrs = torch.tensor(s), torch.zeros(len(configs), dtype=torch.float32)
        advance_(step, table, lrs, 0, backend)
        assert_lrs_match(lrs, expected_f32(configs, s), f"{backend} step {s}: {configs}")


@pytest.mark.precision
@EXTREME
@SETTINGS
@given(configs_and_steps())
def test_program_and_array_agree_with_compute_lr(case):
    configs, steps = case
    table = build_table(configs).table
    scale = np.array([_scale(c) for c in configs])
    for s in steps:
        want = np.array([compute_lr(c, s) for c in configs])
        got = evaluate_table(table, torch.tensor(s)).numpy()
        array = np.array([compute_lr_array(c, np.array([s]))[0] for c in configs])
        for other, what in ((got, "program"), (array, "array")):  # torch's / numpy's libm: last bits differ
            with np.errstate(invalid="ignore", over="ignore"):
                close = (other == want) | (np.isnan(other) & np.isnan(want)) | (
                    np.abs(other - want) <= 1e-12 * np.maximum(np.abs(want), scale))
            assert close.all(), (what, s, configs, other, want)


@EXTREME
@SETTINGS
@given(st.sampled_from(sorted(NEW_KIND_STRATEGIES)).flatmap(lambda k: NEW_KIND_STRATEGIES[k]))
def test_dump_load_round_trip(cfg):
    for fmt in ("dict", "yaml", "json"):
        assert load_config(dump_config(cfg, fmt), LearningRate) == cfg

"""The backends' records and the launcher an engine binds once (``fusedsched.ops.bind``).

Every backend's launches take the op's inputs in ``OpInputs``' order (the one Python statement of
the schema besides the op's declaration and its fake); a bound launcher passes only what changes per
step, by keyword, and gives the same counter and rates as the one-shot ``advance_``.
"""

import inspect

import pytest
import torch
from _compare import CONFIGS, assert_lrs_match, expected_f32

from fusedsched import ops
from fusedsched.ops import BACKENDS, OpInputs, bind
from fusedsched.ops.backends import advance_op
from fusedsched.schedule.kinds import build_table

CPU_BACKENDS = [b for b in BACKENDS if ops.unavailable_reason(b, "cpu") is None]


def _parameters(launch) -> list[str]:
    if hasattr(launch, "func"):  # a functools.partial over the op: its parameters but the bound backend
        func = getattr(launch.func, "_init_fn", launch.func)
        return [p for p in inspect.signature(func).parameters if p not in launch.keywords]
    return list(inspect.signature(launch).parameters)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_launch_of_every_backend_takes_the_inputs_in_the_schemas_order(backend):
    record = BACKENDS[backend]
    assert record.name == backend
    launches = {"traceable": record.traceable, "run": record.run}
    if ops.unavailable_reason(backend, "cpu") is None:
        launches["eager"] = record.eager()
    if backend == "triton":  # its run imports the kernel module on first use and passes *inputs on
        from fusedsched.ops import _triton

        launches["run"] = _triton.launch
    for what, launch in launches.items():
        assert _parameters(launch) == list(OpInputs._fields), f"{backend}.{what}: {_parameters(launch)}"
    op_params = [p for p in inspect.signature(advance_op._init_fn).parameters]
    assert op_params == [*OpInputs._fields, "backend"]


def test_the_records_answer_for_the_dispatcher():
    for name, record in BACKENDS.items():
        assert ops.unavailable_reason(name, "cpu") == record.unavailable(torch.device("cpu"))
    assert ops.explain("cpu")["reference"] == "available"
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'native', 'triton', 'reference'; got 'x'"):
        ops.unavailable_reason("x", "cpu")


def _bound(backend: str, start: int = 16, **extra):
    table = build_table(CONFIGS, "cpu").table
    step, lrs = torch.full((), start, dtype=torch.int64), torch.zeros(len(CONFIGS))
    return bind(backend, step, table, lrs, **extra), step, lrs


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_bound_launcher_advances_evaluates_and_repeats(backend):
    launcher, step, lrs = _bound(backend)
    launcher.advance()
    assert step.item() == 17
    assert_lrs_match(lrs, expected_f32(CONFIGS, 17))
    launcher.advance(0)  # evaluate in place
    assert step.item() == 17
    launcher.traced(amount=torch.tensor(3))
    assert step.item() == 20
    assert_lrs_match(lrs, expected_f32(CONFIGS, 20))
    plain, on_flag = launcher.fixed(), launcher.fixed(skip=torch.tensor(True))
    plain()
    on_flag()  # skipped: the counter stays, the rates are those of step 21
    assert step.item() == 21
    assert_lrs_match(lrs, expected_f32(CONFIGS, 21))


def test_the_plain_native_launch_is_the_c_entry_point_without_optional_inputs():
    if ops.unavailable_reason("native", "cpu") is not None:
        pytest.skip(ops.unavailable_reason("native", "cpu"))
    launcher, step, lrs = _bound("native")
    plain = launcher.fixed()
    assert plain.func is ops._native.launch and len(plain.args) == 4  # step, table, lrs, increment
    assert len(launcher.fixed(skip=torch.tensor(True)).args) == 6


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_scale_is_compared_with_the_bound_previous_scale(backend):
    previous = torch.tensor(1024.0)
    launcher, step, lrs = _bound(backend, previous_scale=previous)
    launcher.advance(scale=torch.tensor([512.0]))  # backed off: the step was skipped
    assert step.item() == 16 and previous.item() == 512.0
    launcher.advance(scale=torch.tensor([512.0]))  # kept: applied
    launcher.advance(scale=torch.tensor([1024.0]))  # grown: applied
    assert step.item() == 18 and previous.item() == 1024.0
    assert_lrs_match(lrs, expected_f32(CONFIGS, 18))


def test_per_step_inputs_are_keywords_only():
    launcher, _, _ = _bound("reference")
    with pytest.raises(TypeError):
        launcher.advance(1, torch.tensor(2))


def test_bind_checks_the_bound_tensors_and_names_them():
    table = build_table(CONFIGS, "cpu").table
    step, lrs = torch.zeros((), dtype=torch.int64), torch.zeros(len(CONFIGS))
    with pytest.raises(ValueError, match="lrs must be a contiguous float32 vector"):
        bind("reference", step, table, lrs.double())
    with pytest.raises(ValueError, match="previous_scale must be a one-element float32 tensor, got torch.float64"):
        bind("reference", step, table, lrs, previous_scale=torch.zeros((), dtype=torch.float64))
    with pytest.raises(ValueError, match="plateau must be a float64 tensor of shape"):
        bind("reference", step, table, lrs, plateau=torch.zeros(2))
    with pytest.raises(ValueError, match="backend must be one of 'native', 'triton', 'reference'; got 'auto'"):
        bind("auto", step, table, lrs)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_fixed_launch_of_a_scale_reads_it_and_the_previous_scale_at_each_call(backend):
    """``fixed(scale=s)``: the GradScaler path without the keyword call; ``s`` is read when it runs."""
    previous, scale = torch.tensor(1024.0), torch.tensor([512.0])
    launcher, step, lrs = _bound(backend, previous_scale=previous)
    on_scale = launcher.fixed(scale=scale)
    on_scale()  # backed off: skipped
    assert step.item() == 16 and previous.item() == 512.0
    on_scale()  # kept: applied
    scale.fill_(1024.0)
    on_scale()  # grown: applied
    assert step.item() == 18 and previous.item() == 1024.0
    assert_lrs_match(lrs, expected_f32(CONFIGS, 18))

"""``fusedsched.shim.checkpoint``: a scheduler state is parsed and checked without any optimizer.

``parse_state_dict`` gets plain dicts, good and broken, and must return the resume state in the
scheduler's group order or raise the documented error naming the entry and the value;
``schedule_differences`` must name every changed field by its path, nested ``join`` / ``product``
schedules included.
"""

from __future__ import annotations

import io

import pytest
import torch

from fusedsched import LearningRate
from fusedsched.shim.checkpoint import MAX_EPOCH, ResumeState, check_step, parse_state_dict, schedule_differences

RAMP = LearningRate(linear_ramp_to_constant={"learning_rate": 0.1, "num_ramp_steps": 7})
COSINE = LearningRate(
    linear_ramp_to_cosine={"learning_rate": 0.5, "final_learning_rate": 0.01, "num_ramp_steps": 3, "final_num_steps": 30}
)
CONFIGURED = {"encoder": RAMP, "head": COSINE}
NAMES = ["encoder", "head"]


def _state(**patch) -> dict:
    """A state as ``LRShim.state_dict()`` writes it (device mode) for groups encoder, head."""
    state = {
        "last_epoch": 4,
        "_step_count": 5,
        "base_lrs": [0.5, 0.25],
        "_last_lr": [0.05, 0.3],
        "lr_dict": {name: cfg.model_dump(exclude_none=True) for name, cfg in CONFIGURED.items()},
        "device_step": 4,
    }
    state.update(patch)
    return state


def _through_torch_save(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _join(decay_rate: float, boundaries=(5,), more=()) -> LearningRate:
    """join -> [ramp, product -> [exponential_decay, constant]] (+ more schedules)."""
    return LearningRate(
        join={
            "schedules": [
                {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 5}},
                {"product": {"schedules": [
                    {"exponential_decay": {"learning_rate": 1.0, "decay_rate": decay_rate, "decay_steps": 10}},
                    {"constant": 0.1},
                ]}},
                *more,
            ],
            "boundaries": list(boundaries),
        }
    )


# --- good states ------------------------------------------------------------------------------------


def test_a_saved_state_parses_into_the_resume_state():
    resume = parse_state_dict(_through_torch_save(_state()), NAMES, CONFIGURED)
    assert resume == ResumeState(last_epoch=4, step_count=5, base_lrs=(0.5, 0.25), differences=())


def test_optional_entries_may_be_missing_or_none():
    assert parse_state_dict({"last_epoch": -1}, NAMES, CONFIGURED) == ResumeState(-1, None, None, ())
    state = _state(_step_count=None, base_lrs=None, lr_dict=None, device_step=None)
    assert parse_state_dict(state, NAMES, CONFIGURED) == ResumeState(4, None, None, ())


def test_groups_are_matched_by_name_and_base_lrs_follow_the_group_order():
    saved = _state(lr_dict={"head": COSINE.model_dump(), "encoder": RAMP.model_dump()}, base_lrs=[0.25, 0.5])
    resume = parse_state_dict(saved, NAMES, CONFIGURED)
    assert resume.base_lrs == (0.5, 0.25) and resume.differences == ()


def test_tensor_base_lrs_become_floats():
    resume = parse_state_dict(_state(base_lrs=[torch.tensor(0.5), torch.tensor(0.25, dtype=torch.float64)]), NAMES, CONFIGURED)
    assert resume.base_lrs == (0.5, 0.25) and all(type(v) is float for v in resume.base_lrs)


def test_changed_schedules_are_listed_and_strict_refuses_them():
    final_60 = COSINE.model_dump()
    final_60["linear_ramp_to_cosine"]["final_num_steps"] = 60
    configured = {"encoder": COSINE, "head": LearningRate.model_validate(final_60)}
    resume = parse_state_dict(_state(), NAMES, configured)
    assert resume.differences == (
        "group 'encoder': schedule kind is linear_ramp_to_constant in the checkpoint, linear_ramp_to_cosine configured",
        "group 'head': linear_ramp_to_cosine.final_num_steps is 30 in the checkpoint, 60 configured",
    )
    assert resume.last_epoch == 4
    with pytest.raises(ValueError, match=r"(?s)strict=True.*'encoder': schedule kind.*'head': linear_ramp_to_cosine"):
        parse_state_dict(_state(), NAMES, configured, strict=True)


# --- broken states ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, error, match",
    [
        (["last_epoch", 4], TypeError, r"state_dict must be a mapping \(from LRShim.state_dict\(\)\), got list"),
        ({"_step_count": 3}, ValueError, r"state_dict has no 'last_epoch' \(keys: \['_step_count'\]\)"),
        (_state(last_epoch=-5), ValueError, r"last_epoch'\] must be >= -1, got -5"),
        (_state(last_epoch=12.0), TypeError, r"last_epoch'\] must be an integer, got 12.0"),
        (_state(last_epoch=True), TypeError, r"last_epoch'\] must be an integer, got True"),
        (_state(last_epoch=2**63), OverflowError, r"last_epoch'\] must be < 2\*\*63"),
        (_state(last_epoch=5, device_step=20), ValueError, r"device_step'\] \(20\) != .*last_epoch'\] \(5\)"),
        (_state(device_step=-7), ValueError, r"device_step'\] must be >= -1, got -7"),
        (_state(_step_count="3"), TypeError, r"_step_count'\] must be an integer"),
        (_state(_step_count=-1), ValueError, r"_step_count'\] must be >= 0, got -1"),
        (_state(base_lrs=[0.5]), ValueError, r"base_lrs'\] must be a list of 2 numbers \(one per group\), got \[0.5\]"),
        (_state(base_lrs=0.5), ValueError, r"base_lrs'\] must be a list of 2 numbers"),
        (_state(base_lrs=[0.5, "x"]), TypeError, r"base_lrs'\] must hold numbers, got \[0.5, 'x'\]"),
        (_state(lr_dict={"encoder": {"constant": -1.0}, "head": {"constant": 0.1}}), ValueError, r"lr_dict'\]\['encoder'\] is not a valid"),
        (_state(lr_dict=["x"]), TypeError, r"lr_dict'\] must be a mapping"),
        (_state(lr_dict={}), ValueError, r"lr_dict'\] is empty"),
        (_state(lr_dict={"encoder": {"constant": 0.1}, "decoder": {"constant": 0.1}}), ValueError,
         r"the state's groups \['encoder', 'decoder'\] do not match this LRShim's groups \['encoder', 'head'\]: "
         r"no schedule in the state for \['head'\], not in this LRShim: \['decoder'\]"),
    ],
)
def test_a_broken_state_is_refused_with_the_entry_and_the_value(state, error, match):
    with pytest.raises(error, match=match):
        parse_state_dict(state, NAMES, CONFIGURED)


def test_check_step_bounds():
    assert check_step(MAX_EPOCH, "s") == MAX_EPOCH and check_step(-1, "s", minimum=-1) == -1
    assert type(check_step(torch.tensor(3).numpy()[()], "s")) is int  # numpy integers are taken as ints
    with pytest.raises(OverflowError, match="s must be < 2"):
        check_step(MAX_EPOCH + 1, "s")


# --- schedule differences -----------------------------------------------------------------------------


def test_a_change_inside_join_and_product_is_named_by_its_path():
    assert schedule_differences("g", _join(0.5), _join(0.9)) == [
        "group 'g': join.schedules[1].product.schedules[0].exponential_decay.decay_rate is 0.5 in the checkpoint, 0.9 configured"
    ]
    assert schedule_differences("g", _join(0.5), _join(0.5)) == []


def test_lists_of_another_length_are_shown_whole_with_their_lengths():
    lines = schedule_differences("g", _join(0.5), _join(0.5, boundaries=(5, 9), more=({"constant": 0.2},)))
    assert len(lines) == 2
    assert lines[0].startswith("group 'g': join.schedules is [{'linear_ramp_to_constant': ")
    assert lines[0].endswith("in the checkpoint (length 2), " + repr(
        _join(0.5, boundaries=(5, 9), more=({"constant": 0.2},)).model_dump(exclude_none=True)["join"]["schedules"]
    ) + " configured (length 3)")
    assert lines[1] == "group 'g': join.boundaries is [5] in the checkpoint (length 1), [5, 9] configured (length 2)"


def test_lists_of_equal_length_are_compared_entry_by_entry():
    def piecewise(boundaries):
        return LearningRate(piecewise_constant={"learning_rate_boundaries": boundaries, "learning_rate_values": [0.3, 0.1, 0.03]})

    assert schedule_differences("p", piecewise([3, 10]), piecewise([3, 11])) == [
        "group 'p': piecewise_constant.learning_rate_boundaries[1] is 10 in the checkpoint, 11 configured"
    ]


def test_another_kind_inside_a_join_is_named_by_its_path():
    saved = LearningRate(join={"schedules": [{"constant": 0.1}, {"constant": 0.2}], "boundaries": [3]})
    configured = LearningRate(join={"schedules": [{"constant": 0.1}, {"product": {"schedules": [{"constant": 0.2}]}}], "boundaries": [3]})
    assert schedule_differences("k", saved, configured) == [
        "group 'k': schedule kind of join.schedules[1] is constant in the checkpoint, product configured"
    ]


def test_flat_fields_keep_their_messages():
    optional = LearningRate(exponential_decay={"learning_rate": 1.0, "decay_rate": 0.5, "decay_steps": 10, "end_learning_rate": 0.1})
    plain = LearningRate(exponential_decay={"learning_rate": 1.0, "decay_rate": 0.5, "decay_steps": 10})
    assert schedule_differences("e", optional, plain) == [
        "group 'e': exponential_decay.end_learning_rate is 0.1 in the checkpoint, None configured"
    ]
    assert schedule_differences("c", LearningRate(constant=0.1), LearningRate(constant=0.2)) == [
        "group 'c': constant is 0.1 in the checkpoint, 0.2 configured"
    ]
    assert schedule_differences("r", RAMP, COSINE) == [
        "group 'r': schedule kind is linear_ramp_to_constant in the checkpoint, linear_ramp_to_cosine configured"
    ]

"""Float64 evaluation on the host (``fusedsched.ops.host``): ``compute_lr_array`` (one schedule at many
steps) and ``host_evaluator`` (every row at one step), against ``compute_lr``, with the native CPU
op and without it (the torch reference math)."""

import numpy as np
import pytest
import torch
from _compare import CONFIGS

from fusedsched.ops import _native, host
from fusedsched.ops.host import compute_lr_array
from fusedsched.schedule.fields import MAX_STEP
from fusedsched.schedule.kinds import build_table
from fusedsched.schedule.reference import compute_lr, schedule_marks
from fusedsched.tml.config import LearningRate

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability

NATIVE = _native.unavailable_reason(torch.device("cpu")) is None


def constant(c):
    return LearningRate(constant=c)


def piecewise(boundaries, values):
    return LearningRate(piecewise_constant=dict(learning_rate_boundaries=boundaries, learning_rate_values=values))


def ramp(L, R):
    return LearningRate(linear_ramp_to_constant=dict(learning_rate=L, num_ramp_steps=R))


def cosine(L, F, R, T):
    return LearningRate(
        linear_ramp_to_cosine=dict(learning_rate=L, final_learning_rate=F, num_ramp_steps=R, final_num_steps=T)
    )


def values(cfg, steps):
    return [compute_lr(cfg, s) for s in steps]


# --- the vectorized form -------------------------------------------------------------------------

TML_KINDS = ("constant", "piecewise_constant", "linear_ramp_to_constant", "linear_ramp_to_cosine")
NEW_KINDS = [c for c in CONFIGS if c.kind not in TML_KINDS] + [
    LearningRate(cosine_with_restarts=dict(learning_rate=1.0, cycle_steps=3, cycle_mult=7, cycle_decay=0.5)),
    LearningRate(exponential_decay=dict(learning_rate=2.0, decay_rate=1.001, decay_steps=1)),
]
EXACT_KINDS = {"constant", "piecewise_constant", "linear_ramp_to_constant"}

GRID_CONFIGS = [
    constant(0.1),
    constant(0.0),
    piecewise([10, 20], [0.1, 0.01, 0.001]),
    piecewise([0, 3, 100, 10**10], [0.5, 0.4, 0.3, 0.2, 0.1]),
    piecewise([], [0.7]),
    ramp(0.1, 3),
    ramp(1e-3, 1000),
    ramp(1.0, 2**40),
    cosine(1.0, 0.25, 4, 12),
    cosine(0.3, 0.07, 7, 1000),
    cosine(1e-3, 0.0, 1, 2),
    cosine(0.1, 0.2, 50, 250),
    cosine(2e-3, 1e-5, 1000, 2**41),
    *NEW_KINDS,
]


def grid_steps(cfg):
    marks = schedule_marks(cfg)
    around = [m + d for m in marks for d in (-1, 0, 1) if m + d >= 0]
    return sorted(set(range(300)) | set(around) | {10**10, 2**40, 2**40 + 1, 2**53, 2**62})


@pytest.fixture(params=["native", "torch"])
def evaluator(request, monkeypatch):
    """compute_lr_array's two ways to evaluate a program: the native CPU op, or (without the
    extension) the torch reference math."""
    if request.param == "native" and not NATIVE:
        pytest.skip(f"native extension not available: {_native.REASON}")
    if request.param == "torch":
        monkeypatch.setattr(_native, "unavailable_reason", lambda device: "disabled by the test")
    return request.param


@pytest.mark.parametrize("cfg", GRID_CONFIGS, ids=lambda c: c.kind)
def test_array_agrees_with_scalar(cfg, evaluator):
    steps = grid_steps(cfg)
    got = compute_lr_array(cfg, np.array(steps, dtype=np.int64))
    want = np.array(values(cfg, steps))
    assert got.dtype == np.float64 and got.shape == (len(steps),)
    if evaluator == "torch" and cfg.kind not in EXACT_KINDS:
        # torch's vectorized cos / pow / sqrt may differ from the C library's in the last bit; that
        # moves the result by a few ulps of the schedule's largest rate.
        tol = 8 * np.spacing(np.abs(want[np.isfinite(want)]).max())
        with np.errstate(invalid="ignore"):  # inf - inf where both are inf
            bad = np.flatnonzero(~((np.abs(got - want) <= tol) | (got == want)))
        assert bad.size == 0, f"{bad.size} mismatches, first at steps {[steps[i] for i in bad[:5]]}"
    else:  # the native op is compute_lr bit for bit (and torch is on constants and lines)
        bad = np.flatnonzero(~((got == want) | (np.isnan(got) & np.isnan(want))))
        assert bad.size == 0, f"{bad.size} mismatches, first at steps {[steps[i] for i in bad[:5]]}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.kind)
def test_array_is_the_compiled_program_over_many_launches(cfg, evaluator, monkeypatch):
    # more steps than one launch evaluates (compute_lr_array splits them), unsorted, repeated,
    # around 2**53 - 2 (the last step evaluated in float64) and beyond (compute_lr's formula)
    monkeypatch.setattr(host, "_PAIRS_PER_LAUNCH", 64)
    steps = np.concatenate([np.arange(300)[::-1], [2**40, 2**53 - 3, 2**53 - 2, 2**53 - 1, 2**53, 7, 7]])
    got = compute_lr_array(cfg, steps.reshape(-1, 1))[:, 0]
    want = np.array(values(cfg, steps.tolist()))
    if evaluator == "native":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=8 * np.finfo(np.float64).eps * np.abs(want).max())


def test_array_keeps_shape_and_accepts_lists_and_unsigned():
    cfg = cosine(1.0, 0.25, 4, 12)
    got = compute_lr_array(cfg, [[0, 4], [8, 13]])
    assert got.shape == (2, 2)
    assert got.tolist() == [[0.0, 1.0], [0.625, 0.25]]
    assert compute_lr_array(cfg, np.array([3, 12], dtype=np.uint16)).tolist() == [0.75, 0.25]
    assert compute_lr_array(cfg, np.int64(8)).shape == ()
    assert compute_lr_array(cfg, np.array([], dtype=np.int64)).shape == (0,)
    assert compute_lr_array(piecewise([10], [1.0, 2.0]), np.arange(20).reshape(4, 5)).shape == (
        4,
        5,
    )


@pytest.mark.parametrize("cfg", GRID_CONFIGS[::3], ids=lambda c: c.kind)
def test_array_rejects_bad_steps(cfg):
    with pytest.raises(ValueError, match="-3"):
        compute_lr_array(cfg, np.array([0, 5, -3]))
    with pytest.raises(TypeError, match="float64"):
        compute_lr_array(cfg, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="bool"):
        compute_lr_array(cfg, np.array([True, False]))
    with pytest.raises(ValueError, match="int64"):
        compute_lr_array(cfg, np.array([2**63], dtype=np.uint64))


def test_array_on_a_million_steps():
    cfg = cosine(2e-3, 1e-5, 1000, 900_000)
    steps = np.arange(1_000_000, dtype=np.int64)
    got = compute_lr_array(cfg, steps)
    assert got.shape == (1_000_000,) and got.dtype == np.float64
    for s in [0, 999, 1000, 450_000, 899_999, 900_000, 999_999]:
        assert got[s] == pytest.approx(compute_lr(cfg, s), rel=1e-14, abs=1e-20)


# --- host_evaluator: host mode's evaluation of every row ------------------------------------------


def test_host_evaluator_is_float64_compute_lr():
    if not NATIVE:
        pytest.skip(f"the native extension is not available: {_native.REASON}")
    evaluate = host.host_evaluator(build_table(CONFIGS, "cpu").table)
    for s in [0, 1, 7, 100, 1000, 2**40 + 3, MAX_STEP]:
        assert evaluate(s) == [compute_lr(c, s) for c in CONFIGS], f"step {s}"


def test_host_evaluator_without_the_native_op_says_why(monkeypatch):
    monkeypatch.setattr(_native, "unavailable_reason", lambda device: "disabled for this test")
    with pytest.raises(host.BackendUnavailable, match="needs the native CPU op: disabled for this test"):
        host.host_evaluator(torch.zeros(1, 1, 1, dtype=torch.float64))

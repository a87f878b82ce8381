"""The float64 reference against closed-form values, at the edges and at giant steps."""

import math

import numpy as np
import pytest

from fusedsched.schedule.reference import compute_lr, schedule_marks
from fusedsched.tml.config import LearningRate

pytestmark = pytest.mark.precision  # torch's arithmetic against a reference: .ci/run repeats it per CPU capability


def constant(c):
    return LearningRate(constant=c)


def piecewise(boundaries, values):
    return LearningRate(
        piecewise_constant=dict(learning_rate_boundaries=boundaries, learning_rate_values=values)
    )


def ramp(L, R):
    return LearningRate(linear_ramp_to_constant=dict(learning_rate=L, num_ramp_steps=R))


def cosine(L, F, R, T):
    return LearningRate(
        linear_ramp_to_cosine=dict(
            learning_rate=L, final_learning_rate=F, num_ramp_steps=R, final_num_steps=T
        )
    )


def values(cfg, steps):
    return [compute_lr(cfg, s) for s in steps]


# --- tml's own tests -----------------------------------------------------------------------------


def test_tml_constant_lr():
    assert values(constant(0.1), [0, 1, 7, 1000]) == [0.1, 0.1, 0.1, 0.1]


def test_tml_piecewise_constant_lr():
    cfg = piecewise([10, 20], [0.1, 0.01, 0.001])
    assert values(cfg, [5, 15, 25]) == [0.1, 0.01, 0.001]


# --- closed-form expected values at the edges -----------------------------------------------------


def test_constant_at_edges_and_giant_steps():
    assert values(constant(0.25), [0, 1, 10**10, 2**40, 2**62]) == [0.25] * 5
    assert compute_lr(constant(0.0), 5) == 0.0


def test_piecewise_switches_at_the_boundary():
    cfg = piecewise([10, 20], [0.1, 0.01, 0.001])
    steps = [0, 9, 10, 11, 19, 20, 21, 10**10]
    assert values(cfg, steps) == [0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001]


def test_piecewise_boundary_at_zero_and_no_boundaries():
    assert values(piecewise([0, 5], [1.0, 2.0, 3.0]), [0, 4, 5]) == [2.0, 2.0, 3.0]
    assert values(piecewise([], [0.5]), [0, 10**10]) == [0.5, 0.5]


def test_linear_ramp_to_constant():
    cfg = ramp(0.5, 4)  # slope 0.125, exact in binary
    steps = [0, 1, 2, 3, 4, 5, 100, 10**10]
    assert values(cfg, steps) == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5, 0.5, 0.5]


def test_linear_ramp_to_constant_is_min_of_the_formula():
    # (0.1 / 3) * 3 rounds above 0.1, so the min clamps to L at the last ramp step.
    cfg = ramp(0.1, 3)
    assert compute_lr(cfg, 3) == min(0.1, (0.1 / 3) * 3) == 0.1
    assert compute_lr(cfg, 1) == 0.1 / 3


def test_linear_ramp_to_cosine():
    cfg = cosine(1.0, 0.25, 4, 12)  # L - F = 0.75: exact at the ends and the middle
    steps = [0, 1, 3, 4, 8, 12, 13, 1000, 10**10]
    assert values(cfg, steps) == [0.0, 0.25, 0.75, 1.0, 0.625, 0.25, 0.25, 0.25, 0.25]
    # a quarter and three quarters of the way through the decay: F + (L - F) / 2 * (1 +- sqrt(1/2))
    assert compute_lr(cfg, 6) == pytest.approx(0.25 + 0.375 * (1 + math.sqrt(0.5)), rel=1e-15)
    assert compute_lr(cfg, 10) == pytest.approx(0.25 + 0.375 * (1 - math.sqrt(0.5)), rel=1e-15)


@pytest.mark.parametrize(
    "L, F, R, T", [(0.3, 0.07, 7, 1000), (1e-3, 3e-5, 33, 777), (0.1, 0.2, 1, 3)]
)
def test_matches_the_design_formula_bit_for_bit(L, F, R, T):
    # docs/semantics.md's expressions in their written operation order: the contract for other backends.
    def design(s):
        if s < R:
            return (L / R) * s
        if s <= T:
            return F + (L - F) * 0.5 * (1 + math.cos(math.pi * (s - R) / (T - R)))
        return F

    steps = range(T + 5)
    assert values(cosine(L, F, R, T), steps) == [design(s) for s in steps]
    assert values(ramp(L, R), steps) == [min(L, (L / R) * s) for s in steps]


def test_cosine_decay_is_monotone_and_bounded():
    L, F, R, T = 0.3, 0.07, 7, 1000
    lrs = values(cosine(L, F, R, T), range(R, T + 1))
    assert lrs[0] == L and lrs[-1] == F
    assert all(a >= b for a, b in zip(lrs[:-1], lrs[1:], strict=True))


def test_cosine_may_end_above_its_start():
    # F > L is allowed: the "decay" rises from L to F.
    assert values(cosine(0.5, 1.0, 2, 4), [0, 1, 2, 3, 4, 5]) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def test_with_giant_int_steps():
    # Steps are exact integers: no float32/float64 rounding of the step itself below 2**53.
    assert values(ramp(1.0, 2**40), [2**39, 2**40 - 1, 2**40, 2**40 + 1, 10**10]) == [
        0.5,
        1.0 - 2.0**-40,
        1.0,
        1.0,
        10**10 * 2.0**-40,
    ]
    assert values(
        piecewise([10**10, 2**40], [3.0, 2.0, 1.0]), [10**10 - 1, 10**10, 2**40 - 1, 2**40]
    ) == [
        3.0,
        2.0,
        2.0,
        1.0,
    ]
    R = 10
    T = R + 2**34
    assert values(cosine(1.0, 0.25, R, T), [R, R + 2**33, T, T + 1, 10**10 * 7]) == [
        1.0,
        0.625,
        0.25,
        0.25,
        0.25,
    ]
    near = cosine(1.0, 0.25, 10, 10**10)
    assert values(near, [10**10, 10**10 + 1]) == [0.25, 0.25]
    # one step before the end 1 + cos(...) is ~5e-20, below float64 resolution next to 1:
    # the formula as written gives F exactly there (the oracle keeps that, it does not "fix" it)
    assert compute_lr(near, 10**10 - 1) == 0.25
    assert compute_lr(near, 10 + (10**10 - 10) // 2) == pytest.approx(0.625, rel=1e-15)
    assert 0.25 < compute_lr(near, 10**10 - 10**7) < 0.25 + 1e-5  # 0.375 * (pi * 1e-3)**2 / 2


def test_numpy_integer_steps():
    cfg = cosine(1.0, 0.25, 4, 12)
    for s in [0, 3, 8, 12, 10**10]:
        for t in (np.int64, np.uint64, np.int32):
            if t is np.int32 and s > 2**31:
                continue
            assert compute_lr(cfg, t(s)) == compute_lr(cfg, s)
    assert type(compute_lr(cfg, np.int64(8))) is float


@pytest.mark.parametrize("step", [-1, -(10**10), np.int64(-1)])
def test_negative_step_raises(step):
    with pytest.raises(ValueError, match=str(int(step))):
        compute_lr(ramp(0.5, 4), step)


@pytest.mark.parametrize("step", [1.0, 2.5, True, np.float64(3.0), np.bool_(True), "3", None])
def test_non_integer_step_raises(step):
    with pytest.raises(TypeError, match="step must be an integer"):
        compute_lr(ramp(0.5, 4), step)


def test_non_learning_rate_config_raises():
    with pytest.raises(TypeError, match="LearningRate"):
        compute_lr({"constant": 0.1}, 0)


def test_schedule_marks():
    assert schedule_marks(LearningRate(exponential_decay=dict(learning_rate=1.0, decay_rate=0.5, decay_steps=30, num_ramp_steps=10))) == [10, 40]
    assert schedule_marks(LearningRate(polynomial_decay=dict(learning_rate=1.0, final_num_steps=50))) == [50]
    assert schedule_marks(LearningRate(warmup_stable_decay=dict(
        learning_rate=1.0, num_ramp_steps=10, num_stable_steps=0, num_decay_steps=5))) == [10, 15]
    assert schedule_marks(LearningRate(cosine_with_restarts=dict(learning_rate=1.0, cycle_steps=10, cycle_mult=2, num_ramp_steps=5))) == [5, 15, 35, 75]
    assert schedule_marks(LearningRate(cosine_annealing=dict(learning_rate=1.0, num_steps=10))) == [10]
    assert schedule_marks(LearningRate(one_cycle=dict(max_learning_rate=1.0, total_steps=100))) == [30, 99]
    assert schedule_marks(LearningRate(inverse_sqrt=dict(learning_rate=1.0, num_ramp_steps=0))) == []
    join = LearningRate(join=dict(schedules=[ramp(1.0, 4), cosine(1.0, 0.5, 2, 8)], boundaries=[6]))
    assert schedule_marks(join) == [4, 6, 8, 14]
    product = LearningRate(product=dict(schedules=[ramp(1.0, 4), piecewise([3, 9], [1.0, 0.5, 0.1])]))
    assert schedule_marks(product) == [3, 4, 9]
    assert schedule_marks(constant(0.1)) == []
    assert schedule_marks(piecewise([10, 20], [0.1, 0.01, 0.001])) == [10, 20]
    assert schedule_marks(ramp(0.5, 4)) == [4]
    assert schedule_marks(cosine(1.0, 0.25, 4, 12)) == [4, 12]

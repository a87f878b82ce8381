"""The converters' config builders (fusedsched.convert.builders): each config validates as a
``LearningRate`` and ``compute_lr`` gives the builder's formula at every step, bit for bit."""

import pytest

from fusedsched import LearningRate, compute_lr
from fusedsched.convert.builders import constant, join, join_pieces, line, offset, product
from fusedsched.convert.common import learning_rate

STEPS = range(0, 40)


def rates(config, steps=STEPS):
    return [compute_lr(LearningRate(**config), s) for s in steps]


def test_constant_and_line():
    assert rates(constant(0.3)) == [0.3] * len(STEPS)
    v0, v1, n = 0.01, 0.3, 7  # v0 + ((v1 - v0) / n) * s before n, then v0 (a join cuts it there)
    assert rates(line(v0, v1, n)) == [v0 + ((v1 - v0) / n) * s if s < n else v0 for s in STEPS]


def test_join_runs_each_schedule_from_its_boundary_seeing_the_step_from_there():
    ramp = line(0.0, 1.0, 10)
    assert rates(join([constant(0.5), ramp, constant(2.0)], [3, 8])) == [
        0.5 if s < 3 else compute_lr(LearningRate(**ramp), s - 3) if s < 8 else 2.0 for s in STEPS]
    assert join([ramp], []) is ramp  # one schedule is itself


def test_join_pieces_drops_a_piece_that_never_runs():
    first, second, third = constant(0.1), line(0.2, 0.4, 5), constant(0.3)
    assert join_pieces([(0, first), (4, second), (9, third)]) == join([first, second, third], [4, 9])
    assert join_pieces([(0, first), (0, second), (9, third)]) == join([second, third], [9])  # first: no step
    assert join_pieces([(0, first), (4, second), (4, third)]) == join([first, third], [4])
    assert join_pieces([(0, second)]) is second


def test_product_multiplies_left_to_right_and_one_factor_is_itself():
    a, b, c = line(0.5, 1.0, 12), constant(0.25), line(1.0, 3.0, 5)
    assert rates(product(a, b, c)) == [x * y * z for x, y, z in zip(rates(a), rates(b), rates(c))]
    assert product(a) is a


def test_offset_starts_the_schedule_steps_in_and_0_steps_is_itself():
    ramp = line(0.0, 1.0, 30)
    assert rates(offset(ramp, 4)) == rates(ramp, [s + 4 for s in STEPS])
    assert offset(ramp, 0) is ramp


def test_a_config_no_kind_represents_is_refused_naming_the_source():
    with pytest.raises(ValueError, match=r"^from_x: Y \(param group 0\) has settings no schedule kind represents "
                                         r"\(join: .*boundaries has 2 entries but schedules has 2"):
        learning_rate(join([constant(1.0), constant(2.0)], [5, 6]), "from_x: Y (param group 0)")

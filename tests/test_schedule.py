import numpy as np
import pytest

from l2dynamics.train.schedule import every_k, log_spaced, relative_resolution


def test_every_k_includes_ends():
    np.testing.assert_array_equal(every_k(25, 10), [0, 10, 20, 25])
    np.testing.assert_array_equal(every_k(20, 10), [0, 10, 20])


@pytest.mark.parametrize("total,res", [(1, 0.05), (37, 0.1), (4000, 0.05), (10**6, 0.02)])
def test_log_spaced_bounds_the_relative_gap(total, res):
    steps = log_spaced(total, res)
    assert steps[0] == 0 and steps[-1] == total
    assert np.all(np.diff(steps) > 0)
    gaps = np.diff(steps)
    dense = steps[:-1] < 1 / res
    assert np.all(gaps[dense] == 1)  # every step is measured early on
    assert np.all(gaps[~dense] / steps[:-1][~dense] <= res + 1e-12)
    # and sparse: from s ≥ 2/r on, floor(s(1+r)) ≥ s(1 + r/2), so the count is bounded by
    bound = 2 / res + np.log(max(total * res / 2, 1)) / np.log1p(res / 2) + 3
    assert len(steps) <= bound


def test_relative_resolution():
    steps = np.array([0, 1, 2, 4, 8])
    assert relative_resolution(steps, 2) == 1.0
    assert relative_resolution(steps, 8) == 0.0

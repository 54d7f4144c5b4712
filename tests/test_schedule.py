import numpy as np
import pytest

from l2dynamics.train.schedule import (
    PEAK_HEAD_RESOLUTION,
    PEAK_WINDOW,
    every_k,
    log_spaced,
    peak_window,
    relative_resolution,
)


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


@pytest.mark.parametrize("total,res", [(8000, 0.05), (4000, 0.05), (10**6, 0.02), (37, 0.1)])
def test_peak_window_is_dense_from_a_fraction_of_the_budget_and_sparse_before(total, res):
    steps = peak_window(total, res)
    assert steps[0] == 0 and steps[-1] == total and np.all(np.diff(steps) > 0)
    start = max(1, int(PEAK_WINDOW * total))
    before, after = steps[steps < start], steps[steps >= start]
    gaps = np.diff(after)
    coarse = after[:-1] >= 1 / res
    assert np.all(gaps[~coarse] == 1)
    assert np.all(gaps[coarse] / after[:-1][coarse] <= res + 1e-12)
    head = np.diff(np.append(before, after[0]))[before >= 1 / PEAK_HEAD_RESOLUTION]
    assert np.all(head / before[before >= 1 / PEAK_HEAD_RESOLUTION] <= PEAK_HEAD_RESOLUTION + 1e-12)


def test_peak_window_saves_measurements_on_long_runs_only():
    assert len(peak_window(8000, 0.05)) < len(log_spaced(8000, 0.05)) - 20
    np.testing.assert_array_equal(peak_window(50, 0.05), log_spaced(50, 0.05))

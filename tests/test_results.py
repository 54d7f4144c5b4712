"""The shared definitions of t*: the paper's first maximum, and the toolkit's near-peak centre."""

import numpy as np
import pytest

from l2dynamics.results import CURVE_COLUMNS, first_peak, near_peak, smoothed_accuracy


def test_first_peak_is_the_first_of_equal_maxima():
    assert first_peak([0.1, 0.5, 0.3, 0.5]) == 1


def test_first_peak_passes_over_nan_and_is_none_without_a_finite_value():
    assert first_peak([np.nan, 0.2, np.nan, 0.1]) == 1
    assert first_peak([np.nan, np.nan]) is None
    assert first_peak([]) is None


def test_curve_columns_name_the_values_in_force():
    assert CURVE_COLUMNS[-2:] == ("eta_now", "lam_now")
    assert "eta" not in CURVE_COLUMNS and "lam" not in CURVE_COLUMNS


def _plateau_curve(scale: float, n: int = 400):
    """A rise, a plateau and a fall in log time, as a function of scale·epochs: the curve of a
    run whose dynamics collapse on τ ∝ scale·epochs (log-spaced epochs, 1 to 1e5)."""
    epochs = np.geomspace(1.0, 1e5, n)
    x = np.log10(scale * epochs)
    acc = 0.9 / (1 + np.exp(-4 * (x - 1))) - 0.5 / (1 + np.exp(-4 * (x - 3)))
    return epochs, acc


def test_smoothed_accuracy_is_the_window_mean_in_log_time():
    epochs = np.array([1.0, 1.2, 2.0, 10.0, 11.0])
    acc = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    got = smoothed_accuracy(epochs, acc, window=0.1)  # factor 1.259 either side
    brute = [acc[np.abs(np.log10(epochs) - np.log10(t)) <= 0.1].mean() for t in epochs]
    np.testing.assert_allclose(got, brute)
    np.testing.assert_allclose(got[:2], [0.2, 0.2])


def test_near_peak_is_the_centre_of_the_band_within_one_standard_error():
    epochs = np.array([1, 2, 3, 4, 5, 6, 7, 8], dtype=float)
    acc = np.array([0.2, 0.5, 0.89, 0.90, 0.89, 0.60, 0.3, 0.2])
    p = near_peak(epochs, acc, n_test=400, window=1e-6, band_se=1.0)  # windows hold one point
    se = np.sqrt(0.9 * 0.1 / 400)  # 0.015: 0.89 is within it, 0.5 and 0.6 are not
    assert (p.lo, p.hi) == (3.0, 5.0) and p.level == pytest.approx(0.90)
    assert p.se == pytest.approx(se)
    assert p.t_star == pytest.approx(np.sqrt(15.0))
    assert p.closed and p.settled


def test_near_peak_scales_with_the_time_scale_of_the_curve():
    """Curves that collapse on scale·epochs give t* ∝ 1/scale (the law's slope −1 is kept
    exactly, up to the spacing of the measurements)."""
    t = [near_peak(*_plateau_curve(s), n_test=500).t_star for s in (1.0, 0.1)]
    assert t[1] / t[0] == pytest.approx(10.0, rel=0.06)


def test_near_peak_of_a_noisy_plateau_is_stable_where_the_first_maximum_is_not():
    epochs, acc = _plateau_curve(1.0)
    rng = np.random.default_rng(0)
    noisy = [np.round((acc + rng.normal(0, 0.004, acc.shape)) * 500) / 500 for _ in range(20)]
    first = np.array([epochs[first_peak(a)] for a in noisy])
    near = np.array([near_peak(epochs, a, n_test=500).t_star for a in noisy])
    spread = lambda t: np.median(np.abs(np.log10(t / np.median(t))))  # noqa: E731
    assert spread(near) < spread(first) / 3


def test_near_peak_is_open_when_the_curve_ends_inside_the_band():
    epochs, acc = _plateau_curve(1.0)
    cut = epochs <= 150.0  # the band runs from about 65 to 220 epochs
    p = near_peak(epochs[cut], acc[cut], n_test=500)
    assert not p.closed and not p.settled and p.hi == epochs[cut][-1]


def test_near_peak_passes_over_epoch_0_and_nan():
    p = near_peak([0.0, 1.0, 2.0, 3.0], [0.9, 0.2, np.nan, 0.5], n_test=100, window=1e-6)
    assert (p.lo, p.hi) == (3.0, 3.0) and not p.closed
    assert near_peak([0.0], [0.5], n_test=100) is None
    assert near_peak([1.0, 2.0], [np.nan, np.nan], n_test=100) is None


def test_near_peak_at_accuracy_one_keeps_every_perfect_measurement():
    epochs = np.geomspace(1, 1000, 60)
    acc = np.where(epochs > 10, 1.0, 0.5)
    p = near_peak(epochs, acc, n_test=500)
    assert p.se == 0 and p.hi == epochs[-1] and not p.closed
    assert p.lo == epochs[np.flatnonzero(smoothed_accuracy(epochs, acc) == 1.0)[0]]

"""The shared definition of t*: the first maximum of test accuracy, NaN passed over."""

import numpy as np

from l2dynamics.results import CURVE_COLUMNS, first_peak


def test_first_peak_is_the_first_of_equal_maxima():
    assert first_peak([0.1, 0.5, 0.3, 0.5]) == 1


def test_first_peak_passes_over_nan_and_is_none_without_a_finite_value():
    assert first_peak([np.nan, 0.2, np.nan, 0.1]) == 1
    assert first_peak([np.nan, np.nan]) is None
    assert first_peak([]) is None


def test_curve_columns_name_the_values_in_force():
    assert CURVE_COLUMNS[-2:] == ("eta_now", "lam_now")
    assert "eta" not in CURVE_COLUMNS and "lam" not in CURVE_COLUMNS

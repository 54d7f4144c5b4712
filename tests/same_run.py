"""Bit-for-bit comparison of two runs' results (shared by the vector and checkpoint tests)."""

import numpy as np

from l2dynamics.train.book import RunResult


def assert_same_run(got: RunResult, ref: RunResult) -> None:
    """``got`` has exactly ``ref``'s curve and summary; only ``wall_s``, a timing, may differ."""
    assert got.config == ref.config
    assert set(got.curve) == set(ref.curve)
    for column, values in ref.curve.items():
        np.testing.assert_array_equal(got.curve[column], values, err_msg=column)
    a, b = got.summary(), ref.summary()
    a.pop("wall_s"), b.pop("wall_s")
    assert a.keys() == b.keys()
    for key, value in b.items():
        np.testing.assert_array_equal(a[key], value, err_msg=key)

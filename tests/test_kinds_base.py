"""The helpers every kind's summary uses: JSON has no NaN, keys and file names are compact."""

import math

import pandas as pd

from l2dynamics.experiments.kinds.base import finite, num_key, rounded, run_pairs, slug


def test_non_finite_values_become_none():
    assert finite(0.25) == 0.25 and finite(math.nan) is None and finite(math.inf) is None
    assert finite(None) is None
    assert rounded(0.123456) == 0.1235 and rounded(0.123456, 2) == 0.12
    assert rounded(math.nan) is None and rounded(None) is None


def test_keys_file_names_and_run_lists_are_compact():
    assert [num_key(v) for v in (1e-5, 0.2, 100.0)] == ["1e-05", "0.2", "100"]
    assert slug("σ_w = 0.5") == "_w-0.5" and slug("cnn x") == "cnn-x" and slug("σ") == "all"
    table = pd.DataFrame({"eta": [0.1, 2.0], "lam": [1e-3, 0.0]})
    assert run_pairs(table) == "(η=0.1, λ=0.001), (η=2, λ=0)"

"""The ``time_to_fit`` kind on hand-built runs that fit the training set at 100/η epochs."""

import numpy as np
import pandas as pd
import pytest

from l2dynamics.experiments.kinds import analyse
from sweep_frames import curve_rows, experiment, run_rows


def test_time_to_fit_kind(tmp_path):
    parts = []
    for eta in (0.5, 1.0, 2.0):
        for lam in (0.0, 1e-4, 1e-3):
            epochs = np.arange(0, 400.0, 1.0)
            train = np.where(epochs >= np.ceil(100 / eta), 1.0, 0.5)  # fits at 100/η epochs
            parts.append(curve_rows(f"{eta}-{lam}", eta, lam, epochs, 0.5 + 0 * epochs, train))
    curves = pd.concat(parts, ignore_index=True)
    s = analyse(experiment("time_to_fit"), run_rows(curves), curves, tmp_path).summary
    assert s["slope_eta"] == pytest.approx(-1.0, abs=1e-9)
    assert s["slope_lam"] == pytest.approx(0.0, abs=1e-9)
    assert s["slope_eta_lam0"] == pytest.approx(-1.0)
    assert s["median_ratio_to_lam0"] == pytest.approx(1.0)
    assert s["eta_times_t_fit_range"] == pytest.approx([100.0, 100.0])

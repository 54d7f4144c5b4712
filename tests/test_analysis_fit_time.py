"""The time to fit the training set: its ratio to λ = 0 at equal η and its figure."""

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis import fit_time as FT
from l2dynamics.analysis.fits import fit_time_to_fit
from sweep_frames import assert_png


def table():
    rows = [
        {"eta": eta, "lam": lam, "epochs_to_train_acc_1": 30.0 / eta * (1 + 10 * lam)}
        for eta in (0.5, 1.0, 2.0)
        for lam in (0.0, 1e-3, 1e-2)
    ]
    return pd.DataFrame(rows)


def test_ratio_to_lam0_is_the_median_ratio_at_equal_eta():
    # t_fit(λ)/t_fit(0) = 1 + 10λ: 1.01 at λ = 1e-3 and 1.1 at λ = 1e-2 for every η
    assert FT.ratio_to_lam0(table()) == pytest.approx(np.median([1.01, 1.1] * 3))
    assert FT.ratio_to_lam0(table()[lambda t: t["lam"] > 0]) is None
    mismatched = table()[lambda t: (t["lam"] == 0) == (t["eta"] == 0.5)]
    assert FT.ratio_to_lam0(mismatched) is None  # λ = 0 only at an η no λ > 0 run has


def test_plot_writes_a_png_with_and_without_the_fit(tmp_path):
    t = table()
    fit = fit_time_to_fit(t, n_boot=50)
    assert_png(tmp_path / "a.png", FT.plot_time_to_fit(t, fit, tmp_path / "a.png", title="S1"))
    assert_png(tmp_path / "b.png", FT.plot_time_to_fit(t, None, tmp_path / "b.png"))
    never = t.assign(epochs_to_train_acc_1=np.nan)
    assert_png(tmp_path / "c.png", FT.plot_time_to_fit(never, None, tmp_path / "c.png"))
    assert not list(tmp_path.glob(".*"))  # no temporary files left

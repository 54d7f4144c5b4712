"""The t* figures: t* vs η·λ is log-log with units and the fit in its legend, λ = 0 runs sit
at the left edge, and the Figure 2 panels are written also from empty or NaN data."""

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis import tstar as T
from l2dynamics.analysis.fits import t_star_column
from l2dynamics.analysis.plotting import lam_colors
from sweep_frames import ETAS, assert_png, data_points, new_ax, sweep_tables


@pytest.fixture(scope="module")
def sweep():
    return sweep_tables()


def test_plot_functions_write_pngs(sweep, tmp_path):
    curves, table, fit = sweep
    assert_png(tmp_path / "t.png", T.plot_tstar(table, fit, tmp_path / "t.png", title="t*"))
    out = T.plot_panels(curves, table, fit, tmp_path / "sub" / "p.png", title="Fig. 2")
    assert_png(tmp_path / "sub" / "p.png", out)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_empty_and_nan_inputs_still_give_figures(sweep, tmp_path):
    curves, table, _ = sweep
    empty_t, empty_c = table.iloc[:0], curves.iloc[:0]
    assert_png(tmp_path / "1.png", T.plot_tstar(empty_t, None, tmp_path / "1.png"))
    assert_png(tmp_path / "4.png", T.plot_panels(empty_c, empty_t, None, tmp_path / "4.png"))
    zero = table[table["lam"] == 0].assign(t_star_epochs=np.nan)  # only λ = 0, no t*
    nan_curves = curves[curves["lam"] == 0].assign(test_acc=np.nan)
    assert_png(tmp_path / "6.png", T.plot_panels(nan_curves, zero, None, tmp_path / "6.png"))


def test_tstar_axes_are_log_log_with_units_and_the_fit_in_the_legend(sweep):
    _, table, fit = sweep
    ax = new_ax()
    T.draw_tstar(ax, table, fit, lam_colors(table["lam"]))
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("η·λ", "t* (epochs)")
    labels = ax.get_legend_handles_labels()[1]
    assert any(f"slope {fit.slope:.2f}" in s for s in labels)
    assert any(f"c = {fit.c_fixed_slope:.3g}" in s for s in labels)


def test_lam_zero_runs_are_drawn_left_of_every_positive_value(sweep):
    _, table, fit = sweep
    ax = new_ax()
    T.draw_tstar(ax, table, fit, lam_colors(table["lam"]))
    xy = data_points(ax)
    zero_t = set(table.loc[table["lam"] == 0, t_star_column(fit.estimator)])
    is_zero = np.isin(xy[:, 1], list(zero_t))
    assert is_zero.sum() == len(ETAS)
    assert xy[is_zero, 0].max() < table.loc[table["lam"] > 0, "eta_lam"].min()
    assert len(xy) == len(table)


def test_one_marker_per_point_at_the_median_of_its_seeds_with_the_range_as_bars(sweep):
    _, table, fit = sweep
    one = table[table["lam"] > 0].iloc[:1]
    seeds = pd.concat([one.assign(seed=s) for s in range(3)], ignore_index=True)
    seeds["t_star_robust"] = [10.0, 40.0, 20.0]
    ax = new_ax()
    T.draw_tstar(ax, seeds, None, lam_colors(seeds["lam"]))
    (container,) = ax.containers
    assert container.lines[0].get_data()[1].tolist() == [20.0]
    segment = container.lines[2][0].get_segments()[0]
    assert sorted(segment[:, 1].tolist()) == [10.0, 40.0]
    labels = ax.get_legend_handles_labels()[1]
    assert any("median of 3 seeds; bars: range over seeds" in label for label in labels)


def test_seed_agreement_is_the_median_relative_difference_over_seed_pairs():
    table = pd.DataFrame(
        {
            "eta": 1.0,
            "lam": [1e-3] * 3 + [2e-3] * 2 + [0.0],
            "seed": [0, 1, 2, 0, 1, 0],
            "t_star_robust": [100.0, 150.0, 50.0, 10.0, 10.0, 7.0],
            "t_star_epochs": [100.0, 300.0, 100.0, 10.0, np.nan, 7.0],
        }
    )
    # pairs (0,1) 0.5, (0,2) 0.5, (1,2) 100/150; (0,1) 0 at λ = 2e-3; λ = 0 is left out
    got = T.seed_agreement(table)
    assert got["n_pairs"] == 4
    assert got["median"] == pytest.approx(0.5)
    paper = T.seed_agreement(table, "paper")
    assert paper["n_pairs"] == 3 and paper["median"] == pytest.approx(2 / 3)  # 2, 0, 2/3
    assert T.seed_agreement(table.iloc[[0, 3]])["median"] is None

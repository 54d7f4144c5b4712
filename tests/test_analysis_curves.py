"""Curves against time and their collapse against τ: axes carry time units on a log scale,
one line per run coloured by its λ, bad columns raise; the collapse statistics and the
spread across variants measure what they say."""

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis import curves as C
from l2dynamics.analysis.plotting import lam_colors
from sweep_frames import ETAS, assert_png, curve_rows, new_ax, sweep_tables


@pytest.fixture(scope="module")
def sweep():
    return sweep_tables()


def test_plot_functions_write_pngs(sweep, tmp_path):
    curves, _, _ = sweep
    assert_png(tmp_path / "c.png", C.plot_curves(curves, tmp_path / "c.png", x="epoch"))
    assert_png(tmp_path / "g.png", C.plot_curve_grid(curves, tmp_path / "g.png", title="S6"))
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_empty_inputs_still_give_figures(sweep, tmp_path):
    curves, _, _ = sweep
    empty_c = curves.iloc[:0]
    assert_png(tmp_path / "3.png", C.plot_curves(empty_c, tmp_path / "3.png"))
    assert_png(tmp_path / "g.png", C.plot_curve_grid(empty_c, tmp_path / "g.png"))


@pytest.mark.parametrize(
    ("x", "label"), [("epoch", "epochs"), ("time", "η·epochs"), ("tau", "τ = η·λ·epochs")]
)
def test_curves_axes_have_time_units_and_draw_one_line_per_run(sweep, x, label):
    curves, _, _ = sweep
    ax = new_ax()
    colors = lam_colors(curves["lam"])
    C.draw_curves(ax, curves, colors, x=x, y="train_acc")
    assert ax.get_xscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == (label, "training accuracy")
    n_runs = curves["hash"].nunique() - (len(ETAS) if x == "tau" else 0)  # τ = 0 when λ = 0
    assert len(ax.lines) == n_runs
    assert all(np.all(line.get_xdata() > 0) for line in ax.lines)
    lam_of = curves.groupby("hash", sort=False)["lam"].first()
    drawn = [lam for lam in lam_of if lam > 0 or x != "tau"]
    assert [line.get_color() for line in ax.lines] == [colors[lam] for lam in drawn]


def test_bad_curve_columns_raise(sweep, tmp_path):
    curves, _, _ = sweep
    with pytest.raises(ValueError, match="x: expected one of"):
        C.plot_curves(curves, tmp_path / "x.png", x="steps")
    with pytest.raises(ValueError, match="not a measurement column"):
        C.plot_curves(curves, tmp_path / "x.png", y="accuracy")
    assert not (tmp_path / "x.png").exists()


def test_collapse_stats_compare_the_spread_in_epochs_and_in_tau():
    # peaks at the same τ = 0.05 for λ a decade apart: 0 spread against τ, 1 decade in epochs
    table = pd.DataFrame(
        {
            "lam": [1e-3, 1e-2, 1e-1, 0.0],
            "peak_inside": [True, True, True, True],
            "t_star_epochs": [250.0, 25.0, 2.5, 7.0],
        }
    )
    table["t_star_tau"] = table["t_star_epochs"] * 0.2 * table["lam"]
    minima = pd.DataFrame(
        {"lam": [1e-3, 1e-2], "epoch_min": [10.0, 1.0], "tau_min": [2e-3, 3e-3], "interior": True}
    )
    got = C.collapse_stats(table, minima)
    assert got["std_log10_peak_epochs"] == pytest.approx(np.std([0, 1, 2]), abs=1e-4)
    assert got["std_log10_peak_tau"] == pytest.approx(0.0, abs=1e-4)
    assert got["peak_collapse_ratio"] == pytest.approx(0.0, abs=1e-4)
    assert got["std_log10_loss_min_epochs"] == pytest.approx(0.5)
    assert C.collapse_stats(table.iloc[:1])["loss_min_collapse_ratio"] is None


def test_variant_values_and_accuracy_per_variant():
    runs = pd.DataFrame(
        {
            "hash": ["a", "b", "c"],
            "variant": ["σ_w = 1", "σ_w = 2", "none"],
            "config": [
                '{"model": {"options": {"sigma_w": 1}}}',
                '{"model": {"options": {"sigma_w": 2.0}}}',
                "{}",
            ],
        }
    )
    values = C.variant_values(runs, "sigma_w")
    assert values["σ_w = 1"] == 1.0 and values["σ_w = 2"] == 2.0 and np.isnan(values["none"])
    table = pd.DataFrame(
        {
            "variant": ["σ_w = 1", "σ_w = 1", "σ_w = 2"],
            "lam": [1e-3, 1e-3, 1e-3],
            "eta": [0.1, 0.2, 0.1],
            "best_test_acc": [0.7, 0.8, 0.75],
        }
    )
    acc = C.acc_by_variant(table, values)
    assert list(acc["variant"]) == ["σ_w = 1", "σ_w = 2"]
    assert list(acc["mean"]) == [0.8, 0.75] and list(acc["value"]) == [1.0, 2.0]


def test_spread_vs_tau_compares_variants_on_a_common_tau_range():
    epochs = np.array([1.0, 10.0, 100.0])
    a = curve_rows("a", 0.1, 1e-2, epochs, [0.1, 0.5, 0.9], variant="x")
    b = curve_rows("b", 0.1, 1e-2, epochs, [0.3, 0.5, 0.7], variant="y")
    lone = curve_rows("c", 0.1, 1e-3, epochs, [0.3, 0.5, 0.7], variant="x")
    spread = C.spread_vs_tau(pd.concat([a, b, lone]), points=3)
    assert list(spread["lam"]) == [1e-2] * 3  # λ = 1e-3 has one variant only
    assert spread["tau"].to_numpy() == pytest.approx([1e-3, 1e-2, 1e-1])
    assert spread["spread"].to_numpy() == pytest.approx([0.2, 0.0, 0.2])

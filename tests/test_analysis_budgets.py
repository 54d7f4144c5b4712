"""Best accuracy vs λ and budgets: the accuracy plot (λ = 0 at the left edge), the best
accuracy within a budget read off a truncated curve, the optimal λ per budget against
λ_pred = c/(η·T), and the calibration c."""

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis import budgets as B
from l2dynamics.analysis.fits import log_slope
from l2dynamics.analysis.tables import within_budget
from sweep_frames import LAMS, assert_png, curve_rows, data_points, new_ax, run_rows, sweep_tables


@pytest.fixture(scope="module")
def sweep():
    return sweep_tables()


# -- best accuracy vs λ -----------------------------------------------------------------------


def test_plot_functions_write_pngs(sweep, tmp_path):
    curves, table, _ = sweep
    budgets = {"T = 20 epochs": within_budget(curves, 20.0)}
    out = B.plot_best_acc_vs_lam(
        table, tmp_path / "a.png", budgets=budgets, predicted={"c/(ηT)": 0.03, "none": None}
    )
    assert_png(tmp_path / "a.png", out)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_empty_inputs_still_give_figures(sweep, tmp_path):
    _, table, _ = sweep
    empty_t = table.iloc[:0]
    assert_png(tmp_path / "2.png", B.plot_best_acc_vs_lam(empty_t, tmp_path / "2.png"))
    empty_acc = pd.DataFrame(columns=["budget_T", "lam", "mean", "std"])
    empty_opt = pd.DataFrame(columns=list(B.OPTIMAL_COLUMNS))
    assert_png(tmp_path / "f.png", B.plot_fixed_budget(empty_acc, empty_opt, tmp_path / "f.png"))
    assert_png(tmp_path / "v.png", B.plot_acc_vs_lam_variants({}, tmp_path / "v.png"))


def test_lam_zero_is_drawn_left_of_every_positive_lambda(sweep):
    _, table, _ = sweep
    ax = new_ax()
    B.draw_best_acc(ax, table)
    xy = data_points(ax)
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "best test accuracy"
    assert np.sort(xy[:, 0])[0] < min(LAMS[1:]) and len(xy) == len(LAMS)


# -- fixed budgets ----------------------------------------------------------------------------


def test_best_within_budget_is_the_truncated_maximum():
    a = curve_rows("a", 0.2, 1e-3, [0, 1, 2, 4, 8, 16], [0.1, 0.5, 0.7, 0.6, 0.9, 0.8])
    b = curve_rows("b", 0.2, 1e-2, [0, 1, 2, 4, 10], [0.1, 0.8, 0.6, 0.5, 0.4])
    curves = pd.concat([a, b])
    runs = run_rows(curves, stopped={"b"})
    got = B.best_within_budgets(runs, curves, [3, 8, 20]).set_index(["hash", "budget_T"])
    # by hand: max over epochs <= T
    assert got.loc[("a", 3.0), "best_test_acc"] == pytest.approx(0.7)
    assert got.loc[("a", 3.0), "t_star_epochs"] == 2.0
    assert got.loc[("a", 8.0), "best_test_acc"] == pytest.approx(0.9)
    assert got.loc[("b", 3.0), "best_test_acc"] == pytest.approx(0.8)
    # "a" was measured up to 16 < 20 epochs: only a lower bound; "b" stopped past its peak
    assert not got.loc[("a", 20.0), "valid"] and got.loc[("b", 20.0), "valid"]
    acc = B.acc_by_budget(B.best_within_budgets(runs, curves, [3, 8, 20]))
    at20 = acc[acc["budget_T"] == 20.0]
    assert list(at20["lam"]) == [1e-2]


def test_optimal_lambda_per_budget_and_prediction():
    acc = pd.DataFrame(
        {
            "budget_T": [10.0] * 3 + [100.0] * 3,
            "lam": [1e-3, 1e-2, 1e-1] * 2,
            "mean": [0.6, 0.8, 0.7, 0.9, 0.85, 0.7],
            "std": np.nan,
        }
    )
    opt = B.optimal_by_budget(acc, c=0.02, eta=0.2, near_best=0.05).set_index("budget_T")
    # within 0.05 of the best: only λ = 1e-2 at T = 10; λ = 1e-3 and 1e-2 at T = 100
    assert opt.loc[10.0, "n_near_best"] == 1
    assert (opt.loc[100.0, "near_best_lo"], opt.loc[100.0, "near_best_hi"]) == (1e-3, 1e-2)
    assert opt.loc[10.0, "best_lam"] == 1e-2 and opt.loc[100.0, "best_lam"] == 1e-3
    assert opt.loc[10.0, "lam_pred"] == pytest.approx(0.02 / (0.2 * 10))  # c/(η·T) = 0.01
    assert opt.loc[100.0, "lam_pred_2c"] == pytest.approx(2 * 0.02 / (0.2 * 100))  # 2e-3
    assert opt.loc[10.0, "gap_pred"] == pytest.approx(0.0)
    # 2e-3 is nearest (in log λ) to the grid's 1e-3: accuracy 0.9, nothing lost
    assert opt.loc[100.0, "acc_at_pred_2c"] == pytest.approx(0.9)
    assert B.nearest_lam(np.array([1e-3, 1e-2]), 4e-3) == 1e-2
    assert log_slope(np.array([10.0, 100.0]), np.array([1e-2, 1e-3])) == pytest.approx(-1.0)


def test_calibration_uses_the_largest_lambda_and_the_fit_all_runs():
    table = pd.DataFrame(
        {
            "lam": [1e-3, 1e-2, 1e-1, 1.0],
            "eta": 0.2,
            "status": "done",
            "reached_train_acc_1": [True, True, False, False],
            "peak_inside": [True, True, True, False],
            "t_star_epochs": [400.0, 20.0, 1.0, 5.0],
            "budget_epochs": 1000.0,
        }
    )
    out = B.calibration_c(table, "paper")
    # λ = 1 peaked at the end of its budget: the calibration run is λ = 0.1 (it need not fit,
    # like the paper's 2-epoch run): c = 1·0.2·0.1 = 0.02
    assert out["calibration_lam"] == 0.1
    assert out["c_calibration"] == pytest.approx(0.02)
    assert out["calibration_reached_train_acc_1"] is False
    # c_fit: the runs that fit, geometric mean of 0.08 and 0.04
    assert out["c_fit"] == pytest.approx(np.sqrt(0.04 * 0.08))


def test_scheduled_runs_cannot_be_truncated():
    runs = pd.DataFrame(
        {
            "hash": ["const", "step", "auto", "none"],
            "config": [
                '{"lr_schedule": "constant"}',
                '{"lr_schedule": "step"}',
                '{"autol2": true}',
                None,
            ],
        }
    )
    assert B.truncation_problems(runs) == ["step", "auto"]
    assert B.truncation_problems(runs.drop(columns="config")) == []


# -- budget rules trained run by run ----------------------------------------------------------


def test_variant_table_and_the_trend_with_lambda():
    parts = [
        curve_rows(f"{v}{lam}", 0.2, lam, [0, 1, 2], [0.1, top, top - 0.1], variant=v)
        for v, tops in (("T = 200", (0.7, 0.8, 0.6)), ("T = 0.1/λ", (0.9, 0.8, 0.7)))
        for lam, top in zip((1e-3, 1e-2, 1e-1), tops, strict=True)
    ]
    curves = pd.concat(parts, ignore_index=True)
    runs = run_rows(curves, variant=dict(zip(curves["hash"], curves["variant"], strict=False)))
    acc = B.variant_acc_table(runs, curves)
    assert list(acc["variant"].unique()) == ["T = 200", "T = 0.1/λ"]
    scaled = acc[acc["variant"] == "T = 0.1/λ"]
    assert list(scaled["mean"]) == pytest.approx([0.9, 0.8, 0.7])
    assert list(scaled["final"]) == pytest.approx([0.8, 0.7, 0.6])
    lams = scaled["lam"].to_numpy()
    assert B.lam_trend(lams, scaled["mean"].to_numpy()) == pytest.approx(-1.0)
    assert B.lam_trend(lams[:2], scaled["mean"].to_numpy()[:2]) is None

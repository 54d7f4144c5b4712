"""Figures: every plot writes a PNG (also from empty or NaN data), axes carry units and log
scales, λ = 0 sits at the left edge, and λ colours follow one log colormap."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from l2dynamics.analysis import figures as F
from l2dynamics.analysis.fits import fit_tstar
from l2dynamics.analysis.tables import run_table, within_budget

PNG = b"\x89PNG\r\n\x1a\n"
ETAS = (0.1, 0.4)
LAMS = (0.0, 1e-3, 1e-2, 1e-1)


def synthetic_sweep():
    """Runs and measurements whose test accuracy peaks at τ = 0.5 (t* = 0.5/(η·λ) epochs)."""
    runs, curves = [], []
    for i, (eta, lam) in enumerate((e, la) for e in ETAS for la in LAMS):
        h, budget = f"h{i}", 2.0 / (eta * lam) if lam else 2000.0
        epoch = np.concatenate([[0.0], np.geomspace(0.05, budget, 40)])
        tau = eta * lam * epoch
        peak = 0.5 if lam else 0.5 / (eta * 1e-3)
        x = tau if lam else eta * 1e-3 * epoch
        acc = 0.9 - 0.02 * np.log((x + 1e-9) / 0.5) ** 2
        train = np.minimum(1.0, 4 * epoch / (peak / (eta * lam) if lam else peak))
        runs.append((h, "done", eta, lam, 0, budget))
        curves.append(
            pd.DataFrame(
                dict(
                    hash=h,
                    eta=eta,
                    lam=lam,
                    seed=0,
                    step=np.arange(41),
                    epoch=epoch,
                    time=eta * epoch,
                    tau=tau,
                    train_loss=1 - train,
                    train_acc=train,
                    test_loss=1 - acc,
                    test_acc=acc,
                    l2_norm_sq=1.0,
                    eta_now=eta,
                    lam_now=lam,
                )  # fmt: skip
            )
        )
    runs = pd.DataFrame(runs, columns=["hash", "status", "eta", "lam", "seed", "budget_epochs"])
    return runs, pd.concat(curves, ignore_index=True)


@pytest.fixture(scope="module")
def sweep():
    runs, curves = synthetic_sweep()
    table = run_table(runs, curves)
    return curves, table, fit_tstar(table, n_boot=100)


def assert_png(path, returned):
    assert returned == path
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


def new_ax():
    return Figure().subplots()


def test_lam_colors_follow_a_log_colormap_with_zero_black():
    colors = F.lam_colors([1e-4, 0.0, 1e-2, 1e-3, 1e-3, math.nan])
    assert list(colors) == [0.0, 1e-4, 1e-3, 1e-2]
    assert colors[0.0] == (0.0, 0.0, 0.0, 1.0)
    assert colors[1e-4] == pytest.approx(F.LAM_CMAP(0.0))
    assert colors[1e-3] == pytest.approx(F.LAM_CMAP(0.5))  # halfway in log10 λ
    assert colors[1e-2] == pytest.approx(F.LAM_CMAP(1.0))
    assert F.lam_colors([0.3]) == {0.3: pytest.approx(F.LAM_CMAP(0.5))}
    assert F.lam_colors([]) == {}


def test_plot_functions_write_pngs(sweep, tmp_path):
    curves, table, fit = sweep
    assert_png(tmp_path / "t.png", F.plot_tstar(table, fit, tmp_path / "t.png", title="t*"))
    budgets = {"T = 20 epochs": within_budget(curves, 20.0)}
    out = F.plot_best_acc_vs_lam(
        table, tmp_path / "a.png", budgets=budgets, predicted={"c/(ηT)": 0.03, "none": None}
    )
    assert_png(tmp_path / "a.png", out)
    assert_png(tmp_path / "c.png", F.plot_curves(curves, tmp_path / "c.png", x="epoch"))
    out = F.plot_panels(curves, table, fit, tmp_path / "sub" / "p.png", title="Fig. 2")
    assert_png(tmp_path / "sub" / "p.png", out)
    autol2 = curves[curves["hash"].isin(["h1", "h2"])].copy()
    autol2.loc[autol2["hash"] == "h1", "lam"] = np.where(autol2["epoch"] > 50, 1e-4, 1e-3)[
        autol2["hash"] == "h1"
    ]
    assert_png(tmp_path / "s.png", F.plot_lambda_schedule(autol2, tmp_path / "s.png"))
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_empty_and_nan_inputs_still_give_figures(sweep, tmp_path):
    curves, table, _ = sweep
    empty_t, empty_c = table.iloc[:0], curves.iloc[:0]
    assert_png(tmp_path / "1.png", F.plot_tstar(empty_t, None, tmp_path / "1.png"))
    assert_png(tmp_path / "2.png", F.plot_best_acc_vs_lam(empty_t, tmp_path / "2.png"))
    assert_png(tmp_path / "3.png", F.plot_curves(empty_c, tmp_path / "3.png"))
    assert_png(tmp_path / "4.png", F.plot_panels(empty_c, empty_t, None, tmp_path / "4.png"))
    assert_png(tmp_path / "5.png", F.plot_lambda_schedule(empty_c, tmp_path / "5.png"))
    zero = table[table["lam"] == 0].assign(t_star_epochs=np.nan)  # only λ = 0, no t*
    nan_curves = curves[curves["lam"] == 0].assign(test_acc=np.nan)
    assert_png(tmp_path / "6.png", F.plot_panels(nan_curves, zero, None, tmp_path / "6.png"))


def test_tstar_axes_are_log_log_with_units_and_the_fit_in_the_legend(sweep):
    _, table, fit = sweep
    ax = new_ax()
    F.draw_tstar(ax, table, fit, F.lam_colors(table["lam"]))
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("η·λ", "t* (epochs)")
    labels = ax.get_legend_handles_labels()[1]
    assert any(f"slope {fit.slope:.2f}" in s for s in labels)
    assert any(f"c = {fit.c_fixed_slope:.3g}" in s for s in labels)


def data_points(ax):
    """(x, y) of every errorbar's data points in ``ax``."""
    return np.concatenate([np.column_stack(c.lines[0].get_data()) for c in ax.containers])


def test_lam_zero_runs_are_drawn_left_of_every_positive_value(sweep):
    _, table, fit = sweep
    ax = new_ax()
    F.draw_tstar(ax, table, fit, F.lam_colors(table["lam"]))
    xy = data_points(ax)
    zero_t = set(table.loc[table["lam"] == 0, "t_star_epochs"])
    is_zero = np.isin(xy[:, 1], list(zero_t))
    assert is_zero.sum() == len(ETAS)
    assert xy[is_zero, 0].max() < table.loc[table["lam"] > 0, "eta_lam"].min()
    assert len(xy) == len(table)
    ax = new_ax()
    F.draw_best_acc(ax, table)
    xy = data_points(ax)
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "best test accuracy"
    assert np.sort(xy[:, 0])[0] < min(LAMS[1:]) and len(xy) == len(LAMS)


@pytest.mark.parametrize(
    ("x", "label"), [("epoch", "epochs"), ("time", "η·epochs"), ("tau", "τ = η·λ·epochs")]
)
def test_curves_axes_have_time_units_and_draw_one_line_per_run(sweep, x, label):
    curves, _, _ = sweep
    ax = new_ax()
    colors = F.lam_colors(curves["lam"])
    F.draw_curves(ax, curves, colors, x=x, y="train_acc")
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
        F.plot_curves(curves, tmp_path / "x.png", x="steps")
    with pytest.raises(ValueError, match="not a measurement column"):
        F.plot_curves(curves, tmp_path / "x.png", y="accuracy")
    assert not (tmp_path / "x.png").exists()


def test_long_titles_wrap_to_the_figure_width():
    from l2dynamics.analysis.figures import wrap_title

    title = "Figure 1a: test accuracy vs λ, fixed budget vs T ∝ 1/λ (WRN, step schedule)"
    lines = wrap_title(title, 5.5).splitlines()
    assert len(lines) == 2 and " ".join(lines) == title
    assert all(len(line) <= 5.5 * 72 / (0.55 * 12) for line in lines)
    assert wrap_title(title, 15.0) == title  # a wide figure keeps it on one line


def test_schedule_legend_names_the_variant_and_the_lambda():
    from l2dynamics.analysis.figures import _run_label

    fixed = pd.DataFrame({"lam": 3e-4, "lam_now": [3e-4, 3e-4], "variant": ["wrn/fixed"] * 2})
    auto = pd.DataFrame({"lam": 0.1, "lam_now": [0.1, 0.01], "variant": ["wrn/autol2"] * 2})
    assert _run_label(fixed) == "wrn/fixed: λ = 0.0003"
    assert _run_label(auto) == "wrn/autol2: AutoL2, λ₀ = 0.1"
    assert _run_label(fixed.drop(columns="variant")) == "λ = 0.0003"

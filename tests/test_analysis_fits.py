"""The t* ≈ c/(η·λ) fit against synthetic power laws and numpy's polyfit, its bootstrap
intervals' coverage, which runs it leaves out, and the λ prediction (SPEC §2.1, §2.3); the
time-to-fit fit t_fit ∝ η^b_η·λ^b_λ (Fig. S1) and the log-log slope."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis.fits import (
    PowerFit,
    c_from_run,
    fit_time_to_fit,
    fit_tstar,
    log_slope,
    predict_lambda,
    usable_for_fit,
)

ETAS = (0.05, 0.1, 0.2, 0.4)
LAMS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def synthetic_table(b=1.0, c=0.3, noise=0.1, seed=0, etas=ETAS, lams=LAMS):
    """A run table with t* = c/(η·λ)^b · exp(noise·N(0, 1)) epochs, every run usable."""
    rng = np.random.default_rng(seed)
    eta, lam = (a.ravel() for a in np.meshgrid(etas, lams))
    t = c * (eta * lam) ** (-b) * np.exp(noise * rng.standard_normal(len(eta)))
    return pd.DataFrame(
        {
            "hash": [f"h{i}" for i in range(len(eta))],
            "eta": eta,
            "lam": lam,
            "seed": 0,
            "status": "done",
            "budget_epochs": 10 * t,
            "t_star_epochs": t,
            "peak_inside": True,
            "t_star_robust": t,  # both estimators see the same t*: these tests are of the fit
            "robust_inside": True,
            "reached_train_acc_1": True,
            "eta_lam": eta * lam,
        }
    )


@pytest.mark.parametrize("b", [1.0, 0.8])
def test_recovers_slope_and_c_within_the_interval(b):
    fit = fit_tstar(synthetic_table(b=b, c=0.3, noise=0.1), n_boot=1000)
    assert fit.slope_ci[0] < -b < fit.slope_ci[1]
    assert fit.c_ci[0] < 0.3 < fit.c_ci[1]
    assert fit.slope == pytest.approx(-b, abs=0.05)
    assert fit.n_runs == 20
    assert fit.decades == pytest.approx(math.log10(0.4 * 1e-2 / (0.05 * 1e-4)))


def test_equals_numpy_polyfit_on_the_logs():
    table = synthetic_table(b=1.1, noise=0.3, seed=3)
    slope, intercept = np.polyfit(np.log(table["eta_lam"]), np.log(table["t_star_epochs"]), 1)
    fit = fit_tstar(table, n_boot=50)
    assert fit.slope == pytest.approx(slope, rel=1e-10)
    assert fit.c == pytest.approx(math.exp(intercept), rel=1e-10)
    fixed = np.exp(np.mean(np.log(table["t_star_epochs"] * table["eta_lam"])))
    assert fit.c_fixed_slope == pytest.approx(fixed, rel=1e-12)


def test_exact_power_law_gives_exact_values_and_degenerate_intervals():
    fit = fit_tstar(synthetic_table(b=1.0, c=0.25, noise=0.0), n_boot=200)
    assert fit.slope == pytest.approx(-1.0, abs=1e-12)
    assert fit.c == pytest.approx(0.25, rel=1e-10)
    assert fit.c_fixed_slope == pytest.approx(0.25, rel=1e-12)
    assert fit.slope_ci == pytest.approx((-1.0, -1.0), abs=1e-10)
    assert fit.c_fixed_slope_ci == pytest.approx((0.25, 0.25), rel=1e-10)


def test_bootstrap_interval_covers_the_truth_on_most_seeds():
    hits_slope = hits_c = 0
    n = 40
    for seed in range(n):
        fit = fit_tstar(synthetic_table(b=1.0, c=0.3, noise=0.3, seed=seed), n_boot=400, seed=seed)
        hits_slope += fit.slope_ci[0] < -1.0 < fit.slope_ci[1]
        hits_c += fit.c_fixed_slope_ci[0] < 0.3 < fit.c_fixed_slope_ci[1]
    # nominal 95 %; the percentile bootstrap under-covers a little at 20 runs
    assert hits_slope >= 0.8 * n and hits_c >= 0.8 * n
    # and the interval is not trivially wide
    assert fit.slope_ci[1] - fit.slope_ci[0] < 0.5


def test_wider_level_gives_a_wider_interval_and_the_seed_fixes_it():
    table = synthetic_table(noise=0.3)
    narrow, wide = fit_tstar(table, level=0.5), fit_tstar(table, level=0.99)
    assert wide.slope_ci[0] < narrow.slope_ci[0] < narrow.slope_ci[1] < wide.slope_ci[1]
    assert fit_tstar(table, seed=7) == fit_tstar(table, seed=7)
    assert fit_tstar(table, seed=7).slope_ci != fit_tstar(table, seed=8).slope_ci


def test_runs_outside_the_law_are_left_out():
    table = synthetic_table(noise=0.2)
    bad = table.iloc[:5].copy()
    bad["t_star_epochs"] = [1e9, 1e-9, 5.0, 7.0, 0.0]
    bad["lam"] = [0.0, 1e-3, 1e-3, 1e-3, 1e-3]
    bad["eta_lam"] = bad["eta"] * bad["lam"]
    bad["status"] = ["done", "diverged", "done", "done", "done"]
    bad["reached_train_acc_1"] = [True, True, False, True, True]
    bad["peak_inside"] = [True, True, True, False, True]
    bad["t_star_robust"], bad["robust_inside"] = bad["t_star_epochs"], bad["peak_inside"]
    both = pd.concat([table, bad], ignore_index=True)
    for estimator in ("paper", "robust"):
        assert usable_for_fit(both, estimator).tolist() == [True] * len(table) + [False] * 5
        assert fit_tstar(both, estimator=estimator) == fit_tstar(table, estimator=estimator)


def test_peak_inside_falls_back_to_t_star_below_budget():
    table = synthetic_table(noise=0.2).drop(columns=["peak_inside", "robust_inside"])
    table.loc[0, "budget_epochs"] = table.loc[0, "t_star_epochs"]
    for estimator in ("paper", "robust"):
        assert usable_for_fit(table, estimator).tolist() == [False] + [True] * (len(table) - 1)


def test_too_few_usable_runs_raise_naming_the_cause():
    table = synthetic_table()
    table["reached_train_acc_1"] = [True, True] + [False] * (len(table) - 2)
    with pytest.raises(ValueError, match=r"only 2 usable.*18 never reached training accuracy 1"):
        fit_tstar(table)
    with pytest.raises(ValueError, match="only 0 usable.*no finished runs"):
        fit_tstar(table.iloc[:0])


def test_a_single_eta_lam_raises():
    table = synthetic_table(etas=(0.1,), lams=(1e-3,))
    table = pd.concat([table] * 4, ignore_index=True)
    with pytest.raises(ValueError, match="distinct η·λ"):
        fit_tstar(table)


@pytest.mark.parametrize("kwargs", [{"level": 1.0}, {"level": 0.0}, {"n_boot": 5}])
def test_bad_bootstrap_settings_raise(kwargs):
    with pytest.raises(ValueError, match="level"):
        fit_tstar(synthetic_table(), **kwargs)


def test_to_dict_is_json_ready():
    d = fit_tstar(synthetic_table(), n_boot=50).to_dict()
    keys = {"slope", "slope_ci", "c", "c_ci", "n_runs", "decades", "c_fixed_slope", "level"}
    assert keys <= set(d)
    assert json.loads(json.dumps(d))["slope_ci"] == list(d["slope_ci"])
    assert PowerFit(**d) == fit_tstar(synthetic_table(), n_boot=50)


def test_c_and_predicted_lambda_invert_each_other():
    c = c_from_run(t_star_epochs=12.5, eta=0.2, lam=0.01)
    assert c == pytest.approx(12.5 * 0.2 * 0.01)
    assert predict_lambda(c, 0.2, 12.5) == pytest.approx(0.01)
    # the authors' λ_pred = 0.0066/T at η = 0.2 is c = 0.2·0.0066 here
    assert predict_lambda(0.2 * 0.0066, 0.2, 200) == pytest.approx(0.0066 / 200)


def test_predicted_lambda_puts_the_fitted_peak_at_the_budget():
    fit = fit_tstar(synthetic_table(noise=0.0, c=0.4), n_boot=50)
    lam = predict_lambda(fit.c_fixed_slope, 0.1, 300.0)
    assert fit.predict(0.1 * lam) == pytest.approx(300.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, None])
def test_invalid_inputs_raise(bad):
    with pytest.raises(ValueError, match="t_star_epochs"):
        c_from_run(bad, 0.1, 0.01)
    with pytest.raises(ValueError, match="budget_epochs"):
        predict_lambda(0.1, 0.1, bad)
    with pytest.raises(ValueError, match="lam"):
        c_from_run(1.0, 0.1, bad)


# -- time to fit the training set -------------------------------------------------------------


def test_time_to_fit_slopes_are_recovered():
    rng = np.random.default_rng(0)
    rows = [
        {"eta": eta, "lam": lam, "epochs_to_train_acc_1": 30.0 / eta * lam**0.05}
        for eta in (0.25, 0.5, 1.0, 2.0, 4.0)
        for lam in (1e-5, 1e-4, 1e-3)
    ]
    table = pd.DataFrame(rows)
    table["epochs_to_train_acc_1"] *= np.exp(rng.normal(0, 0.01, len(table)))
    fit = fit_time_to_fit(table, n_boot=200)
    assert fit["slope_eta"] == pytest.approx(-1.0, abs=0.02)
    assert fit["slope_lam"] == pytest.approx(0.05, abs=0.02)
    assert (
        fit["slope_eta_ci"][0] < -1.0 < fit["slope_eta_ci"][1] or abs(fit["slope_eta"] + 1) < 0.02
    )
    assert fit_time_to_fit(table[table["eta"] == 1.0])["slope_eta"] is None


def test_time_to_fit_leaves_out_lambda_zero_and_runs_that_never_fit():
    table = pd.DataFrame(
        {
            "eta": [0.5, 1.0, 2.0, 0.5, 1.0, 2.0, 1.0],
            "lam": [1e-3, 1e-3, 1e-2, 1e-2, 0.0, 0.0, 1e-2],
            "epochs_to_train_acc_1": [200.0, 100.0, 50.0, 200.0, 100.0, 50.0, math.nan],
        }
    )
    fit = fit_time_to_fit(table, n_boot=50)
    assert fit["n_runs"] == 4
    assert fit["slope_eta"] == pytest.approx(-1.0) and fit["slope_lam"] == pytest.approx(0.0)
    assert fit["lam_ref"] == pytest.approx(math.sqrt(1e-3 * 1e-2))
    assert json.loads(json.dumps(fit)) == fit


def test_log_slope_needs_two_distinct_positive_x():
    assert log_slope(np.array([1.0, 10.0, 100.0]), np.array([4.0, 0.4, 0.04])) == pytest.approx(-1)
    assert log_slope(np.array([1.0, 1.0, 0.0]), np.array([1.0, 2.0, 3.0])) is None


def _seeded(table: pd.DataFrame, spreads: tuple[float, ...]) -> pd.DataFrame:
    """``table`` repeated once per seed, its t* multiplied by each of ``spreads``."""
    copies = []
    for s, k in enumerate(spreads):
        c = table.assign(seed=s, hash=table["hash"] + f"-{s}")
        c["t_star_epochs"] = c["t_star_robust"] = c["t_star_epochs"] * k
        copies.append(c)
    return pd.concat(copies, ignore_index=True)


def test_seeds_are_fitted_as_the_median_of_each_point():
    table = synthetic_table(noise=0.2)
    seeded = _seeded(table, (0.5, 1.0, 3.0))  # the median of each point is the one-seed t*
    fit, alone = fit_tstar(seeded, n_boot=200), fit_tstar(table, n_boot=200)
    assert (fit.slope, fit.c, fit.c_fixed_slope) == pytest.approx(
        (alone.slope, alone.c, alone.c_fixed_slope), rel=1e-12
    )
    assert (fit.n_runs, fit.n_cells, fit.max_seeds) == (60, 20, 3)


def test_seed_spread_widens_the_intervals():
    table = synthetic_table(noise=0.05)
    tight = fit_tstar(_seeded(table, (1.0, 1.0, 1.0)), n_boot=500)
    spread = fit_tstar(_seeded(table, (0.3, 1.0, 3.0)), n_boot=500)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(spread.c_fixed_slope_ci) > 3 * width(tight.c_fixed_slope_ci)
    assert spread.c_fixed_slope == pytest.approx(tight.c_fixed_slope)  # the same medians


def test_unknown_estimator_is_refused():
    with pytest.raises(ValueError, match="estimator"):
        fit_tstar(synthetic_table(), estimator="mean")

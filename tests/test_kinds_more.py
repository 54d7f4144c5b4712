"""The further sweep-figure kinds (fixed budgets, time to fit, MSE/catapult, curves, σ_w) on
hand-built runs/measurements frames, their experiment files, and one tiny run end to end."""

import json

import numpy as np
import pandas as pd
import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.experiments import ReproduceRequest
from l2dynamics.experiments import kinds_more as K
from l2dynamics.experiments.kinds import analyse
from l2dynamics.experiments.spec import Experiment, load_experiment
from l2dynamics.experiments.sweep_figure import run_experiment

FILES = ("fig1a", "fig1b", "figS1", "figS5", "figS6", "figS12")


def curve_rows(run_hash, eta, lam, epochs, test_acc, train_acc=None, train_loss=None, **extra):
    """Measurement rows of one run (the columns of load_measurements, plus ``extra``)."""
    epochs = np.asarray(epochs, np.float64)
    n = len(epochs)
    return pd.DataFrame(
        {
            "hash": run_hash,
            "eta": eta,
            "lam": lam,
            "seed": 0,
            "step": np.arange(n),
            "epoch": epochs,
            "time": eta * epochs,
            "tau": eta * lam * epochs,
            "train_loss": np.ones(n) if train_loss is None else np.asarray(train_loss, float),
            "train_acc": np.ones(n) if train_acc is None else np.asarray(train_acc, float),
            "test_loss": np.ones(n),
            "test_acc": np.asarray(test_acc, np.float64),
            "l2_norm_sq": np.ones(n),
            "eta_now": eta,
            "lam_now": lam,
            **extra,
        }
    )


def run_rows(curves, *, config=None, stopped=(), status=None, variant=None):
    """One store-like runs row per run of ``curves``."""
    rows = []
    for run_hash, c in curves.groupby("hash", sort=False):
        cfg = (config or {}).get(run_hash, {"lr_schedule": "constant"})
        rows.append(
            {
                "hash": run_hash,
                "status": (status or {}).get(run_hash, "done"),
                "eta": float(c["eta"].iloc[0]),
                "lam": float(c["lam"].iloc[0]),
                "seed": 0,
                "budget_epochs": float(c["epoch"].max()),
                "final_test_acc": float(c["test_acc"].iloc[-1]),
                "stopped_at_peak": int(run_hash in stopped),
                "config": json.dumps(cfg),
            }
        )
    runs = pd.DataFrame(rows)
    if variant is not None:
        runs["variant"] = runs["hash"].map(variant)
    return runs


def peaked(run_hash, eta, lam, c=0.05, top=0.9, epochs=None, fit_epoch=1.0, **extra):
    """A run whose test accuracy peaks at τ = c (t* = c/(η·λ) epochs) and falls after it."""
    epochs = np.geomspace(0.1, 40 * c / (eta * lam), 80) if epochs is None else epochs
    tau = eta * lam * np.asarray(epochs)
    acc = 0.1 + (top - 0.1) * np.exp(-(np.log(tau / c) ** 2) / 2)
    train = np.minimum(1.0, np.asarray(epochs) / fit_epoch)
    return curve_rows(run_hash, eta, lam, epochs, acc, train_acc=train, **extra)


def experiment(kind, **settings):
    return Experiment("synthetic", "Synthetic", kind, settings, ())


# -- fixed budgets ----------------------------------------------------------------------------


def test_best_within_budget_is_the_truncated_maximum():
    a = curve_rows("a", 0.2, 1e-3, [0, 1, 2, 4, 8, 16], [0.1, 0.5, 0.7, 0.6, 0.9, 0.8])
    b = curve_rows("b", 0.2, 1e-2, [0, 1, 2, 4, 10], [0.1, 0.8, 0.6, 0.5, 0.4])
    curves = pd.concat([a, b])
    runs = run_rows(curves, stopped={"b"})
    got = K.best_within_budgets(runs, curves, [3, 8, 20]).set_index(["hash", "budget_T"])
    # by hand: max over epochs <= T
    assert got.loc[("a", 3.0), "best_test_acc"] == pytest.approx(0.7)
    assert got.loc[("a", 3.0), "t_star_epochs"] == 2.0
    assert got.loc[("a", 8.0), "best_test_acc"] == pytest.approx(0.9)
    assert got.loc[("b", 3.0), "best_test_acc"] == pytest.approx(0.8)
    # "a" was measured up to 16 < 20 epochs: only a lower bound; "b" stopped past its peak
    assert not got.loc[("a", 20.0), "valid"] and got.loc[("b", 20.0), "valid"]
    acc = K.acc_by_budget(K.best_within_budgets(runs, curves, [3, 8, 20]))
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
    opt = K.optimal_by_budget(acc, c=0.02, eta=0.2, near_best=0.05).set_index("budget_T")
    # within 0.05 of the best: only λ = 1e-2 at T = 10; λ = 1e-3 and 1e-2 at T = 100
    assert opt.loc[10.0, "n_near_best"] == 1
    assert (opt.loc[100.0, "near_best_lo"], opt.loc[100.0, "near_best_hi"]) == (1e-3, 1e-2)
    assert opt.loc[10.0, "best_lam"] == 1e-2 and opt.loc[100.0, "best_lam"] == 1e-3
    assert opt.loc[10.0, "lam_pred"] == pytest.approx(0.02 / (0.2 * 10))  # c/(η·T) = 0.01
    assert opt.loc[100.0, "lam_pred_2c"] == pytest.approx(2 * 0.02 / (0.2 * 100))  # 2e-3
    assert opt.loc[10.0, "gap_pred"] == pytest.approx(0.0)
    # 2e-3 is nearest (in log λ) to the grid's 1e-3: accuracy 0.9, nothing lost
    assert opt.loc[100.0, "acc_at_pred_2c"] == pytest.approx(0.9)
    assert K.nearest_lam(np.array([1e-3, 1e-2]), 4e-3) == 1e-2
    assert K.log_slope(np.array([10.0, 100.0]), np.array([1e-2, 1e-3])) == pytest.approx(-1.0)


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
    table["t_star_tau"] = table["t_star_epochs"] * table["eta"] * table["lam"]
    out = K.calibration_c(table)
    # λ = 1 peaked at the end of its budget: the calibration run is λ = 0.1 (it need not fit,
    # like the paper's 2-epoch run): c = 1·0.2·0.1 = 0.02
    assert out["calibration_lam"] == 0.1
    assert out["c_calibration"] == pytest.approx(0.02)
    assert out["calibration_reached_train_acc_1"] is False
    # c_fit: the runs that fit, geometric mean of 0.08 and 0.04
    assert out["c_fit"] == pytest.approx(np.sqrt(0.04 * 0.08))


def test_fixed_budget_kind_truncated(tmp_path):
    # the peak improves as λ decreases (SPEC §2.2): 0.9, 0.85, 0.8
    lams, tops = [1e-3, 1e-2, 1e-1], [0.9, 0.85, 0.8]
    parts = [
        peaked(f"r{i}", 0.2, lam, c=0.05, top=t)
        for i, (lam, t) in enumerate(zip(lams, tops, strict=True))
    ]
    long = [p[p["epoch"] <= 2000] for p in parts]
    curves = pd.concat(long, ignore_index=True)
    runs = run_rows(curves)
    exp = experiment("fixed_budget", budgets=[5, 50, 500])
    outcome = analyse(exp, runs, curves, tmp_path)
    s = outcome.summary
    assert s["calibration_lam"] == pytest.approx(0.1)
    assert s["c"] == pytest.approx(0.05, rel=0.1)  # the peaks were placed at τ = 0.05
    # t* = 0.05/(0.2·λ): 2.5 epochs at λ = 0.1, 25 at 0.01, 250 at 1e-3 → optimum ∝ 1/T
    assert [s["per_budget"][k]["best_lam"] for k in ("5", "50", "500")] == [0.1, 0.01, 0.001]
    assert s["lam_opt_vs_T_slope"] == pytest.approx(-1.0)
    assert outcome.figures[0][1].stat().st_size > 0


def test_fixed_budget_refuses_truncating_scheduled_runs(tmp_path):
    curves = peaked("s", 0.2, 1e-2)
    runs = run_rows(curves, config={"s": {"lr_schedule": "step"}})
    with pytest.raises(ConfigError, match="schedule"):
        analyse(experiment("fixed_budget", budgets=[10]), runs, curves, tmp_path)


def test_fixed_budget_kind_per_variant(tmp_path):
    lams = [1e-3, 1e-2, 1e-1]
    fixed = [peaked(f"f{i}", 0.2, lam, top=0.9 - 0.1 * abs(i - 1)) for i, lam in enumerate(lams)]
    scaled = [peaked(f"s{i}", 0.2, lam, top=0.95 - 0.05 * i) for i, lam in enumerate(lams)]
    curves = pd.concat(fixed + scaled, ignore_index=True)
    variant = {f"f{i}": "T = 200" for i in range(3)} | {f"s{i}": "T = 0.1/λ" for i in range(3)}
    curves["variant"] = curves["hash"].map(variant)
    runs = run_rows(curves, variant=variant)
    s = analyse(experiment("fixed_budget"), runs, curves, tmp_path).summary
    assert s["variants"]["T = 200"]["best_lam"] == 1e-2
    assert s["variants"]["T = 0.1/λ"]["best_lam_is_smallest"] is True
    assert s["variants"]["T = 0.1/λ"]["spearman_acc_vs_lam"] == pytest.approx(-1.0)


# -- time to fit ------------------------------------------------------------------------------


def test_time_to_fit_slopes_are_recovered():
    rng = np.random.default_rng(0)
    rows = [
        {"eta": eta, "lam": lam, "epochs_to_train_acc_1": 30.0 / eta * lam**0.05}
        for eta in (0.25, 0.5, 1.0, 2.0, 4.0)
        for lam in (1e-5, 1e-4, 1e-3)
    ]
    table = pd.DataFrame(rows)
    table["epochs_to_train_acc_1"] *= np.exp(rng.normal(0, 0.01, len(table)))
    fit = K.fit_time_to_fit(table, n_boot=200)
    assert fit["slope_eta"] == pytest.approx(-1.0, abs=0.02)
    assert fit["slope_lam"] == pytest.approx(0.05, abs=0.02)
    assert (
        fit["slope_eta_ci"][0] < -1.0 < fit["slope_eta_ci"][1] or abs(fit["slope_eta"] + 1) < 0.02
    )
    assert K.fit_time_to_fit(table[table["eta"] == 1.0])["slope_eta"] is None


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


# -- MSE / catapult ---------------------------------------------------------------------------


def test_loss_minimum_and_accuracy_at_fit():
    up = curve_rows("up", 0.1, 1e-2, [0, 1, 2, 3], [0.2] * 4, train_loss=[1.0, 0.1, 0.2, 0.5])
    down = curve_rows("dn", 0.1, 1e-2, [0, 1, 2, 3], [0.2] * 4, train_loss=[1.0, 0.5, 0.2, 0.1])
    flat = curve_rows("fl", 0.1, 1e-2, [0, 1, 2, 3], [0.2] * 4, train_loss=[1.0, 0.1, 0.1, 0.102])
    m = K.loss_minimum(pd.concat([up, down, flat]), rise_tol=0.05).set_index("hash")
    assert m.loc["up", "rises"] and not m.loc["dn", "rises"] and not m.loc["fl", "rises"]
    assert m.loc["fl", "interior"] and not m.loc["dn", "interior"]
    assert m.loc["up", "epoch_min"] == 1.0 and m.loc["up", "tau_min"] == pytest.approx(1e-3)
    fit = curve_rows("z", 0.3, 0.0, [0, 1, 2, 3], [0.1, 0.6, 0.7, 0.9], train_acc=[0, 0.9, 1, 1])
    got = K.acc_at_train_fit(fit).iloc[0]
    assert got["fit_epoch"] == 2.0 and got["acc_at_fit"] == pytest.approx(0.7)
    spread = K.eta_spread(
        pd.DataFrame({"lam": [1, 1, 2], "eta": [1, 2, 1], "mean": [0.5, 0.7, 0.9]})
    )
    assert spread == {1.0: pytest.approx(0.2)}


def test_catapult_kind(tmp_path):
    parts = []
    for i, eta in enumerate((0.01, 0.1, 1.0)):
        for lam in (1e-3, 1e-2):
            epochs = np.geomspace(0.1, 1 / (eta * lam), 40)
            tau = eta * lam * epochs
            loss = 0.05 * ((np.log(tau / 0.05)) ** 2 + 0.1)  # minimum at τ = 0.05, then rises
            parts.append(
                curve_rows(
                    f"{eta}-{lam}", eta, lam, epochs, 0.9 - 0.01 * i + 0 * epochs, train_loss=loss
                )  # fmt: skip
            )
        epochs = np.arange(0, 50.0)
        train = np.where(epochs >= 10, 1.0, 0.5)
        acc = np.where(epochs >= 10, 0.7 + 0.1 * i, 0.3)  # λ = 0: η changes the accuracy
        parts.append(curve_rows(f"{eta}-0", eta, 0.0, epochs, acc, train))
    curves = pd.concat(parts, ignore_index=True)
    s = analyse(experiment("catapult"), run_rows(curves), curves, tmp_path).summary
    assert s["eta_spread_lam0_at_fit"] == pytest.approx(0.2)
    assert s["eta_spread_l2_median"] == pytest.approx(0.02)
    assert s["l2_flattens_eta_dependence"] is True
    assert s["mse_rises_fraction"] == 1.0
    assert s["mse_min_tau_median"] == pytest.approx(0.05, rel=0.2)


# -- curves and σ_w ---------------------------------------------------------------------------


def test_curves_kind_collapse(tmp_path):
    parts = []
    for lam in (1e-4, 1e-3, 1e-2):
        run = peaked(f"r{lam}", 0.15, lam, c=0.05)
        run["train_loss"] = (np.log(run["tau"] / 0.2)) ** 2 + 0.1  # minimum at τ = 0.2
        parts.append(run)
    curves = pd.concat(parts, ignore_index=True)
    curves["variant"] = "fc"
    runs = run_rows(curves, variant=dict.fromkeys(curves["hash"], "fc"))
    outcome = analyse(experiment("curves"), runs, curves, tmp_path)
    fc = outcome.summary["variants"]["fc"]
    # peaks one decade apart in epochs (λ decades apart at one η), at the same τ
    assert fc["std_log10_peak_epochs"] == pytest.approx(np.std([0, 1, 2]), rel=0.05)
    assert fc["peak_collapse_ratio"] < 0.05
    assert fc["loss_min_collapse_ratio"] < 0.05
    assert fc["per_lam"]["0.001"]["tau_star"] == pytest.approx(0.05, rel=0.1)
    assert fc["per_lam"]["0.01"]["tau_loss_min"] == pytest.approx(0.2, rel=0.1)
    assert (tmp_path / "synthetic.png").stat().st_size > 0


def test_sigma_w_spread(tmp_path):
    parts, variant, config = [], {}, {}
    for sw, top in ((0.5, 0.80), (1.0, 0.82), (2.0, 0.81)):
        for lam in (1e-3, 1e-2):
            h = f"{sw}-{lam}"
            epochs = np.geomspace(0.1, 1 / (0.2 * lam), 50)
            tau = 0.2 * lam * epochs
            # early: σ_w-dependent speed; late: all at the same plateau `top`
            acc = top * (1 - np.exp(-tau / (0.01 * sw)))
            parts.append(curve_rows(h, 0.2, lam, epochs, acc))
            variant[h] = f"σ_w = {sw:g}"
            config[h] = {"lr_schedule": "constant", "model": {"options": {"sigma_w": sw}}}
    curves = pd.concat(parts, ignore_index=True)
    curves["variant"] = curves["hash"].map(variant)
    runs = run_rows(curves, config=config, variant=variant)
    s = analyse(experiment("sigma_w"), runs, curves, tmp_path).summary
    assert s["values"] == {"σ_w = 0.5": 0.5, "σ_w = 1": 1.0, "σ_w = 2": 2.0}
    assert s["best_acc_spread_max"] == pytest.approx(0.02, abs=1e-3)
    per = s["per_lam"]["0.01"]
    assert per["max_spread_before_peak"] > 0.3 > 0.03 > per["mean_spread_after_peak"]
    spread = K.spread_vs_tau(curves)
    assert set(spread["lam"]) == {1e-3, 1e-2} and (spread["spread"] >= 0).all()


# -- the experiment files and one tiny run ----------------------------------------------------


@pytest.mark.parametrize("figure", FILES)
def test_files_parse_at_both_scales(figure):
    for scale in ("cpu", "paper"):
        exp = load_experiment(figure, scale, "/nowhere")
        assert exp.kind in K.MORE_KINDS
        assert exp.sweeps and all(len(s.runs) for _, s in exp.sweeps)
        assert all(r.data.data_dir in (None, "/nowhere") for _, s in exp.sweeps for r in s.runs)


def test_paper_scale_follows_the_spec():
    b = load_experiment("fig1b", "paper")
    runs = b.sweeps[0][1].runs
    assert {r.lam for r in runs} == {5e-6, 1e-5, 5e-5, 1e-4, 2e-4, 4e-4, 1e-3, 2e-3}
    assert all(r.eta == 0.2 and r.momentum == 0.9 and r.model.name == "wrn" for r in runs)
    assert all(r.lr_schedule == "constant" for r in runs)  # truncation needs it
    a = dict(load_experiment("fig1a", "paper").sweeps)
    assert all(r.lr_schedule == "step" for s in a.values() for r in s.runs)
    budgets = sorted(
        {
            (r.lam, r.budget_epochs or r.budget_c / (r.eta * r.lam))
            for s in a.values()
            for r in s.runs
        }
    )
    assert any(t == pytest.approx(0.1 / lam) for lam, t in budgets)
    assert any(t == 200 for _, t in budgets)


TINY = """
[experiment]
figure = "tiny1b"
title = "Tiny fixed-budget check"
kind = "fixed_budget"
budgets = [2, 10, 50]

[sweep.data]
name = "digits"
n_train = 64
n_test = 100

[sweep.model]
name = "fc"
options = { depth = 1, width = 32 }

[sweep.train]
measure_resolution = 0.2

[sweep.grid]
eta = [2.0]
lam = [0.003, 0.03]

[sweep.budget]
epochs = 50
"""


def test_tiny_fixed_budget_end_to_end(tmp_path):
    exp = load_experiment("tiny1b", "cpu", text=TINY)
    summary = run_experiment(exp, ReproduceRequest("tiny1b", "cpu", tmp_path))
    assert summary["n_runs"] == 2 and set(summary["per_budget"]) == {"2", "10", "50"}
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["mode"] == "truncated"
    for name in ("tiny1b.png", "acc_by_budget.csv", "optimal_by_budget.csv", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name

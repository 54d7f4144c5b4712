"""Further kinds of sweep figure (fixed budgets, time to fit, MSE, curves, σ_w): see :mod:`.kinds`.

Each kind is ``kind(exp, runs, curves, out) -> Outcome``, registered in ``MORE_KINDS``: pure
analysis of the store's runs and measurements DataFrames (with a ``variant`` column) plus the
figures it draws into ``out``. The numerical helpers are public functions of this module, so
that they are tested on hand-built frames.

Units: epochs (budgets T, t*, time to fit), η·epochs (physical time), τ = η·λ·epochs
(normalized time); accuracies are fractions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.analysis import figures_more as G
from l2dynamics.analysis.fits import predict_lambda, usable_for_fit
from l2dynamics.analysis.tables import (
    FINISHED,
    TRAIN_ACC_ONE_TOL,
    best_acc_vs_lam,
    run_table,
    within_budget,
)
from l2dynamics.errors import ConfigError
from l2dynamics.experiments.kinds import KindFn, Outcome, finite
from l2dynamics.experiments.spec import Experiment

# -- shared helpers -------------------------------------------------------------------------


def run_configs(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """{hash: the run's configuration} from the store's ``config`` JSON column ({} if absent)."""
    if "config" not in runs:
        return {h: {} for h in runs["hash"]}
    return {
        h: (json.loads(c) if isinstance(c, str) else {})
        for h, c in zip(runs["hash"], runs["config"], strict=True)
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    value = finite(value) if value is not None else None
    return None if value is None else round(value, digits)


def _lam_key(lam: float) -> str:
    return f"{lam:g}"


def _variants(table: pd.DataFrame) -> list[str]:
    return list(table["variant"].unique()) if "variant" in table else [""]


def _of_variant(frame: pd.DataFrame, variant: str) -> pd.DataFrame:
    return frame[frame["variant"] == variant] if "variant" in frame else frame


def _slug(label: str) -> str:
    keep = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "-" for ch in label)
    return "-".join(p for p in keep.split("-") if p) or "all"


# -- fixed budgets (Figures 1a, 1b, 4, S3, S4) ----------------------------------------------


def truncation_problems(runs: pd.DataFrame) -> list[str]:
    """Hashes of runs whose best accuracy within T cannot be read off a truncated curve.

    Reading "best accuracy at budget T" off one long run assumes the run up to T is what a run
    with budget T would have done: true for a constant learning rate and a fixed λ, false when
    the schedule depends on T (the step schedule ×0.2 at 0.3T, 0.6T, 0.9T) or λ is scheduled
    (AutoL2).
    """
    bad = []
    for run_hash, cfg in run_configs(runs).items():
        if cfg.get("lr_schedule", "constant") != "constant" or cfg.get("autol2", False):
            bad.append(run_hash)
    return bad


def best_within_budgets(
    runs: pd.DataFrame, curves: pd.DataFrame, budgets: Sequence[float]
) -> pd.DataFrame:
    """Each finished run's best test accuracy within each budget T (epochs), from its curve.

    The performance of a run with budget T is its maximum test accuracy over epochs ≤ T
    (early stopping inside T), so for a constant-η, fixed-λ run it is read off one long run's
    curve truncated at T (see :func:`truncation_problems` for when this is not valid).

    Returns:
        One row per (run, T): :func:`~l2dynamics.analysis.tables.within_budget` columns plus
        ``budget_T`` and ``valid``: the run was measured up to T, or it stopped earlier for a
        reason that fixes its best accuracy for any longer budget (it was stopped past its
        peak by ``peak_stop``, or it diverged). Rows that are not valid only bound the
        accuracy from below and are left out of the per-budget tables.
    """
    finished = runs[runs["status"].isin(FINISHED)]
    keep = curves[curves["hash"].isin(finished["hash"])]
    final = set(finished.loc[finished["status"] == "diverged", "hash"])
    if "stopped_at_peak" in finished:
        stopped = finished["stopped_at_peak"].fillna(0).astype(bool)
        final |= set(finished.loc[stopped, "hash"])
    frames = []
    for budget in budgets:
        rows = within_budget(keep, float(budget)) if len(keep) else pd.DataFrame()
        if len(rows):
            rows["budget_T"] = float(budget)
            rows["valid"] = rows["covers_budget"].astype(bool) | rows["hash"].isin(final)
            frames.append(rows)
    columns = ["hash", "eta", "lam", "seed", "best_test_acc", "t_star_epochs", "covers_budget"]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*columns, "budget_T", "valid"])
    )


def acc_by_budget(within: pd.DataFrame) -> pd.DataFrame:
    """Best test accuracy per (T, λ) from valid :func:`best_within_budgets` rows.

    Returns:
        Columns ``budget_T`` and those of :func:`~l2dynamics.analysis.tables.best_acc_vs_lam`
        (mean over seeds at the best η of each λ).
    """
    frames = []
    for budget, rows in within[within["valid"]].groupby("budget_T", sort=True):
        acc = best_acc_vs_lam(rows)
        acc.insert(0, "budget_T", float(budget))
        frames.append(acc)
    columns = ["budget_T", "lam", "mean", "std", "best_eta", "n_seeds", "n_eta"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def nearest_lam(lams: np.ndarray, target: float) -> float:
    """The positive grid λ nearest to ``target`` in log λ (NaN when none or no target)."""
    positive = lams[np.isfinite(lams) & (lams > 0)]
    if not len(positive) or target is None or not np.isfinite(target) or target <= 0:
        return float("nan")
    return float(positive[np.argmin(np.abs(np.log(positive) - math.log(target)))])


def optimal_by_budget(
    acc: pd.DataFrame, c: float | None, eta: float, near_best: float = 0.0
) -> pd.DataFrame:
    """Per budget T: the grid's best λ and accuracy, and the predicted λ = c/(η·T), 2c/(η·T).

    Args:
        acc: :func:`acc_by_budget`.
        c: the constant of t* ≈ c/(η·λ) (τ units), or None (no prediction).
        eta: the runs' learning rate.
        near_best: accuracy (fraction) within which a λ counts as tied with the best (e.g. a
            test image or two: the optimum of a flat curve is not resolved below that).

    Returns:
        One row per T: ``budget_T``, ``best_lam`` (ties: the smallest λ), ``best_acc``,
        ``n_near_best``, ``near_best_lo``/``near_best_hi`` (the range of λ within
        ``near_best`` of the best), ``lam_pred``, ``lam_pred_2c``,
        ``acc_at_pred``/``acc_at_pred_2c`` (accuracy at the grid λ nearest the prediction, in
        log λ) and ``gap_pred``/``gap_pred_2c`` = best − that (accuracy lost by trusting it).
    """
    rows = []
    for budget, per in acc.groupby("budget_T", sort=True):
        per = per[np.isfinite(per["mean"].astype(float))]
        if not len(per):
            continue
        best = per.loc[per["mean"].astype(float).idxmax()]
        row = {
            "budget_T": float(budget),
            "best_lam": float(best["lam"]),
            "best_acc": float(best["mean"]),
        }
        near = per.loc[per["mean"].astype(float) >= row["best_acc"] - near_best - 1e-12, "lam"]
        row |= {"n_near_best": int(len(near)), "near_best_lo": float(near.min())}
        row["near_best_hi"] = float(near.max())
        by_lam = per.set_index("lam")["mean"].astype(float)
        for suffix, factor in (("", 1.0), ("_2c", 2.0)):
            pred = predict_lambda(factor * c, eta, budget) if c else float("nan")
            near = nearest_lam(by_lam.index.to_numpy(np.float64), pred)
            at = float(by_lam.get(near, np.nan)) if np.isfinite(near) else float("nan")
            row |= {f"lam_pred{suffix}": pred, f"acc_at_pred{suffix}": at}
            row[f"gap_pred{suffix}"] = row["best_acc"] - at
        rows.append(row)
    columns = ["budget_T", "best_lam", "best_acc", "n_near_best", "near_best_lo", "near_best_hi"]
    columns += ["lam_pred", "acc_at_pred", "gap_pred"]
    columns += ["lam_pred_2c", "acc_at_pred_2c", "gap_pred_2c"]
    return pd.DataFrame(rows, columns=columns)


def calibration_c(table: pd.DataFrame) -> dict[str, Any]:
    """The constant c of t* ≈ c/(η·λ) (τ units), two ways, from a :func:`run_table`.

    - ``c_calibration``: t*·η·λ of the runs at the LARGEST λ whose peak lies inside the budget
      (geometric mean over their η and seeds): the paper's recipe, one cheap run at a large λ
      whose peak comes early. Like the paper's 2-epoch calibration run it need not fit the
      training set (``calibration_reached_train_acc_1`` says whether it did).
    - ``c_fit``: the geometric mean of t*·η·λ over the runs of the t* fit (λ > 0, peak inside
      the budget, training accuracy 1 reached: the slope −1 fit of
      :func:`~l2dynamics.analysis.fits.fit_tstar`). Small λ tend to need a larger c (SPEC §2.3).

    Values are None when no run qualifies.
    """
    out: dict[str, Any] = dict.fromkeys(
        ("c_calibration", "calibration_lam", "calibration_reached_train_acc_1", "c_fit")
    )
    if not len(table):
        return out
    t = table["t_star_epochs"].to_numpy(np.float64)
    peaked = table[
        (table["lam"] > 0)
        & (table["status"] == "done")
        & table["peak_inside"].astype(bool)
        & np.isfinite(t)
        & (t > 0)
    ]
    if len(peaked):
        top = peaked[peaked["lam"] == peaked["lam"].max()]
        out["calibration_lam"] = float(top["lam"].iloc[0])
        out["c_calibration"] = float(np.exp(np.log(top["t_star_tau"].astype(float)).mean()))
        out["calibration_reached_train_acc_1"] = bool(top["reached_train_acc_1"].all())
    usable = table[usable_for_fit(table)]
    if len(usable):
        out["c_fit"] = float(np.exp(np.log(usable["t_star_tau"].astype(float)).mean()))
    return out


def log_slope(x: np.ndarray, y: np.ndarray) -> float | None:
    """Least-squares slope of log y on log x (None with fewer than 2 distinct positive x)."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if len(np.unique(x[ok])) < 2:
        return None
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def _truncated(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Budgets read off long constant-η runs (Fig. 1b, 4, S3, S4)."""
    budgets = [float(b) for b in exp.settings["budgets"]]
    bad = truncation_problems(runs)
    if bad:
        raise ConfigError(
            f"experiment {exp.figure}: {len(bad)} run(s) use a learning-rate schedule or AutoL2; "
            "the best accuracy within a budget T cannot be read off a truncated curve when the "
            "schedule depends on T. Train one run per budget (variants) and leave out 'budgets'."
        )
    notes = [
        "Best accuracy at budget T is the maximum test accuracy over measurements at epochs ≤ T "
        "of one long constant-η run (valid: without a schedule the first T epochs of a longer "
        "run are the run with budget T, and performance is the maximum test accuracy)."
    ]
    table = run_table(runs, curves)
    within = best_within_budgets(runs, curves, budgets)
    dropped = within[~within["valid"]]
    extended = within[within["valid"] & ~within["covers_budget"].astype(bool)]
    if len(extended):
        notes.append(
            f"{extended['hash'].nunique()} run(s) ended before some budget T because they "
            "diverged or were stopped past their peak (peak_stop); their best accuracy is "
            "taken as final for every longer T (it assumes no second, higher peak)."
        )
    if len(dropped):
        notes.append(f"{len(dropped)} (run, T) pair(s) not measured up to T were left out.")
    acc = acc_by_budget(within)
    eta = float(exp.settings.get("predict_eta", table["eta"].mode().iloc[0] if len(table) else 1.0))
    calib = calibration_c(table)
    how = str(exp.settings.get("calibration", "largest_lam"))
    if how not in ("largest_lam", "fit"):
        raise ConfigError(f"experiment {exp.figure}: calibration must be 'largest_lam' or 'fit'")
    c = calib["c_calibration"] if how == "largest_lam" else calib["c_fit"]
    if c is None:
        notes.append("no run reached training accuracy 1 and peaked inside its budget: no c")
    near_best = float(exp.settings.get("near_best", 0.0))
    optimal = optimal_by_budget(acc, c, eta, near_best)
    png = G.plot_fixed_budget(acc, optimal, out / f"{exp.figure}.png", title=exp.title)
    summary = {
        "mode": "truncated",
        "budgets_epochs": budgets,
        "eta": eta,
        "calibration": how,
        **calib,
        "c": c,
        "c_per_lam_epochs": None if c is None else c / eta,
        "near_best": near_best,
        "lam_opt_vs_T_slope": log_slope(
            optimal["budget_T"].to_numpy(), optimal["best_lam"].to_numpy()
        ),
        "per_budget": {
            f"{r.budget_T:g}": {
                "best_lam": r.best_lam,
                "best_acc": _round(r.best_acc),
                "near_best_lam_range": [r.near_best_lo, r.near_best_hi],
                "lam_pred": finite(r.lam_pred),
                "lam_pred_2c": finite(r.lam_pred_2c),
                "gap_pred": _round(r.gap_pred),
                "gap_pred_2c": _round(r.gap_pred_2c),
            }
            for r in optimal.itertuples()
        },
    }
    caption = "(a) best test accuracy within T vs λ per budget, λ_pred marked; (b) optimal λ vs T"
    tables = {"runs": table, "acc_by_budget": acc, "optimal_by_budget": optimal}
    return Outcome(summary, [(caption, png)], tables, notes)


def variant_acc_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, λ): best test accuracy (mean/std over seeds at the best η) and the mean
    final test accuracy of the runs at that η."""
    table = run_table(runs, curves)
    final = runs.set_index("hash")["final_test_acc"] if "final_test_acc" in runs else None
    frames = []
    for variant in _variants(table):
        rows = _of_variant(table, variant)
        acc = best_acc_vs_lam(rows)
        if final is not None and len(acc):
            fin = rows.assign(final=rows["hash"].map(final)).groupby(["lam", "eta"])["final"].mean()
            acc["final"] = [
                fin.get((lam, eta), np.nan)
                for lam, eta in zip(acc["lam"], acc["best_eta"], strict=True)
            ]
        acc.insert(0, "variant", variant)
        frames.append(acc)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def lam_trend(lams: np.ndarray, acc: np.ndarray) -> float | None:
    """Spearman rank correlation of accuracy with λ over λ > 0 (negative: accuracy improves as
    λ decreases); None with fewer than 3 points."""
    ok = np.isfinite(acc) & (lams > 0)
    if ok.sum() < 3:
        return None
    r = pd.Series(lams[ok]).rank().corr(pd.Series(acc[ok]).rank())
    return None if not np.isfinite(r) else float(r)


def _per_variant(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """One budget rule per variant, each run trained for its own budget (Fig. 1a)."""
    acc = variant_acc_table(runs, curves)
    summary: dict[str, Any] = {"mode": "per_variant", "variants": {}}
    lines = {}
    for variant in _variants(acc):
        rows = _of_variant(acc, variant)
        lines[variant] = rows
        lam, mean = rows["lam"].to_numpy(np.float64), rows["mean"].to_numpy(np.float64)
        best = int(np.nanargmax(mean)) if np.isfinite(mean).any() else None
        positive = np.sort(lam[lam > 0])
        summary["variants"][variant] = {
            "best_acc_by_lam": {_lam_key(a): _round(b) for a, b in zip(lam, mean, strict=True)},
            "final_acc_by_lam": {
                _lam_key(a): _round(b)
                for a, b in zip(lam, rows.get("final", mean * np.nan), strict=True)
            },
            "best_lam": None if best is None else float(lam[best]),
            "best_acc": None if best is None else _round(mean[best]),
            "best_lam_is_smallest": None
            if best is None or not len(positive)
            else bool(lam[best] == positive[0]),
            "spearman_acc_vs_lam": lam_trend(lam, mean),
        }
    png = G.plot_acc_vs_lam_variants(lines, out / f"{exp.figure}.png", title=exp.title)
    notes = [
        "Each variant's runs were trained for their own budget (the step schedule depends on T, "
        "so budgets cannot be read off a truncated longer run). 'best' is the maximum test "
        "accuracy during training, 'final' the test accuracy at the end of the budget."
    ]
    caption = "test accuracy vs λ per budget rule (solid: best during training, dashed: final)"
    return Outcome(
        summary, [(caption, png)], {"runs": run_table(runs, curves), "acc_by_variant": acc}, notes
    )


def fixed_budget(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figures 1a/1b/4/S3/S4: best accuracy vs λ at fixed training budgets.

    With ``budgets = [T, …]`` (epochs) in the experiment's settings, each budget's accuracy is
    read off the long constant-η runs truncated at T (see :func:`best_within_budgets`); the
    optimal λ of each T is compared with λ_pred = c/(η·T) and 2c/(η·T), with c from
    :func:`calibration_c` (``calibration = "largest_lam"`` (default: the paper's recipe, one
    run at a large λ) or ``"fit"``); ``near_best`` (accuracy fraction, default 0) gives the
    range of λ tied with the best within that tolerance. Without ``budgets``, every variant is
    one budget rule (e.g. T = 200 epochs vs T = 0.1/λ) whose runs were trained for their own
    budget.
    """
    if "budgets" in exp.settings:
        return _truncated(exp, runs, curves, out)
    return _per_variant(exp, runs, curves, out)


# -- time to training accuracy 1 (Figure S1) ------------------------------------------------


def fit_time_to_fit(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Fit log t_fit = a + b_η·log η + b_λ·log λ over runs with λ > 0 that reached training
    accuracy 1 (t_fit = ``epochs_to_train_acc_1``, epochs), by least squares.

    Returns:
        ``intercept`` (natural log), ``slope_eta`` (≈ −1: t_fit ∝ 1/η), ``slope_lam`` (≈ 0),
        their 95% bootstrap intervals (``*_ci``, resampling runs), ``lam_ref`` (the geometric
        mean λ, where the drawn line is evaluated), ``n_runs``; the slopes are None when the
        runs do not span ≥ 2 η and ≥ 2 λ.
    """
    ok = table[(table["lam"] > 0) & np.isfinite(table["epochs_to_train_acc_1"])]
    ok = ok[ok["epochs_to_train_acc_1"] > 0]
    out: dict[str, Any] = {"n_runs": int(len(ok)), "slope_eta": None, "slope_lam": None}
    if len(ok) < 3 or ok["eta"].nunique() < 2 or ok["lam"].nunique() < 2:
        return out | {
            "intercept": None,
            "slope_eta_ci": None,
            "slope_lam_ci": None,
            "lam_ref": None,
        }
    x = np.column_stack([np.ones(len(ok)), np.log(ok["eta"]), np.log(ok["lam"])])
    y = np.log(ok["epochs_to_train_acc_1"].to_numpy(np.float64))
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if np.linalg.matrix_rank(x[idx]) == 3:
            boots.append(np.linalg.lstsq(x[idx], y[idx], rcond=None)[0])
    ci = np.percentile(np.array(boots), [2.5, 97.5], axis=0) if boots else np.full((2, 3), np.nan)
    return out | {
        "intercept": float(coef[0]),
        "slope_eta": float(coef[1]),
        "slope_lam": float(coef[2]),
        "slope_eta_ci": [float(ci[0, 1]), float(ci[1, 1])],
        "slope_lam_ci": [float(ci[0, 2]), float(ci[1, 2])],
        "lam_ref": float(np.exp(np.log(ok["lam"]).mean())),
    }


def time_to_fit(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure S1: the time (epochs) to training accuracy 1 scales as 1/η and barely depends on λ.

    Summary: the joint fit of :func:`fit_time_to_fit` (slopes vs η and vs λ with intervals), the
    slope vs η of the λ = 0 runs alone, the median ratio t_fit(λ)/t_fit(λ = 0) at equal η, the
    spread of η·t_fit (physical time to fit; constant if t_fit ∝ 1/η), and which runs never fit.
    """
    table = run_table(runs, curves)
    notes: list[str] = []
    fit = fit_time_to_fit(table)
    hit = table[np.isfinite(table["epochs_to_train_acc_1"])]
    never = table[~table["reached_train_acc_1"].astype(bool)]
    if len(never):
        pairs = ", ".join(
            f"(η={e:g}, λ={lam:g})" for e, lam in zip(never.eta, never.lam, strict=True)
        )
        notes.append(
            f"{len(never)} run(s) never reached training accuracy 1 in their budget: {pairs}"
        )
    zero = hit[hit["lam"] == 0]
    ratio = _ratio_to_lam0(hit)
    phys = (hit["eta"] * hit["epochs_to_train_acc_1"]).to_numpy(np.float64)
    summary = {
        **fit,
        "slope_eta_lam0": log_slope(
            zero["eta"].to_numpy(np.float64), zero["epochs_to_train_acc_1"].to_numpy(np.float64)
        ),
        "median_ratio_to_lam0": ratio,
        "eta_times_t_fit_range": [float(phys.min()), float(phys.max())] if len(phys) else None,
        "n_never_fit": int(len(never)),
    }
    png = G.plot_time_to_fit(
        table,
        fit if fit["slope_eta"] is not None else None,
        out / f"{exp.figure}.png",
        title=exp.title,
    )
    caption = (
        "(a) epochs to training accuracy 1 vs η (colour: λ); (b) the same vs λ, one line per η"
    )
    return Outcome(summary, [(caption, png)], {"runs": table}, notes)


def _ratio_to_lam0(hit: pd.DataFrame) -> float | None:
    """Median over (η, λ > 0) of t_fit(η, λ)/t_fit(η, λ = 0) (None without λ = 0 runs)."""
    per = hit.groupby(["eta", "lam"])["epochs_to_train_acc_1"].median()
    ratios = [
        per[(eta, lam)] / per[(eta, 0.0)]
        for eta, lam in per.index
        if lam > 0 and (eta, 0.0) in per.index
    ]
    return float(np.median(ratios)) if ratios else None


# -- MSE and the catapult (Figure S5) -------------------------------------------------------


def acc_at_train_fit(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run: the test accuracy at the first measurement with training accuracy 1 (the
    λ = 0 runs of Fig. S5 are "stopped at training accuracy 1"), and that epoch.

    Returns:
        ``hash``, ``eta``, ``lam``, ``seed``, ``fit_epoch`` and ``acc_at_fit`` (NaN if never).
    """
    rows = []
    for run_hash, curve in curves.groupby("hash", sort=False):
        curve = curve.sort_values("epoch", kind="stable")
        hit = np.flatnonzero(curve["train_acc"].to_numpy(np.float64) >= 1 - TRAIN_ACC_ONE_TOL)
        first = curve.iloc[0]
        at = curve.iloc[hit[0]] if len(hit) else None
        rows.append({
            "hash": run_hash,
            "eta": float(first["eta"]),
            "lam": float(first["lam"]),
            "seed": first.get("seed", pd.NA),
            "fit_epoch": float(at["epoch"]) if at is not None else float("nan"),
            "acc_at_fit": float(at["test_acc"]) if at is not None else float("nan"),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["hash", "eta", "lam", "seed", "fit_epoch", "acc_at_fit"])


def loss_minimum(curves: pd.DataFrame, rise_tol: float = 0.05) -> pd.DataFrame:
    """Per run: where its training loss is lowest and whether it rises after that.

    A run's loss *rises* when its minimum is not its last finite measurement and its last
    finite value exceeds the minimum by more than ``rise_tol`` (relative).

    Returns:
        ``hash``, ``lam``, ``loss_min``, ``epoch_min``, ``tau_min`` (τ = η·λ·epochs of the
        minimum), ``loss_final``, ``interior`` (the minimum is not the last measurement) and
        ``rises`` (bool).
    """
    rows = []
    for run_hash, curve in curves.groupby("hash", sort=False):
        curve = curve.sort_values("epoch", kind="stable")
        loss = curve["train_loss"].to_numpy(np.float64)
        ok = np.flatnonzero(np.isfinite(loss))
        if not len(ok):
            continue
        i = ok[np.argmin(loss[ok])]
        last = loss[ok[-1]]
        interior = bool(i < ok[-1])
        rises = bool(interior and last > loss[i] * (1 + rise_tol))
        lam = curve["lam"].iloc[0]
        rows.append({
            "hash": run_hash, "lam": float(lam), "loss_min": float(loss[i]),
            "epoch_min": float(curve["epoch"].iloc[i]), "tau_min": float(curve["tau"].iloc[i]),
            "loss_final": float(last), "interior": interior, "rises": rises,
        })  # fmt: skip
    columns = ["hash", "lam", "loss_min", "epoch_min", "tau_min", "loss_final", "interior"]
    columns.append("rises")
    return pd.DataFrame(rows, columns=columns)


def eta_spread(acc: pd.DataFrame, column: str = "mean") -> dict[float, float]:
    """Per λ: max − min over η of ``column`` (accuracy fraction); λ with one η are left out."""
    out = {}
    for lam, rows in acc.groupby("lam", sort=True):
        values = rows[column].to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if len(values) >= 2:
            out[float(lam)] = float(values.max() - values.min())
    return out


def catapult(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure S5: FC with MSE. With L2 and budget 1/(η·λ) the best accuracy depends little on
    η; without L2, stopped at training accuracy 1, it depends on η (the catapult). The
    training MSE has a minimum after which it rises.

    Summary: per λ the η spread (max − min over η) of the best test accuracy (runs that did
    not diverge; those that never reached training accuracy 1 are counted in a note), the λ = 0
    η spread of the test
    accuracy at training accuracy 1, whether L2 flattens it (median spread with L2 < λ = 0
    spread), and the fraction of λ > 0 runs whose training MSE rises by more than
    ``rise_tol`` (setting, default 0.05 relative) after its minimum, overall and per λ.
    """
    tol = float(exp.settings.get("rise_tol", 0.05))
    table = run_table(runs, curves)
    notes: list[str] = []
    done = table[(table["lam"] > 0) & (table["status"] == "done")]
    fitted = done[done["reached_train_acc_1"].astype(bool)]
    per = done.groupby(["lam", "eta"])["best_test_acc"].mean().rename("mean").reset_index()
    spread = eta_spread(per)
    zero_hashes = table.loc[table["lam"] == 0, "hash"]
    lam0 = acc_at_train_fit(curves[curves["hash"].isin(zero_hashes)])
    lam0 = lam0.groupby("eta")["acc_at_fit"].mean().reset_index()
    lam0_spread = eta_spread(lam0.assign(lam=0.0), "acc_at_fit").get(0.0)
    positive = table[table["lam"] > 0]
    minima = loss_minimum(curves[curves["hash"].isin(positive["hash"])], tol)
    median_l2 = float(np.median(list(spread.values()))) if spread else None
    summary = {
        "eta_spread_by_lam": {_lam_key(k): round(v, 4) for k, v in spread.items()},
        "eta_spread_l2_median": _round(median_l2),
        "eta_spread_lam0_at_fit": _round(lam0_spread),
        "lam0_acc_at_fit_by_eta": {
            _lam_key(e): _round(a) for e, a in zip(lam0["eta"], lam0["acc_at_fit"], strict=True)
        },
        "l2_flattens_eta_dependence": None
        if median_l2 is None or lam0_spread is None
        else bool(median_l2 < lam0_spread),
        "rise_tol": tol,
        "mse_rises_fraction": _round(float(minima["rises"].mean())) if len(minima) else None,
        "mse_rises_fraction_by_lam": {
            _lam_key(k): round(float(v), 3)
            for k, v in minima.groupby("lam")["rises"].mean().items()
        },
        "mse_min_tau_median": _round(float(minima["tau_min"].median())) if len(minima) else None,
        "n_runs_fit": int(len(fitted)),
    }
    if len(positive) > len(done):
        notes.append(f"{len(positive) - len(done)} λ > 0 run(s) diverged: left out of the η spread")
    if len(done) > len(fitted):
        never = done[~done["reached_train_acc_1"].astype(bool)].groupby("lam").size()
        counts = ", ".join(f"λ = {lam:g}: {n}" for lam, n in never.items())
        notes.append(
            "λ > 0 runs that never reached training accuracy 1 (outside the "
            f"over-parameterized regime): {counts}"
        )
    if len(zero_hashes) and lam0["acc_at_fit"].isna().any():
        notes.append("some λ = 0 runs never reached training accuracy 1 in their budget")
    shown = curves[curves["hash"].isin(positive["hash"])]
    png = G.plot_catapult(
        per, lam0.dropna(), shown, minima, out / f"{exp.figure}.png", title=exp.title
    )
    caption = (
        "(a) best test accuracy vs η per λ (λ = 0: at training accuracy 1); "
        "(b) training MSE vs τ, minima circled"
    )
    tables = {"runs": table, "best_acc_by_lam_eta": per, "mse_minima": minima}
    return Outcome(summary, [(caption, png)], tables, notes)


# -- curves vs epochs and vs τ (Figure S6) --------------------------------------------------


def _spread_ratio(epochs: np.ndarray, taus: np.ndarray, prefix: str) -> dict[str, Any]:
    """std of log10 epochs and of log10 τ over runs (decades) and their ratio."""
    keys = (f"std_log10_{prefix}_epochs", f"std_log10_{prefix}_tau", f"{prefix}_collapse_ratio")
    ok = np.isfinite(epochs) & np.isfinite(taus) & (epochs > 0) & (taus > 0)
    if ok.sum() < 2:
        return dict.fromkeys(keys)
    s_t, s_tau = float(np.log10(epochs[ok]).std()), float(np.log10(taus[ok]).std())
    ratio = round(s_tau / s_t, 4) if s_t > 0 else None
    return dict(zip(keys, (round(s_t, 4), round(s_tau, 4), ratio), strict=True))


def collapse_stats(table: pd.DataFrame, minima: pd.DataFrame | None = None) -> dict[str, Any]:
    """How well the runs of different λ line up against τ = η·λ·epochs rather than epochs.

    Two landmarks, each over the runs with λ > 0: the peak t* of the test accuracy (runs whose
    peak lies inside the budget), and the minimum of the bare training loss (``minima`` from
    :func:`loss_minimum`; runs whose minimum is not their last measurement). The first is
    noisy when the accuracy has a long flat plateau (t* is its first maximum); the second is
    not.

    Returns:
        ``std_log10_peak_epochs`` / ``std_log10_peak_tau``: the spread of the landmark in
        decades against epochs and against τ, and ``peak_collapse_ratio`` = τ spread / epoch
        spread (≪ 1: the curves collapse against τ); the same with ``loss_min`` for the loss
        minimum. None where fewer than 2 runs qualify.
    """
    ok = table[(table["lam"] > 0) & table["peak_inside"].astype(bool)]
    out = _spread_ratio(
        ok["t_star_epochs"].to_numpy(np.float64), ok["t_star_tau"].to_numpy(np.float64), "peak"
    )
    m = minima if minima is not None else pd.DataFrame(columns=["lam", "epoch_min", "tau_min"])
    if "interior" in m:
        m = m[m["interior"]]
    m = m[m["lam"] > 0]
    epochs, taus = m["epoch_min"].to_numpy(np.float64), m["tau_min"].to_numpy(np.float64)
    return out | _spread_ratio(epochs, taus, "loss_min")


def _per_lam(rows: pd.DataFrame, minima: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    out = {}
    tau_min = rows["hash"].map(minima.set_index("hash")["tau_min"]) if len(minima) else None
    for lam, per in rows.groupby("lam", sort=True):
        out[_lam_key(lam)] = {
            "best_test_acc": _round(per["best_test_acc"].mean()),
            "t_star_epochs": _round(per["t_star_epochs"].median(), 6),
            "tau_star": _round(per["t_star_tau"].median(), 6),
            "epochs_to_train_acc_1": _round(per["epochs_to_train_acc_1"].median(), 6),
            "tau_loss_min": None if tau_min is None else _round(tau_min[per.index].median(), 6),
        }
    return out


def curves_kind(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure S6: test/train accuracy and bare training loss vs epochs and vs τ, per variant.

    One figure per variant (model). Summary per variant: per λ the best accuracy, t* (epochs),
    τ* = t*·η·λ, the epochs to training accuracy 1 and the τ of the training-loss minimum, and
    :func:`collapse_stats`.
    """
    table = run_table(runs, curves)
    summary: dict[str, Any] = {"variants": {}}
    figures = []
    for variant in _variants(table):
        rows = _of_variant(table, variant)
        shown = _of_variant(curves, variant)
        minima = loss_minimum(shown)
        summary["variants"][variant] = {
            "per_lam": _per_lam(rows, minima),
            **collapse_stats(rows, minima),
        }
        name = (
            f"{exp.figure}.png"
            if variant == _variants(table)[0]
            else f"{exp.figure}-{_slug(variant)}.png"
        )
        title = f"{exp.title}: {variant}" if variant else exp.title
        png = G.plot_curve_grid(shown, out / name, title=title)
        figures.append(
            (f"{variant or 'curves'}: accuracy and loss vs epochs (top) and vs τ (bottom)", png)
        )
    return Outcome(summary, figures, {"runs": table})


# -- σ_w (Figure S12) -----------------------------------------------------------------------


def variant_values(runs: pd.DataFrame, option: str) -> dict[str, float]:
    """{variant label: the model option ``option`` (e.g. σ_w) of its runs} (NaN if absent)."""
    configs = run_configs(runs)
    out = {}
    for run_hash, variant in zip(runs["hash"], runs.get("variant", [""] * len(runs)), strict=True):
        value = configs.get(run_hash, {}).get("model", {}).get("options", {}).get(option)
        out.setdefault(variant, float(value) if isinstance(value, int | float) else float("nan"))
    return out


def spread_vs_tau(curves: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """Per λ: max − min over variants of the test accuracy on a common log τ grid.

    Each run's curve is interpolated linearly in log τ; runs of the same (λ, η, seed) that
    differ only by variant are compared. Seeds and η are then averaged.

    Returns:
        ``lam``, ``tau``, ``spread`` (accuracy fraction), over the τ range every compared curve
        covers; empty when no λ has 2 variants.
    """
    rows = []
    keys = ["lam", "eta", "seed"] if "seed" in curves else ["lam", "eta"]
    for key, group in curves.groupby(keys, sort=True):
        runs = [c.sort_values("epoch") for _, c in group.groupby("hash")]
        runs = [c[c["tau"] > 0] for c in runs]
        if len({c["variant"].iloc[0] for c in runs if len(c)}) < 2:
            continue
        lo = max(c["tau"].min() for c in runs)
        hi = min(c["tau"].max() for c in runs)
        if not hi > lo:
            continue
        grid = np.geomspace(lo, hi, points)
        accs = np.array([np.interp(np.log(grid), np.log(c["tau"]), c["test_acc"]) for c in runs])
        rows += [
            {"lam": float(key[0]), "tau": t, "spread": s}
            for t, s in zip(grid, np.ptp(accs, axis=0), strict=True)
        ]
    frame = pd.DataFrame(rows, columns=["lam", "tau", "spread"])
    return frame.groupby(["lam", "tau"], as_index=False)["spread"].mean() if len(frame) else frame


def sigma_w(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure S12: at late times the results barely depend on the initialization scale σ_w.

    Variants differ by a model option (``option`` setting, default ``sigma_w``). Summary: per λ
    the spread (max − min over variants) of the best test accuracy, with the mean best
    accuracy per variant; from :func:`spread_vs_tau`, per λ the largest spread of the test
    accuracy before the peak (τ < τ*/2, τ* the median over variants) and the mean spread after
    it (τ ≥ τ*): a late spread well below the early one is the σ_w independence at late times.
    """
    option = str(exp.settings.get("option", "sigma_w"))
    if "variant" not in runs:
        runs, curves = runs.assign(variant=""), curves.assign(variant="")
    values = variant_values(runs, option)
    table = run_table(runs, curves)
    frames = []
    for variant in _variants(table):
        acc = best_acc_vs_lam(_of_variant(table, variant))
        acc.insert(0, "variant", variant)
        acc["value"] = values.get(variant, float("nan"))
        frames.append(acc)
    acc = pd.concat(frames, ignore_index=True)
    shown = curves.assign(value=curves["variant"].map(values)) if len(curves) else curves
    spread = spread_vs_tau(shown)
    per_lam = {}
    for lam, rows in acc.groupby("lam", sort=True):
        means = rows.set_index("variant")["mean"].astype(float)
        tau_star = table.loc[table["lam"] == lam, "t_star_tau"].median()
        s = spread[spread["lam"] == lam]
        early = s.loc[s["tau"] < tau_star / 2, "spread"]
        late = s.loc[s["tau"] >= tau_star, "spread"]
        per_lam[_lam_key(lam)] = {
            "best_acc_spread": _round(float(means.max() - means.min()))
            if means.notna().sum() >= 2
            else None,
            "best_acc_by_variant": {str(k): _round(v) for k, v in means.items()},
            "tau_star_median": _round(tau_star, 6),
            "max_spread_before_peak": _round(float(early.max())) if len(early) else None,
            "mean_spread_after_peak": _round(float(late.mean())) if len(late) else None,
        }
    spreads = [v["best_acc_spread"] for v in per_lam.values() if v["best_acc_spread"] is not None]
    summary = {
        "option": option,
        "values": {k: finite(v) for k, v in values.items()},
        "best_acc_spread_max": max(spreads) if spreads else None,
        "per_lam": per_lam,
    }
    png = G.plot_variant_spread(acc, shown, spread, out / f"{exp.figure}.png", title=exp.title)
    caption = (
        f"(a) best test accuracy vs λ per {option}; (b) test accuracy vs τ; "
        f"(c) spread across {option} vs τ"
    )
    return Outcome(
        summary, [(caption, png)], {"runs": table, "acc_by_variant": acc, "spread_vs_tau": spread}
    )


MORE_KINDS: dict[str, KindFn] = {
    "fixed_budget": fixed_budget,
    "time_to_fit": time_to_fit,
    "catapult": catapult,
    "curves": curves_kind,
    "sigma_w": sigma_w,
}

__all__ = [
    "MORE_KINDS",
    "acc_at_train_fit",
    "acc_by_budget",
    "best_within_budgets",
    "calibration_c",
    "catapult",
    "collapse_stats",
    "curves_kind",
    "eta_spread",
    "fit_time_to_fit",
    "fixed_budget",
    "lam_trend",
    "log_slope",
    "loss_minimum",
    "nearest_lam",
    "optimal_by_budget",
    "run_configs",
    "sigma_w",
    "spread_vs_tau",
    "time_to_fit",
    "truncation_problems",
    "variant_acc_table",
    "variant_values",
]

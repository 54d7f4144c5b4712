"""The ``scaling`` kind (Fig. 2, 3, S7): t* vs η·λ, best accuracy vs λ, test accuracy vs τ.

The numbers come from :mod:`l2dynamics.analysis.fits` (the t* fit, λ_pred) and
:mod:`l2dynamics.analysis.tables`; the figure is :func:`l2dynamics.analysis.tstar.plot_panels`.
Units: t* in epochs; c in τ units (τ = η·λ·epochs); accuracies are fractions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.analysis.fits import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    PowerFit,
    fit_tstar,
    predict_lambda,
    usable_for_fit,
)
from l2dynamics.analysis.tables import best_acc_vs_lam, run_configs, run_table
from l2dynamics.analysis.tstar import plot_panels, seed_agreement
from l2dynamics.experiments.kinds.base import Outcome, num_key, run_pairs
from l2dynamics.experiments.spec import Experiment

FIT_KEYS = (
    "slope",
    "slope_ci",
    "c",
    "c_ci",
    "c_slope_minus_1",
    "c_slope_minus_1_ci",
    "n_fit_runs",
    "n_fit_points",
    "decades",
)


def scaling(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure 2/3 style: t* vs η·λ (slope −1), best accuracy vs λ, test accuracy vs τ.

    Summary: the t* fit (:data:`FIT_KEYS`, the toolkit's t*, each (η, λ) the median over its
    seeds; None when it cannot be fit, with a note), the same for the paper's t* (``paper``),
    how well seeds agree on t* by each (``seed_agreement``, see
    :func:`~l2dynamics.analysis.tstar.seed_agreement`), the best
    accuracy per λ and the best λ > 0, the t* (epochs) of the λ = 0 runs, and λ_pred = c/(η·T)
    for the budget the experiment states (``predict_budget_epochs``, ``predict_eta``).
    """
    table = run_table(runs, curves)
    notes: list[str] = []
    _regime_note(table, notes)
    for estimator in ESTIMATORS:
        _budget_note(table, notes, estimator)
    fit, fit_values = _fit_summary(table, notes)
    _, paper_values = _fit_summary(table, notes, estimator="paper")
    acc = best_acc_vs_lam(table)
    png = plot_panels(curves, table, fit, out / f"{exp.figure}.png", title=exp.title)
    positive = acc[acc["lam"] > 0]
    best_lam = float(positive.loc[positive["mean"].idxmax(), "lam"]) if len(positive) else None
    summary = {"t_star_estimator": DEFAULT_ESTIMATOR, **fit_values, "paper": paper_values}
    summary["seed_agreement"] = {e: seed_agreement(table, e) for e in ESTIMATORS}
    summary |= {"best_acc_by_lam": _best_by_lam(acc), "best_lam": best_lam}
    summary["lam0_t_star_epochs"] = _lam0_tstar(table)
    summary["t_star_over_tau_epoch"] = _in_timescales(table, runs)
    summary.update(_prediction(exp.settings, fit))
    figures = [(_caption(table), png)]
    return Outcome(summary, figures, {"runs": table, "best_acc_vs_lam": acc}, notes)


def _caption(table: pd.DataFrame) -> str:
    """What the figure's points and bars are (as :func:`~l2dynamics.analysis.tstar.draw_tstar`
    and :func:`~l2dynamics.analysis.budgets.draw_best_acc` draw them)."""
    seeds = int(table.groupby(["eta", "lam"])["seed"].nunique().max()) if len(table) else 1
    if seeds > 1:
        t_bars = f"the median t* of its {seeds} seeds, bars the range of t* over the seeds"
        acc_bars = f"mean of {seeds} seeds, bars ±1 standard deviation over the seeds"
    else:
        t_bars = "its one run's t*, bars the run's near-peak interval (its uncertainty)"
        acc_bars = "one seed, no bars"
    return (
        f"(a) t* (epochs) vs η·λ: each (η, λ) is {t_bars}; grey crosses: the paper's t* (first "
        f"maximum) of each run; hollow: left out of the fit. (b) Best test accuracy vs λ at the "
        f"best η ({acc_bars}). (c) Test accuracy vs τ = η·λ·epochs, one line per run."
    )


def _fit_summary(
    table: pd.DataFrame, notes: list[str], seed: int = 0, estimator: str = DEFAULT_ESTIMATOR
) -> tuple[PowerFit | None, dict[str, Any]]:
    """The t* ∝ (η·λ)^slope fit of ``estimator``'s t* and its summary entries (None values
    when it cannot be fit)."""
    try:
        fit = fit_tstar(table, seed=seed, estimator=estimator)
    except ValueError as exc:
        which = "the paper's t* (first maximum)" if estimator == "paper" else "t*"
        notes.append(f"fit of {which} not possible: {exc}")
        return None, dict.fromkeys(FIT_KEYS)
    d = fit.to_dict()
    return fit, {
        "slope": d["slope"],
        "slope_ci": list(d["slope_ci"]),
        "c": d["c"],
        "c_ci": list(d["c_ci"]),
        "c_slope_minus_1": d["c_fixed_slope"],
        "c_slope_minus_1_ci": list(d["c_fixed_slope_ci"]),
        "n_fit_runs": d["n_runs"],
        "n_fit_points": d["n_cells"],
        "decades": d["decades"],
    }


def _best_by_lam(acc: pd.DataFrame) -> dict[str, float]:
    """{λ: best test accuracy over η (mean over seeds)} with λ as a compact string key."""
    return {
        num_key(lam): round(float(a), 4) for lam, a in zip(acc["lam"], acc["mean"], strict=True)
    }


def _regime_note(table: pd.DataFrame, notes: list[str]) -> None:
    """Say which runs are outside the over-parameterized regime (never reached train acc 1)."""
    under = table[(table["lam"] > 0) & ~table["reached_train_acc_1"].astype(bool)]
    if len(under):
        notes.append(
            f"{len(under)} run(s) never reached training accuracy 1 and are left out of the "
            f"t* fit (the laws are claimed for the over-parameterized regime only): "
            f"{run_pairs(under)}"
        )


def _budget_note(table: pd.DataFrame, notes: list[str], estimator: str) -> None:
    """Say which runs of the regime the fit of ``estimator``'s t* leaves out all the same (the
    other causes of :func:`~l2dynamics.analysis.fits.usable_for_fit`: the peak not inside the
    budget, t* not finite)."""
    regime = (table["lam"] > 0) & table["reached_train_acc_1"].astype(bool)
    regime &= table["status"] == "done"
    out = table[regime & ~usable_for_fit(table, estimator)]
    if not len(out):
        return
    which = "the paper's t* (first maximum)" if estimator == "paper" else "t* (near-peak centre)"
    why = (
        "test accuracy still within the near-peak band when the budget ran out"
        if estimator != "paper"
        else "first maximum at the last measurement"
    )
    notes.append(
        f"{len(out)} run(s) that fit their training set are left out of the fit of {which}: "
        f"no peak inside the budget ({why}): {run_pairs(out)}"
    )


def _prediction(settings: dict[str, Any], fit: PowerFit | None) -> dict[str, Any]:
    """λ_pred = c/(η·T) and the 2c variant, for the budget the experiment states (if any)."""
    budget, eta = settings.get("predict_budget_epochs"), settings.get("predict_eta")
    if budget is None or eta is None:
        return {}
    out = {"predict_budget_epochs": budget, "predict_eta": eta}
    if fit is None:
        return out | {"lam_pred": None, "lam_pred_2c": None}
    c = fit.c_fixed_slope  # t*·η·λ (geometric mean): the c of t* = c/(η·λ), which λ_pred assumes
    lam = predict_lambda(c, eta, budget)
    return out | {"lam_pred": lam, "lam_pred_2c": predict_lambda(2 * c, eta, budget)}


def _in_timescales(table: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Any] | None:
    """t* of the fitted runs in units of their optimizer's timescale τ_epoch
    (:func:`l2dynamics.config.timescale_epochs`): median and range over those runs, and the
    optimizers they used. For SGD without momentum t*/τ_epoch = c·M (c = t*·η·λ, M steps per
    epoch); it is the one number that compares optimizers whose decay per step differs at the
    same η·λ (SPEC §6)."""
    if "tau_epoch" not in table:
        return None
    fitted = table[usable_for_fit(table)]
    ratio = (fitted[ESTIMATORS[DEFAULT_ESTIMATOR][0]] / fitted["tau_epoch"]).to_numpy(float)
    ratio = ratio[np.isfinite(ratio)]
    if not len(ratio):
        return None
    configs = run_configs(runs)
    optimizers = sorted({configs.get(h, {}).get("optimizer", "sgd") for h in fitted["hash"]})
    return {
        "median": float(np.median(ratio)),
        "range": [float(ratio.min()), float(ratio.max())],
        "n_runs": int(len(ratio)),
        "optimizers": optimizers,
    }


def _lam0_tstar(table: pd.DataFrame) -> list[float]:
    """t* (epochs) of the λ = 0 runs, which the fit leaves out."""
    return [float(t) for t in table.loc[table["lam"] == 0, ESTIMATORS[DEFAULT_ESTIMATOR][0]]]


__all__ = ["FIT_KEYS", "scaling"]

"""The ``fixed_budget`` kind (Fig. 1a, 1b, 4, S3, S4): best accuracy vs λ at fixed budgets.

The numbers come from :mod:`l2dynamics.analysis.budgets` (best accuracy within each budget, the
optimal λ per budget, the calibration c) and :func:`l2dynamics.analysis.fits.log_slope`.
Units: budgets T in epochs; c in τ units (τ = η·λ·epochs); accuracies are fractions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.analysis.budgets import (
    acc_by_budget,
    best_within_budgets,
    calibration_c,
    lam_trend,
    optimal_by_budget,
    plot_acc_vs_lam_variants,
    plot_fixed_budget,
    truncation_problems,
    variant_acc_table,
)
from l2dynamics.analysis.fits import log_slope
from l2dynamics.analysis.tables import of_variant, run_table, variants
from l2dynamics.errors import ConfigError
from l2dynamics.experiments.kinds.base import Outcome, finite, num_key, rounded
from l2dynamics.experiments.spec import Experiment

CALIBRATIONS = ("largest_lam", "fit")
TRUNCATION_NOTE = (
    "Best accuracy at budget T is the maximum test accuracy over measurements at epochs ≤ T "
    "of one long constant-η run (valid: without a schedule the first T epochs of a longer "
    "run are the run with budget T, and performance is the maximum test accuracy)."
)
PER_VARIANT_NOTE = (
    "Each variant's runs were trained for their own budget (the step schedule depends on T, "
    "so budgets cannot be read off a truncated longer run). 'best' is the maximum test "
    "accuracy during training, 'final' the test accuracy at the end of the budget."
)


def fixed_budget(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figures 1a/1b/4/S3/S4: best accuracy vs λ at fixed training budgets.

    With ``budgets = [T, …]`` (epochs) in the experiment's settings, each budget's accuracy is
    read off the long constant-η runs truncated at T (see
    :func:`~l2dynamics.analysis.budgets.best_within_budgets`); the optimal λ of each T is
    compared with λ_pred = c/(η·T) and 2c/(η·T), with c from
    :func:`~l2dynamics.analysis.budgets.calibration_c` (``calibration = "largest_lam"``
    (default: the paper's recipe, one run at a large λ) or ``"fit"``); ``near_best`` (accuracy
    fraction, default 0) gives the range of λ tied with the best within that tolerance.
    Without ``budgets``, every variant is one budget rule (e.g. T = 200 epochs vs T = 0.1/λ)
    whose runs were trained for their own budget.
    """
    if "budgets" in exp.settings:
        return _truncated(exp, runs, curves, out)
    return _per_variant(exp, runs, curves, out)


def _truncated(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Budgets read off long constant-η runs (Fig. 1b, 4, S3, S4)."""
    budgets = [float(b) for b in exp.settings["budgets"]]
    _refuse_scheduled(exp, runs)
    table = run_table(runs, curves)
    within = best_within_budgets(runs, curves, budgets)
    notes = [TRUNCATION_NOTE, *_coverage_notes(within)]
    acc = acc_by_budget(within)
    eta = float(exp.settings.get("predict_eta", table["eta"].mode().iloc[0] if len(table) else 1.0))
    calib = calibration_c(table)
    how, c = _chosen_c(exp, calib)
    if c is None:
        notes.append("no run reached training accuracy 1 and peaked inside its budget: no c")
    near_best = float(exp.settings.get("near_best", 0.0))
    optimal = optimal_by_budget(acc, c, eta, near_best)
    png = plot_fixed_budget(acc, optimal, out / f"{exp.figure}.png", title=exp.title)
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
        "per_budget": _per_budget(optimal),
    }
    caption = "(a) best test accuracy within T vs λ per budget, λ_pred marked; (b) optimal λ vs T"
    tables = {"runs": table, "acc_by_budget": acc, "optimal_by_budget": optimal}
    return Outcome(summary, [(caption, png)], tables, notes)


def _refuse_scheduled(exp: Experiment, runs: pd.DataFrame) -> None:
    """A ConfigError when some run's best accuracy within T cannot be read off its curve."""
    bad = truncation_problems(runs)
    if bad:
        raise ConfigError(
            f"experiment {exp.figure}: {len(bad)} run(s) use a learning-rate schedule or AutoL2; "
            "the best accuracy within a budget T cannot be read off a truncated curve when the "
            "schedule depends on T. Train one run per budget (variants) and leave out 'budgets'."
        )


def _coverage_notes(within: pd.DataFrame) -> list[str]:
    """Notes on the (run, T) pairs whose curve ends before T: kept as final, or left out."""
    notes = []
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
    return notes


def _chosen_c(exp: Experiment, calib: dict[str, Any]) -> tuple[str, float | None]:
    """The experiment's ``calibration`` setting and the c it picks from ``calib``."""
    how = str(exp.settings.get("calibration", "largest_lam"))
    if how not in CALIBRATIONS:
        raise ConfigError(f"experiment {exp.figure}: calibration must be 'largest_lam' or 'fit'")
    return how, calib["c_calibration"] if how == "largest_lam" else calib["c_fit"]


def _per_budget(optimal: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The summary of each budget's row of ``optimal_by_budget``, keyed by T."""
    return {
        num_key(r.budget_T): {
            "best_lam": r.best_lam,
            "best_acc": rounded(r.best_acc),
            "near_best_lam_range": [r.near_best_lo, r.near_best_hi],
            "lam_pred": finite(r.lam_pred),
            "lam_pred_2c": finite(r.lam_pred_2c),
            "gap_pred": rounded(r.gap_pred),
            "gap_pred_2c": rounded(r.gap_pred_2c),
        }
        for r in optimal.itertuples()
    }


def _per_variant(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """One budget rule per variant, each run trained for its own budget (Fig. 1a)."""
    acc = variant_acc_table(runs, curves)
    summary: dict[str, Any] = {"mode": "per_variant", "variants": {}}
    lines = {}
    for variant in variants(acc):
        lines[variant] = of_variant(acc, variant)
        summary["variants"][variant] = _variant_summary(lines[variant])
    png = plot_acc_vs_lam_variants(lines, out / f"{exp.figure}.png", title=exp.title)
    caption = "test accuracy vs λ per budget rule (solid: best during training, dashed: final)"
    tables = {"runs": run_table(runs, curves), "acc_by_variant": acc}
    return Outcome(summary, [(caption, png)], tables, [PER_VARIANT_NOTE])


def _variant_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """One budget rule's best and final accuracy per λ, its best λ and the trend with λ."""
    lam, mean = rows["lam"].to_numpy(np.float64), rows["mean"].to_numpy(np.float64)
    best = int(np.nanargmax(mean)) if np.isfinite(mean).any() else None
    positive = np.sort(lam[lam > 0])
    final = rows.get("final", mean * np.nan)
    return {
        "best_acc_by_lam": {num_key(a): rounded(b) for a, b in zip(lam, mean, strict=True)},
        "final_acc_by_lam": {num_key(a): rounded(b) for a, b in zip(lam, final, strict=True)},
        "best_lam": None if best is None else float(lam[best]),
        "best_acc": None if best is None else rounded(mean[best]),
        "best_lam_is_smallest": None
        if best is None or not len(positive)
        else bool(lam[best] == positive[0]),
        # an optimal λ at this budget: the best strictly between the grid's ends
        "best_lam_inside": None
        if best is None or not len(positive)
        else bool(positive[0] < lam[best] < positive[-1]),
        "spearman_acc_vs_lam": lam_trend(lam, mean),
    }


__all__ = ["fixed_budget"]

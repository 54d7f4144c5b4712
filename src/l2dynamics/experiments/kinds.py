"""What each kind of sweep figure computes and draws, from the store's runs and curves.

Every kind is ``kind(exp, runs, curves, out) -> Outcome``: pure analysis of the two DataFrames
(:func:`~l2dynamics.sweep.store.load_runs` / ``load_measurements`` with a ``variant``
column) plus the figure files it draws into ``out``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.analysis import figures as F
from l2dynamics.analysis.fits import fit_tstar, predict_lambda
from l2dynamics.analysis.tables import best_acc_vs_lam, run_table
from l2dynamics.errors import ConfigError
from l2dynamics.experiments.spec import Experiment


@dataclasses.dataclass
class Outcome:
    """What a figure's analysis produced: summary values, figures (caption, PNG), tables."""

    summary: dict[str, Any]
    figures: list[tuple[str, Path]]
    tables: dict[str, pd.DataFrame]
    notes: list[str] = dataclasses.field(default_factory=list)


def _fit_summary(table: pd.DataFrame, notes: list[str], seed: int = 0):
    """The t* ∝ (η·λ)^slope fit and its summary entries (None values when it cannot be fit)."""
    try:
        fit = fit_tstar(table, seed=seed)
    except ValueError as exc:
        notes.append(f"t* fit not possible: {exc}")
        keys = ("slope", "slope_ci", "c", "c_ci", "c_slope_minus_1", "c_slope_minus_1_ci")
        keys = (*keys, "n_fit_runs", "decades")
        return None, dict.fromkeys(keys)
    d = fit.to_dict()
    return fit, {
        "slope": d["slope"],
        "slope_ci": list(d["slope_ci"]),
        "c": d["c"],
        "c_ci": list(d["c_ci"]),
        "c_slope_minus_1": d["c_fixed_slope"],
        "c_slope_minus_1_ci": list(d["c_fixed_slope_ci"]),
        "n_fit_runs": d["n_runs"],
        "decades": d["decades"],
    }


def _best_by_lam(acc: pd.DataFrame) -> dict[str, float]:
    """{λ: best test accuracy over η (mean over seeds)} with λ as a compact string key."""
    return {f"{lam:g}": round(float(a), 4) for lam, a in zip(acc["lam"], acc["mean"], strict=True)}


def _regime_note(table: pd.DataFrame, notes: list[str]) -> None:
    """Say which runs are outside the over-parameterized regime (never reached train acc 1)."""
    under = table[(table["lam"] > 0) & ~table["reached_train_acc_1"].astype(bool)]
    if len(under):
        pairs = ", ".join(
            f"(η={e:g}, λ={lam:g})" for e, lam in zip(under.eta, under.lam, strict=True)
        )
        notes.append(
            f"{len(under)} run(s) never reached training accuracy 1 and are left out of the "
            f"t* fit (the laws are claimed for the over-parameterized regime only): {pairs}"
        )


def scaling(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure 2/3 style: t* vs η·λ (slope −1), best accuracy vs λ, test accuracy vs τ."""
    table = run_table(runs, curves)
    notes: list[str] = []
    _regime_note(table, notes)
    fit, fit_values = _fit_summary(table, notes)
    acc = best_acc_vs_lam(table)
    png = F.plot_panels(curves, table, fit, out / f"{exp.figure}.png", title=exp.title)
    by_lam = _best_by_lam(acc)
    positive = acc[acc["lam"] > 0]
    best_lam = float(positive.loc[positive["mean"].idxmax(), "lam"]) if len(positive) else None
    summary = {**fit_values, "best_acc_by_lam": by_lam, "best_lam": best_lam}
    summary["lam0_t_star_epochs"] = _lam0_tstar(table)
    summary.update(_prediction(exp.settings, fit))
    figures = [("(a) t* vs η·λ, (b) best test accuracy vs λ, (c) test accuracy vs τ", png)]
    return Outcome(summary, figures, {"runs": table, "best_acc_vs_lam": acc}, notes)


def _prediction(settings: dict[str, Any], fit) -> dict[str, Any]:
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


def _lam0_tstar(table: pd.DataFrame) -> list[float]:
    """t* (epochs) of the λ = 0 runs, which the fit leaves out."""
    return [float(t) for t in table.loc[table["lam"] == 0, "t_star_epochs"]]


def epochs_to_near_best(curves: pd.DataFrame, tol: float) -> pd.Series:
    """Per run (hash): the first epoch whose test accuracy is within ``tol`` of the run's best."""

    def first(curve: pd.DataFrame) -> float:
        acc = curve["test_acc"].to_numpy()
        return float(curve["epoch"].to_numpy()[np.argmax(acc >= np.nanmax(acc) - tol)])

    return curves.groupby("hash", sort=False)[["epoch", "test_acc"]].apply(first)


def _split_variant(table: pd.DataFrame) -> pd.DataFrame:
    """``variant`` "SETTING/MODE" → columns ``setting`` and ``mode`` (autol2 or fixed)."""
    parts = table["variant"].str.split("/", n=1, expand=True)
    return table.assign(setting=parts[0], mode=parts[1])


def epochs_to_reach(curves: pd.DataFrame, target: float) -> pd.Series:
    """Per run (hash): the first epoch whose test accuracy is ≥ ``target`` (NaN if never)."""

    def first(curve: pd.DataFrame) -> float:
        hit = curve["test_acc"].to_numpy() >= target - 1e-12
        return float(curve["epoch"].to_numpy()[np.argmax(hit)]) if hit.any() else math.nan

    return curves.groupby("hash", sort=False)[["epoch", "test_acc"]].apply(first)


def _mean_or_none(values: pd.Series | pd.DataFrame) -> float | None:
    """The mean, or None when there is none or some value is NaN (a seed that never got there)."""
    values = pd.Series(np.asarray(values, dtype=np.float64).ravel())
    return None if not len(values) or values.isna().any() else float(values.mean())


def _reach(runs: pd.DataFrame, curves: pd.DataFrame, target: float) -> float | None:
    """Mean over ``runs`` of the first epoch at test accuracy ≥ ``target`` (None: some never)."""
    mine = curves[curves["hash"].isin(runs["hash"])]
    if mine["hash"].nunique() < len(runs):
        return None
    return _mean_or_none(epochs_to_reach(mine, target))


def _paired_reach(
    auto: pd.DataFrame, best: pd.DataFrame, curves: pd.DataFrame, tol: float
) -> tuple[float | None, float | None]:
    """Epochs (mean over seeds) for AutoL2 and for the best fixed λ to come within ``tol`` of
    the fixed run's best accuracy, seed by seed (same seed: same initialization and batches).
    Seeds without a fixed partner fall back to the fixed runs' mean best as the target."""
    partner = best.set_index("seed")
    if not auto["seed"].isin(partner.index).all():
        target = float(best["best_test_acc"].mean()) - tol
        return _reach(auto, curves, target), _reach(best, curves, target)
    a, f = [], []
    for _, run in auto.iterrows():
        mate = partner.loc[run["seed"]]
        target = float(mate["best_test_acc"]) - tol
        a.append(_reach(auto[auto["hash"] == run["hash"]], curves, target))
        f.append(float(mate["near_best_epochs"]))
    return (None if None in a else float(np.mean(a))), _mean_or_none(pd.Series(f))


def _autol2_entry(
    auto: pd.DataFrame, best: pd.DataFrame, curves: pd.DataFrame, tol: float
) -> dict[str, Any]:
    """One AutoL2 mode (mean over its seeds) against the best fixed λ's runs ``best``."""
    reach, fixed_reach = _paired_reach(auto, best, curves, tol)
    mine = curves[curves["hash"].isin(auto["hash"])].sort_values("step", kind="stable")
    final = mine.groupby("hash")["lam_now"].last()
    seeds = auto.set_index("hash")["seed"]
    return {
        "best_test_acc": round(float(auto["best_test_acc"].mean()), 4),
        "epochs_to_own_best": _mean_or_none(auto["near_best_epochs"]),
        "epochs_to_fixed_best": reach,
        "fixed_epochs_to_fixed_best": fixed_reach,
        "faster": reach is not None and (fixed_reach is None or reach < fixed_reach),
        "final_lam_by_seed": {str(int(seeds[h])): float(v) for h, v in final.items()},
    }


def _compare_setting(rows: pd.DataFrame, curves: pd.DataFrame, tol: float) -> dict[str, Any]:
    """AutoL2 (mean over its seeds) against the fixed λ whose mean best accuracy is highest.

    "Faster" compares the epochs each needs to come within ``tol`` of the best fixed λ's best
    accuracy, seed by seed (:func:`_paired_reach`): an AutoL2 run that never gets there is not
    faster, however soon it reaches its own, lower best. Modes other than ``autol2`` whose
    name starts with it (e.g. another λ₀) are reported under ``other_autol2``. A setting
    without finished fixed runs or without a plain ``autol2`` run gets a ``missing`` note.
    """
    fixed_rows = rows[(rows["mode"] == "fixed") & np.isfinite(rows["best_test_acc"].astype(float))]
    auto_rows = rows[rows["mode"].astype(str).str.startswith("autol2")]
    if not len(fixed_rows) or not (auto_rows["mode"] == "autol2").any():
        return {"missing": "no finished fixed-λ runs or no plain autol2 run in this setting"}
    fixed = fixed_rows.groupby("lam")[["best_test_acc", "near_best_epochs"]].mean()
    best_lam = float(fixed["best_test_acc"].idxmax())
    f_acc = float(fixed.loc[best_lam, "best_test_acc"])
    best = fixed_rows[fixed_rows["lam"] == best_lam]
    entries = {
        str(mode): _autol2_entry(auto, best, curves, tol)
        for mode, auto in auto_rows.groupby("mode")
    }
    main = entries.pop("autol2")
    good = bool(main["best_test_acc"] >= round(f_acc, 4))
    return {
        "autol2_best_test_acc": main["best_test_acc"],
        "best_fixed_lam": best_lam,
        "best_fixed_test_acc": round(f_acc, 4),
        f"autol2_epochs_to_within_{tol:g}": main["epochs_to_own_best"],
        f"fixed_epochs_to_within_{tol:g}": float(fixed.loc[best_lam, "near_best_epochs"]),
        f"autol2_epochs_to_fixed_best_within_{tol:g}": main["epochs_to_fixed_best"],
        f"fixed_epochs_to_fixed_best_within_{tol:g}": main["fixed_epochs_to_fixed_best"],
        "autol2_final_lam_by_seed": main["final_lam_by_seed"],
        "autol2_at_least_as_good": good,
        "autol2_faster": main["faster"],
        "as_good_and_faster": good and main["faster"],
        "other_autol2": entries,
        "fixed_grid": {f"{lam:g}": round(float(a), 4) for lam, a in fixed["best_test_acc"].items()},
    }


def autol2_compare(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure 1c/S9–S11: AutoL2 against a grid of fixed λ at the same budget, per setting.

    Variants are labelled ``SETTING/autol2`` and ``SETTING/fixed`` (and optionally further
    ``SETTING/autol2…`` modes, e.g. another starting λ). For each setting: AutoL2's best test
    accuracy against the best fixed λ of the grid, the epochs each needs to come within
    ``near_best`` (accuracy fraction, default 0.005) of its own best, and the epochs AutoL2 needs
    to come within it of the best fixed λ's accuracy (see :func:`_compare_setting`).
    """
    tol = float(exp.settings.get("near_best", 0.005))
    table = _split_variant(run_table(runs, curves))
    table["near_best_epochs"] = table["hash"].map(epochs_to_near_best(curves, tol))
    summary: dict[str, Any] = {"near_best": tol, "settings": {}}
    figures = []
    for setting, rows in table.groupby("setting", sort=False):
        summary["settings"][setting] = _compare_setting(rows, curves, tol)
        best_lam = summary["settings"][setting].get("best_fixed_lam")
        keep = rows[rows["mode"].astype(str).str.startswith("autol2") | (rows["lam"] == best_lam)]
        shown = curves[curves["hash"].isin(keep["hash"])]
        png = F.plot_lambda_schedule(
            shown, out / f"{exp.figure}-{setting}.png", title=f"{exp.title}: {setting}"
        )
        best = f"the best fixed λ ({best_lam:g})" if best_lam is not None else "no fixed λ"
        figures.append((f"{setting}: AutoL2 and {best}, λ(t) below", png))
    return Outcome(summary, figures, {"runs": table})


KindFn = Callable[[Experiment, pd.DataFrame, pd.DataFrame, Path], Outcome]
KINDS: dict[str, KindFn] = {"scaling": scaling, "autol2": autol2_compare}


def analyse(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Run the analysis of ``exp.kind`` (this module's KINDS, then :mod:`.kinds_more`'s)."""
    from l2dynamics.experiments.kinds_more import MORE_KINDS

    kinds = {**KINDS, **MORE_KINDS}
    if exp.kind not in kinds:
        raise ConfigError(f"experiment {exp.figure}: unknown kind {exp.kind!r}")
    return kinds[exp.kind](exp, runs, curves, out)


def finite(value: float) -> float | None:
    """``value`` or None when it is NaN/inf (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None


__all__ = ["KINDS", "Outcome", "analyse", "epochs_to_near_best", "epochs_to_reach", "finite"]

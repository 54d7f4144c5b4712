"""The ``curves`` (Fig. S6) and ``sigma_w`` (Fig. S12) kinds: curves vs epochs and vs τ, their
collapse against τ, and their spread across variants of the initialization scale σ_w.

The numbers come from :mod:`l2dynamics.analysis.curves` (collapse, spread across variants) and
:func:`l2dynamics.analysis.catapult.loss_minimum` (the minimum of the bare training loss).
Units: t* in epochs; τ = η·λ·epochs; accuracies are fractions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from l2dynamics.analysis.catapult import loss_minimum
from l2dynamics.analysis.curves import (
    acc_by_variant,
    collapse_stats,
    plot_curve_grid,
    plot_variant_spread,
    spread_vs_tau,
    variant_values,
)
from l2dynamics.analysis.tables import of_variant, run_table, variants
from l2dynamics.experiments.kinds.base import Outcome, finite, num_key, rounded, slug
from l2dynamics.experiments.spec import Experiment

# -- curves vs epochs and vs τ (Figure S6) --------------------------------------------------


def curves_kind(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure S6: test/train accuracy and bare training loss vs epochs and vs τ, per variant.

    One figure per variant (model). Summary per variant: per λ the best accuracy, t* (epochs),
    τ* = t*·η·λ, the epochs to training accuracy 1 and the τ of the training-loss minimum, and
    :func:`~l2dynamics.analysis.curves.collapse_stats`.
    """
    table = run_table(runs, curves)
    summary: dict[str, Any] = {"variants": {}}
    figures = []
    for variant in variants(table):
        rows = of_variant(table, variant)
        shown = of_variant(curves, variant)
        minima = loss_minimum(shown)
        summary["variants"][variant] = {
            "per_lam": _per_lam(rows, minima),
            **collapse_stats(rows, minima),
        }
        first = variant == variants(table)[0]
        name = f"{exp.figure}.png" if first else f"{exp.figure}-{slug(variant)}.png"
        title = f"{exp.title}: {variant}" if variant else exp.title
        png = plot_curve_grid(shown, out / name, title=title)
        figures.append(
            (f"{variant or 'curves'}: accuracy and loss vs epochs (top) and vs τ (bottom)", png)
        )
    return Outcome(summary, figures, {"runs": table})


def _per_lam(rows: pd.DataFrame, minima: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Per λ: medians (means for the accuracy) over the runs of one variant."""
    out = {}
    tau_min = rows["hash"].map(minima.set_index("hash")["tau_min"]) if len(minima) else None
    for lam, per in rows.groupby("lam", sort=True):
        out[num_key(lam)] = {
            "best_test_acc": rounded(per["best_test_acc"].mean()),
            "t_star_epochs": rounded(per["t_star_epochs"].median(), 6),
            "tau_star": rounded(per["t_star_tau"].median(), 6),
            "epochs_to_train_acc_1": rounded(per["epochs_to_train_acc_1"].median(), 6),
            "tau_loss_min": None if tau_min is None else rounded(tau_min[per.index].median(), 6),
        }
    return out


# -- σ_w (Figure S12) -----------------------------------------------------------------------


def sigma_w(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure S12: at late times the results barely depend on the initialization scale σ_w.

    Variants differ by a model option (``option`` setting, default ``sigma_w``). Summary: per λ
    the spread (max − min over variants) of the best test accuracy, with the mean best
    accuracy per variant; from :func:`~l2dynamics.analysis.curves.spread_vs_tau`, per λ the
    largest spread of the test accuracy before the peak (τ < τ*/2, τ* the median over
    variants) and the mean spread after it (τ ≥ τ*): a late spread well below the early one is
    the σ_w independence at late times.
    """
    option = str(exp.settings.get("option", "sigma_w"))
    if "variant" not in runs:
        runs, curves = runs.assign(variant=""), curves.assign(variant="")
    values = variant_values(runs, option)
    table = run_table(runs, curves)
    acc = acc_by_variant(table, values)
    shown = curves.assign(value=curves["variant"].map(values)) if len(curves) else curves
    spread = spread_vs_tau(shown)
    per_lam = {
        num_key(lam): _spread_of_lam(lam, rows, table, spread)
        for lam, rows in acc.groupby("lam", sort=True)
    }
    spreads = [v["best_acc_spread"] for v in per_lam.values() if v["best_acc_spread"] is not None]
    summary = {
        "option": option,
        "values": {k: finite(v) for k, v in values.items()},
        "best_acc_spread_max": max(spreads) if spreads else None,
        "per_lam": per_lam,
    }
    png = plot_variant_spread(acc, shown, spread, out / f"{exp.figure}.png", title=exp.title)
    caption = (
        f"(a) best test accuracy vs λ per {option}; (b) test accuracy vs τ; "
        f"(c) spread across {option} vs τ"
    )
    tables = {"runs": table, "acc_by_variant": acc, "spread_vs_tau": spread}
    return Outcome(summary, [(caption, png)], tables)


def _spread_of_lam(
    lam: float, rows: pd.DataFrame, table: pd.DataFrame, spread: pd.DataFrame
) -> dict[str, Any]:
    """One λ's spread across variants: of the best accuracy (``rows``: its
    :func:`~l2dynamics.analysis.curves.acc_by_variant` rows) and of the curves (``spread``)
    before τ*/2 and after τ* (τ* the median over the λ's runs in ``table``)."""
    means = rows.set_index("variant")["mean"].astype(float)
    tau_star = table.loc[table["lam"] == lam, "t_star_tau"].median()
    s = spread[spread["lam"] == lam]
    early = s.loc[s["tau"] < tau_star / 2, "spread"]
    late = s.loc[s["tau"] >= tau_star, "spread"]
    return {
        "best_acc_spread": rounded(float(means.max() - means.min()))
        if means.notna().sum() >= 2
        else None,
        "best_acc_by_variant": {str(k): rounded(v) for k, v in means.items()},
        "tau_star_median": rounded(tau_star, 6),
        "max_spread_before_peak": rounded(float(early.max())) if len(early) else None,
        "mean_spread_after_peak": rounded(float(late.mean())) if len(late) else None,
    }


__all__ = ["curves_kind", "sigma_w"]

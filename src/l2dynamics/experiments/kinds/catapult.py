"""The ``catapult`` kind (Fig. S5): FC with MSE; L2 flattens the η dependence of the accuracy.

The numbers come from :mod:`l2dynamics.analysis.catapult` (accuracy at training accuracy 1,
η spread, the training-MSE minimum). Units: epochs; τ = η·λ·epochs; accuracies are fractions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.analysis.catapult import acc_at_train_fit, eta_spread, loss_minimum, plot_catapult
from l2dynamics.analysis.tables import run_table
from l2dynamics.experiments.kinds.base import Outcome, num_key, rounded
from l2dynamics.experiments.spec import Experiment


def catapult_kind(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure S5: FC with MSE. With L2 and budget 1/(η·λ) the best accuracy depends little on
    η; without L2, stopped at training accuracy 1, it depends on η (the catapult). The
    training MSE has a minimum after which it rises.

    Summary: per λ the η spread (max − min over η) of the best test accuracy (runs that did
    not diverge; those that never reached training accuracy 1 are counted in a note), the
    λ = 0 η spread of the test accuracy at training accuracy 1, whether L2 flattens it (median
    spread with L2 < λ = 0 spread), and the fraction of λ > 0 runs whose training MSE rises by
    more than ``rise_tol`` (setting, default 0.05 relative) after its minimum, overall and per
    λ.
    """
    tol = float(exp.settings.get("rise_tol", 0.05))
    table = run_table(runs, curves)
    done = table[(table["lam"] > 0) & (table["status"] == "done")]
    fitted = done[done["reached_train_acc_1"].astype(bool)]
    per = done.groupby(["lam", "eta"])["best_test_acc"].mean().rename("mean").reset_index()
    zero_hashes = table.loc[table["lam"] == 0, "hash"]
    lam0 = acc_at_train_fit(curves[curves["hash"].isin(zero_hashes)])
    lam0 = lam0.groupby("eta")["acc_at_fit"].mean().reset_index()
    positive = table[table["lam"] > 0]
    minima = loss_minimum(curves[curves["hash"].isin(positive["hash"])], tol)
    summary = _eta_summary(per, lam0) | {"rise_tol": tol, **_mse_summary(minima)}
    summary["n_runs_fit"] = int(len(fitted))
    notes = _notes(positive, done, fitted)
    if len(zero_hashes) and lam0["acc_at_fit"].isna().any():
        notes.append("some λ = 0 runs never reached training accuracy 1 in their budget")
    shown = curves[curves["hash"].isin(positive["hash"])]
    png = plot_catapult(
        per, lam0.dropna(), shown, minima, out / f"{exp.figure}.png", title=exp.title
    )
    caption = (
        "(a) best test accuracy vs η per λ (λ = 0: at training accuracy 1); "
        "(b) training MSE vs τ, minima circled"
    )
    tables = {"runs": table, "best_acc_by_lam_eta": per, "mse_minima": minima}
    return Outcome(summary, [(caption, png)], tables, notes)


def _eta_summary(per: pd.DataFrame, lam0: pd.DataFrame) -> dict[str, Any]:
    """The η spread of the best accuracy per λ > 0 (``per``: ``lam``, ``eta``, ``mean``) and of
    the λ = 0 accuracy at training accuracy 1 (``lam0``: ``eta``, ``acc_at_fit``)."""
    spread = eta_spread(per)
    lam0_spread = eta_spread(lam0.assign(lam=0.0), "acc_at_fit").get(0.0)
    median_l2 = float(np.median(list(spread.values()))) if spread else None
    at_fit = zip(lam0["eta"], lam0["acc_at_fit"], strict=True)
    return {
        "eta_spread_by_lam": {num_key(k): round(v, 4) for k, v in spread.items()},
        "eta_spread_l2_median": rounded(median_l2),
        "eta_spread_lam0_at_fit": rounded(lam0_spread),
        "lam0_acc_at_fit_by_eta": {num_key(e): rounded(a) for e, a in at_fit},
        "l2_flattens_eta_dependence": None
        if median_l2 is None or lam0_spread is None
        else bool(median_l2 < lam0_spread),
    }


def _mse_summary(minima: pd.DataFrame) -> dict[str, Any]:
    """How many λ > 0 runs' training MSE rises after its minimum, and where the minimum is."""
    return {
        "mse_rises_fraction": rounded(float(minima["rises"].mean())) if len(minima) else None,
        "mse_rises_fraction_by_lam": {
            num_key(k): round(float(v), 3) for k, v in minima.groupby("lam")["rises"].mean().items()
        },
        "mse_min_tau_median": rounded(float(minima["tau_min"].median())) if len(minima) else None,
    }


def _notes(positive: pd.DataFrame, done: pd.DataFrame, fitted: pd.DataFrame) -> list[str]:
    """Notes on the λ > 0 runs left out: diverged, or never at training accuracy 1."""
    notes = []
    if len(positive) > len(done):
        notes.append(f"{len(positive) - len(done)} λ > 0 run(s) diverged: left out of the η spread")
    if len(done) > len(fitted):
        never = done[~done["reached_train_acc_1"].astype(bool)].groupby("lam").size()
        counts = ", ".join(f"λ = {lam:g}: {n}" for lam, n in never.items())
        notes.append(
            "λ > 0 runs that never reached training accuracy 1 (outside the "
            f"over-parameterized regime): {counts}"
        )
    return notes


__all__ = ["catapult_kind"]

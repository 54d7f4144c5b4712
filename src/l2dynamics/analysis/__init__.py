"""Analysis of sweep results: per-run tables, the t* ≈ c/(η·λ) fit, λ prediction, figures, report.

Reads the run store's DataFrames (:func:`l2dynamics.sweep.store.load_runs`,
:func:`~l2dynamics.sweep.store.load_measurements`); never trains and never imports JAX.
Units: epochs; physical time η·epochs; normalized time τ = η·λ·epochs.

One module per topic of the paper, each with its measurements beside its figures:
:mod:`.tstar` (t* vs η·λ), :mod:`.budgets` (accuracy vs λ and budgets, the optimal λ, the
calibration c), :mod:`.fit_time` (time to fit the training set), :mod:`.catapult` (MSE and
the catapult), :mod:`.curves` (curves vs τ, their collapse, the spread across variants) and
:mod:`.autol2_vs_fixed` (AutoL2 against fixed λ). They build on :mod:`.tables` (run table,
peaks, best accuracy per λ), :mod:`.fits` (the fitted laws) and :mod:`.plotting` (the figure
machinery they share); :mod:`.report` writes the HTML report.
"""

from l2dynamics.analysis.autol2_vs_fixed import plot_lambda_schedule, plot_modes_vs_grid
from l2dynamics.analysis.budgets import plot_best_acc_vs_lam
from l2dynamics.analysis.curves import plot_curves
from l2dynamics.analysis.fits import (
    PowerFit,
    c_from_run,
    fit_tstar,
    fit_tstar_from_store,
    predict_lambda,
    usable_for_fit,
)
from l2dynamics.analysis.plotting import lam_colors
from l2dynamics.analysis.report import write_report
from l2dynamics.analysis.tables import (
    best_acc_vs_lam,
    run_table,
    run_table_from_store,
    within_budget,
)
from l2dynamics.analysis.tstar import plot_panels, plot_tstar

__all__ = [
    "PowerFit",
    "best_acc_vs_lam",
    "c_from_run",
    "fit_tstar",
    "fit_tstar_from_store",
    "lam_colors",
    "plot_best_acc_vs_lam",
    "plot_curves",
    "plot_lambda_schedule",
    "plot_modes_vs_grid",
    "plot_panels",
    "plot_tstar",
    "predict_lambda",
    "run_table",
    "run_table_from_store",
    "usable_for_fit",
    "within_budget",
    "write_report",
]

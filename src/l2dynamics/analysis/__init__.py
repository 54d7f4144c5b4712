"""Analysis of sweep results: per-run tables, the t* ≈ c/(η·λ) fit, λ prediction, figures, report.

Reads the run store's DataFrames (:func:`l2dynamics.sweep.store.load_runs`,
:func:`~l2dynamics.sweep.store.load_measurements`); never trains and never imports JAX.
Units: epochs; physical time η·epochs; normalized time τ = η·λ·epochs.
"""

from l2dynamics.analysis.figures import (
    lam_colors,
    plot_best_acc_vs_lam,
    plot_curves,
    plot_lambda_schedule,
    plot_panels,
    plot_tstar,
)
from l2dynamics.analysis.fits import (
    PowerFit,
    c_from_run,
    fit_tstar,
    fit_tstar_from_store,
    predict_lambda,
    usable_for_fit,
)
from l2dynamics.analysis.report import write_report
from l2dynamics.analysis.tables import (
    best_acc_vs_lam,
    run_table,
    run_table_from_store,
    within_budget,
)

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
    "plot_panels",
    "plot_tstar",
    "predict_lambda",
    "run_table",
    "run_table_from_store",
    "usable_for_fit",
    "within_budget",
    "write_report",
]

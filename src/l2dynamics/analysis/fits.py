"""Fits of the scaling laws: the time-to-peak law t* ≈ c/(η·λ) (SPEC §2.1) and the λ
prediction it gives (SPEC §2.3), the time to fit the training set t_fit ∝ 1/η (Fig. S1), and a
plain log-log slope.

Units: t* in epochs, so ``c`` = t*·η·λ is in τ units (normalized time τ = η·λ·epochs): the
normalized time at which a run peaks. t_fit (``epochs_to_train_acc_1``) in epochs.

The paper writes ``c = t*·λ`` because its authors fix η (0.2 for WRN) and quote
``λ_pred = c/T``; here ``c`` also absorbs η, so that ``t* ≈ c/(η·λ)`` and
``λ_pred = c/(η·T)`` hold for any η. To compare: c_here = η·c_paper (the authors' 0.0066 at
η = 0.2 is c = 0.00132 here).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

# Bootstrap resamples whose η·λ values are (numerically) all equal carry no slope.
_MIN_SXX = 1e-12
# The t* a fit uses, by estimator: the run table's t* column and the column that says the peak
# was measured past (not cut off by the end of the run). "robust": the toolkit's near-peak
# centre (:func:`l2dynamics.results.near_peak`), the default; "paper": the first maximum.
ESTIMATORS = {
    "robust": ("t_star_robust", "robust_inside"),
    "paper": ("t_star_epochs", "peak_inside"),
}
DEFAULT_ESTIMATOR = "robust"


@dataclasses.dataclass(frozen=True)
class PowerFit:
    """A least-squares fit ``log t* = log c + slope·log(η·λ)`` over runs.

    Attributes:
        slope: the fitted exponent (≈ −1 per the paper).
        slope_ci: its bootstrap percentile interval (resampling runs).
        c: the prefactor of the free-slope fit (t* = c·(η·λ)^slope epochs; t* at η·λ = 1).
            For slope = −1 it is the c of t* ≈ c/(η·λ).
        c_ci: its bootstrap percentile interval.
        n_runs: the number of runs fitted.
        decades: log10(max η·λ / min η·λ) over the fitted runs.
        c_fixed_slope: c with the slope held at −1, i.e. the geometric mean of t*·η·λ (τ units).
            This is the c the prediction λ_pred = c/(η·T) assumes; it does not extrapolate a
            slope error to η·λ = 1, so prefer it for :func:`predict_lambda`.
        c_fixed_slope_ci: its bootstrap percentile interval.
        level: the confidence level of the intervals.
        estimator: which t* was fitted (a key of :data:`ESTIMATORS`).
        n_cells: the number of (η, λ) points fitted: each is the median t* over its seeds.
        max_seeds: the most seeds in one point (1: every run is its own point).
    """

    slope: float
    slope_ci: tuple[float, float]
    c: float
    c_ci: tuple[float, float]
    n_runs: int
    decades: float
    c_fixed_slope: float = float("nan")
    c_fixed_slope_ci: tuple[float, float] = (float("nan"), float("nan"))
    level: float = 0.95
    estimator: str = DEFAULT_ESTIMATOR
    n_cells: int = 0
    max_seeds: int = 1

    def to_dict(self) -> dict:
        """The fit as a JSON-ready dict (intervals as 2-tuples of floats)."""
        return dataclasses.asdict(self)

    def predict(self, eta_lam: float | np.ndarray) -> float | np.ndarray:
        """t* in epochs predicted by the free-slope fit at η·λ = ``eta_lam``."""
        return self.c * np.power(eta_lam, self.slope)


def usable_for_fit(table: pd.DataFrame, estimator: str = DEFAULT_ESTIMATOR) -> pd.Series:
    """Which rows of a :func:`~l2dynamics.analysis.tables.run_table` enter the t* fit.

    A run is used when λ > 0, its status is ``done``, it reached training accuracy 1 (the
    over-parameterized regime the law is claimed for), its peak lies inside its budget
    (the estimator's inside column, see :data:`ESTIMATORS`; else t* < ``budget_epochs``) and
    t* is finite and > 0.
    """
    return pd.Series(_reasons(table, estimator)["usable"], index=table.index)


def t_star_column(estimator: str) -> str:
    """The run table's t* column (epochs) of ``estimator`` (a key of :data:`ESTIMATORS`)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown t* estimator {estimator!r} (choose from {sorted(ESTIMATORS)})")
    return ESTIMATORS[estimator][0]


def _reasons(table: pd.DataFrame, estimator: str) -> dict[str, np.ndarray]:
    """Boolean masks of each exclusion cause, and of the usable runs."""
    t = table[t_star_column(estimator)].to_numpy(np.float64)
    inside_column = ESTIMATORS[estimator][1]
    if inside_column in table:
        inside = table[inside_column].to_numpy(bool)
    else:
        inside = t < table["budget_epochs"].to_numpy(np.float64)
    masks = {
        "λ = 0 (or missing)": ~(table["lam"].to_numpy(np.float64) > 0),
        "not 'done' (diverged)": table["status"].to_numpy() != "done",
        "never reached training accuracy 1": ~table["reached_train_acc_1"].to_numpy(bool),
        "peak at the end of the budget (t* not inside it)": ~inside,
        "t* not finite or 0": ~(np.isfinite(t) & (t > 0)),
    }
    excluded = np.logical_or.reduce(list(masks.values())) if len(t) else np.zeros(0, bool)
    return masks | {"usable": ~excluded}


def _why_not(table: pd.DataFrame, masks: dict[str, np.ndarray]) -> str:
    """A sentence listing how many runs each exclusion cause removed."""
    if table.empty:
        return "there are no finished runs"
    causes = [f"{int(m.sum())} {name}" for name, m in masks.items() if name != "usable" and m.any()]
    return f"of {len(table)} finished runs: " + ("; ".join(causes) if causes else "none excluded")


def _seed_grid(used: pd.DataFrame, column: str) -> np.ndarray:
    """log t* of the runs as a grid: (η, λ) points (sorted) × seeds, NaN where a seed has no
    usable run at a point (runs without a seed count as one seed)."""
    seeds = used["seed"].astype("float64").fillna(-1.0) if "seed" in used else 0.0
    frame = used.assign(_seed=seeds, _log=np.log(used[column].astype(float)))
    grid = frame.pivot_table(index=["eta", "lam"], columns="_seed", values="_log", aggfunc="median")
    return grid.sort_index().to_numpy(np.float64)


def fit_tstar(
    table: pd.DataFrame,
    *,
    estimator: str = DEFAULT_ESTIMATOR,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PowerFit:
    """Fit ``log t* = log c + slope·log(η·λ)`` by least squares over (η, λ) points, with
    bootstrap intervals that include the spread between seeds.

    Each (η, λ) point is the median t* of its usable runs (its seeds). The bootstrap draws the
    points with replacement and the seeds with replacement, the same seeds for every point (a
    seed is one initial network at every η and λ; see :func:`_seed_medians`), so the intervals
    carry both the scatter about the law and the spread between seeds. With one seed per point
    it is the plain bootstrap of runs.

    Args:
        table: a :func:`~l2dynamics.analysis.tables.run_table` (t* in epochs).
        estimator: which t* (a key of :data:`ESTIMATORS`).
        n_boot: bootstrap resamples.
        seed: seed of the bootstrap's random generator.
        level: confidence level of the percentile intervals.

    Returns:
        The :class:`PowerFit` of the usable runs (see :func:`usable_for_fit`).

    Raises:
        ValueError: fewer than 3 usable runs or fewer than 2 distinct η·λ among them (the
            message says how many runs each cause excluded), or bad ``n_boot``/``level``.
    """
    if not 0 < level < 1 or n_boot < 10:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 10 (got {level}, {n_boot})")
    masks = _reasons(table, estimator)
    used = table[masks["usable"]]
    if len(used) < 3:
        raise ValueError(
            f"only {len(used)} usable run(s) for the t* fit (need >= 3); " + _why_not(table, masks)
        )
    grid = _seed_grid(used, t_star_column(estimator))
    x = np.log(used.groupby(["eta", "lam"], sort=True)["eta_lam"].first().to_numpy(np.float64))
    if len(grid) < 3 or np.ptp(x) < math.sqrt(_MIN_SXX):
        raise ValueError(
            f"the {len(used)} usable runs are at {len(grid)} (η, λ) point(s) and "
            f"{len(np.unique(np.round(x, 9)))} distinct η·λ; need >= 3 points and >= 2 η·λ "
            "values to fit a slope"
        )
    fit = _fit(x, grid, n_boot=n_boot, seed=seed, level=level)
    return dataclasses.replace(fit, n_runs=int(len(used)), estimator=estimator)


def _fit(x: np.ndarray, grid: np.ndarray, *, n_boot: int, seed: int, level: float) -> PowerFit:
    """Least squares on (x, y) = (log η·λ, median log t* over the seeds of each point) and the
    bootstrap around it: points drawn with replacement, and seeds drawn with replacement once
    per resample, for every point alike (``grid``: log t*, points × seeds, NaN where missing)."""
    rng = np.random.default_rng(seed)
    y = np.nanmedian(grid, axis=1)
    slope, intercept = _line(x[None, :], y[None, :])
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    y_boot = np.take_along_axis(_seed_medians(grid, n_boot, rng), idx, axis=1)
    w = np.isfinite(y_boot)  # a point none of whose drawn seeds was usable drops out
    b_slope, b_intercept = _line(x[idx], np.where(w, y_boot, 0.0), w)
    ok = np.isfinite(b_slope)
    # log(t*·η·λ) averaged: the slope −1 fit
    b_fixed = (w * (x[idx] + np.where(w, y_boot, 0.0))).sum(axis=1) / w.sum(axis=1)
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])

    def interval(values: np.ndarray) -> tuple[float, float]:
        lo, hi = np.percentile(values, q)
        return float(lo), float(hi)

    return PowerFit(
        slope=float(slope[0]),
        slope_ci=interval(b_slope[ok]),
        c=float(np.exp(intercept[0])),
        c_ci=interval(np.exp(b_intercept[ok])),
        n_runs=int(len(x)),
        decades=float(np.ptp(x) / np.log(10)),
        c_fixed_slope=float(np.exp(np.mean(x + y))),
        c_fixed_slope_ci=interval(np.exp(b_fixed[np.isfinite(b_fixed)])),
        level=float(level),
        n_cells=int(len(x)),
        max_seeds=int(np.isfinite(grid).sum(axis=1).max()),
    )


def _seed_medians(grid: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Each point's median over ``n_boot`` resamples of the seeds (shape (n_boot, points)).

    A resample draws the seeds (columns of ``grid``) with replacement once, for every point
    alike: a seed is the same initial network at every (η, λ), so what it does to t* is
    shared by the points (drawing seeds point by point would treat it as independent noise).
    NaN where none of the drawn seeds has a t* at a point. One seed: no draw, so the
    bootstrap is the plain bootstrap of points.
    """
    if grid.shape[1] == 1:
        return np.broadcast_to(grid[:, 0], (n_boot, grid.shape[0])).copy()
    draws = rng.integers(0, grid.shape[1], size=(n_boot, grid.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points of a resample
        return np.nanmedian(grid[:, draws], axis=2).T


def _line(
    x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise least-squares lines y = a + b·x over the entries where ``w`` (default: all);
    b = NaN where a row's x are all equal."""
    w = np.ones(x.shape, bool) if w is None else w
    n = np.maximum(w.sum(axis=1, keepdims=True), 1)
    xm, ym = (w * x).sum(axis=1, keepdims=True) / n, (w * y).sum(axis=1, keepdims=True) / n
    sxx = (w * (x - xm) ** 2).sum(axis=1)
    sxy = (w * (x - xm) * (y - ym)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(sxx > _MIN_SXX, sxy / sxx, np.nan)
    return b, ym[:, 0] - b * xm[:, 0]


def c_from_run(t_star_epochs: float, eta: float, lam: float) -> float:
    """The constant of t* ≈ c/(η·λ) from one (calibration) run: ``c = t*·η·λ`` (τ units).

    SPEC §2.3 writes c = t*·λ at the authors' fixed η; this c includes η, so that
    :func:`predict_lambda` works at any η.

    Args:
        t_star_epochs: the run's t*, in epochs (> 0).
        eta: its learning rate (> 0).
        lam: its L2 coefficient (> 0).
    """
    for name, value in (("t_star_epochs", t_star_epochs), ("eta", eta), ("lam", lam)):
        _require_positive(name, value)
    return float(t_star_epochs) * float(eta) * float(lam)


def predict_lambda(c: float, eta: float, budget_epochs: float) -> float:
    """The L2 coefficient whose peak falls at the end of a budget: ``λ_pred = c/(η·T)``.

    Solves t* = c/(η·λ) = T for λ.

    Args:
        c: the constant of t* ≈ c/(η·λ) (τ units; e.g. :func:`c_from_run` or
            ``PowerFit.c_fixed_slope``).
        eta: the learning rate of the planned run.
        budget_epochs: the planned budget T, in epochs.
    """
    for name, value in (("c", c), ("eta", eta), ("budget_epochs", budget_epochs)):
        _require_positive(name, value)
    return float(c) / (float(eta) * float(budget_epochs))


def _require_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float | np.floating | np.integer) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number (got {value!r})")
    if value <= 0:
        raise ValueError(f"{name} must be > 0 (got {value})")


def fit_tstar_from_store(path: str | os.PathLike, **kwargs) -> PowerFit:
    """:func:`fit_tstar` of the :func:`~l2dynamics.analysis.tables.run_table` of a store."""
    from l2dynamics.analysis.tables import run_table_from_store

    return fit_tstar(run_table_from_store(path), **kwargs)


# -- time to fit the training set (Figure S1) -----------------------------------------------


def fit_time_to_fit(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Fit log t_fit = a + b_η·log η + b_λ·log λ by least squares, with bootstrap intervals.

    t_fit is ``epochs_to_train_acc_1`` (epochs); the runs fitted are those with λ > 0 that
    reached training accuracy 1 (t_fit finite and > 0).

    Args:
        table: a :func:`~l2dynamics.analysis.tables.run_table` (``eta``, ``lam``,
            ``epochs_to_train_acc_1``).
        n_boot: bootstrap resamples (runs drawn with replacement).
        seed: seed of the bootstrap's random generator.

    Returns:
        ``n_runs``; ``intercept`` (natural log), ``slope_eta`` (≈ −1: t_fit ∝ 1/η),
        ``slope_lam`` (≈ 0), their 95% bootstrap intervals (``slope_eta_ci``,
        ``slope_lam_ci``), ``lam_ref`` (the geometric mean λ, where a drawn line is evaluated).
        All but ``n_runs`` are None when fewer than 3 runs or fewer than 2 η or 2 λ are fitted.
    """
    ok = table[(table["lam"] > 0) & np.isfinite(table["epochs_to_train_acc_1"])]
    ok = ok[ok["epochs_to_train_acc_1"] > 0]
    out: dict[str, Any] = {"n_runs": int(len(ok)), "slope_eta": None, "slope_lam": None}
    if len(ok) < 3 or ok["eta"].nunique() < 2 or ok["lam"].nunique() < 2:
        return out | dict.fromkeys(("intercept", "slope_eta_ci", "slope_lam_ci", "lam_ref"))
    x = np.column_stack([np.ones(len(ok)), np.log(ok["eta"]), np.log(ok["lam"])])
    y = np.log(ok["epochs_to_train_acc_1"].to_numpy(np.float64))
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    ci = _bootstrap_lstsq_ci(x, y, n_boot=n_boot, seed=seed)
    return out | {
        "intercept": float(coef[0]),
        "slope_eta": float(coef[1]),
        "slope_lam": float(coef[2]),
        "slope_eta_ci": [float(ci[0, 1]), float(ci[1, 1])],
        "slope_lam_ci": [float(ci[0, 2]), float(ci[1, 2])],
        "lam_ref": float(np.exp(np.log(ok["lam"]).mean())),
    }


def _bootstrap_lstsq_ci(x: np.ndarray, y: np.ndarray, *, n_boot: int, seed: int) -> np.ndarray:
    """The 2.5 and 97.5 percentiles (rows) of each least-squares coefficient of y on x
    (columns) over ``n_boot`` resamples of the rows; resamples whose x loses rank are skipped
    (NaN when all are)."""
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if np.linalg.matrix_rank(x[idx]) == x.shape[1]:
            boots.append(np.linalg.lstsq(x[idx], y[idx], rcond=None)[0])
    if not boots:
        return np.full((2, x.shape[1]), np.nan)
    return np.percentile(np.array(boots), [2.5, 97.5], axis=0)


def log_slope(x: np.ndarray, y: np.ndarray) -> float | None:
    """Least-squares slope of log y on log x (None with fewer than 2 distinct positive x)."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if len(np.unique(x[ok])) < 2:
        return None
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "PowerFit",
    "c_from_run",
    "fit_time_to_fit",
    "fit_tstar",
    "fit_tstar_from_store",
    "log_slope",
    "predict_lambda",
    "t_star_column",
    "usable_for_fit",
]

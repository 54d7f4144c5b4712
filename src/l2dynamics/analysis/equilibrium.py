"""Rotational equilibrium of scale-invariant weights (SPEC §6): the per-step angle of the
kernels followed by a BatchNorm against its prediction, and the time to reach it.

A kernel whose scale the network ignores (it feeds a BatchNorm) gets gradients orthogonal to
itself; under weight decay its norm settles where the decay and the gradient's growth balance,
and from then on it turns by a fixed angle per step (Kosson et al., ICML 2024):

- SGD with coupled L2 and heavy-ball momentum μ (``sgd``; μ = 0 plain SGD): ``√(2ηλ/(1+μ))``;
- AdamW (``adamw``, decay scaled by η): ``√(2ηλ(1−β₁)/(1+β₁))``;
- SGDW (``sgdw``) without momentum is plain SGD (``√(2ηλ)``); with momentum no prediction is
  made here (the decay acts outside the momentum buffer, which the SGD formula assumes it
  passes through); Adam with coupled L2 (``adam``) has none either (its L2 gradient is
  rescaled per coordinate by Adam, so the balance is not the one these formulas solve).

λ is the one acting on the gradient: ``λ·L2_FACTORS[convention]`` (2λ in the script convention).

The frames are :func:`~l2dynamics.sweep.store.load_runs` (runs, with ``config``) and
:func:`~l2dynamics.sweep.store.load_layer_measurements` (layers) rows. Units: angles in radians
per step, times in steps, and normalized time ``steps·η·λ``.

Rules (one place each):

- the *runs analysed*: those with layer rows of a kernel followed by a BatchNorm, at a fixed λ
  and η·λ > 0 (:func:`equilibrium_runs`); the others are counted by why in a note
  (:func:`left_out_note`). An AutoL2 run is left out because its λ changes during the run (the
  stored one is λ₀, or 0), so neither a prediction nor 1/(η·λ) exists for it; a run at η·λ = 0
  because √(2ηλ…) is 0 and log 1/(η·λ) infinite;
- the *angle series* of a run: at each measured step, the mean angle of its scale-invariant
  kernels (:func:`angle_series`);
- the *measured equilibrium angle*: the median of that series over the measurements in the last
  :data:`LAST_FRACTION` of the run's steps (:func:`equilibrium_angle`);
- the *time to equilibrium*: the first measured step from which on the series, averaged over a
  window of ±:data:`WINDOW_DECADES` decades of steps, stays within :data:`TOLERANCE` of the
  measured equilibrium angle (:func:`time_to_equilibrium`);
- the *fit*: log t_eq = a + b·log(1/(η·λ)) by least squares over runs, b's interval from
  resampling runs (:func:`fit_time_to_equilibrium`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from l2dynamics.analysis.fits import log_slope
from l2dynamics.analysis.plotting import figure, lam_colors, lam_legend, save_panels, say_empty
from l2dynamics.analysis.tables import is_autol2, uses_autol2
from l2dynamics.config import ADAM_DEFAULTS, L2_FACTORS
from l2dynamics.results import smoothed_accuracy

LAST_FRACTION = 0.4  # the part of a run whose angles give its equilibrium value
TOLERANCE = 0.1  # "at equilibrium": within 10% of the measured equilibrium angle
WINDOW_DECADES = 0.1  # the angle is averaged over ±0.1 decade of steps before that test
N_BOOT = 2000


# why a run is not analysed (:func:`left_out`), in the order a run is counted under
LEFT_OUT = {
    "autol2": "AutoL2 (λ changes during the run: no fixed λ to predict the angle from)",
    "no_eta_lam": "at η·λ = 0 (λ = 0: no angle to predict, no 1/(η·λ) to fit against)",
    "unmeasured": "without layer measurements of a BatchNorm-fed kernel",
}


def predicted_angle(config: Mapping[str, Any]) -> float | None:
    """The equilibrium angle per step (radians) predicted for a run's stored configuration, or
    None where no prediction is made (``sgdw`` with momentum, ``adam``; see the module) or the
    stored λ is not the one in force (AutoL2: :func:`~l2dynamics.analysis.tables.uses_autol2`)."""
    if uses_autol2(config):
        return None
    optimizer = config.get("optimizer", "sgd")
    eta = float(config["eta"])
    lam = float(config["lam"]) * L2_FACTORS[config.get("convention", "sm")]
    mu = float(config.get("momentum", 0.0))
    if optimizer == "sgd" or (optimizer == "sgdw" and mu == 0):
        return math.sqrt(2 * eta * lam / (1 + mu))
    if optimizer == "adamw":
        b1 = config.get("beta1")
        b1 = ADAM_DEFAULTS["beta1"] if b1 is None else float(b1)
        return math.sqrt(2 * eta * lam * (1 - b1) / (1 + b1))
    return None


def _measured(runs: pd.DataFrame, layers: pd.DataFrame) -> pd.Series:
    """Which runs have layer rows of a kernel followed by a BatchNorm."""
    if layers.empty:
        return pd.Series(False, index=runs.index, dtype=bool)
    return runs["hash"].isin(layers.loc[layers["scale_invariant"].astype(bool), "hash"])


def _positive_eta_lam(runs: pd.DataFrame) -> pd.Series:
    """Which runs have η·λ > 0 (False for NaN)."""
    return runs["eta"].astype(float) * runs["lam"].astype(float) > 0


def equilibrium_runs(runs: pd.DataFrame, layers: pd.DataFrame) -> pd.Series:
    """Which of ``runs`` (aligned with their index) the analysis reads: those with ``layers``
    rows of a kernel followed by a BatchNorm (``scale_invariant``), not scheduling λ with AutoL2
    (:func:`~l2dynamics.analysis.tables.is_autol2`), at η·λ > 0 (:data:`LEFT_OUT` says why the
    others are not)."""
    return _measured(runs, layers) & ~is_autol2(runs) & _positive_eta_lam(runs)


def left_out(runs: pd.DataFrame, layers: pd.DataFrame) -> dict[str, int]:
    """How many of ``runs`` the analysis leaves out (:func:`equilibrium_runs`), by the reasons
    of :data:`LEFT_OUT` (keys), each run under the first that applies; zeros kept."""
    auto = is_autol2(runs)
    unmeasured = ~auto & ~_measured(runs, layers)
    masks = {
        "autol2": auto,
        "no_eta_lam": ~auto & ~unmeasured & ~_positive_eta_lam(runs),
        "unmeasured": unmeasured,
    }
    return {why: int(mask.sum()) for why, mask in masks.items()}


def left_out_note(runs: pd.DataFrame, layers: pd.DataFrame) -> str | None:
    """A sentence counting the runs the analysis leaves out, by why (:func:`left_out`); None
    when it reads them all."""
    counts = left_out(runs, layers)
    if not sum(counts.values()):
        return None
    which = ", ".join(f"{n} {LEFT_OUT[why]}" for why, n in counts.items() if n)
    return f"{sum(counts.values())} run(s) left out of the equilibrium analysis: {which}"


def angle_series(layers: pd.DataFrame, *, invariant: bool = True) -> pd.DataFrame:
    """Per run and measured step (after step 0), the mean angle over its scale-invariant
    tensors (``invariant``) or over its other kernels (not ``invariant``): columns ``hash``,
    ``step``, ``angle``."""
    rows = layers[(layers["step"] > 0) & (layers["scale_invariant"] == invariant)]
    if not invariant:
        rows = rows[rows["layer"].str.endswith("/kernel")]
    return rows.groupby(["hash", "step"], as_index=False)["angle"].mean()


def equilibrium_angle(steps: np.ndarray, angle: np.ndarray, total: float) -> float:
    """The median of ``angle`` over the measurements at steps ≥ (1 − LAST_FRACTION)·``total``
    (NaN when there are none)."""
    late = np.asarray(steps) >= (1 - LAST_FRACTION) * total
    values = np.asarray(angle)[late]
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else math.nan


def time_to_equilibrium(steps: np.ndarray, angle: np.ndarray, level: float) -> float:
    """The first measured step from which on the angle, averaged over ±WINDOW_DECADES decades of
    steps (:func:`l2dynamics.results.smoothed_accuracy`, any positive series), stays within
    TOLERANCE·``level`` of ``level``; NaN when the last one is not (or no level)."""
    steps, angle = np.asarray(steps, np.float64), np.asarray(angle, np.float64)
    ok = (steps > 0) & np.isfinite(angle)
    steps, angle = steps[ok], angle[ok]
    if not len(steps) or not math.isfinite(level) or level <= 0:
        return math.nan
    smooth = smoothed_accuracy(steps, angle, WINDOW_DECADES)
    outside = np.flatnonzero(np.abs(smooth - level) > TOLERANCE * level)
    if not len(outside):
        return float(steps[0])
    last = outside[-1]
    return float(steps[last + 1]) if last + 1 < len(steps) else math.nan


def equilibrium_table(runs: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """One row per run the analysis reads (:func:`equilibrium_runs`; the others are left out):
    ``hash``, ``variant`` (if given), ``optimizer``,
    ``eta``, ``lam``, ``eta_lam``, ``steps`` (its last measured step), ``predicted``,
    ``measured`` (the equilibrium angle, :func:`equilibrium_angle`), ``ratio`` =
    measured/predicted, ``other_kernels`` (the same median for the kernels not followed by a
    BatchNorm), ``t_eq`` (steps, :func:`time_to_equilibrium`) and ``t_eq_eta_lam`` =
    t_eq·η·λ."""
    series = angle_series(layers)
    others = angle_series(layers, invariant=False)
    out = []
    for run in runs[equilibrium_runs(runs, layers)].itertuples(index=False):
        own = series[series["hash"] == run.hash]
        if own.empty:
            continue
        config = json.loads(run.config)
        steps, angle = own["step"].to_numpy(), own["angle"].to_numpy()
        total = float(steps.max())
        measured = equilibrium_angle(steps, angle, total)
        other = others[others["hash"] == run.hash]
        predicted = predicted_angle(config)
        t_eq = time_to_equilibrium(steps, angle, measured)
        row = {"hash": run.hash, "variant": getattr(run, "variant", ""),
               "optimizer": config.get("optimizer", "sgd"), "eta": run.eta, "lam": run.lam,
               "eta_lam": run.eta * run.lam, "steps": total, "predicted": predicted,
               "measured": measured,
               "ratio": measured / predicted if predicted else math.nan,
               "other_kernels": equilibrium_angle(other["step"], other["angle"], total),
               "t_eq": t_eq, "t_eq_eta_lam": t_eq * run.eta * run.lam}  # fmt: skip
        out.append(row)
    return pd.DataFrame(out)


def fit_time_to_equilibrium(
    table: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Least squares log t_eq = a + b·log(1/(η·λ)) over the runs with a time to equilibrium and
    η·λ > 0 (b = 1: t_eq ∝ 1/(η·λ)), the percentile interval of b over ``n_boot`` resamples of
    the runs (resamples with one distinct η·λ skipped), the prefactor e^a (t_eq·η·λ at b = 1's
    scale), the number of runs and the decades of η·λ they span. None values without 2 distinct
    η·λ. Units: t_eq in steps, η·λ per step."""
    # η·λ ≤ 0 has no log 1/(η·λ): an inf there would spoil the intercept and every resample
    # holding it (equilibrium_table leaves such runs out; a table from elsewhere may not)
    if len(table):
        t_eq, eta_lam = table["t_eq"].astype(float), table["eta_lam"].astype(float)
        ok = table[np.isfinite(t_eq) & (t_eq > 0) & np.isfinite(eta_lam) & (eta_lam > 0)]
    else:
        ok = table
    x = np.log(1.0 / ok["eta_lam"].to_numpy(np.float64)) if len(ok) else np.array([])
    y = np.log(ok["t_eq"].to_numpy(np.float64)) if len(ok) else np.array([])
    empty = {"slope": None, "slope_ci": None, "prefactor": None, "n_runs": int(len(ok)),
             "decades": None}  # fmt: skip
    slope = log_slope(np.exp(x), np.exp(y)) if len(x) else None
    if slope is None:
        return empty
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) > 0:
            boots.append(np.polyfit(x[idx], y[idx], 1)[0])
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    lo, hi = np.percentile(boots, q) if boots else (math.nan, math.nan)
    intercept = float(np.mean(y) - slope * np.mean(x))
    return {"slope": slope, "slope_ci": (float(lo), float(hi)), "prefactor": math.exp(intercept),
            "n_runs": int(len(x)), "decades": float(np.ptp(x) / math.log(10))}  # fmt: skip


def plot_equilibrium(
    table: pd.DataFrame,
    layers: pd.DataFrame,
    fit: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """(a) The angle series of each run (mean over its scale-invariant kernels) against
    steps·η·λ, its prediction as a dashed horizontal line of the same colour; (b) the time to
    equilibrium against 1/(η·λ), log-log, with the fitted line."""
    fig, (ax_a, ax_b) = figure(2, size=(11.0, 4.4))
    colors = lam_colors(table["lam"]) if len(table) else {}
    _draw_angles(ax_a, table, angle_series(layers), colors)
    lam_legend(ax_a, colors, [Line2D([], [], color="k", ls="--", label="prediction")])
    _draw_times(ax_b, table, fit)
    return save_panels(fig, (ax_a, ax_b), path, title)


def _draw_angles(ax: Any, table: pd.DataFrame, series: pd.DataFrame, colors: Any) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("steps·η·λ")
    ax.set_ylabel("angle per step (rad), BatchNorm-fed kernels")
    if table.empty:
        say_empty(ax, "no run measured its layers")
        return
    for run in table.itertuples(index=False):
        own = series[series["hash"] == run.hash]
        color = colors[float(run.lam)]
        ax.plot(own["step"] * run.eta_lam, own["angle"], "-", lw=0.8, color=color, alpha=0.8)
        if run.predicted is not None and np.isfinite(run.predicted):
            ax.axhline(run.predicted, color=color, ls="--", lw=1.0)


def _draw_times(ax: Any, table: pd.DataFrame, fit: Mapping[str, Any]) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1/(η·λ) (steps)")
    ax.set_ylabel("time to equilibrium (steps)")
    hit = table[np.isfinite(table["t_eq"])] if len(table) else table
    if hit.empty:
        say_empty(ax, "no run reached its equilibrium angle")
        return
    for variant, rows in hit.groupby("variant"):
        ax.plot(1 / rows["eta_lam"], rows["t_eq"], "o", ms=5, label=str(variant) or None)
    if fit.get("slope") is not None:
        x = np.geomspace((1 / hit["eta_lam"]).min(), (1 / hit["eta_lam"]).max(), 20)
        lo, hi = fit["slope_ci"]
        ax.plot(x, fit["prefactor"] * x ** fit["slope"], color="crimson", lw=1.2,
                label=f"fit: slope {fit['slope']:.2f} [{lo:.2f}, {hi:.2f}]")  # fmt: skip
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


__all__ = [
    "LAST_FRACTION",
    "LEFT_OUT",
    "TOLERANCE",
    "WINDOW_DECADES",
    "angle_series",
    "equilibrium_angle",
    "equilibrium_runs",
    "equilibrium_table",
    "fit_time_to_equilibrium",
    "left_out",
    "left_out_note",
    "plot_equilibrium",
    "predicted_angle",
    "time_to_equilibrium",
]

"""How a summary reads: a label with its unit for each known key, the fits in sentences.

``summary.json`` keeps short keys for programs (``slope_ci``, ``n_fit_runs``); people read the
report and the quickstart's text, where each key of :data:`LABELS` is shown by its label, an
interval ``KEY_ci`` beside the value of ``KEY``, a range ``STEM_range`` beside the median
``STEM_median``, a nested summary (the fit of the paper's t*) as a nested list, seed agreement
as a sentence, a fit that could not be made as one row, and the findings (the t* fits as
:func:`fit_sentence`, the rotational equilibrium as :func:`equilibrium_sentences`) as
:func:`headline`. An unknown key is shown as itself, its value by :func:`format_value`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.analysis.fits import DEFAULT_ESTIMATOR

SIGNIFICANT = 4  # digits of the numbers shown in the summary and the tables

# what each t* estimator is (keys of l2dynamics.analysis.fits.ESTIMATORS)
ESTIMATOR_NAMES = {
    "robust": "the near-peak centre (the toolkit's t*)",
    "paper": "the first maximum of test accuracy (the paper's t*)",
}

ESTIMATOR_SHORT = {"robust": "near-peak centre", "paper": "first maximum"}

_FIT = {
    "slope": "slope b of t* = c/(η·λ)^b",
    "c": "c of that fit (t* in epochs, η·λ per epoch)",
    "c_slope_minus_1": "c = t*·η·λ with the slope held at −1 (τ units)",
    "n_fit_runs": "runs in the fit",
    "n_fit_points": "(η, λ) points in the fit (each the median of its seeds)",
    "decades": "decades of η·λ the fit spans",
}
# the equilibrium kind's keys (l2dynamics.experiments.kinds.equilibrium): angles are in radians
# per step, so their ratio is dimensionless; t_eq and 1/(η·λ) are in steps
_EQUILIBRIUM = {
    "n_layer_runs": "runs analysed for rotational equilibrium (BatchNorm-fed kernels measured, "
    "fixed λ, η·λ > 0)",
    "ratio_median": "measured/predicted equilibrium angle per step, median over runs "
    "(dimensionless)",
    "ratio_n_runs": "runs with a predicted equilibrium angle",
    "ratios": "measured/predicted equilibrium angle per run (dimensionless)",
}
_T_EQ_FIT = {
    "t_eq_slope": "slope b of t_eq = e^a·(1/(η·λ))^b (t_eq: steps to equilibrium, 1/(η·λ) in "
    "steps; b = 1: t_eq ∝ 1/(η·λ))",
    "t_eq_prefactor": "prefactor e^a of that fit (steps^(1−b); at b = 1, t_eq·η·λ, dimensionless)",
    "t_eq_decades": "decades of η·λ the fit of t_eq spans",
    "t_eq_n_runs": "runs in the fit of t_eq (those that reached equilibrium)",
}
# a fit's slope key → the keys that fit fills; None slope: one row says there is no fit
_FITS = {"slope": _FIT, "t_eq_slope": _T_EQ_FIT}
LABELS: dict[str, str] = {
    "figure": "figure",
    "sweep": "sweep",
    "scale": "scale",
    "kind": "analysis",
    "kind_reason": "why this analysis",
    "setting": "setting",
    "t_star_estimator": "t* used by the fit",
    **_FIT,
    "paper": "the same fit of the paper's t* (first maximum)",
    "seed_agreement": "seed agreement on t* (relative difference between two seeds at one (η, λ))",
    "best_acc_by_lam": "best test accuracy per λ (at the best η, mean over seeds)",
    "best_lam": "λ with the best test accuracy",
    "best_lam_is_smallest": "the best λ is the grid's smallest",
    "best_lam_inside": "the best λ lies strictly inside the grid (an optimal λ)",
    "lam0_t_star_epochs": "t* of the λ = 0 runs (epochs)",
    "t_star_over_tau_epoch": "t* in units of the optimizer's timescale τ_epoch (fitted runs)",
    "predict_budget_epochs": "budget T of the λ prediction (epochs)",
    "predict_eta": "η of the λ prediction",
    "lam_pred": "predicted λ = c/(η·T)",
    "lam_pred_2c": "predicted λ = 2c/(η·T)",
    "near_best": "near-best tolerance (accuracy fraction)",
    **_EQUILIBRIUM,
    **_T_EQ_FIT,
    "n_test": "test examples per run (the smallest)",
    "n_runs": "runs analysed",
    "n_runs_from_store": "runs finished by an earlier invocation",
    "wall_s": "wall time (s)",
    "store": "run store",
    "runs_shown": "runs shown",
    "figure_png": "figure file",
    "report": "this report",
    "summary_json": "summary (JSON)",
}
# keys whose nested keys are values of one quantity, shown as "λ = 0.001"
ITEM_LABELS = {"best_acc_by_lam": "λ = {}", "lam0_t_star_epochs": "{}"}
HIDDEN = ("title", "notes")  # the report's heading and its Notes section show them


def label(key: str) -> str:
    """The label of summary key ``key`` (the key itself when it has none)."""
    return LABELS.get(key, key)


def format_value(value: Any) -> str:
    """A value as text: numbers to 4 significant digits, None/NaN/NA as "—", nested kept.

    Integers print in full; floats with 4 significant digits, except that |x| >= 10⁴ prints
    without a fractional part (90744, not 9.074e+04); infinities as ``inf``. Booleans print as
    yes/no, lists and tuples as ``[a, b]``, mappings as ``k: v, …``. The text is not escaped.
    """
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if value is None or value is pd.NA or value is pd.NaT:
        return "—"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _format_float(float(value))
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value) or not 1e4 <= abs(value) < 1e15:
        return f"{value:.{SIGNIFICANT}g}"
    return f"{value:.0f}"


Item = tuple[str, "str | list[Item]"]


def summary_items(summary: Mapping[str, Any]) -> list[Item]:
    """The summary as (label, text) pairs, a nested summary's text a list of pairs; an interval
    ``KEY_ci`` is shown with ``KEY``'s value, a range ``STEM_range`` with ``STEM_median``'s,
    :data:`HIDDEN` keys not at all, a fit that could not be made (its slope None: the t* fit's
    ``slope``, the time to equilibrium's ``t_eq_slope``) as one row."""
    no_fit = set()
    for slope, keys in _FITS.items():
        if slope in summary and summary[slope] is None:
            no_fit |= set(keys)
    items: list[Item] = []
    for key, value in summary.items():
        if key in HIDDEN or _beside(key, summary):
            continue
        if key in no_fit:  # one row says there is no fit, not six empty ones
            if key in _FITS:
                items.append((label(key), "no fit (see the notes)"))
            continue
        items.append((label(key), _value_text(key, value, summary)))
    return items


def _beside(key: str, summary: Mapping[str, Any]) -> bool:
    """Whether ``key`` is shown beside another key's value, not as a row of its own."""
    if key.endswith("_ci"):
        return key[: -len("_ci")] in summary
    return key.endswith("_range") and f"{key[: -len('_range')]}_median" in summary


def _value_text(key: str, value: Any, parent: Mapping[str, Any]) -> str | list[Item]:
    if key == "t_star_estimator":
        return ESTIMATOR_NAMES.get(value, str(value))
    if key == "seed_agreement" and isinstance(value, Mapping):
        return [(_estimator_label(k), agreement_text(v)) for k, v in value.items()]
    if key in ITEM_LABELS and isinstance(value, Mapping | list):
        pairs = value.items() if isinstance(value, Mapping) else enumerate(value, 1)
        return [(ITEM_LABELS[key].format(k), format_value(v)) for k, v in pairs] or "none"
    if isinstance(value, Mapping):
        return summary_items(value) or "—"
    text = format_value(value) + _interval_text(parent.get(f"{key}_ci"))
    if key.endswith("_median"):
        text += _range_text(parent.get(f"{key[: -len('_median')]}_range"))
    return text


def _estimator_label(key: str) -> str:
    name = ESTIMATOR_NAMES.get(key, key)
    return name[4:] if name.startswith("the ") else name


def _interval_text(ci: Any) -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2 or None in ci:
        return ""
    return f" (95% interval {format_value(list(ci))})"


def _range_text(lo_hi: Any) -> str:
    if not isinstance(lo_hi, list | tuple) or len(lo_hi) != 2 or None in lo_hi:
        return ""
    return f" (range {format_value(list(lo_hi))})"


def agreement_text(agree: Mapping[str, Any]) -> str:
    """Seed agreement (:func:`~l2dynamics.analysis.tstar.seed_agreement`) as a sentence."""
    if not agree.get("n_pairs") or agree.get("median") is None:
        return "no (η, λ) with two seeds to compare"
    return (
        f"median {100 * agree['median']:.0f}%, 90th percentile {100 * agree['p90']:.0f}% "
        f"over {agree['n_pairs']} pairs of seeds"
    )


def fit_sentence(fit: Mapping[str, Any]) -> str:
    """A t* = c/(η·λ)^b fit (the ``scaling`` kind's keys: :data:`_FIT` and their intervals)
    as one sentence, or why there is none."""
    if fit.get("slope") is None:
        return "no fit (see the notes)."
    return (
        f"slope {fit['slope']:.3f}{_interval_text(fit.get('slope_ci'))} and "
        f"c {fit['c']:.3g}{_interval_text(fit.get('c_ci'))}, over {fit['n_fit_runs']} runs at "
        f"{fit['n_fit_points']} (η, λ) points spanning {fit['decades']:.2g} decades of η·λ; "
        f"with the slope held at −1, c = t*·η·λ = {fit['c_slope_minus_1']:.3g}"
        f"{_interval_text(fit.get('c_slope_minus_1_ci'))}."
    )


def equilibrium_sentences(summary: Mapping[str, Any]) -> list[str]:
    """The ``equilibrium`` kind's findings (:data:`_EQUILIBRIUM` and :data:`_T_EQ_FIT` keys) as
    two sentences: the measured/predicted angle, then the fit of the time to equilibrium."""
    ratio, n = summary.get("ratio_median"), summary.get("n_layer_runs") or 0
    if not n:
        angle = "Rotational equilibrium: no run analysed (see the notes)."
    elif ratio is None:
        angle = (
            f"Rotational equilibrium of the BatchNorm-fed kernels over {n} runs: no predicted "
            "angle to compare with (none is made for these optimizers)."
        )
    else:
        over = summary.get("ratio_n_runs", n)
        spread = _range_text(summary.get("ratio_range"))
        angle = (
            f"Equilibrium angle per step of the BatchNorm-fed kernels: measured/predicted "
            f"{ratio:.3g}, the median over {over} runs{spread}."
        )
    if summary.get("t_eq_slope") is None:
        return [angle, "Time to equilibrium against 1/(η·λ): no fit (see the notes)."]
    fit = (
        f"Time to equilibrium t_eq ∝ (1/(η·λ))^b: b = {summary['t_eq_slope']:.3f}"
        f"{_interval_text(summary.get('t_eq_slope_ci'))} over {summary['t_eq_n_runs']} runs "
        f"spanning {summary['t_eq_decades']:.2g} decades of η·λ (b = 1: t_eq ∝ 1/(η·λ)); "
        f"prefactor e^a = {summary['t_eq_prefactor']:.3g} (t_eq·η·λ at b = 1)."
    )
    return [angle, fit]


def headline(summary: Mapping[str, Any]) -> list[str]:
    """The findings of a summary as sentences: the t* fits of the ``scaling`` kind (the
    default estimator's, then the paper's) and the best λ; the rotational equilibrium of the
    ``equilibrium`` kind (:func:`equilibrium_sentences`); empty for a summary without either
    kind's keys (other kinds)."""
    if all(key in summary for key in (*_EQUILIBRIUM, *_T_EQ_FIT)):
        return equilibrium_sentences(summary)
    if not all(key in summary for key in _FIT):
        return []
    estimator = summary.get("t_star_estimator", DEFAULT_ESTIMATOR)
    lines = [f"t* as {ESTIMATOR_NAMES.get(estimator, estimator)}: {fit_sentence(summary)}"]
    if isinstance(summary.get("paper"), Mapping):
        name = ESTIMATOR_NAMES["paper"]
        lines.append(f"t* as {name}: {fit_sentence(summary['paper'])}")
    best, by_lam = summary.get("best_lam"), summary.get("best_acc_by_lam") or {}
    acc = by_lam.get(format(best, "g")) if best is not None else None
    if acc is not None:
        lines.append(f"Best test accuracy {acc:.4g} at λ = {best:g} (the best η, mean over seeds).")
    return lines


__all__ = [
    "ESTIMATOR_NAMES",
    "ESTIMATOR_SHORT",
    "LABELS",
    "agreement_text",
    "equilibrium_sentences",
    "fit_sentence",
    "format_value",
    "headline",
    "label",
    "summary_items",
]

"""AutoL2 against the best fixed λ (SPEC §2.4, §3; Fig. 1c, S9, S10, S11).

AutoL2 schedules λ during training; the claim is that it reaches the accuracy of the best fixed
λ of a grid, and sooner. This module holds the measurements of that claim and its figure:

- :func:`epochs_to_near_best` and :func:`epochs_to_reach`: per run, the first epoch within a
  tolerance of its own best, or at a target accuracy;
- :func:`compare_setting`: one setting's AutoL2 runs against its best fixed λ, seed by seed,
  with a verdict per AutoL2 mode;
- :func:`plot_lambda_schedule`: accuracy and λ(t) over epochs, one colour per run
  (:func:`run_label` names them);
- :func:`plot_modes_vs_grid`: best test accuracy vs λ for the fixed grid, each AutoL2 mode
  beside it (:func:`autol2_modes` gives their means).

Variants are labelled ``SETTING/MODE`` (:func:`split_variant`): ``autol2``, ``fixed``, or
further ``autol2…`` modes (e.g. one per preset: ``autol2-paper``). Units: epochs; accuracies
are fractions, their differences in points (100 × fraction); λ(t) is the measurements'
``lam_now`` (the λ in force), ``lam`` the run's configured (starting) λ. A run whose λ₀ comes
from a preset is configured with ``lam`` = 0: its start is its first ``lam_now``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from l2dynamics.analysis.plotting import (
    LINESTYLES,
    figure,
    grid_ticks,
    lam_label,
    lam_panel,
    placed,
    save_png,
    say_empty,
)

# -- epochs to an accuracy ------------------------------------------------------------------


def epochs_to_near_best(curves: pd.DataFrame, tol: float) -> pd.Series:
    """Per run (hash): the first epoch whose test accuracy is within ``tol`` of the run's best.

    Args:
        curves: measurements (``hash``, ``epoch``, ``test_acc``), each run sorted by epoch.
        tol: accuracy (fraction) below the run's best that counts as reached.
    """

    def first(curve: pd.DataFrame) -> float:
        acc = curve["test_acc"].to_numpy()
        return float(curve["epoch"].to_numpy()[np.argmax(acc >= np.nanmax(acc) - tol)])

    return curves.groupby("hash", sort=False)[["epoch", "test_acc"]].apply(first)


def epochs_to_reach(curves: pd.DataFrame, target: float) -> pd.Series:
    """Per run (hash): the first epoch whose test accuracy is ≥ ``target`` (NaN if never).

    Args:
        curves: measurements (``hash``, ``epoch``, ``test_acc``), each run sorted by epoch.
        target: the accuracy (fraction) to reach.
    """

    def first(curve: pd.DataFrame) -> float:
        hit = curve["test_acc"].to_numpy() >= target - 1e-12
        return float(curve["epoch"].to_numpy()[np.argmax(hit)]) if hit.any() else math.nan

    return curves.groupby("hash", sort=False)[["epoch", "test_acc"]].apply(first)


def split_variant(table: pd.DataFrame) -> pd.DataFrame:
    """``variant`` "SETTING/MODE" → columns ``setting`` and ``mode`` (autol2 or fixed)."""
    parts = table["variant"].str.split("/", n=1, expand=True)
    return table.assign(setting=parts[0], mode=parts[1])


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


# -- AutoL2 against the best fixed λ --------------------------------------------------------


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


def _lam_ends(curves: pd.DataFrame, hashes: pd.Series) -> pd.DataFrame:
    """Per run (index ``hash``) of ``hashes``: its first and last λ in force by step (columns
    ``start``, ``final``; NaN measurements skipped)."""
    mine = curves[curves["hash"].isin(hashes)].sort_values("step", kind="stable")
    lam = mine.groupby("hash")["lam_now"]
    return pd.DataFrame({"start": lam.first(), "final": lam.last()})


def _autol2_entry(
    auto: pd.DataFrame, best: pd.DataFrame, curves: pd.DataFrame, tol: float
) -> dict[str, Any]:
    """One AutoL2 mode (mean over its seeds) against the best fixed λ's runs ``best``."""
    reach, fixed_reach = _paired_reach(auto, best, curves, tol)
    ends = _lam_ends(curves, auto["hash"])
    seeds = auto.set_index("hash")["seed"]

    def by_seed(column: str) -> dict[str, float]:
        return {str(int(seeds[h])): float(v) for h, v in ends[column].items()}

    return {
        "best_test_acc": round(float(auto["best_test_acc"].mean()), 4),
        "epochs_to_own_best": _mean_or_none(auto["near_best_epochs"]),
        "epochs_to_fixed_best": reach,
        "fixed_epochs_to_fixed_best": fixed_reach,
        "faster": reach is not None and (fixed_reach is None or reach < fixed_reach),
        "start_lam_by_seed": by_seed("start"),
        "final_lam_by_seed": by_seed("final"),
    }


def compare_setting(rows: pd.DataFrame, curves: pd.DataFrame, tol: float) -> dict[str, Any]:
    """AutoL2 (mean over its seeds) against the fixed λ whose mean best accuracy is highest.

    "Faster" compares the epochs each needs to come within ``tol`` of the best fixed λ's best
    accuracy, seed by seed (the same seed has the same initialization and batches): an AutoL2
    run that never gets there is not faster, however soon it reaches its own, lower best.
    Every AutoL2 mode (``autol2`` and the others whose name starts with it, e.g. one per
    preset) is judged the same way under ``modes`` (see :func:`judge_mode`), the plain one
    first; ``verdicts`` lists their one-line verdicts in that order. The ``autol2_*`` keys
    repeat the plain mode's, and ``other_autol2`` the other modes', as before.

    Args:
        rows: one setting's run-table rows with ``mode`` (:func:`split_variant`), ``seed``,
            ``lam``, ``best_test_acc`` and ``near_best_epochs`` (:func:`epochs_to_near_best`).
        curves: measurements (``hash``, ``step``, ``epoch``, ``test_acc``, ``lam_now``).
        tol: accuracy (fraction) within which a best counts as reached.

    Returns:
        The setting's summary (epochs are means over seeds, None where some seed never got
        there); ``{"missing": …}`` for a setting without finished fixed runs or without a plain
        ``autol2`` run.
    """
    fixed_rows = rows[(rows["mode"] == "fixed") & np.isfinite(rows["best_test_acc"].astype(float))]
    auto_rows = rows[rows["mode"].astype(str).str.startswith("autol2")]
    if not len(fixed_rows) or not (auto_rows["mode"] == "autol2").any():
        return {"missing": "no finished fixed-λ runs or no plain autol2 run in this setting"}
    fixed = fixed_rows.groupby("lam")[["best_test_acc", "near_best_epochs"]].mean()
    best_lam = float(fixed["best_test_acc"].idxmax())
    best = fixed_rows[fixed_rows["lam"] == best_lam]
    entries = {
        str(mode): _autol2_entry(auto, best, curves, tol)
        for mode, auto in auto_rows.groupby("mode")
    }
    return _setting_summary(entries, fixed, best_lam, tol)


def _setting_summary(
    entries: dict[str, dict[str, Any]], fixed: pd.DataFrame, best_lam: float, tol: float
) -> dict[str, Any]:
    """The :func:`compare_setting` summary from each AutoL2 mode's entry and the fixed grid's
    means per λ (``best_test_acc``, ``near_best_epochs``)."""
    f_acc = round(float(fixed.loc[best_lam, "best_test_acc"]), 4)
    modes = {
        mode: entries[mode] | judge_mode(mode, entries[mode], f_acc, best_lam, tol)
        for mode in sorted(entries, key=lambda m: (m != "autol2", m))
    }
    main = modes["autol2"]
    return {
        "autol2_best_test_acc": main["best_test_acc"],
        "best_fixed_lam": best_lam,
        "best_fixed_test_acc": f_acc,
        f"autol2_epochs_to_within_{tol:g}": main["epochs_to_own_best"],
        f"fixed_epochs_to_within_{tol:g}": float(fixed.loc[best_lam, "near_best_epochs"]),
        f"autol2_epochs_to_fixed_best_within_{tol:g}": main["epochs_to_fixed_best"],
        f"fixed_epochs_to_fixed_best_within_{tol:g}": main["fixed_epochs_to_fixed_best"],
        "autol2_final_lam_by_seed": main["final_lam_by_seed"],
        "autol2_at_least_as_good": main["at_least_as_good"],
        "autol2_faster": main["faster"],
        "as_good_and_faster": main["as_good_and_faster"],
        "other_autol2": {mode: e for mode, e in modes.items() if mode != "autol2"},
        "modes": modes,
        "verdicts": [e["verdict"] for e in modes.values()],
        "fixed_grid": {f"{lam:g}": round(float(a), 4) for lam, a in fixed["best_test_acc"].items()},
    }


def judge_mode(
    mode: str, entry: dict[str, Any], fixed_acc: float, best_lam: float, tol: float
) -> dict[str, Any]:
    """The paper's claim for one AutoL2 mode: as good as the best fixed λ, and faster.

    Args:
        mode: the mode's name, e.g. ``"autol2-paper"``.
        entry: the mode's ``best_test_acc`` (mean over seeds, fraction, rounded to 4 digits),
            ``faster``, ``epochs_to_fixed_best`` and ``fixed_epochs_to_fixed_best`` (epochs).
        fixed_acc: the best fixed λ's mean best test accuracy, rounded to 4 digits.
        best_lam: that fixed λ.
        tol: accuracy (fraction) within which the fixed λ's best counts as reached.

    Returns:
        ``at_least_as_good`` (the rounded accuracies compared), ``as_good_and_faster``,
        ``diff_points`` (100 × the difference of the rounded accuracies, 2 decimals, so its
        sign agrees with ``at_least_as_good``) and a one-line ``verdict``.
    """
    good = bool(entry["best_test_acc"] >= fixed_acc)
    diff = round(100.0 * (entry["best_test_acc"] - fixed_acc), 2)
    accuracy = (
        f"as good ({diff:+.2f} points)"
        if good
        else f"{-diff:.2f} points below the best fixed λ ({best_lam:g})"
    )
    claim = good and bool(entry["faster"])
    shows = "the claim shows" if claim else "the claim does not show"
    return {
        "at_least_as_good": good,
        "as_good_and_faster": claim,
        "diff_points": diff,
        "verdict": f"{mode}: {accuracy}, {_speed(entry, tol)}: {shows}",
    }


def _speed(entry: dict[str, Any], tol: float) -> str:
    """The speed half of a verdict, e.g. "faster (12 vs 20 epochs)": the mean epochs the mode
    and the best fixed λ need to come within ``tol`` of the fixed λ's best accuracy."""
    mine, fixed = entry["epochs_to_fixed_best"], entry["fixed_epochs_to_fixed_best"]
    if mine is None:
        return f"not faster (never within {tol:g} of the best fixed λ's accuracy)"
    if fixed is None:
        return f"faster ({mine:.4g} epochs; the fixed λ never within {tol:g} of its own)"
    return f"{'faster' if entry['faster'] else 'not faster'} ({mine:.4g} vs {fixed:.4g} epochs)"


# -- each AutoL2 mode beside the fixed grid --------------------------------------------------


def autol2_modes(rows: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per AutoL2 mode (index ``mode``, plain ``autol2`` first, then by name): the means over
    its seeds of the best test accuracy (``best_test_acc``, fraction) and of the first and
    last λ in force (``start_lam``, ``final_lam``: ``lam_now`` by step).

    Args:
        rows: run-table rows with ``hash``, ``mode`` (:func:`split_variant`) and
            ``best_test_acc``.
        curves: measurements (``hash``, ``step``, ``lam_now``).
    """
    auto = rows[rows["mode"].astype(str).str.startswith("autol2")]
    auto = auto.join(_lam_ends(curves, auto["hash"]), on="hash")
    means = auto.groupby("mode")[["best_test_acc", "start", "final"]].mean()
    order = sorted(means.index, key=lambda m: (m != "autol2", m))
    return means.loc[order].rename(columns={"start": "start_lam", "final": "final_lam"})


def plot_modes_vs_grid(
    rows: pd.DataFrame, curves: pd.DataFrame, path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Best test accuracy vs λ for the fixed grid, each AutoL2 mode beside it.

    The fixed grid: the mean over seeds per λ (line and markers) and each seed's value (faint
    points), on a log λ axis. Each AutoL2 mode: a horizontal line at its mean best test
    accuracy, labelled with its mean start λ₀ → mean final λ, and a marker at x = λ₀.

    Args:
        rows: one setting's run-table rows (``hash``, ``mode``, ``lam``, ``best_test_acc``).
        curves: measurements (``hash``, ``step``, ``lam_now``).
        path: the PNG to write.
        title: figure title.
    """
    fig, (ax,) = figure(size=(6.5, 4.5))
    fixed = rows[(rows["mode"] == "fixed") & np.isfinite(rows["best_test_acc"].astype(float))]
    x0 = lam_panel(ax, fixed, ylabel="best test accuracy", empty="no finished fixed-λ runs")
    if x0 is not None:
        _grid_points(ax, fixed, x0)
    modes = autol2_modes(rows, curves)
    for i, (mode, means) in enumerate(modes.iterrows()):
        _mode_line(ax, str(mode), means, i)
    # Label the starts λ₀ too, when they and the grid are few.
    grid_ticks(ax, np.concatenate([fixed["lam"].to_numpy(np.float64), modes["start_lam"]]))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return save_png(fig, path, title)


def _grid_points(ax: Axes, fixed: pd.DataFrame, x0: float) -> None:
    lams = placed(fixed["lam"].to_numpy(np.float64), x0)
    ax.plot(lams, fixed["best_test_acc"], ls="", marker=".", ms=4, color="0.3", alpha=0.35)
    mean = fixed.groupby("lam")["best_test_acc"].mean()
    x = placed(mean.index.to_numpy(np.float64), x0)
    label = "fixed λ (mean; dots: seeds)"
    ax.plot(x, mean.to_numpy(), color="0.15", marker="o", lw=1.5, label=label)


def _mode_line(ax: Axes, mode: str, means: pd.Series, i: int) -> None:
    acc, start, final = (float(means[c]) for c in ("best_test_acc", "start_lam", "final_lam"))
    if not np.isfinite(acc):
        return  # no finished run: nothing to draw the line at
    color, ls = f"C{i % 10}", LINESTYLES[i % len(LINESTYLES)]
    label = f"{mode}: λ₀ = {start:.2g} → λ = {final:.2g}"
    ax.axhline(acc, color=color, ls=ls, lw=1.2, label=label)
    if np.isfinite(start) and start > 0:  # a log axis has no place for λ₀ = 0
        ax.plot([start], [acc], ls="", marker="v", ms=7, color=color)


# -- λ(t) -----------------------------------------------------------------------------------


def plot_lambda_schedule(
    measurements: pd.DataFrame, path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Accuracy (top) and λ(t) (bottom) against epochs, one colour per run.

    For AutoL2 vs fixed-λ comparisons (SPEC §3, Fig. 1c): test accuracy solid, training
    accuracy dashed; λ(t) is the measurements' ``lam_now`` column, the λ in force (log axis;
    symlog when some λ is 0). Runs are labelled by :func:`run_label`.

    Args:
        measurements: :func:`~l2dynamics.sweep.store.load_measurements` rows.
        path: the PNG to write.
        title: figure title.
    """
    fig, (top, bottom) = figure(1, 2, size=(6.5, 6.0), sharex=True)
    top.set_ylabel("accuracy")
    bottom.set_ylabel("λ(t)")
    bottom.set_xlabel("epochs")
    groups = list(measurements.groupby("hash", sort=False)) if len(measurements) else []
    for i, (_, curve) in enumerate(groups):
        _schedule_run(top, bottom, curve.sort_values("epoch", kind="stable"), f"C{i % 10}")
    if not groups:
        say_empty(top, "no measurements")
    _lam_axis_scale(bottom, measurements)
    kinds = [
        Line2D([], [], color="0.3", ls=s, label=n) for s, n in (("-", "test"), ("--", "train"))
    ]
    top.legend(handles=top.get_legend_handles_labels()[0] + kinds, fontsize=7)
    return save_png(fig, path, title)


def _schedule_run(top: Axes, bottom: Axes, curve: pd.DataFrame, color: str) -> None:
    epoch = curve["epoch"].to_numpy(np.float64)
    top.plot(epoch, curve["test_acc"], color=color, lw=1.2, label=run_label(curve))
    top.plot(epoch, curve["train_acc"], color=color, lw=0.8, ls="--")
    bottom.plot(epoch, curve["lam_now"], color=color, lw=1.2, drawstyle="steps-post")


def run_label(curve: pd.DataFrame) -> str:
    """A run's legend label: its λ, or "AutoL2, λ₀ = …" when λ changes during the run, after
    its variant's label when it has one (e.g. ``"wrn/autol2: AutoL2, λ₀ = 0.1"``).

    λ₀ is the configured ``lam``, except for a run configured with ``lam`` = 0 (its λ₀ came
    from a preset): its first ``lam_now`` by epoch. Such a run is AutoL2 also when its λ
    never changed, as long as that λ is not 0.

    Args:
        curve: one run's measurements (``lam``, ``lam_now``, optionally ``epoch`` and
            ``variant``).
    """
    lam = curve["lam_now"].to_numpy(np.float64)
    first = float(curve["lam"].iloc[0])
    varies = np.nanmax(lam) > np.nanmin(lam) if np.isfinite(lam).any() else False
    start = _first_lam_now(curve) if first == 0 else first
    autol2 = varies or (first == 0 and start > 0)
    label = f"AutoL2, λ₀ = {start:g}" if autol2 else lam_label(first)
    if "variant" in curve and isinstance(curve["variant"].iloc[0], str):
        return f"{curve['variant'].iloc[0]}: {label}"
    return label


def _first_lam_now(curve: pd.DataFrame) -> float:
    """The first finite λ in force, by epoch where the curve has epochs (NaN if none)."""
    ordered = curve.sort_values("epoch", kind="stable") if "epoch" in curve else curve
    lam = ordered["lam_now"].to_numpy(np.float64)
    lam = lam[np.isfinite(lam)]
    return float(lam[0]) if len(lam) else math.nan


def _lam_axis_scale(ax: Axes, measurements: pd.DataFrame) -> None:
    lam = measurements["lam_now"].to_numpy(np.float64) if len(measurements) else np.zeros(0)
    lam = lam[np.isfinite(lam)]
    if len(lam) and (lam > 0).all():
        ax.set_yscale("log")
    elif (lam > 0).any():
        ax.set_yscale("symlog", linthresh=float(lam[lam > 0].min()))


__all__ = [
    "autol2_modes",
    "compare_setting",
    "epochs_to_near_best",
    "epochs_to_reach",
    "judge_mode",
    "plot_lambda_schedule",
    "plot_modes_vs_grid",
    "run_label",
    "split_variant",
]

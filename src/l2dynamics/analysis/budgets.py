"""Best accuracy vs λ and training budgets (SPEC §2.2–2.3; Fig. 1a, 1b, 2b, 4, S3, S4).

The performance of a run is its *maximum* test accuracy during training; this module holds
what is measured from it against λ and the budget T:

- :func:`plot_best_acc_vs_lam` / :func:`draw_best_acc`: best accuracy vs λ (best η, mean over
  seeds), one line per budget, predicted λ marked.
- Fixed budgets read off long runs: :func:`truncation_problems` (when that is not valid),
  :func:`best_within_budgets` (each run's best within each T), :func:`acc_by_budget` (per T and
  λ), :func:`optimal_by_budget` (the grid's optimal λ per T against λ_pred = c/(η·T)),
  :func:`calibration_c` (the c of that prediction, from one large-λ run or from the fit) and
  :func:`plot_fixed_budget`.
- Budget rules trained run by run (e.g. T = 200 epochs vs T = 0.1/λ, Fig. 1a):
  :func:`variant_acc_table`, :func:`lam_trend` and :func:`plot_acc_vs_lam_variants`.

Units: budgets T and t* in epochs; c in τ units (normalized time τ = η·λ·epochs); accuracies
are fractions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from l2dynamics.analysis.fits import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    predict_lambda,
    usable_for_fit,
)
from l2dynamics.analysis.plotting import (
    Colors,
    figure,
    grid_ticks,
    lam_axis,
    lam_panel,
    mark_zero,
    placed,
    save_panels,
    save_png,
    say_empty,
    seq_colors,
    zero_x,
)
from l2dynamics.analysis.tables import (
    FINISHED,
    best_acc_vs_lam,
    of_variant,
    run_configs,
    run_table,
    uses_autol2,
    variants,
    within_budget,
)

OPTIMAL_COLUMNS = (
    "budget_T",
    "best_lam",
    "best_acc",
    "n_near_best",
    "near_best_lo",
    "near_best_hi",
    "lam_pred",
    "acc_at_pred",
    "gap_pred",
    "lam_pred_2c",
    "acc_at_pred_2c",
    "gap_pred_2c",
)


# -- best accuracy vs λ ---------------------------------------------------------------------


def plot_best_acc_vs_lam(
    table: pd.DataFrame,
    path: str | os.PathLike,
    *,
    budgets: Mapping[str, pd.DataFrame] | None = None,
    predicted: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Best test accuracy vs λ (log x, λ = 0 at the left edge), one line per budget.

    Args:
        table: per-run table (:func:`~l2dynamics.analysis.tables.run_table`): each run's own
            budget, averaged over seeds, best η per λ.
        path: the PNG to write.
        budgets: more lines, ``{label: frame}``; a frame is either per run (e.g.
            :func:`~l2dynamics.analysis.tables.within_budget` at T epochs) or already per λ
            (:func:`~l2dynamics.analysis.tables.best_acc_vs_lam`, with a ``mean`` column).
        predicted: vertical markers ``{label: λ}`` (e.g. λ_pred = c/(η·T)); None/NaN skipped.
        title: figure title.
    """
    fig, (ax,) = figure(size=(5.5, 4.2))
    draw_best_acc(ax, table, budgets=budgets, predicted=predicted)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return save_png(fig, path, title)


def draw_best_acc(
    ax: Axes,
    table: pd.DataFrame,
    *,
    budgets: Mapping[str, pd.DataFrame] | None = None,
    predicted: Mapping[str, float] | None = None,
) -> None:
    """Draw best test accuracy vs λ into ``ax`` (see :func:`plot_best_acc_vs_lam`)."""
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("best test accuracy")
    ax.ticklabel_format(axis="y", useOffset=False)
    lines = {"best over η" if not budgets else "own budget": best_acc_vs_lam(table)}
    for label, frame in (budgets or {}).items():
        lines[label] = frame if "mean" in frame else best_acc_vs_lam(frame)
    lines = {k: v[np.isfinite(v["mean"].astype(float))] for k, v in lines.items()}
    all_lams = np.concatenate([v["lam"].to_numpy(np.float64) for v in lines.values()])
    if not len(all_lams):
        say_empty(ax, "no finished runs")
    x0 = zero_x(all_lams)
    for i, (label, acc) in enumerate(lines.items()):
        _acc_line(ax, acc, x0, f"C{i}", label)
    if (all_lams == 0).any():
        mark_zero(ax, x0)
    _predicted_lines(ax, predicted or {})
    grid_ticks(ax, all_lams[all_lams > 0])
    _bars_key(ax, lines.values())


def _bars_key(ax: Axes, lines: Iterable[pd.DataFrame]) -> None:
    """Say in a legend what the points and bars are: the mean over seeds at the best η, ±1
    sample standard deviation over those seeds (:func:`best_acc_vs_lam`; none for one seed)."""
    seeds = max((int(np.nanmax(v["n_seeds"])) for v in lines if len(v) and "n_seeds" in v),
                default=1)  # fmt: skip
    text = f"mean of {seeds} seeds; bars: ±1 s.d. over seeds" if seeds > 1 else "one seed: no bars"
    ax.plot([], [], " ", label=text)
    ax.legend(fontsize=7)


def _acc_line(ax: Axes, acc: pd.DataFrame, x0: float, color: str, label: str) -> None:
    """One best-accuracy line over positive λ and, apart, its λ = 0 point."""
    err = np.nan_to_num(acc["std"].to_numpy(np.float64), nan=0.0)
    lam = acc["lam"].to_numpy(np.float64)
    mean = acc["mean"].to_numpy(np.float64)
    pos = lam > 0
    ax.errorbar(lam[pos], mean[pos], yerr=err[pos], fmt="o-", ms=4, color=color, label=label)
    if (~pos).any():
        ax.errorbar(np.full((~pos).sum(), x0), mean[~pos], yerr=err[~pos], fmt="s", color=color)


def _predicted_lines(ax: Axes, predicted: Mapping[str, float]) -> None:
    styles = ["--", "-.", ":", (0, (5, 1, 1, 1))]
    valid = [(k, v) for k, v in predicted.items() if v is not None and np.isfinite(v) and v > 0]
    for i, (label, lam) in enumerate(valid):
        ax.axvline(lam, color="0.25", ls=styles[i % len(styles)], lw=1,
                   label=f"{label}: λ = {lam:.3g}")  # fmt: skip


# -- fixed budgets read off long runs (Figures 1b, 4, S3, S4) -------------------------------


def truncation_problems(runs: pd.DataFrame) -> list[str]:
    """Hashes of runs whose best accuracy within T cannot be read off a truncated curve.

    Reading "best accuracy at budget T" off one long run assumes the run up to T is what a run
    with budget T would have done: true for a constant learning rate and a fixed λ, false when
    the schedule depends on T (the step schedule ×0.2 at 0.3T, 0.6T, 0.9T) or λ is scheduled
    (AutoL2).

    Args:
        runs: :func:`~l2dynamics.sweep.store.load_runs` rows (``hash``, ``config``).
    """
    bad = []
    for run_hash, cfg in run_configs(runs).items():
        if cfg.get("lr_schedule", "constant") != "constant" or uses_autol2(cfg):
            bad.append(run_hash)
    return bad


def best_within_budgets(
    runs: pd.DataFrame, curves: pd.DataFrame, budgets: Sequence[float]
) -> pd.DataFrame:
    """Each finished run's best test accuracy within each budget T (epochs), from its curve.

    The performance of a run with budget T is its maximum test accuracy over epochs ≤ T
    (early stopping inside T), so for a constant-η, fixed-λ run it is read off one long run's
    curve truncated at T (see :func:`truncation_problems` for when this is not valid).

    Args:
        runs: :func:`~l2dynamics.sweep.store.load_runs` rows (``hash``, ``status`` and
            optionally ``stopped_at_peak``).
        curves: :func:`~l2dynamics.sweep.store.load_measurements` rows.
        budgets: the budgets T, in epochs.

    Returns:
        One row per (run, T): :func:`~l2dynamics.analysis.tables.within_budget` columns plus
        ``budget_T`` and ``valid``: the run was measured up to T, or it stopped earlier for a
        reason that fixes its best accuracy for any longer budget (it was stopped past its
        peak by ``peak_stop``, or it diverged). Rows that are not valid only bound the
        accuracy from below and are left out of the per-budget tables.
    """
    finished = runs[runs["status"].isin(FINISHED)]
    keep = curves[curves["hash"].isin(finished["hash"])]
    final = _final_before_budget(finished)
    frames = []
    for budget in budgets:
        rows = within_budget(keep, float(budget)) if len(keep) else pd.DataFrame()
        if len(rows):
            rows["budget_T"] = float(budget)
            rows["valid"] = rows["covers_budget"].astype(bool) | rows["hash"].isin(final)
            frames.append(rows)
    columns = ["hash", "eta", "lam", "seed", "best_test_acc", "t_star_epochs", "covers_budget"]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*columns, "budget_T", "valid"])
    )


def _final_before_budget(finished: pd.DataFrame) -> set[str]:
    """Hashes of the runs whose best accuracy is final however long the budget: those that
    diverged and those stopped past their peak (``stopped_at_peak``)."""
    final = set(finished.loc[finished["status"] == "diverged", "hash"])
    if "stopped_at_peak" in finished:
        stopped = finished["stopped_at_peak"].fillna(0).astype(bool)
        final |= set(finished.loc[stopped, "hash"])
    return final


def acc_by_budget(within: pd.DataFrame) -> pd.DataFrame:
    """Best test accuracy per (T, λ) from valid :func:`best_within_budgets` rows.

    Returns:
        Columns ``budget_T`` (epochs) and those of
        :func:`~l2dynamics.analysis.tables.best_acc_vs_lam` (mean over seeds at the best η of
        each λ).
    """
    frames = []
    for budget, rows in within[within["valid"]].groupby("budget_T", sort=True):
        acc = best_acc_vs_lam(rows)
        acc.insert(0, "budget_T", float(budget))
        frames.append(acc)
    columns = ["budget_T", "lam", "mean", "std", "best_eta", "n_seeds", "n_eta"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def nearest_lam(lams: np.ndarray, target: float) -> float:
    """The positive grid λ nearest to ``target`` in log λ (NaN when none or no target)."""
    positive = lams[np.isfinite(lams) & (lams > 0)]
    if not len(positive) or target is None or not np.isfinite(target) or target <= 0:
        return float("nan")
    return float(positive[np.argmin(np.abs(np.log(positive) - math.log(target)))])


def optimal_by_budget(
    acc: pd.DataFrame, c: float | None, eta: float, near_best: float = 0.0
) -> pd.DataFrame:
    """Per budget T: the grid's best λ and accuracy, and the predicted λ = c/(η·T), 2c/(η·T).

    Args:
        acc: :func:`acc_by_budget`.
        c: the constant of t* ≈ c/(η·λ) (τ units), or None (no prediction).
        eta: the runs' learning rate.
        near_best: accuracy (fraction) within which a λ counts as tied with the best (e.g. a
            test image or two: the optimum of a flat curve is not resolved below that).

    Returns:
        One row per T (columns :data:`OPTIMAL_COLUMNS`): ``budget_T``, ``best_lam`` (ties: the
        smallest λ), ``best_acc``, ``n_near_best``, ``near_best_lo``/``near_best_hi`` (the
        range of λ within ``near_best`` of the best), ``lam_pred``, ``lam_pred_2c``,
        ``acc_at_pred``/``acc_at_pred_2c`` (accuracy at the grid λ nearest the prediction, in
        log λ) and ``gap_pred``/``gap_pred_2c`` = best − that (accuracy lost by trusting it).
    """
    rows = []
    for budget, per in acc.groupby("budget_T", sort=True):
        per = per[np.isfinite(per["mean"].astype(float))]
        if len(per):
            rows.append(_optimal_row(budget, per, c, eta, near_best))
    return pd.DataFrame(rows, columns=list(OPTIMAL_COLUMNS))


def _optimal_row(
    budget: float, per: pd.DataFrame, c: float | None, eta: float, near_best: float
) -> dict[str, float]:
    """The :func:`optimal_by_budget` row of one budget's (λ, mean) rows."""
    mean = per["mean"].astype(float)
    best = per.loc[mean.idxmax()]
    row = {
        "budget_T": float(budget),
        "best_lam": float(best["lam"]),
        "best_acc": float(best["mean"]),
    }
    near = per.loc[mean >= row["best_acc"] - near_best - 1e-12, "lam"]
    row |= {"n_near_best": int(len(near)), "near_best_lo": float(near.min())}
    row["near_best_hi"] = float(near.max())
    by_lam = per.set_index("lam")["mean"].astype(float)
    for suffix, factor in (("", 1.0), ("_2c", 2.0)):
        pred = predict_lambda(factor * c, eta, budget) if c else float("nan")
        near = nearest_lam(by_lam.index.to_numpy(np.float64), pred)
        at = float(by_lam.get(near, np.nan)) if np.isfinite(near) else float("nan")
        row |= {f"lam_pred{suffix}": pred, f"acc_at_pred{suffix}": at}
        row[f"gap_pred{suffix}"] = row["best_acc"] - at
    return row


def calibration_c(table: pd.DataFrame, estimator: str = DEFAULT_ESTIMATOR) -> dict[str, Any]:
    """The constant c of t* ≈ c/(η·λ) (τ units), two ways, from a run table, with the t* of
    ``estimator`` (a key of :data:`~l2dynamics.analysis.fits.ESTIMATORS`).

    - ``c_calibration``: t*·η·λ of the runs at the LARGEST λ whose peak lies inside the budget
      (geometric mean over their η and seeds): the paper's recipe, one cheap run at a large λ
      whose peak comes early. Like the paper's 2-epoch calibration run it need not fit the
      training set (``calibration_reached_train_acc_1`` says whether it did);
      ``calibration_lam`` is that λ.
    - ``c_fit``: the geometric mean of t*·η·λ over the runs of the t* fit (λ > 0, peak inside
      the budget, training accuracy 1 reached: the slope −1 fit of
      :func:`~l2dynamics.analysis.fits.fit_tstar`). Small λ tend to need a larger c (SPEC §2.3).

    Args:
        table: a :func:`~l2dynamics.analysis.tables.run_table`.

    Returns:
        The four values above, None where no run qualifies.
    """
    out: dict[str, Any] = dict.fromkeys(
        ("c_calibration", "calibration_lam", "calibration_reached_train_acc_1", "c_fit")
    )
    if not len(table):
        return out
    column, inside_column = ESTIMATORS[estimator]
    t = table[column].to_numpy(np.float64)
    inside = (table["status"] == "done") & table[inside_column].astype(bool)
    peaked = table[(table["lam"] > 0) & inside & np.isfinite(t) & (t > 0)]
    if len(peaked):
        top = peaked[peaked["lam"] == peaked["lam"].max()]
        out["calibration_lam"] = float(top["lam"].iloc[0])
        out["c_calibration"] = _geometric_mean_tau(top, column)
        out["calibration_reached_train_acc_1"] = bool(top["reached_train_acc_1"].all())
    usable = table[usable_for_fit(table, estimator)]
    if len(usable):
        out["c_fit"] = _geometric_mean_tau(usable, column)
    return out


def _geometric_mean_tau(table: pd.DataFrame, column: str) -> float:
    """The geometric mean of the runs' t*·η·λ (τ units), t* from ``column`` (epochs)."""
    tau = table[column].astype(float) * table["eta"] * table["lam"]
    return float(np.exp(np.log(tau).mean()))


def plot_fixed_budget(
    acc: pd.DataFrame,
    optimal: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """(a) Best test accuracy vs λ, one line per budget T; (b) the optimal λ vs T.

    Args:
        acc: one row per (T, λ): ``budget_T`` (epochs), ``lam``, ``mean``, ``std`` (best test
            accuracy within T, best η, averaged over seeds).
        optimal: one row per T: ``budget_T``, ``best_lam`` (the grid's best λ at T),
            ``lam_pred`` = c/(η·T) and ``lam_pred_2c`` = 2c/(η·T) (NaN when unknown).
        path: the PNG to write.
        title: figure title.

    On (a) the predicted λ of each budget is marked on that budget's line: a filled triangle
    for c/(η·T), a hollow one for 2c/(η·T) (accuracy read off the line, log-interpolated).
    On (b) the grid's optimum is a dot per T; the predictions are lines ∝ 1/T.
    """
    fig, (ax_a, ax_b) = figure(2, size=(11.0, 4.4))
    colors = seq_colors(acc["budget_T"]) if len(acc) else {}
    _draw_budget_lines(ax_a, acc, optimal, colors)
    _draw_optimal_lam(ax_b, optimal, colors)
    return save_panels(fig, (ax_a, ax_b), path, title)


def _draw_budget_lines(ax: Axes, acc: pd.DataFrame, optimal: pd.DataFrame, colors: Colors) -> None:
    x0 = lam_panel(ax, acc, ylabel="best test accuracy within T", empty="no run covers any budget")
    if x0 is None:
        return
    pred = optimal.set_index("budget_T") if len(optimal) else pd.DataFrame()
    for budget, rows in acc.groupby("budget_T", sort=True):
        rows = rows.sort_values("lam")
        lam, mean = rows["lam"].to_numpy(np.float64), rows["mean"].to_numpy(np.float64)
        err = np.nan_to_num(rows["std"].to_numpy(np.float64), nan=0.0)
        color = colors.get(float(budget), "0.5")
        ax.errorbar(placed(lam, x0), mean, yerr=err, fmt="o-", ms=3.5, color=color,
                    label=f"T = {budget:g} epochs")  # fmt: skip
        if budget in pred.index:
            _mark_predictions(ax, pred.loc[budget], lam, mean, color)
    marks = [
        Line2D([], [], marker="v", color="0.3", ls="", label="λ_pred = c/(η·T)"),
        Line2D([], [], marker="v", color="0.3", mfc="none", ls="", label="2c/(η·T)"),
    ]
    ax.legend(handles=ax.get_legend_handles_labels()[0] + marks, fontsize=7, loc="best")


def _mark_predictions(
    ax: Axes, pred: pd.Series, lam: np.ndarray, mean: np.ndarray, color: tuple | str
) -> None:
    """Triangles on one budget's line at its λ_pred (filled) and 2c λ_pred (hollow)."""
    for column, face in (("lam_pred", color), ("lam_pred_2c", "none")):
        at = float(pred[column])
        y = _interp_log(lam, mean, at)
        if np.isfinite(y):
            ax.plot(at, y, marker="v", ms=8, color=color, mfc=face, ls="")


def _interp_log(xs: np.ndarray, ys: np.ndarray, x: float) -> float:
    """``ys`` at ``x`` by linear interpolation in log x (NaN outside the range)."""
    ok = np.isfinite(ys) & (xs > 0)
    if not ok.any() or not np.isfinite(x) or x <= 0:
        return float("nan")
    lx, y = np.log(xs[ok]), ys[ok]
    order = np.argsort(lx)
    lx, y = lx[order], y[order]
    if np.log(x) < lx[0] or np.log(x) > lx[-1]:
        return float("nan")
    return float(np.interp(np.log(x), lx, y))


def _draw_optimal_lam(ax: Axes, optimal: pd.DataFrame, colors: Colors) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("budget T (epochs)")
    ax.set_ylabel("optimal λ")
    ok = (
        optimal[np.isfinite(optimal["best_lam"]) & (optimal["best_lam"] > 0)]
        if len(optimal)
        else optimal
    )
    if not len(ok):
        say_empty(ax, "no optimal λ > 0")
        return
    for t, lam in zip(ok["budget_T"], ok["best_lam"], strict=True):
        ax.plot(t, lam, "o", ms=7, color=colors.get(float(t), "0.5"))
    ax.plot([], [], "o", color="0.4", label="best λ of the grid")
    ts = np.geomspace(ok["budget_T"].min(), ok["budget_T"].max(), 50)
    for column, style, label in (("lam_pred", "-", "c/(η·T)"), ("lam_pred_2c", "--", "2c/(η·T)")):
        pred = ok[column].to_numpy(np.float64) * ok["budget_T"].to_numpy(np.float64)
        if np.isfinite(pred).any():  # λ_pred·T is the constant c/η
            k = float(np.nanmean(pred))
            ax.plot(ts, k / ts, color="crimson", ls=style, lw=1.3, label=f"{label} = {k:.3g}/T")
    ax.legend(fontsize=7)


# -- budget rules trained run by run (Figure 1a) --------------------------------------------


def variant_acc_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, λ): best test accuracy (mean/std over seeds at the best η) and the mean
    final test accuracy of the runs at that η.

    Args:
        runs: :func:`~l2dynamics.sweep.store.load_runs` rows (``final_test_acc`` optional).
        curves: their measurements.

    Returns:
        ``variant`` and the columns of :func:`~l2dynamics.analysis.tables.best_acc_vs_lam`,
        plus ``final`` when ``runs`` has ``final_test_acc``.
    """
    table = run_table(runs, curves)
    final = runs.set_index("hash")["final_test_acc"] if "final_test_acc" in runs else None
    frames = []
    for variant in variants(table):
        rows = of_variant(table, variant)
        acc = best_acc_vs_lam(rows)
        if final is not None and len(acc):
            fin = rows.assign(final=rows["hash"].map(final)).groupby(["lam", "eta"])["final"].mean()
            acc["final"] = [
                fin.get((lam, eta), np.nan)
                for lam, eta in zip(acc["lam"], acc["best_eta"], strict=True)
            ]
        acc.insert(0, "variant", variant)
        frames.append(acc)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def lam_trend(lams: np.ndarray, acc: np.ndarray) -> float | None:
    """Spearman rank correlation of accuracy with λ over λ > 0 (negative: accuracy improves as
    λ decreases); None with fewer than 3 points."""
    ok = np.isfinite(acc) & (lams > 0)
    if ok.sum() < 3:
        return None
    r = pd.Series(lams[ok]).rank().corr(pd.Series(acc[ok]).rank())
    return None if not np.isfinite(r) else float(r)


def plot_acc_vs_lam_variants(
    lines: Mapping[str, pd.DataFrame], path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Test accuracy vs λ, one colour per variant (e.g. "T = 200" and "T = 0.1/λ", Fig. 1a).

    Args:
        lines: ``{label: frame}``; a frame has one row per λ with ``lam``, ``mean`` and ``std``
            of the best test accuracy (solid) and, optionally, ``final`` (the final test
            accuracy, dashed).
        path: the PNG to write.
        title: figure title.
    """
    fig, (ax,) = figure(size=(6.0, 4.4))
    ax.set_ylabel("test accuracy")
    frames = {k: v for k, v in lines.items() if len(v)}
    lams = np.concatenate([v["lam"].to_numpy(np.float64) for v in frames.values()] or [[]])
    x0 = lam_axis(ax, lams)
    for i, (label, frame) in enumerate(frames.items()):
        frame = frame.sort_values("lam")
        x = placed(frame["lam"].to_numpy(np.float64), x0)
        err = np.nan_to_num(frame["std"].to_numpy(np.float64), nan=0.0)
        ax.errorbar(x, frame["mean"], yerr=err, fmt="o-", ms=4, color=f"C{i}",
                    label=f"{label}: best")  # fmt: skip
        if "final" in frame:
            ax.plot(x, frame["final"], "s--", ms=3, color=f"C{i}", lw=1, label=f"{label}: final")
    if not frames:
        say_empty(ax, "no finished runs")
    else:
        ax.legend(fontsize=7)
    return save_png(fig, path, title)


__all__ = [
    "OPTIMAL_COLUMNS",
    "acc_by_budget",
    "best_within_budgets",
    "calibration_c",
    "draw_best_acc",
    "lam_trend",
    "nearest_lam",
    "optimal_by_budget",
    "plot_acc_vs_lam_variants",
    "plot_best_acc_vs_lam",
    "plot_fixed_budget",
    "truncation_problems",
    "variant_acc_table",
]

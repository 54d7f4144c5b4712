"""Per-run tables from a sweep's runs and measurements (pure pandas; no JAX, no training).

Units: ``epoch`` and ``t_star_*`` in epochs; ``eta_lam`` = η·λ (so that t* ≈ c/(η·λ) epochs);
``t_star_tau`` = t*·η·λ, the normalized time τ = η·λ·epochs of the peak; ``tau_iter`` (steps)
and ``tau_epoch`` (epochs), the timescale of each run's decay for its optimizer (SPEC §6). The
inputs are the DataFrames of :func:`l2dynamics.sweep.store.load_runs` and
:func:`~l2dynamics.sweep.store.load_measurements` (or any frames with the same columns).

Definitions (SPEC §1): the performance of a run is its *maximum* test accuracy over the
measurements, the paper's ``t*`` the epoch of the *first* measurement reaching it, the toolkit's
``t*`` the centre of the interval where the (log-time smoothed) accuracy stays within the test
set's standard error of its maximum (:func:`l2dynamics.results.near_peak`: stable between
seeds where the first maximum of a flat plateau is not); a run is over-parameterized when its
training accuracy reaches 1 at some measurement.

This is the core every topic module of :mod:`l2dynamics.analysis` builds on: the run table
(:func:`run_table`), a curve's peak (:func:`peak_stats`), the peak within a budget
(:func:`within_budget`), the best accuracy per λ (:func:`best_acc_vs_lam`), and the frame
plumbing they share: each run's configuration (:func:`run_configs`), whether it schedules λ
with AutoL2 (:func:`uses_autol2`, :func:`is_autol2`) and its variant (:func:`variants`,
:func:`of_variant`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.config import (
    DataConfig,
    TrainConfig,
    from_dict,
    test_set_size,
    timescale_epochs,
    timescale_steps,
)
from l2dynamics.results import first_peak, near_peak

FINISHED = ("done", "diverged")
# Training accuracy counts as 1 within this of 1: it is a fraction k/N in float32, and one error
# (1/N) is far larger for any N < 10⁶.
TRAIN_ACC_ONE_TOL = 1e-6
# Relative slack when comparing an epoch with a budget (epochs are step·B/N in floating point).
EPOCH_RTOL = 1e-9
PASS_THROUGH = ("variant",)
# A test set is small when one image moves an accuracy by at least this many points (percent):
# 0.1, a test set of at most 1,000 images (the digits' 500: 0.2 points).
SMALL_TEST_SET_POINTS = 0.1

RUN_TABLE_COLUMNS = (
    "hash",
    "eta",
    "lam",
    "seed",
    "status",
    "budget_epochs",
    "last_epoch",
    "best_test_acc",
    "t_star_epochs",
    "t_star_lo",
    "t_star_hi",
    "peak_inside",
    "t_star_robust",
    "t_star_robust_lo",
    "t_star_robust_hi",
    "robust_inside",
    "n_test",
    "max_train_acc",
    "reached_train_acc_1",
    "epochs_to_train_acc_1",
    "eta_lam",
    "t_star_tau",
    "tau_iter",
    "tau_epoch",
)

_STAT_COLUMNS = [
    "last_epoch",
    "best_test_acc",
    "t_star_epochs",
    "t_star_lo",
    "t_star_hi",
    "t_star_robust",
    "t_star_robust_lo",
    "t_star_robust_hi",
    "robust_inside",
    "max_train_acc",
    "reached_train_acc_1",
    "epochs_to_train_acc_1",
]
_BOOL_STATS = ("reached_train_acc_1", "robust_inside")
_STAT_DTYPES = {c: bool if c in _BOOL_STATS else np.float64 for c in _STAT_COLUMNS}


def peak_stats(epoch: np.ndarray, test_acc: np.ndarray) -> dict[str, float]:
    """The peak of one curve: best test accuracy, t* and its resolution interval.

    Args:
        epoch: measurement epochs, increasing.
        test_acc: test accuracy at each measurement (NaN where unknown, e.g. after divergence).

    Returns:
        ``best_test_acc``; ``t_star_epochs``, the FIRST epoch at which it is reached;
        ``t_star_lo``/``t_star_hi``, the epochs of the measurements just before and after t*
        (NaN at either end of the curve: the true peak lies in (lo, hi)). All NaN when no
        measurement has a finite accuracy.
    """
    acc = np.asarray(test_acc, dtype=np.float64)
    nan = float("nan")
    i = first_peak(acc)
    if i is None:
        return dict(best_test_acc=nan, t_star_epochs=nan, t_star_lo=nan, t_star_hi=nan)
    return dict(
        best_test_acc=float(acc[i]),
        t_star_epochs=float(epoch[i]),
        t_star_lo=float(epoch[i - 1]) if i > 0 else nan,
        t_star_hi=float(epoch[i + 1]) if i + 1 < len(acc) else nan,
    )


def robust_peak_stats(epoch: np.ndarray, test_acc: np.ndarray, n_test: int) -> dict[str, Any]:
    """The toolkit's t* of one curve (:func:`~l2dynamics.results.near_peak`), in epochs.

    Returns:
        ``t_star_robust`` (the centre of the near-peak interval), ``t_star_robust_lo`` and
        ``t_star_robust_hi`` (its ends), ``robust_inside`` (the curve was measured past the
        interval: the peak was not cut off by the end of the run). NaN/False without a finite
        accuracy after epoch 0.
    """
    peak = near_peak(epoch, test_acc, n_test)
    if peak is None:
        nan = float("nan")
        return dict(t_star_robust=nan, t_star_robust_lo=nan, t_star_robust_hi=nan,
                    robust_inside=False)  # fmt: skip
    return dict(
        t_star_robust=peak.t_star,
        t_star_robust_lo=peak.lo,
        t_star_robust_hi=peak.hi,
        robust_inside=peak.closed,
    )


def train_acc_stats(epoch: np.ndarray, train_acc: np.ndarray) -> dict[str, float | bool]:
    """Whether (and when, in epochs) a curve reaches training accuracy 1, and its maximum."""
    acc = np.asarray(train_acc, dtype=np.float64)
    hit = np.flatnonzero(acc >= 1.0 - TRAIN_ACC_ONE_TOL)
    finite = np.isfinite(acc)
    return dict(
        max_train_acc=float(np.max(acc[finite])) if finite.any() else float("nan"),
        reached_train_acc_1=bool(len(hit)),
        epochs_to_train_acc_1=float(epoch[hit[0]]) if len(hit) else float("nan"),
    )


def _curve_stats(curve: pd.DataFrame | None, n_test: int) -> dict[str, float | bool]:
    """Peak and training-accuracy statistics of one run's measurements (sorted by epoch) on a
    test set of ``n_test`` examples."""
    if curve is None or curve.empty:
        empty = np.zeros(0)
        return (
            {"last_epoch": float("nan")}
            | peak_stats(empty, empty)
            | robust_peak_stats(empty, empty, n_test)
            | train_acc_stats(empty, empty)
        )
    curve = curve.sort_values("epoch", kind="stable")
    epoch, acc = curve["epoch"].to_numpy(np.float64), curve["test_acc"].to_numpy(np.float64)
    return (
        {"last_epoch": float(epoch[-1])}
        | peak_stats(epoch, acc)
        | robust_peak_stats(epoch, acc, n_test)
        | train_acc_stats(epoch, curve["train_acc"].to_numpy())
    )


def test_sizes(runs: pd.DataFrame) -> np.ndarray:
    """Each run's number of test examples (shape (R,)): its configuration's (``config`` JSON:
    ``data.n_test``, else the data set's whole test set), else the frame's ``n_test`` column.

    Raises:
        ValueError: a run has neither (its t* by the near-peak rule needs it).
    """
    configs = run_configs(runs) if "config" in runs else {}
    given = runs["n_test"].to_numpy() if "n_test" in runs else [None] * len(runs)
    out = []
    for h, n in zip(runs["hash"], given, strict=True):
        data = configs.get(h, {}).get("data")
        if data:
            out.append(test_set_size(DataConfig(**data)))
        elif n is not None and not pd.isna(n):
            out.append(int(n))
        else:
            raise ValueError(f"run {h}: no test-set size (neither a config nor an n_test column)")
    return np.asarray(out, dtype=np.int64)


def run_table(runs: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run (status ``done`` or ``diverged``) with its peak statistics.

    Args:
        runs: one row per run (``hash``, ``status``, ``eta``, ``lam``, ``seed``, and ``config``
            or ``n_test``; optionally ``budget_epochs`` and ``variant``, which is passed
            through).
        measurements: one row per measurement (``hash``, ``epoch``, ``test_acc``, ``train_acc``).

    Returns:
        Columns :data:`RUN_TABLE_COLUMNS` (plus ``variant`` when ``runs`` has it):
        ``budget_epochs`` (the run's budget in epochs; its last measured epoch when ``runs`` has
        no finite budget), ``last_epoch`` (last measured epoch), ``best_test_acc``,
        ``t_star_epochs`` (FIRST epoch of the maximum test accuracy), ``t_star_lo``/``t_star_hi``
        (epochs of the neighbouring measurements), ``peak_inside`` (a later measurement exists
        and t* < budget: the peak was not cut off by the budget); the toolkit's t*
        ``t_star_robust`` with its near-peak interval ``t_star_robust_lo``/``_hi`` and
        ``robust_inside`` (see :func:`robust_peak_stats`); ``n_test`` (test examples, see
        :func:`test_sizes`); ``max_train_acc``,
        ``reached_train_acc_1``, ``epochs_to_train_acc_1`` (NaN if never), ``eta_lam`` = η·λ,
        ``t_star_tau`` = t*·η·λ (τ units), and the timescale of the run's decay (SPEC §6, see
        :func:`~l2dynamics.config.timescale_steps`) ``tau_iter`` in steps and ``tau_epoch`` in
        epochs (NaN when ``runs`` has no configuration with the run's data).
    """
    finished = runs[runs["status"].isin(FINISHED)]
    curves = dict(tuple(measurements.groupby("hash", sort=False))) if len(measurements) else {}
    n_test = test_sizes(finished)
    rows = [_curve_stats(curves.get(h), n) for h, n in zip(finished["hash"], n_test, strict=True)]
    stats = pd.DataFrame(rows, index=finished.index, columns=_STAT_COLUMNS).astype(_STAT_DTYPES)
    keep = ["hash", "eta", "lam", "seed", "status"] + [c for c in PASS_THROUGH if c in runs]
    table = pd.concat([finished[keep], stats], axis=1).reset_index(drop=True)
    table["n_test"] = n_test
    table["budget_epochs"] = _budget(finished, table)
    table["eta_lam"] = table["eta"] * table["lam"]
    table["t_star_tau"] = table["t_star_epochs"] * table["eta_lam"]
    table["tau_iter"], table["tau_epoch"] = _timescales(finished)
    table["peak_inside"] = np.isfinite(table["t_star_hi"]) & (
        table["t_star_epochs"] < table["budget_epochs"] * (1 - EPOCH_RTOL)
    )
    extra = [c for c in PASS_THROUGH if c in table]
    return table[list(RUN_TABLE_COLUMNS) + extra]


def _timescales(finished: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each run's ``τ_iter`` (steps) and ``τ_epoch`` (epochs) from its stored configuration
    (fields left out of it, as :data:`l2dynamics.sweep.spec.LATER_FIELDS` at their defaults, take
    their defaults) and its ``eta``, ``lam`` columns; ``τ_epoch`` NaN where the configuration
    does not say the data (its training-set size and batch)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    configs = run_configs(finished)
    steps, epochs = [], []
    for h, eta, lam in zip(finished["hash"], finished["eta"], finished["lam"], strict=True):
        stored = {k: v for k, v in configs.get(h, {}).items() if k in fields}
        cfg = from_dict(TrainConfig, stored | {"eta": float(eta), "lam": float(lam)})
        steps.append(timescale_steps(cfg))
        epochs.append(timescale_epochs(cfg) if "data" in stored else math.nan)
    return np.asarray(steps, np.float64), np.asarray(epochs, np.float64)


def _budget(finished: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Each run's budget in epochs: the ``budget_epochs`` column, else its last measured epoch."""
    last = table["last_epoch"].to_numpy(np.float64)
    if "budget_epochs" not in finished:
        return last
    budget = finished["budget_epochs"].to_numpy(np.float64)
    return np.where(np.isfinite(budget), budget, last)


def within_budget(measurements: pd.DataFrame, budget_epochs: float) -> pd.DataFrame:
    """Per run, the peak restricted to measurements at epochs <= ``budget_epochs``.

    This is the performance of a run trained for a fixed budget of T epochs (early stopping
    inside T), for the fixed-budget curves of SPEC §2.2 / Fig. 1b.

    Args:
        measurements: one row per measurement (``hash``, ``epoch``, ``test_acc`` and the run's
            configured ``eta``, ``lam``, as :func:`~l2dynamics.sweep.load_measurements` gives).
        budget_epochs: T, in epochs.

    Returns:
        One row per run: ``hash``, ``eta``, ``lam``, ``seed``, ``best_test_acc``,
        ``t_star_epochs`` (first epoch of the maximum within T), ``covers_budget`` (the run was
        measured up to T or beyond; otherwise its values are only a lower bound), plus
        ``variant`` when present.
    """
    rows = [_within_row(h, c, budget_epochs) for h, c in measurements.groupby("hash", sort=False)]
    columns = ["hash", "eta", "lam", "seed", "best_test_acc", "t_star_epochs", "covers_budget"]
    return pd.DataFrame(rows, columns=columns + [c for c in PASS_THROUGH if c in measurements])


def _within_row(run_hash: str, curve: pd.DataFrame, budget_epochs: float) -> dict:
    """The :func:`within_budget` row of one run's measurements."""
    curve = curve.sort_values("epoch", kind="stable")
    inside = curve[curve["epoch"] <= budget_epochs * (1 + EPOCH_RTOL)]
    peak = peak_stats(inside["epoch"].to_numpy(np.float64), inside["test_acc"].to_numpy())
    first = curve.iloc[0]
    covers = bool(curve["epoch"].max() >= budget_epochs * (1 - EPOCH_RTOL))
    row = {"hash": run_hash, **_run_keys(first)}
    row |= {"best_test_acc": peak["best_test_acc"], "t_star_epochs": peak["t_star_epochs"]}
    row |= {"covers_budget": covers}
    return row | {c: first[c] for c in PASS_THROUGH if c in curve}


def _run_keys(row: pd.Series) -> dict[str, float]:
    """A measurement row's run η, λ (configured values) and seed."""
    eta, lam = row["eta"], row["lam"]
    return {"eta": float(eta), "lam": float(lam), "seed": row.get("seed", pd.NA)}


def best_acc_vs_lam(table: pd.DataFrame) -> pd.DataFrame:
    """Best test accuracy per λ: averaged over seeds per (η, λ), then the best η per λ.

    Args:
        table: one row per run with ``eta``, ``lam``, ``best_test_acc`` (and ``seed``), e.g.
            :func:`run_table` or :func:`within_budget`.

    Returns:
        One row per λ (λ = 0 included), sorted by λ: ``lam``, ``mean`` and ``std`` (sample
        standard deviation over seeds, NaN for one seed) of ``best_test_acc`` at the best η,
        ``best_eta`` (the η with the highest mean), ``n_seeds`` (at that η) and ``n_eta``.
    """
    columns = ["lam", "mean", "std", "best_eta", "n_seeds", "n_eta"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    grouped = table.groupby(["lam", "eta"])["best_test_acc"]
    per = grouped.agg(["mean", "std", "count"]).reset_index()
    rows = [_best_eta(lam, g) for lam, g in per.groupby("lam", sort=True)]
    return pd.DataFrame(rows, columns=columns).reset_index(drop=True)


def _best_eta(lam: float, per_eta: pd.DataFrame) -> dict[str, float]:
    """The row of the best η among one λ's (η, mean, std, count) rows."""
    n_eta = int(len(per_eta))
    if not per_eta["mean"].notna().any():
        nan = float("nan")
        return dict(lam=lam, mean=nan, std=nan, best_eta=nan, n_seeds=0, n_eta=n_eta)
    best = per_eta.loc[per_eta["mean"].idxmax()]
    return dict(
        lam=float(lam),
        mean=float(best["mean"]),
        std=float(best["std"]),
        best_eta=float(best["eta"]),
        n_seeds=int(best["count"]),
        n_eta=n_eta,
    )


def run_configs(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """{hash: the run's configuration} from the store's ``config`` JSON column ({} if absent)."""
    if "config" not in runs:
        return {h: {} for h in runs["hash"]}
    return {
        h: (json.loads(c) if isinstance(c, str) else {})
        for h, c in zip(runs["hash"], runs["config"], strict=True)
    }


def uses_autol2(config: Mapping[str, Any]) -> bool:
    """Whether a run's stored configuration schedules λ with AutoL2 (its λ then changes during
    the run: the stored ``lam`` is only λ₀, or 0 when the preset chose λ₀)."""
    return bool(config.get("autol2", False))


def is_autol2(runs: pd.DataFrame) -> pd.Series:
    """Which runs schedule λ with AutoL2 (:func:`uses_autol2` of their ``config`` JSON; none
    without that column), aligned with ``runs``' index."""
    if "config" not in runs:
        return pd.Series(False, index=runs.index, dtype=bool)
    configs = runs["config"].map(lambda text: json.loads(text) if isinstance(text, str) else {})
    return configs.map(uses_autol2).astype(bool)


def variants(frame: pd.DataFrame) -> list[str]:
    """The variant labels of a runs, measurements or run-table frame, in order of appearance
    (``[""]``, one unnamed variant, when the frame has no ``variant`` column)."""
    return list(frame["variant"].unique()) if "variant" in frame else [""]


def of_variant(frame: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The rows of ``frame`` that belong to ``variant`` (all rows without a ``variant`` column)."""
    return frame[frame["variant"] == variant] if "variant" in frame else frame


def small_test_set_note(n_test: int) -> str | None:
    """A sentence saying what a small test set of ``n_test`` images means for t* and the
    accuracies (None when one image is worth less than :data:`SMALL_TEST_SET_POINTS`)."""
    points = 100.0 / n_test
    if points < SMALL_TEST_SET_POINTS:
        return None
    se = 100.0 * math.sqrt(0.9 * 0.1 / n_test)
    return (
        f"small test set: {n_test} images, so one image is {points:.2g} points of test accuracy "
        f"and an accuracy of 90% has a standard error of {se:.2g} points; best accuracies that "
        f"differ by less cannot be told apart, and the paper's t* (the first maximum) can sit "
        f"anywhere on a plateau that flat, which is why t* here is the centre of the near-peak "
        f"interval"
    )


def run_table_from_store(path: str | os.PathLike) -> pd.DataFrame:
    """:func:`run_table` of the runs and measurements of the store at ``path``."""
    from l2dynamics.sweep.store import load_measurements, load_runs

    return run_table(load_runs(path), load_measurements(path))


__all__ = [
    "FINISHED",
    "RUN_TABLE_COLUMNS",
    "TRAIN_ACC_ONE_TOL",
    "best_acc_vs_lam",
    "is_autol2",
    "of_variant",
    "peak_stats",
    "run_configs",
    "run_table",
    "robust_peak_stats",
    "run_table_from_store",
    "small_test_set_note",
    "test_sizes",
    "train_acc_stats",
    "uses_autol2",
    "variants",
    "within_budget",
]

"""``l2dyn report``: the analysis, figures and HTML report of any store, your own sweeps included.

The same writer as ``reproduce`` (:func:`~l2dynamics.experiments.sweep_figure.write_outputs`),
with the kind of analysis chosen from the store's runs and their per-layer measurements
(:func:`choose_kind`, the reason in a note). Which runs: the grid registered last (the sweep
file of the last ``l2dyn sweep``, as ``status --current``), or every run in the store with
``every_run`` (``--all``; a store keeps one sweep's data, model, train and budget settings, so
only the grids differ). Only finished runs (done, diverged) are analysed; the others are counted
in a note, as the ``equilibrium`` analysis counts those it leaves out
(:func:`~l2dynamics.analysis.equilibrium.equilibrium_runs`).

Outputs in the report directory (default ``STORE_report/`` beside the store, for
``runs.sqlite`` ``runs_report/``): ``NAME.png`` (NAME: the sweep's name), CSV tables,
``summary.json`` and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from l2dynamics.analysis.equilibrium import equilibrium_runs
from l2dynamics.analysis.tables import is_autol2
from l2dynamics.errors import L2DynError
from l2dynamics.experiments.kinds import LAYER_KINDS
from l2dynamics.experiments.kinds.base import slug
from l2dynamics.experiments.spec import Experiment
from l2dynamics.experiments.sweep_figure import write_outputs
from l2dynamics.files import check_dir_target
from l2dynamics.sweep.store import RunStore, load_layer_measurements, load_measurements, load_runs

FINISHED = ("done", "diverged")  # the statuses the analysis reads (run_table's)
TITLES = {
    "scaling": "t* vs η·λ, best accuracy vs λ, test accuracy vs τ",
    "autol2": "AutoL2 against the fixed-λ grid",
    "curves": "accuracy and loss vs epochs and vs τ",
    "equilibrium": "rotational equilibrium of the BatchNorm-fed kernels",
}


@dataclasses.dataclass(frozen=True)
class StoreRuns:
    """A store's runs as the report reads them.

    Attributes:
        name: the sweep's name (the store's file name when it has none).
        runs, curves: the finished runs chosen and their measurements.
        notes: which runs were chosen and which were left out.
        layers: the per-layer measurements of those runs
            (:func:`~l2dynamics.sweep.store.load_layer_measurements`; empty when none measured
            its layers, or the store is older than the table).
    """

    name: str
    runs: pd.DataFrame
    curves: pd.DataFrame
    notes: tuple[str, ...]
    layers: pd.DataFrame


def default_out(store: Path) -> Path:
    """The report directory beside ``store``: ``runs.sqlite`` → ``runs_report``."""
    return store.with_name(f"{store.stem}_report")


def choose_kind(runs: pd.DataFrame, layers: pd.DataFrame | None = None) -> tuple[str, str]:
    """The kind of analysis for these finished runs, and why, as a sentence.

    With ``layers`` (their per-layer measurements) holding rows of a kernel followed by a
    BatchNorm for a run at a fixed λ > 0 (the runs that analysis reads:
    :func:`~l2dynamics.analysis.equilibrium.equilibrium_runs`): ``equilibrium`` (the
    measured angle per step against the rotational-equilibrium prediction, the time to reach it
    against 1/(η·λ)), whatever else the store holds: the layers were measured for it, and the
    sentence names the analysis the runs would get without them. Otherwise, from the runs
    alone: AutoL2 runs beside fixed-λ ones: ``autol2`` (AutoL2 against the best fixed λ);
    fixed-λ runs at two or more values of η·λ > 0: ``scaling`` (the t* law needs a range of
    η·λ); otherwise ``curves`` (the curves of each run, nothing to fit).
    """
    kind, why = _kind_of_runs(runs)
    if layers is None or layers.empty:
        return kind, why
    chosen = equilibrium_runs(runs, layers)
    if not chosen.any():
        invariant = layers["scale_invariant"].astype(bool).any()
        unused = (
            "the runs that measured kernels followed by a BatchNorm are AutoL2 runs or at "
            "λ = 0: no fixed λ > 0 to predict their equilibrium angle from"
            if invariant
            else "no run has a kernel followed by a BatchNorm (the equilibrium analysis's subject)"
        )
        return kind, f"{why}; the per-layer measurements are not analysed: {unused}"
    why = (
        f"{int(chosen.sum())} run(s) at a fixed λ measured the layers of kernels followed by a "
        "BatchNorm (measure_layers): their angle per step against the rotational-equilibrium "
        "prediction, and the time to reach it against 1/(η·λ)"
    )
    if kind != "curves":  # say what the report would have been without the layer rows
        why += f"; without them the store would get the {kind} analysis ({TITLES[kind]})"
    return "equilibrium", why


def _kind_of_runs(runs: pd.DataFrame) -> tuple[str, str]:
    """:func:`choose_kind` from the runs alone."""
    auto = is_autol2(runs)
    fixed = runs[~auto]
    products = (fixed["eta"] * fixed["lam"])[fixed["lam"] > 0].nunique()
    if auto.any() and len(fixed):
        return "autol2", (
            f"the store holds {int(auto.sum())} AutoL2 run(s) beside {len(fixed)} with a fixed "
            "λ: AutoL2 is compared with the best fixed λ of the grid"
        )
    if auto.any():
        return "curves", "every run is an AutoL2 run: no fixed-λ grid to fit t* on or compare"
    if products >= 2:
        return "scaling", (
            f"a fixed-λ grid at {products} values of η·λ: the fit of t* = c/(η·λ)^b, best "
            "accuracy vs λ and curves vs τ (the scaling analysis of Figure 2)"
        )
    return "curves", "fewer than two values of η·λ > 0: no t* law to fit; the curves are shown"


def read_store(store: Path, every_run: bool = False) -> StoreRuns:
    """The finished runs of the store's current grid (all grids with ``every_run``) and their
    measurements.

    Raises:
        L2DynError: the store is missing, not a store or damaged; or has no finished run.
    """
    chosen = load_runs(store, current=not every_run)
    every = chosen if every_run else load_runs(store)
    with RunStore(store, create=False) as s:
        name = s.get_meta("name") or store.stem
    done = chosen[chosen["status"].isin(FINISHED)].reset_index(drop=True)
    if done.empty:
        scope = "" if every_run else " in its current grid (--all: every grid)"
        raise L2DynError(
            f"--store {store}: no finished run{scope} to report on "
            f"({_counts(chosen) or 'no runs'}); train it with l2dyn sweep first"
        )
    curves = load_measurements(store)
    curves = curves[curves["hash"].isin(done["hash"])].reset_index(drop=True)
    layers = load_layer_measurements(store)  # an empty frame for a store older than the table
    layers = layers[layers["hash"].isin(done["hash"])].reset_index(drop=True)
    notes = _scope_notes(name, chosen, every, every_run)
    return StoreRuns(name, done.assign(variant=""), curves.assign(variant=""), notes, layers)


def _counts(runs: pd.DataFrame) -> str:
    return ", ".join(f"{n} {status}" for status, n in runs["status"].value_counts().items())


def _scope_notes(
    name: str, chosen: pd.DataFrame, every: pd.DataFrame, every_run: bool
) -> tuple[str, ...]:
    """Sentences on which runs the report reads and which it leaves out."""
    which = "every grid" if every_run else "the grid registered last"
    notes = [f"runs of sweep {name!r}, {which}: {len(chosen)} ({_counts(chosen)})"]
    unfinished = chosen[~chosen["status"].isin(FINISHED)]
    if len(unfinished):
        notes.append(
            f"{len(unfinished)} run(s) not finished ({_counts(unfinished)}) are left out; "
            "resume the sweep to finish them"
        )
    if not every_run and len(every) > len(chosen):
        notes.append(
            f"{len(every) - len(chosen)} run(s) of earlier grids in the store are left out "
            "(--all includes them)"
        )
    return tuple(notes)


def _variants(runs: pd.DataFrame, curves: pd.DataFrame, name: str, kind: str) -> tuple:
    """The ``variant`` labels the kind reads: ``NAME/autol2`` and ``NAME/fixed`` for the
    AutoL2 comparison (one setting, the sweep), ``""`` otherwise."""
    if kind != "autol2":
        return runs, curves
    labels = is_autol2(runs).map({True: f"{name}/autol2", False: f"{name}/fixed"})
    by_hash = dict(zip(runs["hash"], labels, strict=True))
    return runs.assign(variant=labels), curves.assign(variant=curves["hash"].map(by_hash))


def setting_text(runs: pd.DataFrame) -> str:
    """The data and model of the runs, as a phrase: ``fc (depth 3, width 128) on digits (512
    training examples)``, or how many settings there are when the runs differ in them."""
    configs = [json.loads(text) for text in runs["config"]]
    settings = {json.dumps([c.get("data"), c.get("model")], sort_keys=True) for c in configs}
    if len(settings) > 1:  # a reproduce store of several variants: analysed as one sweep
        return f"{len(settings)} settings of data and model, analysed together"
    data, model = configs[0].get("data", {}), configs[0].get("model", {})
    options = ", ".join(f"{k} {v}" for k, v in (model.get("options") or {}).items())
    n_train = data.get("n_train")
    examples = f" ({n_train} training examples)" if n_train else ""
    model_text = model.get("name", "?") + (f" ({options})" if options else "")
    return f"{model_text} on {data.get('name', '?')}{examples}"


def write_store_report(store: Path, out: Path | None = None, every_run: bool = False) -> dict:
    """Analyse a store and write its report into ``out`` (default :func:`default_out`).

    Everything is checked before anything is written: the store (exists, is a healthy store,
    holds finished runs), then the output directory (a directory that can be made and
    written).

    Returns:
        the summary (as written to ``summary.json``).

    Raises:
        L2DynError: a bad store or output directory (nothing is written then).
    """
    start = time.perf_counter()
    read = read_store(store, every_run)
    out = default_out(store) if out is None else out
    check_dir_target(out, "--out")
    kind, why = choose_kind(read.runs, read.layers)
    # every finished run goes to the kind: the equilibrium analysis picks its runs and counts
    # the others itself, one rule for this report and reproduce's
    layers = read.layers if kind in LAYER_KINDS else None
    runs, curves = _variants(read.runs, read.curves, read.name, kind)
    title = f"{read.name}: {TITLES[kind]}"
    exp = Experiment(slug(read.name), title, kind, {}, ())
    out.mkdir(exist_ok=True)
    head: dict[str, Any] = {"sweep": read.name, "title": title, "kind": kind, "kind_reason": why}
    tail = {"store": str(store), "runs_shown": "every grid" if every_run else "the current grid"}
    return write_outputs(
        exp, runs, curves, out, title=f"{title} — {setting_text(runs)}", head=head,
        tail=tail, start=start, notes=read.notes, layers=layers,
    )  # fmt: skip


__all__ = [
    "choose_kind",
    "default_out",
    "read_store",
    "setting_text",
    "write_store_report",
]

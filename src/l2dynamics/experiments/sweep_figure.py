"""``l2dyn reproduce FIG`` for the figures made of sweeps: train (resumable), analyse, draw.

The experiment's sweeps train into ``OUT/store.sqlite`` (run it again after a crash: finished
runs are kept). The analysis then reads the store only, and the experiment's ``kind`` picks
what is drawn (see :data:`l2dynamics.experiments.kinds.KINDS`). Outputs in ``OUT``:
``FIG.png``, CSV tables, ``summary.json`` and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from l2dynamics import files
from l2dynamics.analysis.report import write_report
from l2dynamics.analysis.tables import small_test_set_note, test_sizes
from l2dynamics.experiments.base import ReproduceRequest
from l2dynamics.experiments.kinds import LAYER_KINDS, TSTAR_KINDS, analyse
from l2dynamics.experiments.spec import Experiment, load_experiment
from l2dynamics.progress import ProgressFn, Update
from l2dynamics.sweep.chunks import Context
from l2dynamics.sweep.runner import SweepReport, run_sweep
from l2dynamics.sweep.spec import combine_sweeps, run_hash
from l2dynamics.sweep.store import load_layer_measurements, load_measurements, load_runs

STORE = "store.sqlite"


@dataclasses.dataclass
class FigureProgress:
    """The progress of an experiment's sweeps as one bar of the figure's task, in the format of
    a sweep's (:meth:`~l2dynamics.sweep.runner.SweepReport.update`): run-steps of all its
    sweeps and runs finished of all.

    Attributes:
        request: where the updates go (:meth:`ReproduceRequest.say`'s task).
        planned: each sweep's budgets in steps, summed, known before any is trained: a sweep's
            own count replaces its entry once it starts (it knows the runs already in the store
            and the budgets that ended early).
        runs: the number of runs of all the sweeps.
    """

    request: ReproduceRequest
    planned: list[int]
    runs: int
    steps_before: int = 0  # run-steps trained by the sweeps already finished
    runs_before: int = 0  # runs of the sweeps already finished

    def sweep(self, index: int, label: str) -> ProgressFn:
        """The progress function of sweep ``index`` (``label``: its variant)."""
        prefix = f"{label}: " if label else ""

        def send(u: Update) -> None:
            self.planned[index] = int(u.total or 0)
            total = self.steps_before + sum(self.planned[index:])
            runs = (self.runs_before + (u.runs or (0, 0))[0], self.runs)
            done = self.steps_before + u.done
            status = prefix + u.status if u.status or not label else label
            update = Update(self.request.figure, done, total, u.unit, status, runs)
            self.request.progress(update)

        return send

    def finished(self, report: SweepReport) -> None:
        """Count a finished sweep's run-steps and runs."""
        self.steps_before += report.steps_done
        self.runs_before += report.total


def train_sweeps(
    exp: Experiment, request: ReproduceRequest, store: Path
) -> tuple[dict[str, str], int]:
    """Train every sweep of ``exp`` into ``store``, sharing data sets and programs.

    Returns:
        {run hash: variant label}, and how many runs were already finished in the store.
    """
    ctx = Context()
    planned = [sum(ctx.steps(c) for c in s.runs) for _, s in exp.sweeps]
    bar = FigureProgress(request, planned, sum(len(s.runs) for _, s in exp.sweeps))
    labels, reused = {}, 0
    # the store belongs to the experiment at this scale: all its variants, checked as one
    owner = combine_sweeps(f"{exp.figure}-{request.scale}", exp.sweeps)
    for index, (label, sweep) in enumerate(exp.sweeps):
        report = run_sweep(
            sweep,
            str(store),
            progress=bar.sweep(index, label),
            executor=request.executor,
            address=request.address,
            gpus_per_task=request.gpus_per_task,
            owner=owner,
            short_budgets=True,  # the paper's grids (fig2, figS1, figS5) reach them in a corner
            context=ctx,
        )
        bar.finished(report)
        reused += report.skipped
        labels.update({run_hash(c): label for c in sweep.runs})
    return labels, reused


def load_results(store: Path, labels: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and measurements of this experiment's sweeps, with a ``variant`` column (the
    per-layer measurements: :func:`load_layers`)."""
    runs, curves = load_runs(store), load_measurements(store)
    runs = runs[runs["hash"].isin(labels)].copy()
    curves = curves[curves["hash"].isin(labels)].copy()
    runs["variant"] = runs["hash"].map(labels)
    curves["variant"] = curves["hash"].map(labels)
    return runs.reset_index(drop=True), curves.reset_index(drop=True)


def load_layers(store: Path, labels: dict[str, str]) -> pd.DataFrame:
    """The per-layer measurements of this experiment's runs (empty without any)."""
    layers = load_layer_measurements(store)
    return layers[layers["hash"].isin(labels)].reset_index(drop=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    files.write_json(path, data, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def test_set_note(runs: pd.DataFrame, notes: list[str], kind: str) -> int | None:
    """The smallest test set of the runs (examples; None without runs), and a note first in
    ``notes`` when it is small enough that one image moves an accuracy by
    ≥ :data:`~l2dynamics.analysis.tables.SMALL_TEST_SET_POINTS` points and ``kind``'s outputs
    hold t* and best accuracies (:data:`~l2dynamics.experiments.kinds.TSTAR_KINDS`), the
    numbers the note is about."""
    if runs.empty:
        return None
    n = int(test_sizes(runs).min())
    note = small_test_set_note(n) if kind in TSTAR_KINDS else None
    if note:
        notes.insert(0, note)
    return n


def run(request: ReproduceRequest) -> dict[str, Any]:
    """Reproduce ``request.figure`` at ``request.scale`` into ``request.out_dir``."""
    exp = load_experiment(request.figure, request.scale, request.data_dir)
    return run_experiment(exp, request)


def run_experiment(exp: Experiment, request: ReproduceRequest) -> dict[str, Any]:
    """Train ``exp``'s sweeps into ``OUT/store.sqlite``, analyse, and write every output."""
    start = time.perf_counter()
    out = Path(request.out_dir)
    labels, reused = train_sweeps(exp, request, out / STORE)
    request.say("analysing", 1, 1)
    runs, curves = load_results(out / STORE, labels)
    layers = load_layers(out / STORE, labels) if exp.kind in LAYER_KINDS else None
    head = {"figure": exp.figure, "scale": request.scale, "title": exp.title}
    # n_runs_from_store: finished by an earlier invocation, so wall_s excludes them
    tail = {"n_runs_from_store": reused, "store": str(out / STORE)}
    title = f"{exp.title} ({request.scale} scale)"
    return write_outputs(
        exp, runs, curves, out, title=title, head=head, tail=tail, start=start, layers=layers
    )


def write_outputs(
    exp: Experiment,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    out: Path,
    *,
    title: str,
    head: dict[str, Any],
    tail: dict[str, Any],
    start: float,
    notes: Sequence[str] = (),
    layers: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Analyse ``runs`` and ``curves`` by ``exp``'s kind and write into ``out`` its figures,
    one CSV per table, ``summary.json`` and ``report.html`` (titled ``title``).

    The summary is ``head``, the kind's values, the run counts, ``tail``, the wall time since
    ``start`` (``time.perf_counter``, s), the paths written and the notes (``notes`` first);
    it is returned. ``layers``: the runs' per-layer measurements, for the kinds that read them.
    """
    outcome = analyse(exp, runs, curves, out, layers)
    outcome.notes[:0] = notes
    n_test = test_set_note(runs, outcome.notes, exp.kind)
    for name, table in outcome.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    summary = {
        **head,
        **outcome.summary,
        "n_test": n_test,
        "n_runs": int(len(runs)),
        **tail,
        "wall_s": round(time.perf_counter() - start, 1),
        "figure_png": str(outcome.figures[0][1]) if outcome.figures else None,
        "report": str(out / "report.html"),
        "summary_json": str(out / "summary.json"),
        "notes": outcome.notes,
    }
    write_json(out / "summary.json", summary)
    write_report(
        out / "report.html",
        title=title,
        summary=summary,
        figures=outcome.figures,
        tables=outcome.tables,
        notes=outcome.notes,
    )
    return summary

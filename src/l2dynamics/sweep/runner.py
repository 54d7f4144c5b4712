"""Running a sweep into its store: plan chunks, train them, record each run as it finishes.

The store is the only state: a run is queued, running, or finished (done / diverged / failed).
Starting a sweep on an existing store *resumes* it: finished runs are skipped, runs left
``running`` by a crash are re-run from the start (deterministically: same seed, same result).
Only this process (the driver) writes the store.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

from l2dynamics.config import DataConfig, TrainConfig, budget_epochs
from l2dynamics.data import Dataset
from l2dynamics.errors import L2DynError
from l2dynamics.models import count_params
from l2dynamics.sweep.plan import group_key, plan_chunks, pool_width
from l2dynamics.sweep.spec import Sweep, config_dict, run_hash
from l2dynamics.sweep.store import SUMMARY_COLUMNS, RunStore
from l2dynamics.train.run import (
    Program,
    RunResult,
    build_program,
    load_data,
    run_program,
    stepwise_dispatch,
    total_steps,
)
from l2dynamics.train.vector import train_vectorized

SUMMARY_KEYS = tuple(SUMMARY_COLUMNS)


@dataclasses.dataclass
class SweepReport:
    """What a call of :func:`run_sweep` did: run counts by outcome and its wall time (s)."""

    total: int
    skipped: int
    done: int = 0
    diverged: int = 0
    failed: int = 0
    wall_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Runs that train together (one vmapped program), with their store hashes."""

    hashes: tuple[str, ...]
    cfgs: tuple[TrainConfig, ...]
    slots: int = 1


class Progress:
    """Progress hooks; the CLI subclasses it with a bar. All methods are no-ops here."""

    def start(self, total: int, skipped: int) -> None: ...

    def chunk(self, index: int, count: int, size: int, max_steps: int) -> None: ...

    def measured(self, step: int, active: int) -> None: ...

    def finished(self, run_hash: str, result: RunResult | None) -> None: ...


def summary_of(result: RunResult) -> dict[str, Any]:
    """The stored summary of a run (see :data:`SUMMARY_KEYS`)."""
    full = result.summary()
    return {k: full[k] for k in SUMMARY_KEYS}


class _Context:
    """Per-sweep caches: each data set loaded once, each program compiled once."""

    def __init__(self) -> None:
        self.data: dict[DataConfig, Dataset] = {}
        self.programs: dict[str, Program] = {}

    def dataset(self, cfg: TrainConfig) -> Dataset:
        if cfg.data not in self.data:
            self.data[cfg.data] = load_data(cfg)
        return self.data[cfg.data]

    def program(self, cfg: TrainConfig) -> Program:
        key = group_key(cfg)
        if key not in self.programs:
            self.programs[key] = build_program(cfg, self.dataset(cfg))
        return self.programs[key]


def plan(
    todo: Sequence[tuple[str, TrainConfig]],
    ctx: _Context,
    vectorize: bool | None,
    *,
    split: bool = False,
) -> list[Chunk]:
    """Group runs by program; each group is one pool of :func:`pool_width` lanes (``split``:
    cut into chunks of similar budgets, one Ray task each, all with that width). Runs trained
    one by one are a chunk each."""
    groups: dict[str, list[tuple[str, TrainConfig]]] = {}
    for item in todo:
        groups.setdefault(group_key(item[1]), []).append(item)
    chunks = []
    for items in groups.values():
        cfg0 = items[0][1]
        ds, program = ctx.dataset(cfg0), ctx.program(cfg0)
        n_params = count_params(jax.eval_shape(program.init_params, jax.random.key(0)))
        totals = [
            total_steps(budget_epochs(c), ds.n_train, program.spec.batch_size) for _, c in items
        ]
        vec = vectorize
        if vec is None and stepwise_dispatch(cfg0.model.name):
            vec = False  # vmapped convolutions on XLA:CPU cost more than runs one by one
        width = pool_width(totals, n_params, vectorize=vec)
        if split or width == 1:  # one by one: a chunk per run, shortest first
            cut = plan_chunks(totals, n_params, vectorize=width > 1)
        else:
            cut = [range(len(items))]
        for idx in cut:
            hashes, cfgs = tuple(items[i][0] for i in idx), tuple(items[i][1] for i in idx)
            chunks.append(Chunk(hashes, cfgs, width))
    return chunks


def train_chunk(
    chunk: Chunk,
    ctx: _Context,
    on_result: Callable[[str, RunResult], None],
    progress: Progress,
) -> None:
    """Train one chunk: in a pool of ``chunk.slots`` lanes, or run by run when it is 1."""
    cfg0 = chunk.cfgs[0]
    ds, program = ctx.dataset(cfg0), ctx.program(cfg0)
    if chunk.slots == 1:
        for run_hash, cfg in zip(chunk.hashes, chunk.cfgs, strict=True):
            result = run_program(
                cfg, ds, program, progress=lambda step, total, row: progress.measured(step, 1)
            )
            on_result(run_hash, result)
        return
    train_vectorized(
        chunk.cfgs,
        ds,
        program,
        on_result=lambda i, r: on_result(chunk.hashes[i], r),
        on_measure=progress.measured,
        slots=chunk.slots,
    )


EXECUTORS = ("local", "ray")


def run_sweep(
    sweep: Sweep,
    store_path: str,
    *,
    vectorize: bool | None = None,
    progress: Progress | None = None,
    executor: str = "local",
    address: str | None = None,
) -> SweepReport:
    """Create or resume the sweep's store and train every run that is not finished.

    Args:
        sweep: the validated sweep.
        store_path: its SQLite store (created, or resumed when it exists).
        vectorize: force vectorized (True) or one-by-one (False) training; None: by model size.
        progress: hooks for a progress display.
        executor: ``"local"`` (in this process) or ``"ray"`` (chunks become Ray tasks; this
            process alone writes the store).
        address: the Ray cluster to join (default: start a local one).
    """
    if executor not in EXECUTORS:
        raise L2DynError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    progress = progress or Progress()
    start = time.perf_counter()
    with RunStore(store_path, lock=True) as store:
        _register(store, sweep)
        queued = {r.hash for r in store.runs("queued")}
        todo = [(h, c) for h, c in ((run_hash(c), c) for c in sweep.runs) if h in queued]
        report = SweepReport(total=len(sweep.runs), skipped=len(sweep.runs) - len(todo))
        progress.start(report.total, report.skipped)
        ctx = _Context()
        chunks = plan(todo, ctx, vectorize, split=executor == "ray")
        if executor == "ray":
            from l2dynamics.sweep.ray_executor import run_chunks_on_ray

            store.mark_running([h for chunk in chunks for h in chunk.hashes])
            run_chunks_on_ray(
                chunks,
                address,
                lambda h, r: _record(store, report, progress, h, r),
                lambda h, e: _fail(store, report, progress, h, e),
            )
        else:
            for index, chunk in enumerate(chunks):
                progress.chunk(index, len(chunks), len(chunk.cfgs), chunk_steps(chunk, ctx))
                _run_chunk(store, chunk, ctx, report, progress)
    report.wall_s = time.perf_counter() - start
    return report


def chunk_steps(chunk: Chunk, ctx: _Context) -> int:
    """The longest budget of a chunk, in steps."""
    return max(
        total_steps(budget_epochs(c), ctx.dataset(c).n_train, ctx.program(c).spec.batch_size)
        for c in chunk.cfgs
    )


def _record(
    store: RunStore, report: SweepReport, progress: Progress, run_hash: str, result: RunResult
) -> None:
    store.record_result(run_hash, result.status, summary_of(result), result.curve)
    setattr(report, result.status, getattr(report, result.status) + 1)
    progress.finished(run_hash, result)


def _fail(
    store: RunStore, report: SweepReport, progress: Progress, run_hash: str, error: str
) -> None:
    store.mark_failed(run_hash, error)
    report.failed += 1
    progress.finished(run_hash, None)


def _register(store: RunStore, sweep: Sweep) -> None:
    if store.get_meta("name") is None:
        store.set_meta("name", sweep.name)
        store.set_meta("source", sweep.source)
    store.add_runs((run_hash(c), config_dict(c)) for c in sweep.runs)
    store.reset_interrupted()


def _run_chunk(
    store: RunStore, chunk: Chunk, ctx: _Context, report: SweepReport, progress: Progress
) -> None:
    store.mark_running(chunk.hashes)
    finished: set[str] = set()

    def record(run_hash: str, result: RunResult) -> None:
        _record(store, report, progress, run_hash, result)
        finished.add(run_hash)

    try:
        train_chunk(chunk, ctx, record, progress)
    except L2DynError:
        raise
    except Exception as exc:  # a bug or a resource error: keep the sweep going, say which runs
        for h in chunk.hashes:
            if h not in finished:
                _fail(store, report, progress, h, f"{type(exc).__name__}: {exc}")

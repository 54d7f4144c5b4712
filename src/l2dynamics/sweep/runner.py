"""Running a sweep into its store: plan chunks, train them, record each run as it finishes.

The store is the only state: a run is queued, running, or finished (done / diverged / failed).
Starting a sweep on an existing store *resumes* it: finished runs are skipped, runs left
``running`` by a crash continue from their last checkpoint (or from the start when they have
none), and end bit for bit as they would have uninterrupted. Only this process (the driver)
writes the store.

Checkpoints (:mod:`l2dynamics.train.checkpoint`) are saved at measurement points, at most
every ``checkpoint_every_s`` seconds, with the local executor: a run trained alone keeps its
own, a pool keeps one for all its lanes (a resumed pool retrains the runs that ended after its
checkpoint, without recording them again, so that the others end as uninterrupted).

Why in the store and not with Orbax: the store is already the sweep's only state, and a
checkpoint is part of it. One SQLite transaction records a run's result and drops its
checkpoint, so no crash leaves a checkpoint of a finished run or a run without either; a
resumed sweep finds a checkpoint by the run's hash (or its pool's key) with the runs' rows;
copying, locking and deleting a store carries its checkpoints along. Orbax writes a directory
of files per checkpoint, atomically but beside the store, and would add a second state to keep
consistent with it; its strengths (sharded arrays, asynchronous writes of large models) do not
pay here, where a checkpoint is at most tens of MB written about once a minute. Ray workers do
not write the store, so Ray sweeps do not checkpoint (their runs restart from step 0).

Everything that can be checked is checked before the store is created or touched: the
executor (Ray importable; its cluster joined, able to give each task the GPUs it asks for),
every data set (loaded once, then reused for training), each run against its data
(:func:`l2dynamics.config.validate_for_data`), the store's health and that it belongs to this
sweep (its data, model, train and budget sections; only the grid may change).
A bad input leaves no run registered. A sweep stopped by Ctrl-C or SIGTERM sends its
``running`` runs back to ``queued`` before it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from l2dynamics.config import CHECKPOINT_EVERY_S, validate_for_data
from l2dynamics.errors import ConfigError, L2DynError
from l2dynamics.progress import ProgressFn, Update, no_progress
from l2dynamics.sweep.chunks import Checkpoints, Chunk, Context, plan, train_chunk
from l2dynamics.sweep.spec import Sweep, config_dict, run_hash, section_changes
from l2dynamics.sweep.store import (
    SUMMARY_COLUMNS,
    Registration,
    RunStore,
    StoreError,
    pool_key,
)
from l2dynamics.train.run import RunResult

SUMMARY_KEYS = tuple(SUMMARY_COLUMNS)


@dataclasses.dataclass
class SweepReport:
    """What a call of :func:`run_sweep` did: run counts by outcome, its wall time (s), and the
    run-steps of the runs it trains.

    ``steps_total`` is the budgets (in steps) of the runs to train, less what the finished
    ones left unused (a peak-aware stop, a divergence, a failure); ``steps_done`` is the steps
    the finished runs trained. Runs already in the store count in neither.
    """

    total: int
    skipped: int
    done: int = 0
    diverged: int = 0
    failed: int = 0
    wall_s: float = 0.0
    registration: Registration | None = None
    steps_total: int = 0
    steps_done: int = 0

    def update(self, live_steps: int = 0) -> Update:
        """The progress update of task ``"sweep"``: run-steps trained (the finished runs' and
        ``live_steps`` of the runs in training) of ``steps_total``, and the runs finished
        (earlier ones included) of all, with the other outcomes as status."""
        finished = self.skipped + self.done + self.diverged + self.failed
        counts = ((self.skipped, "from the store"), (self.diverged, "diverged"),
                  (self.failed, "failed"))  # fmt: skip
        status = ", ".join(f"{n} {what}" for n, what in counts if n)
        done = self.steps_done + live_steps
        return Update("sweep", done, self.steps_total, "run-steps", status, (finished, self.total))


def summary_of(result: RunResult) -> dict[str, Any]:
    """The stored summary of a run (see :data:`SUMMARY_KEYS`)."""
    full = result.summary()
    return {k: full[k] for k in SUMMARY_KEYS}


EXECUTORS = ("local", "ray")


def run_sweep(
    sweep: Sweep,
    store_path: str,
    *,
    vectorize: bool | None = None,
    progress: ProgressFn | None = None,
    executor: str = "local",
    address: str | None = None,
    notify: Callable[[str], None] | None = None,
    owner: Sweep | None = None,
    short_budgets: bool = False,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    context: Context | None = None,
    gpus_per_task: float | None = None,
) -> SweepReport:
    """Create or resume the sweep's store and train every run that is not finished.

    Args:
        sweep: the validated sweep.
        store_path: its SQLite store (created, or resumed when it exists).
        vectorize: force vectorized (True) or one-by-one (False) training; None: by model size.
        progress: gets updates of task ``"sweep"`` (see :meth:`SweepReport.update`): at the
            start, as each run ends and, with the local executor, as the runs in training
            advance.
        executor: ``"local"`` (in this process) or ``"ray"`` (chunks become Ray tasks; this
            process only plans them and alone writes the store: on a GPU node, start it with
            ``JAX_PLATFORMS=cpu``, as ``l2dyn`` does, so that its JAX leaves the GPUs to tasks).
        address: the Ray cluster to join (default: start a local one).
        notify: gets one line when the sweep's grid differs from the one the store held
            (runs new, kept, no longer in the file) or the sweep was renamed.
        owner: the sweep the store belongs to when it holds several, of which ``sweep`` is
            one (an experiment's variants, :func:`l2dynamics.sweep.spec.combine_sweeps`): its
            identity and grid are registered and checked; default ``sweep``.
        short_budgets: train runs whose budget is under one step for one step, instead of
            refusing the sweep (see :func:`l2dynamics.config.validate_for_data`).
        checkpoint_every_s: the least wall time between two checkpoints of a run or pool, in
            seconds (0: at every measurement point; ``math.inf``: none); local executor only.
        context: the data sets and programs to reuse (several sweeps of one experiment share
            them); default a new one.
        gpus_per_task: the GPUs each Ray task asks for (``executor="ray"`` only); default: one
            on a cluster with GPUs, else none (:func:`l2dynamics.sweep.ray_executor.task_options`).

    Raises:
        L2DynError: a bad executor, data set or run, or a Ray cluster that cannot give a task
            its GPUs (nothing is written then), a store that is damaged, in use, or belongs to a
            sweep with other data, model, train or budget.
    """
    owner = owner or sweep
    ray = (address, gpus_per_task)
    ctx, ray_options = _preflight(owner, executor, short_budgets, context or Context(), ray)
    progress = progress or no_progress
    start = time.perf_counter()
    with RunStore(store_path, lock=True) as store:
        registration = _register(store, owner, notify or (lambda _: None))
        queued = {r.hash for r in store.runs("queued")}
        todo = [(h, c) for h, c in ((run_hash(c), c) for c in sweep.runs) if h in queued]
        report = SweepReport(total=len(sweep.runs), skipped=len(sweep.runs) - len(todo))
        report.registration = registration
        try:
            book = _Book(store, report, progress, {h: ctx.steps(c) for h, c in todo})
            report.steps_total = sum(book.budgets.values())
            progress(report.update())
            checkpoints = Checkpoints(store, checkpoint_every_s)
            _train(book, sweep, todo, ctx, vectorize, ray_options, checkpoints)
        except BaseException:  # Ctrl-C, SIGTERM, a bug: no run stays "running" behind us
            with contextlib.suppress(Exception):  # the first error is the one to report
                store.requeue_running()
            raise
    report.wall_s = time.perf_counter() - start
    return report


def check_executor(executor: str, gpus_per_task: float | None) -> None:
    """Refuse, in one line naming the option, an unknown executor, Ray when it does not import,
    a GPU request Ray cannot schedule, or ``--gpus-per-task`` without Ray (checked before any
    output is written: a sweep's store, a figure's directory)."""
    if executor not in EXECUTORS:
        raise L2DynError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    if executor == "ray":
        from l2dynamics.sweep.ray_executor import check_gpus_per_task, require_ray  # when asked

        require_ray()
        check_gpus_per_task(gpus_per_task)
    elif gpus_per_task is not None:
        raise L2DynError("--gpus-per-task applies to Ray tasks: add --executor ray")


def _preflight(
    sweep: Sweep,
    executor: str,
    short_budgets: bool,
    ctx: Context,
    ray: tuple[str | None, float | None],
) -> tuple[Context, dict | None]:
    """Check what only the data and the cluster can tell, before the store is touched: the
    executor, every data set (loaded into the context ``ctx``, which training then reuses;
    returned) and every run against its data (names as in the sweep file); with Ray, join its
    cluster (``ray`` = (address, GPUs per task)) and return what each task asks of it (else
    None)."""
    address, gpus_per_task = ray
    check_executor(executor, gpus_per_task)
    for cfg in sweep.runs:
        try:
            validate_for_data(cfg, ctx.dataset(cfg).n_train, short_budget=short_budgets)
        except ConfigError as exc:
            raise exc.renamed(sweep.names) from None
    if executor != "ray":
        return ctx, None
    from l2dynamics.sweep.ray_executor import connect

    return ctx, connect(address, gpus_per_task)


def _train(
    book: _Book,
    sweep: Sweep,
    todo: list,
    ctx: Context,
    vectorize: bool | None,
    ray_options: dict | None,
    checkpoints: Checkpoints,
) -> None:
    """Train the runs ``todo`` (hash, config) of ``sweep``, recording each result in ``book``:
    as Ray tasks asking for ``ray_options``, or here (pools that left a checkpoint first)."""
    store = book.store
    if ray_options is not None:
        from l2dynamics.sweep.ray_executor import run_chunks_on_ray  # Ray only when asked

        chunks = plan(todo, ctx, vectorize, split=True)
        store.mark_running([h for chunk in chunks for h in chunk.hashes])
        run_chunks_on_ray(chunks, ray_options, book.record, book.fail)
        return
    resumed = _resumed_pools(store, sweep, book.queued)
    covered = {h for chunk in resumed for h in chunk.hashes}
    chunks = resumed + plan([t for t in todo if t[0] not in covered], ctx, vectorize)
    for chunk in chunks:
        book.live_steps = 0  # a failed chunk's runs are no longer in training
        _run_chunk(book, chunk, ctx, book.live, checkpoints)


@dataclasses.dataclass
class _Book:
    """Records outcomes: into the store, the report's counts and the progress display.

    ``budgets`` holds each run to train and its budget in steps; ``live_steps`` the steps of
    the runs in training (not yet recorded), as their last progress update said. A run is
    recorded once: a resumed pool retrains the runs that ended after its checkpoint, to keep its
    lanes' timing, and their results are already in the store.
    """

    store: RunStore
    report: SweepReport
    progress: ProgressFn
    budgets: dict[str, int]
    live_steps: int = 0
    queued: set[str] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.queued = set(self.budgets)

    def live(self, update: Update) -> None:
        """Progress of the runs in training: a run's (``"train"``) or a pool's (``"pool"``)
        update, whose ``done`` is the steps its unfinished runs have trained."""
        self.live_steps = int(update.done)
        self.progress(self.report.update(self.live_steps))

    def record(self, run_hash: str, result: RunResult) -> None:
        """Store a finished run's result (not again for a run already recorded)."""
        if run_hash not in self.queued:
            return
        self.queued.discard(run_hash)
        self.store.record_result(
            run_hash, result.status, summary_of(result), result.curve, result.layers
        )
        setattr(self.report, result.status, getattr(self.report, result.status) + 1)
        self._ended(run_hash, int(result.steps))

    def fail(self, run_hash: str, error: str) -> None:
        """Mark a run failed with ``error``."""
        self.queued.discard(run_hash)
        self.store.mark_failed(run_hash, error)
        self.report.failed += 1
        self._ended(run_hash, 0)

    def _ended(self, run_hash: str, steps: int) -> None:
        """Count a run's ``steps`` as trained and drop the rest of its budget from the total;
        until the next update of the runs in training, take its steps out of theirs."""
        report = self.report
        report.steps_done += steps
        report.steps_total -= max(0, self.budgets.get(run_hash, steps) - steps)
        self.live_steps = max(0, self.live_steps - steps)
        self.progress(report.update(self.live_steps))


def _register(store: RunStore, sweep: Sweep, notify: Callable[[str], None]) -> Registration:
    """Make the store this sweep's: refuse a damaged store or one of another sweep (other
    data, model, train or budget sections; a store written before stores recorded them adopts
    this sweep's), register the grid, and tell ``notify`` how the grid changed."""
    store.check()
    old_sections, old_name = store.sweep_sections(), store.get_meta("name")
    if old_sections is not None and sweep.sections:
        changes = section_changes(old_sections, sweep.sections)
        if changes:
            raise StoreError(
                f"store {store.path} belongs to sweep {old_name!r} with other settings "
                f"({'; '.join(changes)}): a sweep resumes into its store with only its [grid] "
                "changed; give another --store"
            )
    runs = [(run_hash(c), config_dict(c)) for c in sweep.runs]
    reg = store.register_sweep(sweep.name, sweep.source, sweep.sections, runs)
    if reg.had and old_name is not None and old_name != sweep.name:
        notify(f"store {store.path}: sweep {old_name!r} is now named {sweep.name!r}")
    if reg.had and (reg.new or reg.gone):
        notify(
            f"store {store.path}: the grid changed: {reg.new} runs new, {reg.kept} kept, "
            f"{reg.gone} no longer in the sweep file (kept in the store; `l2dyn status "
            "--current` and load_runs(..., current=True) show the current grid only)"
        )
    return reg


def _resumed_pools(store: RunStore, sweep: Sweep, queued: set[str]) -> list[Chunk]:
    """The chunks of the pools that left a checkpoint, each with all its runs (in its order,
    finished ones included), resumed as pools whatever ``vectorize`` now says (so they end as
    they would have); a pool checkpoint of runs this sweep does not hold, or with no run left
    to train, is dropped."""
    by_hash = {run_hash(c): c for c in sweep.runs}
    chunks: list[Chunk] = []
    covered: set[str] = set()
    for key, hashes in store.checkpoint_runs().items():
        if key != pool_key(hashes):
            continue  # one run's checkpoint: its chunk finds it
        runs = set(hashes)
        if runs <= by_hash.keys() and runs & queued and not runs & covered:
            cfgs = tuple(by_hash[h] for h in hashes)
            # lanes > 1 marks a pool; its width comes from the checkpoint
            chunks.append(Chunk(tuple(hashes), cfgs, lanes=max(2, len(hashes))))
            covered |= runs
        else:
            store.delete_checkpoint(key)
    return chunks


def _run_chunk(
    book: _Book, chunk: Chunk, ctx: Context, progress: ProgressFn, checkpoints: Checkpoints
) -> None:
    book.store.mark_running([h for h in chunk.hashes if h in book.queued])
    try:
        train_chunk(chunk, ctx, book.record, progress, checkpoints)
    except L2DynError:
        raise
    except Exception as exc:  # a bug or a resource error: keep the sweep going, say which runs
        book.store.delete_checkpoint(pool_key(chunk.hashes))  # the retry starts afresh
        for h in chunk.hashes:
            if h in book.queued:
                book.fail(h, f"{type(exc).__name__}: {exc}")

"""The run store: one SQLite file holding a sweep's runs, their summaries and measured curves.

A sweep survives a crash because the store is its only state. Each run (one training
configuration, identified by a stable hash) moves through the statuses

    queued -> running -> done | diverged        (the result recorded in one transaction)
                      -> failed                 (an exception, with its message)

and :meth:`RunStore.reset_interrupted` sends ``running`` and ``failed`` runs back to ``queued``
when a sweep resumes. :meth:`RunStore.record_result` writes a run's curve and summary in a single
transaction, so after a crash at any moment either the whole result is in the store or none of
it is (the run is still ``running``).

The file is in WAL mode: any number of readers (``l2dyn status``, ``l2dyn export``, pandas via
:func:`load_runs`) read while one writer (the sweep) writes. Writers pass ``lock=True`` to take
an advisory lock on ``PATH.lock``, so two sweeps never write the same store.

A store belongs to one sweep: :meth:`RunStore.register_sweep` records the sweep file's name,
text and content hash, its identity (the data, model, train and budget sections, see
:func:`l2dynamics.sweep.spec.sweep_sections`) and the hashes of its current grid in ``meta``.
A store whose pages are damaged raises :class:`StoreError` saying so (SQLite's own
``PRAGMA quick_check`` and its corruption errors), never a raw ``sqlite3.DatabaseError``.
:func:`writer_alive` tells a live sweep (it holds the lock) from a dead one whose runs were
left ``running``.

Tables: ``meta(key, value)``, ``runs`` (one row per run: status, the configuration as JSON,
flattened ``eta``/``lam``/``seed``, the summary columns, ``error``, times in Unix seconds),
``measurements`` (one row per curve point, ``idx`` its position in the curve),
``layer_measurements`` (runs with ``measure_layers``: one row per parameter tensor and
measurement, written with the curve; :func:`load_layer_measurements`) and ``checkpoints`` (the
latest checkpoint of each run or pool in training; a run's is dropped in the transaction that
records its result or failure, a pool's when the pool ends). The last two are not in
:data:`SCHEMA`: writers add them to stores made before them (:data:`LATER_TABLES`). NaN floats are
stored as SQL NULL (SQLite does so itself) and read back as NaN.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import importlib.util
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from l2dynamics.errors import L2DynError
from l2dynamics.files import atomic_path
from l2dynamics.results import CURVE_COLUMNS, LAYER_COLUMNS

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no advisory lock
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
STATUSES = ("queued", "running", "done", "diverged", "failed")
FINISHED = ("done", "diverged")
MEASUREMENT_COLUMNS = CURVE_COLUMNS
# The measurements table's SQL column of each curve column: schema 1 named the η and λ in force
# ``eta`` and ``lam``; the SQL names stay, so stores written before the rename load and resume
# unchanged, and only the store's edges (insert, select) translate.
_SQL_NAME = {"eta_now": "eta", "lam_now": "lam"}


def _sql(column: str) -> str:
    return _SQL_NAME.get(column, column)


_SQL_CURVE = tuple(_sql(c) for c in MEASUREMENT_COLUMNS)
# Summary columns of the runs table and whether each holds an integer (else a float).
SUMMARY_COLUMNS: dict[str, bool] = {
    "best_test_acc": False,
    "t_star_epochs": False,
    "t_star_step": True,
    "t_star_resolution": False,
    "final_train_acc": False,
    "final_test_acc": False,
    "max_train_acc": False,
    "steps": True,
    "budget_epochs": False,
    "diverged_step": True,
    "wall_s": False,
    "stopped_at_peak": True,
}
BUSY_TIMEOUT_S = 30.0
EXPORT_FORMATS = {"csv": ".csv", "parquet": ".parquet"}
# The meta keys of the sweep a store belongs to (besides ``name`` and ``source``), written by
# RunStore.register_sweep: the sweep file's sha256, its identity, its current grid's hashes.
META_SOURCE_SHA = "source_sha256"
META_SECTIONS = "sections"
META_CURRENT = "current_runs"

_SUMMARY_SQL = ",\n    ".join(
    f"{k} {'INTEGER' if is_int else 'REAL'}" for k, is_int in SUMMARY_COLUMNS.items()
)
_CURVE_SQL = ",\n    ".join(f"{c} {'INTEGER' if c == 'step' else 'REAL'}" for c in _SQL_CURVE)
_STATUS_SQL = ", ".join(f"'{s}'" for s in STATUSES)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ({_STATUS_SQL})),
    config TEXT NOT NULL,
    eta REAL,
    lam REAL,
    seed INTEGER,
    {_SUMMARY_SQL},
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS measurements (
    run_hash TEXT NOT NULL REFERENCES runs (hash) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    {_CURVE_SQL},
    PRIMARY KEY (run_hash, idx)
) WITHOUT ROWID;
"""
_REQUIRED_TABLES = {"meta", "runs", "measurements"}
# Checkpoints of runs in training (:mod:`l2dynamics.train.checkpoint`): one row per run trained
# alone (``key`` = its hash) or per pool (``key`` = :func:`pool_key` of its runs), ``runs`` the
# JSON list of the run hashes it holds. Not in SCHEMA: writers create it when missing, so stores
# made before it load and resume unchanged (and readers of older versions ignore it).
CHECKPOINTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    key TEXT PRIMARY KEY,
    runs TEXT NOT NULL,
    saved_at REAL NOT NULL,
    state BLOB NOT NULL
)
"""


# Per-layer measurements of runs with ``measure_layers`` (:class:`~l2dynamics.train.book.
# RunResult` ``layers``): per measurement step and parameter tensor (``layer``, its name), its
# squared norm, the angle it turned by in the step before (radians) and whether it is a kernel
# followed by a BatchNorm. Not in SCHEMA, as the checkpoints table: added by writers.
LAYERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS layer_measurements (
    run_hash TEXT NOT NULL REFERENCES runs (hash) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    layer TEXT NOT NULL,
    norm_sq REAL,
    angle REAL,
    scale_invariant INTEGER NOT NULL,
    PRIMARY KEY (run_hash, step, layer)
) WITHOUT ROWID
"""
# The tables added since schema 1, by name: each writer creates those missing, so stores made
# before them load and resume unchanged (and readers of older versions ignore them).
LATER_TABLES = {"checkpoints": CHECKPOINTS_SCHEMA, "layer_measurements": LAYERS_SCHEMA}


class StoreError(L2DynError):
    """A run store that is missing, not a store, locked by another sweep or unreadable."""


def _damaged(path: Path, detail: object) -> StoreError:
    first = str(detail).splitlines()[0] if str(detail) else "unknown"
    return StoreError(
        f"store {path} is damaged ({first}); its runs cannot be trusted: keep a copy, run the "
        "sweep into a new --store (`sqlite3 STORE .recover` may save what is intact)"
    )


def _guarded(fn: Callable) -> Callable:
    """``fn`` (a method of :class:`RunStore`, or a function whose first argument is a store's
    path) with SQLite's corruption errors turned into :class:`StoreError` saying the store is
    damaged. Operational errors (locked, I/O) and constraint errors pass as they are."""

    @functools.wraps(fn)
    def wrapper(first: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(first, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError):
                raise
            path = first.path if isinstance(first, RunStore) else Path(first)
            raise _damaged(path, exc) from exc

    return wrapper


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run of the store.

    Attributes:
        hash: the run's stable identifier.
        config: its configuration (the JSON stored by :meth:`RunStore.add_runs`).
        status: one of :data:`STATUSES`.
        summary: for ``done``/``diverged`` runs, every key of :data:`SUMMARY_COLUMNS` (floats,
            NaN where unknown; ``t_star_step``, ``steps`` ints; ``diverged_step`` int or None);
            empty for runs not finished.
        error: the failure message of a ``failed`` run, else None.
        started_at: Unix time the run was last marked running, or None.
        finished_at: Unix time its result or failure was recorded, or None.
    """

    hash: str
    config: dict[str, Any]
    status: str
    summary: dict[str, Any]
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclasses.dataclass(frozen=True)
class Registration:
    """What registering a sweep's grid did: runs of the grid ``new`` to the store and ``kept``
    from it, store runs ``gone`` from the grid (kept in the store, not current), and the runs
    the store ``had`` before."""

    new: int
    kept: int
    gone: int
    had: int


class RunStore:
    """A sweep's runs in one SQLite file (see the module docstring for the model).

    Args:
        path: the store file.
        create: create the file (and its schema) when missing; else a missing file is an error.
        lock: take an exclusive advisory lock on ``PATH.lock`` until :meth:`close` (writers).

    Raises:
        StoreError: the file is missing (``create=False``), is not an l2dynamics store, or is
            locked by another process (``lock=True``).
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True, lock: bool = False):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        if not create and not self.path.exists():
            raise StoreError(f"store {self.path} does not exist")
        if lock:
            self._lock_fd = _acquire_lock(self.path)
        try:
            if create and not self.path.exists():
                _create_store_file(self.path)
            self._conn = self._connect()
            _guarded(RunStore._open_schema)(self, create)
            if create or lock:
                _guarded(RunStore._add_later_tables)(self)
        except BaseException:
            self.close()
            raise

    # -- opening and closing -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot open ({exc})") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path} is not an l2dynamics run store ({exc})") from exc
        return conn

    def _open_schema(self, create: bool) -> None:
        tables = self._tables()
        if not tables and create:
            self._set_wal()
            self._create_schema()
            tables = self._tables()
        if not _REQUIRED_TABLES.issubset(tables):
            raise StoreError(f"{self.path} is not an l2dynamics run store (no store tables)")
        version = self.get_meta("schema_version")
        if version is None or not version.isdigit():
            raise StoreError(f"{self.path} is not an l2dynamics run store (no schema version)")
        if int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}; this l2dynamics reads "
                f"up to {SCHEMA_VERSION} (upgrade l2dynamics)"
            )
        self._set_wal()

    def _tables(self) -> set[str]:
        try:
            rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {r[0] for r in rows}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not an l2dynamics run store ({exc})") from exc

    def _set_wal(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            self._db.execute("PRAGMA journal_mode = WAL")

    def _create_schema(self) -> None:
        with self._write() as db:
            _write_schema(db)

    def close(self) -> None:
        """Close the database and release the lock (if held). Safe to call twice."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            _release_lock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        return self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise StoreError(f"store {self.path}: {exc}") from exc

    # -- meta ----------------------------------------------------------------------------

    @_guarded
    def set_meta(self, key: str, value: str) -> None:
        """Set a key of the ``meta`` table (e.g. ``name``, ``source``: the sweep file text)."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    @_guarded
    def get_meta(self, key: str) -> str | None:
        """The value of a ``meta`` key, or None when it is not set."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @_guarded
    def check(self) -> None:
        """Raise :class:`StoreError` if SQLite finds the file damaged (``PRAGMA quick_check``:
        every page and record read once, O(file size); the index cross-checks of a full
        ``integrity_check`` are left out)."""
        problems = [r[0] for r in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise _damaged(self.path, problems[0] if problems else "no answer")

    # -- the sweep the store belongs to --------------------------------------------------

    @_guarded
    def sweep_sections(self) -> dict[str, Any] | None:
        """The identity of the sweep registered last (``None``: a store written before
        stores recorded one, or a new store)."""
        text = self.get_meta(META_SECTIONS)
        return None if text is None else json.loads(text)

    @_guarded
    def current_hashes(self) -> set[str] | None:
        """The run hashes of the grid registered last (``None``: not recorded, as in a store
        written before grids were recorded; then every run counts as current)."""
        text = self.get_meta(META_CURRENT)
        return None if text is None else set(json.loads(text))

    @_guarded
    def register_sweep(
        self,
        name: str,
        source: str,
        sections: Mapping[str, Any],
        runs: Sequence[tuple[str, Mapping[str, Any]]],
    ) -> Registration:
        """Make the store the given sweep's, in one transaction: its name, text, content hash,
        identity and current grid into ``meta``; its runs not yet stored as ``queued``;
        ``running`` and ``failed`` runs back to ``queued`` (:meth:`reset_interrupted`).

        The caller checks first that ``sections`` are the stored ones (a sweep resumes only
        into its own store); the grid may differ. Returns the counts of the grid's runs.
        """
        meta = {
            "name": name,
            "source": source,
            META_SOURCE_SHA: hashlib.sha256(source.encode()).hexdigest(),
            META_SECTIONS: json.dumps(sections, sort_keys=True, default=str),
            META_CURRENT: json.dumps(sorted({h for h, _ in runs})),
        }
        with self._write() as db:
            had = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            new = _insert_runs(db, runs)
            _reset_interrupted(db)
            total = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        grid = len({h for h, _ in runs})
        return Registration(new=new, kept=grid - new, gone=total - grid, had=had)

    @_guarded
    def requeue_running(self) -> int:
        """Send ``running`` runs back to ``queued`` (a sweep stopped by Ctrl-C or SIGTERM, so
        that its runs do not look busy); returns how many."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET status = 'queued', started_at = NULL WHERE status = 'running'"
            )
            return cur.rowcount

    # -- writing runs --------------------------------------------------------------------

    @_guarded
    def add_runs(self, runs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Insert the runs not yet in the store as ``queued``; return how many were inserted.

        Args:
            runs: ``(hash, config)`` pairs; ``config`` must be JSON-able. Its keys ``eta``,
                ``lam`` and ``seed`` (when present) are also stored as columns for queries.
        """
        with self._write() as db:
            return _insert_runs(db, runs)

    @_guarded
    def reset_interrupted(self) -> int:
        """Send ``running`` and ``failed`` runs back to ``queued``, dropping partial results.

        Returns:
            The number of runs reset.
        """
        with self._write() as db:
            return _reset_interrupted(db)

    @_guarded
    def mark_running(self, hashes: Sequence[str]) -> None:
        """Mark runs ``running`` (their training starts now)."""
        now = time.time()
        with self._write() as db:
            for h in hashes:
                cur = db.execute(
                    "UPDATE runs SET status = 'running', started_at = ?, finished_at = NULL, "
                    "error = NULL WHERE hash = ?",
                    (now, h),
                )
                self._check_found(cur, h)

    @_guarded
    def record_result(
        self,
        run_hash: str,
        status: str,
        summary: Mapping[str, Any],
        curve: Mapping[str, np.ndarray],
        layers: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Store a finished run's summary, curve and per-layer measurements, all in one
        transaction.

        Any earlier measurements of the run are replaced. After a crash at any moment either
        the whole result is stored or none of it is (the run keeps its previous status).

        Args:
            run_hash: the run.
            status: ``"done"`` or ``"diverged"``.
            summary: keys of :data:`SUMMARY_COLUMNS` (missing keys are stored as NULL).
            curve: every column of :data:`MEASUREMENT_COLUMNS`, equal-length 1-D arrays.
            layers: the run's per-layer measurements (every column of :data:`LAYER_COLUMNS`,
                equal-length 1-D arrays), or None (not measured).
        """
        if status not in FINISHED:
            raise ValueError(f"status: expected one of {FINISHED}, got {status!r}")
        values = _summary_values(summary)
        rows = _curve_rows(run_hash, curve)
        layer_rows = [] if layers is None else _layer_rows(run_hash, layers)
        sets = ", ".join(f"{k} = ?" for k in SUMMARY_COLUMNS)
        with self._write() as db:
            cur = db.execute(
                f"UPDATE runs SET status = ?, {sets}, error = NULL, finished_at = ? WHERE hash = ?",
                (status, *values, time.time(), run_hash),
            )
            self._check_found(cur, run_hash)
            db.execute("DELETE FROM measurements WHERE run_hash = ?", (run_hash,))
            self._insert_measurements(db, rows)
            self._replace_layers(db, run_hash, layer_rows)
            self._drop_checkpoint(db, run_hash)

    def _insert_measurements(self, db: sqlite3.Connection, rows: list[tuple]) -> None:
        columns = ", ".join(("run_hash", "idx", *_SQL_CURVE))
        marks = ", ".join("?" * (len(MEASUREMENT_COLUMNS) + 2))
        db.executemany(f"INSERT INTO measurements ({columns}) VALUES ({marks})", rows)

    def _replace_layers(self, db: sqlite3.Connection, run_hash: str, rows: list[tuple]) -> None:
        if "layer_measurements" not in self._tables():  # opened read-only, made before it
            if not rows:
                return
            db.execute(LAYERS_SCHEMA)
        db.execute("DELETE FROM layer_measurements WHERE run_hash = ?", (run_hash,))
        marks = ", ".join("?" * (len(LAYER_COLUMNS) + 1))
        db.executemany(f"INSERT OR REPLACE INTO layer_measurements VALUES ({marks})", rows)

    @_guarded
    def mark_failed(self, run_hash: str, error: str) -> None:
        """Mark a run ``failed`` with its error message; drop any measurements it has."""
        with self._write() as db:
            cur = db.execute(
                f"UPDATE runs SET status = 'failed', error = ?, finished_at = ?, "
                f"{_null_summary()} WHERE hash = ?",
                (str(error), time.time(), run_hash),
            )
            self._check_found(cur, run_hash)
            db.execute("DELETE FROM measurements WHERE run_hash = ?", (run_hash,))
            self._replace_layers(db, run_hash, [])
            self._drop_checkpoint(db, run_hash)

    def _check_found(self, cur: sqlite3.Cursor, run_hash: str) -> None:
        if cur.rowcount != 1:
            raise StoreError(f"store {self.path}: no run {run_hash!r}")

    # -- checkpoints ---------------------------------------------------------------------

    def _add_later_tables(self) -> None:
        missing = [sql for name, sql in LATER_TABLES.items() if name not in self._tables()]
        if missing:
            with self._write() as db:
                for sql in missing:
                    db.execute(sql)

    def _drop_checkpoint(self, db: sqlite3.Connection, key: str) -> None:
        if "checkpoints" in self._tables():  # a store opened read-only may predate the table
            db.execute("DELETE FROM checkpoints WHERE key = ?", (key,))

    @_guarded
    def save_checkpoint(self, key: str, runs: Sequence[str], state: bytes) -> None:
        """Keep the checkpoint ``state`` of the runs ``runs`` under ``key`` (a run's hash, or a
        pool's :func:`pool_key`), replacing the previous one, in one transaction."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
                (key, json.dumps(list(runs)), time.time(), sqlite3.Binary(state)),
            )

    @_guarded
    def checkpoint(self, key: str) -> bytes | None:
        """The checkpoint kept under ``key``, or None."""
        if "checkpoints" not in self._tables():
            return None
        row = self._db.execute("SELECT state FROM checkpoints WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    @_guarded
    def checkpoint_runs(self) -> dict[str, list[str]]:
        """Every checkpoint's key and the hashes of the runs it holds."""
        if "checkpoints" not in self._tables():
            return {}
        rows = self._db.execute("SELECT key, runs FROM checkpoints ORDER BY rowid")
        return {key: json.loads(runs) for key, runs in rows}

    @_guarded
    def delete_checkpoint(self, key: str) -> None:
        """Drop the checkpoint kept under ``key`` (if any)."""
        with self._write() as db:
            self._drop_checkpoint(db, key)

    # -- reading -------------------------------------------------------------------------

    @_guarded
    def runs(self, status: str | None = None) -> list[RunRecord]:
        """All runs (in insertion order), or those with ``status``."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status: expected one of {STATUSES}, got {status!r}")
        columns = ", ".join(
            ("hash", "config", "status", *SUMMARY_COLUMNS, "error", "started_at", "finished_at")
        )
        sql = f"SELECT {columns} FROM runs"
        args: tuple = ()
        if status is not None:
            sql, args = sql + " WHERE status = ?", (status,)
        return [_record(row) for row in self._db.execute(sql + " ORDER BY rowid", args)]

    @_guarded
    def counts(self) -> dict[str, int]:
        """The number of runs in each status (every status of :data:`STATUSES` is a key)."""
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
            out[status] = n
        return out

    @_guarded
    def measurements(self, run_hash: str) -> dict[str, np.ndarray]:
        """A run's stored curve: ``step`` as int64, the other columns as float64 (NaN kept).

        A run without a recorded result has empty arrays.
        """
        if self._db.execute("SELECT 1 FROM runs WHERE hash = ?", (run_hash,)).fetchone() is None:
            raise StoreError(f"store {self.path}: no run {run_hash!r}")
        rows = self._db.execute(
            f"SELECT {', '.join(_SQL_CURVE)} FROM measurements WHERE run_hash = ? ORDER BY idx",
            (run_hash,),
        ).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(MEASUREMENT_COLUMNS)
        return {
            c: np.array(v, dtype=np.int64 if c == "step" else np.float64)
            for c, v in zip(MEASUREMENT_COLUMNS, cols, strict=True)
        }


# -- rows in and out ---------------------------------------------------------------------


def _insert_runs(db: sqlite3.Connection, runs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
    """Insert the runs not yet stored as ``queued`` (in the caller's transaction); how many."""
    now = time.time()
    rows = [(h, "queued", json.dumps(dict(c), sort_keys=True), *_flat(c), now) for h, c in runs]
    before = db.total_changes
    db.executemany(
        "INSERT OR IGNORE INTO runs (hash, status, config, eta, lam, seed, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return db.total_changes - before


def _reset_interrupted(db: sqlite3.Connection) -> int:
    """``running`` and ``failed`` runs back to ``queued`` (in the caller's transaction)."""
    for table in ("measurements", "layer_measurements"):
        if table == "measurements" or _has_table(db, table):
            db.execute(
                f"DELETE FROM {table} WHERE run_hash IN "
                "(SELECT hash FROM runs WHERE status IN ('running', 'failed'))"
            )
    cur = db.execute(
        f"UPDATE runs SET status = 'queued', error = NULL, started_at = NULL, "
        f"finished_at = NULL, {_null_summary()} WHERE status IN ('running', 'failed')"
    )
    return cur.rowcount


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return db.execute(sql, (name,)).fetchone() is not None


def pool_key(hashes: Sequence[str]) -> str:
    """The checkpoint key of a pool of the runs ``hashes`` (in the pool's order)."""
    return "pool-" + hashlib.sha256(",".join(hashes).encode()).hexdigest()[:16]


def _flat(config: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return config.get("eta"), config.get("lam"), config.get("seed")


def _null_summary() -> str:
    return ", ".join(f"{k} = NULL" for k in SUMMARY_COLUMNS)


def _summary_values(summary: Mapping[str, Any]) -> list[Any]:
    unknown = set(summary) - set(SUMMARY_COLUMNS)
    if unknown:
        raise ValueError(f"summary: unknown keys {sorted(unknown)}")
    return [_sql_number(summary.get(k), is_int) for k, is_int in SUMMARY_COLUMNS.items()]


def _sql_number(value: Any, is_int: bool) -> int | float | None:
    if value is None:
        return None
    if is_int:
        return int(value)
    value = float(value)
    return None if np.isnan(value) else value


def _curve_rows(run_hash: str, curve: Mapping[str, np.ndarray]) -> list[tuple]:
    """The measurement rows ``(run_hash, idx, *MEASUREMENT_COLUMNS)`` of a curve."""
    missing = [c for c in MEASUREMENT_COLUMNS if c not in curve]
    extra = sorted(set(curve) - set(MEASUREMENT_COLUMNS))
    if missing or extra:
        raise ValueError(f"curve: missing columns {missing}, unknown columns {extra}")
    arrays = [np.asarray(curve[c]) for c in MEASUREMENT_COLUMNS]
    lengths = {a.shape for a in arrays}
    if len(lengths) != 1 or arrays[0].ndim != 1:
        raise ValueError(f"curve: columns must be equal-length 1-D arrays, got shapes {lengths}")
    n = len(arrays[0])
    columns = [arrays[0].astype(np.int64).tolist()]
    columns += [a.astype(np.float64).tolist() for a in arrays[1:]]
    return list(zip([run_hash] * n, range(n), *columns, strict=True))


def _layer_rows(run_hash: str, layers: Mapping[str, np.ndarray]) -> list[tuple]:
    """The rows ``(run_hash, *LAYER_COLUMNS)`` of a run's per-layer measurements."""
    missing = [c for c in LAYER_COLUMNS if c not in layers]
    if missing:
        raise ValueError(f"layers: missing columns {missing}")
    n = len(layers["step"])
    if any(len(layers[c]) != n for c in LAYER_COLUMNS):
        raise ValueError("layers: columns must be of equal length")
    return [
        (run_hash, int(step), str(name), _sql_number(norm, False), _sql_number(angle, False),
         int(bool(inv)))
        for step, name, norm, angle, inv in zip(*(layers[c] for c in LAYER_COLUMNS), strict=True)
    ]  # fmt: skip


def _record(row: tuple) -> RunRecord:
    h, config, status = row[:3]
    k = len(SUMMARY_COLUMNS)
    raw, (error, started, finished) = row[3 : 3 + k], row[3 + k :]
    summary = {}
    if status in FINISHED:
        summary = {
            key: (v if is_int or v is not None else float("nan"))
            for (key, is_int), v in zip(SUMMARY_COLUMNS.items(), raw, strict=True)
        }
    return RunRecord(h, json.loads(config), status, summary, error, started, finished)


# -- the advisory lock -------------------------------------------------------------------


def _write_schema(db: sqlite3.Connection) -> None:
    """Create the tables of :data:`SCHEMA` and the schema version (inside the caller's
    transaction): the one place a store's schema is written."""
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(
        "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('created', ?)",
        (str(SCHEMA_VERSION), created),
    )


def _create_store_file(path: Path) -> None:
    """Make a new store atomically: schema written to a temporary file in WAL mode, then
    renamed into place, so that no reader ever sees a half-made store."""
    try:
        with atomic_path(path, suffix=".new") as tmp:
            try:
                conn = sqlite3.connect(tmp, isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute("BEGIN IMMEDIATE")
                    _write_schema(conn)
                    conn.execute("COMMIT")
                finally:
                    conn.close()
            finally:
                for leftover in (f"{tmp}-wal", f"{tmp}-shm"):
                    Path(leftover).unlink(missing_ok=True)
    except sqlite3.Error as exc:
        raise StoreError(f"store {path}: cannot create ({exc})") from exc


def _acquire_lock(path: Path) -> int | None:
    """Take the exclusive, non-blocking lock ``PATH.lock`` and write our pid into it."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    lock_path = Path(f"{path}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"store {path}: cannot create lock {lock_path} ({exc})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StoreError(
            f"store {path} is in use by another sweep (lock {lock_path} held by pid {pid})"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)  # closing the descriptor releases the flock


def writer_alive(path: str | os.PathLike) -> bool:
    """Whether a sweep is writing the store now: a process holds its lock ``PATH.lock``.

    A sweep holds the lock from start to end, and the system drops it when the process dies
    (even by ``kill -9``), so runs left ``running`` by a dead sweep are interrupted, not busy.
    The test takes a shared lock for an instant: a sweep starting in that instant is refused as
    if another sweep held the store (run it again). Without a lock file nothing writes it.
    """
    if fcntl is None:  # pragma: no cover - not POSIX: no lock, say busy to stay on the safe side
        return True
    try:
        fd = os.open(f"{path}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the shared lock, if taken
    return False


# -- pandas and export -------------------------------------------------------------------


@_guarded
def load_runs(path: str | os.PathLike, *, current: bool = False) -> pd.DataFrame:
    """One row per run: hash, status, eta, lam, seed, model and its options, every summary
    column, error, config.

    ``model`` is the model's name; then one column per model option of the store's runs
    (``width``, ``depth``, ...), the run's value, else the model's default (NA for an option
    its model does not have). ``config`` is the run's JSON text. Float columns are float64
    (NaN where unknown); ``seed``, ``t_star_step``, ``steps`` and ``diverged_step`` are nullable
    ``Int64``.

    Args:
        path: the store.
        current: only the runs of the grid registered last (the sweep file of the last
            ``l2dyn sweep``); a store written before grids were recorded gives every run.

    Raises:
        StoreError: the store is missing, not a store, or damaged.
    """
    import pandas as pd

    columns = ("hash", "status", "eta", "lam", "seed", *SUMMARY_COLUMNS, "error", "config")
    with RunStore(path, create=False) as store:
        store.check()
        df = pd.read_sql_query(f"SELECT {', '.join(columns)} FROM runs ORDER BY rowid", store._db)
        keep = store.current_hashes() if current else None
    if keep is not None:
        df = df[df["hash"].isin(keep)].reset_index(drop=True)
    ints = {"seed", *(k for k, is_int in SUMMARY_COLUMNS.items() if is_int)}
    floats = {"eta", "lam", *(k for k, is_int in SUMMARY_COLUMNS.items() if not is_int)}
    dtypes = {c: "Int64" for c in ints} | {c: "float64" for c in floats}
    df = df.astype(dtypes)
    models = _model_columns([json.loads(c) for c in df["config"]])
    at = df.columns.get_loc("seed") + 1
    for offset, (name, values) in enumerate(models.items()):
        df.insert(at + offset, name, pd.Series(values, index=df.index, dtype="object"))
        df[name] = df[name].infer_objects()  # int64, float64 (NaN for None), bool or object
    return df


def _model_columns(configs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """``model`` and each model option of ``configs``: the run's value, else the model's
    default, else None (an option of another model)."""
    from l2dynamics.models import model_defaults  # flax only when a store is read into pandas

    models = [c.get("model", {}) for c in configs]
    names = [m.get("name") for m in models]
    defaults = {n: model_defaults(n) for n in set(names) if n is not None}
    given = {o for m in models for o in m.get("options", {})}
    options = sorted(given.union(*defaults.values()))
    out: dict[str, list[Any]] = {"model": names}
    for option in options:
        out[option] = [
            m.get("options", {}).get(option, defaults.get(n, {}).get(option))
            for m, n in zip(models, names, strict=True)
        ]
    return out


@_guarded
def load_measurements(path: str | os.PathLike) -> pd.DataFrame:
    """One row per measurement: hash, the run's configured ``eta``/``lam``/``seed`` (as in
    :func:`load_runs`), then the curve.

    The curve columns are :data:`MEASUREMENT_COLUMNS`; their ``eta_now``/``lam_now`` are the
    learning rate and λ in force at that step. Rows are ordered by run, then by position in
    the curve.
    """
    import pandas as pd

    curve = ", ".join(f"m.{s} AS {c}" for s, c in zip(_SQL_CURVE, MEASUREMENT_COLUMNS, strict=True))
    sql = (
        f"SELECT r.hash, r.eta, r.lam, r.seed, {curve} "
        "FROM measurements m JOIN runs r ON r.hash = m.run_hash ORDER BY r.rowid, m.idx"
    )
    with RunStore(path, create=False) as store:
        store.check()
        df = pd.read_sql_query(sql, store._db)
    floats = {"eta", "lam", *MEASUREMENT_COLUMNS[1:]}
    dtypes = {c: "float64" for c in floats} | {"seed": "Int64", "step": "int64"}
    return df.astype(dtypes)


@_guarded
def load_layer_measurements(path: str | os.PathLike) -> pd.DataFrame:
    """One row per parameter tensor and measurement of the runs with ``measure_layers``: hash,
    the run's configured ``eta``/``lam``/``seed`` (as in :func:`load_runs`), then
    :data:`LAYER_COLUMNS`: ``step``, ``layer`` (the tensor's name, ``"conv_0/kernel"``),
    ``norm_sq`` (‖θ_l‖²), ``angle`` (radians it turned by in the step before ``step``; NaN at
    step 0 and for a zero tensor) and ``scale_invariant`` (bool: a kernel followed by a
    BatchNorm). Ordered by run, step and layer. A store made before the table existed, or
    without such runs, gives an empty frame with these columns.
    """
    import pandas as pd

    columns = ("hash", "eta", "lam", "seed", *LAYER_COLUMNS)
    dtypes = {"eta": "float64", "lam": "float64", "seed": "Int64", "step": "int64",
              "layer": "object", "norm_sq": "float64", "angle": "float64",
              "scale_invariant": "bool"}  # fmt: skip
    with RunStore(path, create=False) as store:
        store.check()
        if "layer_measurements" not in store._tables():
            return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in columns})
        sql = (
            "SELECT r.hash, r.eta, r.lam, r.seed, l.step, l.layer, l.norm_sq, l.angle, "
            "l.scale_invariant FROM layer_measurements l JOIN runs r ON r.hash = l.run_hash "
            "ORDER BY r.rowid, l.step, l.layer"
        )
        df = pd.read_sql_query(sql, store._db)
    return df.astype(dtypes)


def export_format(out: str | os.PathLike, fmt: str | None) -> str:
    """The format of an export to ``out``: ``fmt`` when given, else the one its suffix names
    (``.parquet``/``.pq`` or ``.csv``), else CSV.

    Raises:
        StoreError: an unknown ``fmt``, or one that the suffix of ``out`` contradicts
            (``--format parquet --out runs.csv`` would hide Parquet in a .csv file).
    """
    suffix = Path(out).suffix.lower()
    named = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix)
    if fmt is None:
        return named or "csv"
    if fmt not in EXPORT_FORMATS:
        raise StoreError(f"export format {fmt!r}: expected one of {sorted(EXPORT_FORMATS)}")
    if named is not None and named != fmt:
        raise StoreError(
            f"--format {fmt} does not match --out {out} (a {named} name): give a name ending "
            f"in {EXPORT_FORMATS[fmt]}, or leave --format out to follow the suffix"
        )
    return fmt


def measurements_path(out: str | os.PathLike, fmt: str) -> Path:
    """Where :func:`export` writes the measurements of an export to ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_measurements{EXPORT_FORMATS[fmt]}")


def layers_path(out: str | os.PathLike, fmt: str) -> Path:
    """Where :func:`export` writes the per-layer measurements of an export to ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_layers{EXPORT_FORMATS[fmt]}")


def export(
    path: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str | None = None,
    *,
    current: bool = False,
) -> None:
    """Export a store's runs to ``out``, its measurements to ``<stem>_measurements.<ext>`` and
    its per-layer measurements (:func:`load_layer_measurements`) to ``<stem>_layers.<ext>``.

    The layer file is written for every store, with the columns and no rows when no exported
    run measured its layers (an older store included), as :func:`load_layer_measurements`
    reads such a store: every export gives the same three files, each readable with pandas,
    and never leaves the layer file of an earlier export beside newer runs.

    The tables are read before any file is written, and all three are written to temporary
    files first and renamed into place only once every one is complete, so a failed export
    changes none of them.

    Args:
        path: the store.
        out: the runs table file; the other two tables go beside it.
        fmt: ``"csv"`` or ``"parquet"`` (Parquet needs pyarrow); None: from the suffix of
            ``out`` (:func:`export_format`).
        current: only the runs of the grid registered last (see :func:`load_runs`); the
            measurements and layer rows of those runs only.
    """
    fmt = export_format(out, fmt)
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise StoreError("export format 'parquet' needs pyarrow (pip install pyarrow)")
    runs, curves = load_runs(path, current=current), load_measurements(path)
    layers = load_layer_measurements(path)
    tables = {
        Path(out): runs,
        measurements_path(out, fmt): curves[curves["hash"].isin(runs["hash"])],
        layers_path(out, fmt): layers[layers["hash"].isin(runs["hash"])],
    }
    writing = Path(out)
    try:
        # Each table to a temporary file; the files are renamed into place as the stack closes,
        # after the last one is written (an error before then removes them all).
        with contextlib.ExitStack() as renames:
            for target, df in tables.items():
                writing = target
                tmp = renames.enter_context(atomic_path(target))
                _write_frame(df.reset_index(drop=True), tmp, fmt)
    except OSError as exc:  # a rename names its target as filename2
        failed = exc.filename2 or writing
        raise StoreError(f"export: cannot write {failed} ({exc.strerror or exc})") from exc


def _write_frame(df: pd.DataFrame, tmp: Path, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False)

"""The SQLite run store: round trips, resume, atomicity under crashes, locking, bad files."""

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2dynamics.errors import L2DynError
from l2dynamics.results import LAYER_COLUMNS
from l2dynamics.sweep.store import (
    MEASUREMENT_COLUMNS,
    META_CURRENT,
    STATUSES,
    RunRecord,
    RunStore,
    StoreError,
    export,
    layers_path,
    load_layer_measurements,
    load_measurements,
    load_runs,
    pool_key,
)

CONFIGS = {
    f"h{i}": {"eta": eta, "lam": lam, "seed": seed, "model": {"name": "fc"}}
    for i, (eta, lam, seed) in enumerate([(0.1, 1e-3, 0), (0.1, 1e-3, 1), (0.5, 0.0, 0)])
}


def make_curve(n: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    """A curve with distinct, awkward values in every column (NaN and inf included)."""
    rng = np.random.default_rng(n)
    curve = {"step": np.arange(n, dtype=np.int64) * 3}
    for c in MEASUREMENT_COLUMNS[1:]:
        curve[c] = rng.standard_normal(n) + offset
    if n > 2:
        curve["test_loss"][1] = np.nan
        curve["train_loss"][2] = np.inf
    return curve


def make_summary(**over) -> dict:
    out = {
        "best_test_acc": 0.875,
        "t_star_epochs": 12.5,
        "t_star_step": 400,
        "t_star_resolution": 0.05,
        "final_train_acc": 1.0,
        "final_test_acc": 0.86,
        "max_train_acc": 1.0,
        "steps": 1000,
        "budget_epochs": 31.25,
        "diverged_step": None,
        "wall_s": float("nan"),
        "stopped_at_peak": 0,
    }
    return out | over


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "sweep.db"


@pytest.fixture
def filled(store_path):
    """A store with three runs: h0 done, h1 diverged, h2 queued."""
    with RunStore(store_path) as store:
        store.set_meta("name", "demo")
        store.add_runs(CONFIGS.items())
        store.mark_running(["h0", "h1"])
        store.record_result("h0", "done", make_summary(), make_curve(7))
        store.record_result("h1", "diverged", make_summary(diverged_step=123), make_curve(4, 1))
    return store_path


def test_round_trip_summary_curves_and_counts(filled):
    with RunStore(filled, create=False) as store:
        assert store.get_meta("name") == "demo"
        assert store.get_meta("schema_version") == "1"
        assert store.get_meta("missing") is None
        assert store.counts() == {"queued": 1, "running": 0, "done": 1, "diverged": 1, "failed": 0}
        assert tuple(store.counts()) == STATUSES
        runs = store.runs()
        assert [r.hash for r in runs] == ["h0", "h1", "h2"]
        assert all(isinstance(r, RunRecord) for r in runs)
        assert runs[0].config == CONFIGS["h0"]
        assert runs[0].status == "done" and runs[1].status == "diverged"
        s0, s1 = runs[0].summary, runs[1].summary
        expected = make_summary()
        assert s0.keys() == expected.keys()
        assert np.isnan(s0.pop("wall_s")) and np.isnan(expected.pop("wall_s"))
        assert s0 == expected
        assert s1["diverged_step"] == 123 and isinstance(s1["steps"], int)
        assert runs[2].summary == {} and runs[2].started_at is None
        assert [r.hash for r in store.runs("diverged")] == ["h1"]
        for h, n, off in (("h0", 7, 0), ("h1", 4, 1)):
            got, want = store.measurements(h), make_curve(n, off)
            assert tuple(got) == MEASUREMENT_COLUMNS
            assert got["step"].dtype == np.int64 and got["epoch"].dtype == np.float64
            for c in MEASUREMENT_COLUMNS:
                np.testing.assert_array_equal(got[c], want[c])
        assert all(len(v) == 0 for v in store.measurements("h2").values())
        with pytest.raises(StoreError, match="nope"):
            store.measurements("nope")


def test_record_result_replaces_and_validates(filled):
    with RunStore(filled) as store:
        store.record_result("h0", "done", make_summary(best_test_acc=0.5), make_curve(3))
        np.testing.assert_array_equal(store.measurements("h0")["epoch"], make_curve(3)["epoch"])
        assert store.runs("done")[0].summary["best_test_acc"] == 0.5
        with pytest.raises(ValueError, match="status"):
            store.record_result("h0", "failed", make_summary(), make_curve(3))
        bad = make_curve(3) | {"tau": np.zeros(2)}
        with pytest.raises(ValueError, match="curve"):
            store.record_result("h0", "done", make_summary(), bad)
        with pytest.raises(ValueError, match="curve"):
            store.record_result("h0", "done", make_summary(), {"step": np.arange(3)})
        with pytest.raises(ValueError, match="bogus"):
            store.record_result("h0", "done", make_summary(bogus=1), make_curve(3))
        with pytest.raises(StoreError, match="nope"):
            store.record_result("nope", "done", make_summary(), make_curve(3))
        assert len(store.measurements("h0")["step"]) == 3


def test_load_runs_and_measurements(filled):
    runs = load_runs(filled)
    assert list(runs.columns[:5]) == ["hash", "status", "eta", "lam", "seed"]
    assert {"best_test_acc", "diverged_step", "wall_s", "config", "error"} <= set(runs.columns)
    assert list(runs["hash"]) == ["h0", "h1", "h2"]
    assert runs["eta"].dtype == np.float64 and runs["seed"].dtype == "Int64"
    assert runs["diverged_step"].tolist()[1] == 123 and pd.isna(runs["diverged_step"][0])
    assert np.isnan(runs["wall_s"][0]) and np.isnan(runs["best_test_acc"][2])
    assert json.loads(runs["config"][2]) == CONFIGS["h2"]
    meas = load_measurements(filled)
    assert list(meas.columns) == ["hash", "eta", "lam", "seed", *MEASUREMENT_COLUMNS]
    assert len(meas) == 7 + 4 and list(meas["hash"]).count("h1") == 4
    assert meas["step"].dtype == np.int64 and meas["test_loss"].dtype == np.float64
    h0 = meas[meas["hash"] == "h0"]
    np.testing.assert_array_equal(h0["test_loss"].to_numpy(), make_curve(7)["test_loss"])
    assert (h0["eta"] == 0.1).all() and (h0["lam"] == 1e-3).all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export(filled, tmp_path, fmt):
    out = tmp_path / f"runs.{fmt}"
    export(filled, out, fmt)
    side = tmp_path / f"runs_measurements.{fmt}"
    assert out.exists() and side.exists()
    assert not list(tmp_path.glob(".*.tmp"))
    if fmt == "csv":
        runs, meas = pd.read_csv(out), pd.read_csv(side)
    else:
        runs, meas = pd.read_parquet(out), pd.read_parquet(side)
    pd.testing.assert_frame_equal(
        runs[["eta", "lam", "best_test_acc"]], load_runs(filled)[["eta", "lam", "best_test_acc"]]
    )
    assert list(runs["hash"]) == ["h0", "h1", "h2"]
    ref = load_measurements(filled)
    assert list(meas.columns) == list(ref.columns) and len(meas) == len(ref)
    for c in MEASUREMENT_COLUMNS:
        np.testing.assert_array_equal(meas[c].to_numpy(), ref[c].to_numpy())
    # no run measured its layers: the layer file is still there, with the columns and no rows
    layers = read_table(tmp_path / f"runs_layers.{fmt}", fmt)
    assert layers.empty and list(layers.columns) == list(load_layer_measurements(filled).columns)


def read_table(path, fmt):
    return pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_the_layer_rows_and_current_keeps_those_of_its_runs(filled, tmp_path, fmt):
    with RunStore(filled) as store:
        store.record_result("h0", "done", make_summary(), make_curve(7), make_layers([0, 1]))
        store.mark_running(["h2"])
        store.record_result("h2", "done", make_summary(), make_curve(3), make_layers([0, 3, 6]))
        store.set_meta(META_CURRENT, json.dumps(["h1", "h2"]))  # h0 is of an earlier grid
    out = tmp_path / f"runs.{fmt}"
    assert layers_path(out, fmt) == tmp_path / f"runs_layers.{fmt}"
    export(filled, out, fmt)
    got, ref = read_table(layers_path(out, fmt), fmt), load_layer_measurements(filled)
    assert list(got.columns) == list(ref.columns) and len(got) == 4 + 6
    assert list(got["hash"]) == ["h0"] * 4 + ["h2"] * 6
    for c in ("step", "norm_sq", "angle", "scale_invariant", "layer"):
        np.testing.assert_array_equal(got[c].to_numpy(), ref[c].to_numpy(), err_msg=c)
    assert got["scale_invariant"].dtype == bool
    export(filled, out, fmt, current=True)
    runs, got = read_table(out, fmt), read_table(layers_path(out, fmt), fmt)
    assert list(runs["hash"]) == ["h1", "h2"] and set(got["hash"]) == {"h2"} and len(got) == 6
    assert set(read_table(tmp_path / f"runs_measurements.{fmt}", fmt)["hash"]) == {"h1", "h2"}


def test_a_failed_export_writes_none_of_its_files(filled, tmp_path):
    """The layer file, written last, cannot be renamed into place (a directory holds its
    name): the runs and measurements files, already written, are not renamed either."""
    (tmp_path / "runs_layers.csv").mkdir()
    with pytest.raises(StoreError, match="runs_layers.csv"):
        export(filled, tmp_path / "runs.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs_layers.csv", "sweep.db"]


def test_export_unknown_format(filled, tmp_path):
    with pytest.raises(StoreError, match="xlsx"):
        export(filled, tmp_path / "runs.xlsx", "xlsx")


def test_add_runs_idempotent_and_reset_interrupted(store_path):
    with RunStore(store_path) as store:
        assert store.add_runs(CONFIGS.items()) == 3
        assert store.add_runs(list(CONFIGS.items()) + [("h0", {"eta": 9.0})]) == 0
        assert store.add_runs([("h9", {}), ("h9", {})]) == 1
        assert store.runs()[0].config == CONFIGS["h0"]
        store.mark_running(["h0", "h1", "h2"])
        store.record_result("h0", "done", make_summary(), make_curve(5))
        store.mark_failed("h1", "RuntimeError: boom")
        assert store.runs("failed")[0].error == "RuntimeError: boom"
        # a partial curve of h2 (as a hypothetical non-atomic writer would leave it)
        rows = [("h2", i, i, *[0.0] * 10) for i in range(3)]
        store._insert_measurements(store._db, rows)
        assert store.reset_interrupted() == 2
        assert store.counts() == {"queued": 3, "running": 0, "done": 1, "diverged": 0, "failed": 0}
        assert len(store.measurements("h2")["step"]) == 0
        assert store.runs("queued")[0].error is None
        assert len(store.measurements("h0")["step"]) == 5
        with pytest.raises(StoreError, match="nope"):
            store.mark_running(["h0", "nope"])
        assert store.runs()[0].status == "done"  # the failed mark_running changed nothing


def test_crash_inside_record_result_leaves_nothing(filled, monkeypatch):
    insert = RunStore._insert_measurements

    def insert_then_crash(self, db, rows):
        insert(self, db, rows)
        assert db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] > 11
        raise RuntimeError("crash before commit")

    monkeypatch.setattr(RunStore, "_insert_measurements", insert_then_crash)
    with RunStore(filled) as store:
        store.mark_running(["h2"])
        with pytest.raises(RuntimeError, match="crash"):
            store.record_result("h2", "done", make_summary(), make_curve(50))
        # also a rewrite of a finished run: the old result survives
        with pytest.raises(RuntimeError, match="crash"):
            store.record_result("h0", "diverged", make_summary(steps=1), make_curve(9))
    with RunStore(filled) as store:
        assert store.runs("running")[0].hash == "h2"
        assert store.runs("running")[0].summary == {}
        assert len(store.measurements("h2")["step"]) == 0
        assert store.runs("done")[0].summary["steps"] == 1000
        np.testing.assert_array_equal(store.measurements("h0")["tau"], make_curve(7)["tau"])


def test_sigkill_during_record_result(filled):
    code = f"""
        import os, signal
        import numpy as np
        from l2dynamics.sweep.store import RunStore, MEASUREMENT_COLUMNS
        insert = RunStore._insert_measurements
        def insert_then_die(self, db, rows):
            insert(self, db, rows)
            os.kill(os.getpid(), signal.SIGKILL)
        RunStore._insert_measurements = insert_then_die
        n = 100_000  # far beyond the page cache: uncommitted pages spill into the WAL
        curve = {{c: np.arange(n, dtype=float) for c in MEASUREMENT_COLUMNS}}
        with RunStore({str(filled)!r}, lock=True) as store:
            store.mark_running(["h2"])
            store.record_result("h2", "done", {{"steps": n}}, curve)
        print("not killed")
    """
    proc = run_python(code)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    with RunStore(filled, lock=True) as store:  # the dead process's lock is gone too
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert store.runs("running")[0].hash == "h2"
        assert len(store.measurements("h2")["step"]) == 0
        assert store._db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 11
        assert store.reset_interrupted() == 1


def test_lock_excludes_a_second_writer(store_path):
    code = f"""
        from l2dynamics.sweep.store import RunStore, StoreError
        try:
            RunStore({str(store_path)!r}, lock=True)
        except StoreError as exc:
            print("StoreError:", exc)
    """
    with RunStore(store_path, lock=True) as store:
        store.add_runs(CONFIGS.items())
        proc = run_python(code)
        assert proc.returncode == 0, proc.stderr
        lock = f"{store_path}.lock"
        assert proc.stdout.startswith("StoreError: ")
        assert f"lock {lock} held by pid {__import__('os').getpid()}" in proc.stdout
        assert "in use by another sweep" in proc.stdout
        with RunStore(store_path, create=False) as reader:  # readers need no lock
            assert reader.counts()["queued"] == 3
    with RunStore(store_path, lock=True) as store:  # released on close
        assert len(store.runs()) == 3


def test_readers_read_while_a_writer_writes(store_path):
    n_runs, n_rows = 30, 3000
    with RunStore(store_path) as store:
        store.add_runs((f"r{i}", {"eta": 0.1, "lam": 0.01, "seed": i}) for i in range(n_runs))
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            import numpy as np
            from l2dynamics.sweep.store import RunStore, MEASUREMENT_COLUMNS
            curve = {{c: np.arange({n_rows}, dtype=float) for c in MEASUREMENT_COLUMNS}}
            with RunStore({str(store_path)!r}, lock=True) as store:
                print("ready", flush=True)
                for i in range({n_runs}):
                    store.mark_running([f"r{{i}}"])
                    store.record_result(f"r{{i}}", "done", {{"steps": i}}, curve)
                    time.sleep(0.05)  # leave readers time to interleave on a busy machine
            """),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline() == "ready\n"
    seen, reads = set(), 0
    with RunStore(store_path, create=False) as reader:
        while writer.poll() is None:
            done = [r.hash for r in reader.runs("done")]
            seen.add(len(done))
            for h in done[-2:]:
                assert len(reader.measurements(h)["step"]) == n_rows
            meas = load_measurements(store_path)  # a fresh connection each time
            assert len(meas) % n_rows == 0
            reads += 1
            time.sleep(0.005)
        assert writer.wait() == 0, writer.stderr.read()
        assert reader.counts()["done"] == n_runs
    assert reads > 5 and len(seen) > 2, (reads, seen)


def test_not_a_sqlite_file(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, I am a text file and certainly not a database\n" * 20)
    with pytest.raises(StoreError, match=str(path)):
        RunStore(path)
    assert path.read_text().startswith("hello")


def test_sqlite_without_our_schema(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    for create in (True, False):
        with pytest.raises(StoreError, match=str(path)):
            RunStore(path, create=create)
    conn = sqlite3.connect(path)  # untouched: still a rollback-journal file with its one table
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_missing_store_without_create(tmp_path):
    path = tmp_path / "missing.db"
    with pytest.raises(StoreError, match=str(path)) as info:
        RunStore(path, create=False)
    assert isinstance(info.value, L2DynError)
    assert not path.exists() and not (tmp_path / "missing.db.lock").exists()
    with pytest.raises(StoreError, match=str(path)):
        load_runs(path)


def test_store_is_wal_with_foreign_keys(store_path):
    with RunStore(store_path) as store:
        db = store._db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    store.close()  # closing twice is harmless


# -- a store written by l2dynamics 0.1.0 (before the η/λ-in-force columns were renamed) ----

FIXTURES = Path(__file__).parent / "fixtures"
OLD_NAMES = {"run_eta": "eta", "run_lam": "lam", "eta": "eta_now", "lam": "lam_now"}


def test_a_store_written_by_0_1_0_loads_with_the_new_column_names():
    old = pd.read_csv(FIXTURES / "store-v0.1.0-measurements.csv").rename(columns=OLD_NAMES)
    got = load_measurements(FIXTURES / "store-v0.1.0.sqlite")
    assert list(got.columns) == ["hash", "eta", "lam", "seed", *MEASUREMENT_COLUMNS]
    pd.testing.assert_frame_equal(got, old[list(got.columns)], check_dtype=False)
    runs = load_runs(FIXTURES / "store-v0.1.0.sqlite")
    assert list(runs["status"]) == ["done", "done"] and list(runs["lam"]) == [0.01, 0.1]


def test_checkpoints_are_kept_replaced_and_dropped_with_the_result(filled):
    with RunStore(filled) as store:
        store.mark_running(["h2"])
        store.save_checkpoint("h2", ["h2"], b"first")
        store.save_checkpoint("h2", ["h2"], b"\x00second")
        key = pool_key(["h0", "h2"])
        store.save_checkpoint(key, ["h0", "h2"], b"pool")
        assert store.checkpoint("h2") == b"\x00second" and store.checkpoint("nope") is None
        assert store.checkpoint_runs() == {"h2": ["h2"], key: ["h0", "h2"]}
        store.record_result("h2", "done", make_summary(), make_curve(3))
        assert store.checkpoint("h2") is None  # dropped in the result's transaction
        assert store.checkpoint(key) == b"pool"  # a pool's stays until the pool ends
        store.delete_checkpoint(key)
        store.save_checkpoint("h1", ["h1"], b"x")
        store.mark_failed("h1", "boom")
        assert store.checkpoint_runs() == {}


def test_a_store_without_the_checkpoints_table_gets_it_when_opened_to_write(tmp_path):
    old = tmp_path / "old.sqlite"
    old.write_bytes((FIXTURES / "store-v0.1.0.sqlite").read_bytes())
    with RunStore(old, create=False) as reader:
        assert reader.checkpoint_runs() == {} and reader.checkpoint("x") is None
    with sqlite3.connect(old) as db:
        assert "checkpoints" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    with RunStore(old, lock=True) as writer:
        h = writer.runs()[0].hash
        writer.save_checkpoint(h, [h], b"state")
        assert writer.checkpoint(h) == b"state"
    assert len(load_runs(old)) == 2


def make_layers(steps: list[int]) -> dict[str, np.ndarray]:
    """Per-layer rows: two tensors per step, one scale-invariant, a NaN angle at step 0."""
    names = ["conv_0/kernel", "dense/bias"]
    step = np.repeat(np.asarray(steps, np.int64), 2)
    angle = np.linspace(0.01, 0.02, len(step))
    angle[step == 0] = np.nan
    return {
        "step": step,
        "layer": np.asarray(names * len(steps), dtype=object),
        "norm_sq": np.linspace(1.0, 2.0, len(step)),
        "angle": angle,
        "scale_invariant": np.asarray([True, False] * len(steps)),
    }


def test_layer_measurements_round_trip_with_the_result_and_go_with_a_failure(filled):
    layers = make_layers([0, 3, 6])
    with RunStore(filled) as store:
        store.mark_running(["h2"])
        store.record_result("h2", "done", make_summary(), make_curve(3), layers)
    got = load_layer_measurements(filled)
    assert list(got.columns) == ["hash", "eta", "lam", "seed", *LAYER_COLUMNS]
    assert set(got["hash"]) == {"h2"} and (got["eta"] == 0.5).all()
    for c in LAYER_COLUMNS:
        np.testing.assert_array_equal(got[c].to_numpy(), layers[c], err_msg=c)
    assert got["scale_invariant"].dtype == bool and got["step"].dtype == np.int64
    with RunStore(filled) as store:  # a second result replaces, a failure drops them
        store.record_result("h2", "done", make_summary(), make_curve(3), make_layers([0, 9]))
        assert len(load_layer_measurements(filled)) == 4
        store.mark_failed("h2", "boom")
    assert load_layer_measurements(filled).empty


def test_a_store_without_the_layer_table_loads_an_empty_frame_and_gets_it_to_write(tmp_path):
    old = tmp_path / "old.sqlite"
    old.write_bytes((FIXTURES / "store-v0.1.0.sqlite").read_bytes())
    got = load_layer_measurements(old)
    assert got.empty and list(got.columns) == ["hash", "eta", "lam", "seed", *LAYER_COLUMNS]
    with sqlite3.connect(old) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "layer_measurements" not in names
    with RunStore(old, lock=True) as writer:
        h = writer.runs()[0].hash
        writer.mark_running([h])
        writer.record_result(h, "done", make_summary(), make_curve(2), make_layers([0, 1]))
    assert len(load_layer_measurements(old)) == 4 and len(load_runs(old)) == 2

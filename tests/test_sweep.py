"""Sweeps end to end: store contents, resume, divergence, kill -9 and concurrent writers."""

import math
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from l2dynamics.sweep import RunStore, load_measurements, load_runs, load_sweep, run_sweep
from l2dynamics.train.checkpoint import from_bytes
from sweep_frames import write_sweep


def test_sweep_stores_every_run_and_resumes_without_rework(tmp_path):
    spec = load_sweep(write_sweep(tmp_path / "s.toml"))
    store = tmp_path / "runs.sqlite"
    report = run_sweep(spec, str(store))
    assert (report.total, report.done, report.skipped, report.failed) == (12, 12, 0, 0)
    runs = load_runs(store)
    assert len(runs) == 12 and set(runs["status"]) == {"done"}
    assert runs["hash"].is_unique
    meas = load_measurements(store)
    assert set(meas["hash"]) == set(runs["hash"])
    again = run_sweep(spec, str(store))
    assert (again.skipped, again.done) == (12, 0)
    assert len(load_measurements(store)) == len(meas)


def test_a_diverging_run_is_stored_as_diverged_and_the_others_go_on(tmp_path):
    sweep_file = write_sweep(tmp_path / "s.toml", etas="[0.5, 100000.0]", budget="epochs = 3")
    spec = load_sweep(sweep_file)
    store = tmp_path / "runs.sqlite"
    report = run_sweep(spec, str(store))
    runs = load_runs(store)
    bad = runs[runs["eta"] == 100000.0]
    assert report.diverged == len(bad) == 4
    assert set(bad["status"]) == {"diverged"}
    assert bad["diverged_step"].notna().all() and (bad["diverged_step"] >= 0).all()
    assert set(runs[runs["eta"] == 0.5]["status"]) == {"done"}


def _finished(store):
    if not store.exists():
        return 0
    with RunStore(store, create=False) as s:
        counts = s.counts()
    return counts["done"] + counts["diverged"]


def _cli(*args):
    return [sys.executable, "-m", "l2dynamics", *args]


def _checkpoints(store):
    """(count, latest saved_at) of the store's checkpoints."""
    if not store.exists():
        return 0, 0.0
    with sqlite3.connect(store) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        if "checkpoints" not in tables:
            return 0, 0.0
        n, latest = db.execute("SELECT COUNT(*), MAX(saved_at) FROM checkpoints").fetchone()
    return n, latest or 0.0


def _checkpointed_steps(store):
    """Steps trained by the runs the store's checkpoints hold."""
    with RunStore(store, create=False) as s:
        blobs = [s.checkpoint(key) for key in s.checkpoint_runs()]
    return sum(b["done"] for blob in blobs for b in from_bytes(blob).books.values())


def _same_stores(got_path, ref_path):
    """Every run's status, summary (but its wall time) and curve are the same, bit for bit."""
    got = load_runs(got_path).set_index("hash").sort_index().drop(columns="wall_s")
    ref = load_runs(ref_path).set_index("hash").sort_index().drop(columns="wall_s")
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    got_m = load_measurements(got_path).sort_values(["hash", "step"]).reset_index(drop=True)
    ref_m = load_measurements(ref_path).sort_values(["hash", "step"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got_m, ref_m, check_exact=True)


def test_kill_minus_nine_mid_run_resumes_from_checkpoints_bit_for_bit(tmp_path):
    """SIGKILL ``l2dyn sweep`` three times, each a random moment after it saved a checkpoint,
    then resume: the store holds exactly the uninterrupted sweep's results (a pool of 12 runs,
    checkpointed at every measurement point)."""
    sweep_file = write_sweep(tmp_path / "s.toml", etas="[0.2, 0.5, 1.0]", c=2.0)
    text = sweep_file.read_text().replace("width = 16", "width = 256").replace("96", "256")
    sweep_file.write_text(text)  # runs of about a second each, so kills land mid-sweep
    reference = tmp_path / "ref.sqlite"
    run_sweep(load_sweep(sweep_file), str(reference), checkpoint_every_s=math.inf)
    store = tmp_path / "killed.sqlite"
    args = ("sweep", str(sweep_file), "--store", str(store), "--quiet", "--checkpoint-every", "0")
    rng = np.random.default_rng(0)
    steps = []
    for _ in range(3):  # each time: kill after a random number of new checkpoints
        proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen, wanted = {_checkpoints(store)[1]}, rng.integers(3, 12)
        while proc.poll() is None and len(seen) < wanted:
            seen.add(_checkpoints(store)[1])
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        steps.append(_checkpointed_steps(store))
    assert _finished(store) < 12 and steps[-1] > 0, "the kills should land mid-run"
    done = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _same_stores(store, reference)
    assert _checkpoints(store)[0] == 0  # every run recorded, its checkpoint dropped


class Interrupted(BaseException):  # noqa: N818 - a simulated kill, not an error
    """Raised by a checkpoint's save: the sweep stops there, as if killed."""


@pytest.mark.parametrize("vectorize", [False, True])
@pytest.mark.parametrize(
    "stop", [("save_checkpoint", 3), ("save_checkpoint", 100), ("record_result", 3)]
)
def test_a_sweep_stopped_mid_run_resumes_from_its_checkpoints_bit_for_bit(
    tmp_path, monkeypatch, vectorize, stop
):
    """Stopped right after the n-th checkpoint, or right after the n-th result (a pool's last
    checkpoint then predates it: the resumed pool retrains that run without recording it
    again), the resumed sweep stores exactly the uninterrupted results and leaves no
    checkpoint; a sweep without checkpoints (inf) writes none."""
    spec = load_sweep(write_sweep(tmp_path / "s.toml", c=2.0))
    reference = tmp_path / "ref.sqlite"
    run_sweep(spec, str(reference), vectorize=vectorize, checkpoint_every_s=math.inf)
    assert _checkpoints(reference)[0] == 0
    store = tmp_path / "stopped.sqlite"
    method, n = stop
    original, count = getattr(RunStore, method), []

    def stopping(self, *args):
        original(self, *args)
        count.append(1)
        if len(count) == n:
            raise Interrupted

    monkeypatch.setattr(RunStore, method, stopping)
    with pytest.raises(Interrupted):
        run_sweep(spec, str(store), vectorize=vectorize, checkpoint_every_s=0)
    monkeypatch.undo()
    between_runs = method == "record_result" and not vectorize  # a run's own went with it
    assert _checkpoints(store)[0] == (0 if between_runs else 1) and _finished(store) < 12
    run_sweep(spec, str(store), vectorize=vectorize, checkpoint_every_s=0)
    _same_stores(store, reference)
    assert _checkpoints(store)[0] == 0


def test_vectorized_resume_is_independent_of_how_runs_were_chunked(tmp_path):
    """Resuming re-chunks the remaining runs; results must not depend on the chunking."""
    full = load_sweep(write_sweep(tmp_path / "full.toml", etas="[0.2, 0.5, 1.0]"))
    part = load_sweep(write_sweep(tmp_path / "part.toml", etas="[0.5]"))
    whole, pieces = tmp_path / "whole.sqlite", tmp_path / "pieces.sqlite"
    run_sweep(full, str(whole), vectorize=True)
    run_sweep(part, str(pieces), vectorize=True)
    report = run_sweep(full, str(pieces), vectorize=True)
    assert (report.skipped, report.done) == (4, 8)
    a = load_runs(whole).set_index("hash").sort_index()
    b = load_runs(pieces).set_index("hash").sort_index()
    assert list(a.index) == list(b.index)
    np.testing.assert_array_equal(a["t_star_epochs"], b["t_star_epochs"])
    np.testing.assert_allclose(a["best_test_acc"], b["best_test_acc"], atol=1e-6)


def test_a_second_writer_is_refused_naming_the_lock(tmp_path):
    sweep_file = write_sweep(tmp_path / "s.toml", c=4.0)
    store = tmp_path / "runs.sqlite"
    first = subprocess.Popen(
        _cli("sweep", str(sweep_file), "--store", str(store), "--quiet"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while not store.exists() and time.time() < deadline:
            time.sleep(0.2)
        second = subprocess.run(
            _cli("sweep", str(sweep_file), "--store", str(store), "--quiet"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert "lock" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize(
    "old,new,culprit",
    [
        ("batch_size = 32", "batch_size = 32\nspeed = 1", "unknown key 'speed'"),
        ("batch_size = 32", 'batch_size = "x"', "batch_size"),
        ("max_epochs = 400", "max_epochs = -4", "budget.max_epochs"),
        ("seeds = [0, 1]", "seeds = []", "grid.seeds"),
    ],
)
def test_bad_sweep_file_is_one_line_exit_2_nothing_written(run_cli, tmp_path, old, new, culprit):
    sweep_file = write_sweep(tmp_path / "s.toml")
    sweep_file.write_text(sweep_file.read_text().replace(old, new))
    store = tmp_path / "runs.sqlite"
    code, _, err = run_cli(["sweep", str(sweep_file), "--store", str(store), "--quiet"])
    assert code == 2 and culprit in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [sweep_file]


def test_cli_sweep_status_export(run_cli, tmp_path):
    sweep_file = write_sweep(tmp_path / "s.toml", etas="[0.5]")
    store = tmp_path / "runs.sqlite"
    code, out, _ = run_cli(["sweep", str(sweep_file), "--store", str(store), "--quiet"])
    assert code in (0, None) and "4 runs" in out
    code, out, _ = run_cli(["status", "--store", str(store)])
    assert code in (0, None) and "done" in out and "test-grid" in out
    target = tmp_path / "runs.csv"
    code, _, _ = run_cli(["export", "--store", str(store), "--format", "csv", "--out", str(target)])
    assert code in (0, None) and target.exists()
    assert (tmp_path / "runs_measurements.csv").exists()
    code, _, err = run_cli(["status", "--store", str(tmp_path / "missing.sqlite")])
    assert code == 2 and "missing.sqlite" in err


def test_cli_export_writes_the_layer_rows_and_current_keeps_the_current_grids(run_cli, tmp_path):
    """A sweep measuring its layers, resumed with another grid: ``export`` writes every run's
    layer rows beside the runs, ``export --current`` those of the current grid's runs only."""
    from l2dynamics.sweep import load_layer_measurements

    store = tmp_path / "runs.sqlite"
    for etas in ("[0.25]", "[0.5]"):
        path = write_sweep(tmp_path / "s.toml", etas=etas, c=0.2)
        path.write_text(path.read_text().replace("[train]\n", "[train]\nmeasure_layers = true\n"))
        code, _, err = run_cli(["sweep", str(path), "--store", str(store), "--quiet"])
        assert code in (0, None), err
    stored = load_layer_measurements(store)
    target, layers_file = tmp_path / "runs.csv", tmp_path / "runs_layers.csv"
    code, out, _ = run_cli(["export", "--store", str(store), "--out", str(target)])
    assert code in (0, None) and str(layers_file) in out
    every = pd.read_csv(layers_file)
    assert len(every) == len(stored) and list(every.columns) == list(stored.columns)
    assert set(every["eta"]) == {0.25, 0.5} and every["layer"].str.endswith("/kernel").any()
    code, _, _ = run_cli(["export", "--store", str(store), "--out", str(target), "--current"])
    runs, current = pd.read_csv(target), pd.read_csv(layers_file)
    assert code in (0, None) and len(runs) == 4 and (runs["eta"] == 0.5).all()
    assert set(current["hash"]) == set(runs["hash"])
    assert len(current) == stored["hash"].isin(runs["hash"]).sum() < len(stored)


def test_conv_runs_are_planned_one_by_one_on_cpu_fc_runs_together():
    import dataclasses

    import jax

    from l2dynamics.config import ModelConfig
    from l2dynamics.sweep.chunks import Context, plan
    from l2dynamics.sweep.spec import parse_sweep, run_hash

    table = {
        "data": {"name": "digits", "n_train": 64, "n_test": 50},
        "model": {"name": "fc", "options": {"depth": 1, "width": 8}},
        "grid": {"eta": [0.5], "lam": [0.01, 0.03]},
        "budget": {"epochs": 2},
    }
    fc = parse_sweep(table).runs
    conv = ModelConfig("cnn", {"channels": 2, "dense": 4, "pool_window": 1, "pool_stride": 1})
    cnn = [dataclasses.replace(c, model=conv) for c in fc]
    chunks = plan([(run_hash(c), c) for c in (*fc, *cnn)], Context(), None)
    sizes = {
        cs.cfgs[0].model.name: [len(c.cfgs) for c in chunks if c.cfgs[0].model == cs.cfgs[0].model]
        for cs in chunks
    }
    assert sizes["fc"] == [2]
    assert sizes["cnn"] == ([1, 1] if jax.default_backend() == "cpu" else [2])


def test_a_store_written_by_0_1_0_resumes_keeping_its_runs(tmp_path):
    """The fixture store (written by 0.1.0) resumed with one more λ: its two runs are kept
    unchanged and the new run equals the same run in a fresh store."""
    import shutil
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures"
    store = tmp_path / "old.sqlite"
    shutil.copy(fixtures / "store-v0.1.0.sqlite", store)
    toml = (fixtures / "store-v0.1.0.toml").read_text().replace("[0.01, 0.1]", "[0.01, 0.1, 0.05]")
    (tmp_path / "s.toml").write_text(toml)
    before = load_measurements(store)
    report = run_sweep(load_sweep(tmp_path / "s.toml"), str(store))
    assert (report.total, report.skipped, report.done) == (3, 2, 1)
    after = load_measurements(store)
    kept = after[after["hash"].isin(set(before["hash"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before)
    fresh = tmp_path / "fresh.sqlite"
    run_sweep(load_sweep(tmp_path / "s.toml"), str(fresh))
    new = after[~after["hash"].isin(set(before["hash"]))].reset_index(drop=True)
    same = load_measurements(fresh)
    same = same[same["hash"].isin(set(new["hash"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(new, same)


@pytest.mark.parametrize("vectorize", [True, False])
def test_progress_counts_run_steps_of_the_budgets_and_runs_finished(tmp_path, vectorize):
    """The sweep's bar: run-steps trained of the runs' budgets, never going back; a run that
    stops early at its peak takes its unused budget out of the total, so the bar ends full,
    at the steps the runs trained; the runs finished beside it."""
    # c = 2: every run passes its peak well inside its budget (at c = 0.5 only two runs
    # stopped, at step 4, on a first maximum at step 1: the stop no longer takes those)
    budget = "c = 2.0\nmax_epochs = 400"
    path = write_sweep(tmp_path / "s.toml", etas="[0.5, 1.0]", budget=budget)
    path.write_text(path.read_text().replace("[train]", "[train]\npeak_stop = 1.5"))
    updates = []
    report = run_sweep(load_sweep(path), str(tmp_path / "r.sqlite"), progress=updates.append,
                       vectorize=vectorize)  # fmt: skip
    assert {u.task for u in updates} == {"sweep"} and updates[0].done == 0
    done = [u.done for u in updates]
    assert done == sorted(done) and updates[0].total > updates[-1].total  # stopped early
    steps = load_runs(tmp_path / "r.sqlite")["steps"].sum()
    assert updates[-1].done == updates[-1].total == report.steps_done == steps
    assert updates[-1].runs == (8, 8) and [u.runs[0] for u in updates][:1] == [0]


def test_a_sweep_measuring_layers_stores_them_with_each_runs_curve(tmp_path):
    """``measure_layers = true`` in a sweep file: every run's per-layer rows are in the store
    (one per tensor per curve point), and its hash differs from the run without them."""
    from l2dynamics.sweep import load_layer_measurements
    from l2dynamics.sweep.spec import run_hash

    path = write_sweep(tmp_path / "s.toml", etas="[0.5]")
    path.write_text(path.read_text().replace("[train]\n", "[train]\nmeasure_layers = true\n"))
    spec = load_sweep(path)
    store = tmp_path / "runs.sqlite"
    assert run_sweep(spec, str(store)).done == 4
    layers, curves = load_layer_measurements(store), load_measurements(store)
    per_run = layers.groupby("hash").size()
    assert (per_run == 4 * curves.groupby("hash").size()).all()  # dense_0, readout: kernel, bias
    assert set(layers["layer"]) == {"dense_0/kernel", "dense_0/bias", "readout/kernel",
                                    "readout/bias"}  # fmt: skip
    assert not layers["scale_invariant"].any()  # no BatchNorm
    plain = load_sweep(write_sweep(tmp_path / "p.toml", etas="[0.5]"))
    assert {run_hash(c) for c in plain.runs}.isdisjoint(run_hash(c) for c in spec.runs)

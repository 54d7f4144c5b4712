"""Sweeps end to end: store contents, resume, divergence, kill -9 and concurrent writers."""

import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from l2dynamics.sweep import RunStore, load_measurements, load_runs, load_sweep, run_sweep

SWEEP = """
name = "test-grid"
[data]
name = "digits"
n_train = 96
n_test = 150
[model]
name = "fc"
options = {{ depth = 1, width = 16 }}
[train]
batch_size = 32
measure_resolution = 0.1
[grid]
eta = {etas}
lam = [0.01, 0.03]
seeds = [0, 1]
[budget]
{budget}
"""


def write_sweep(path, etas="[0.2, 0.5, 1.0]", c=0.5, budget=None):
    budget = budget or f"c = {c}\nmax_epochs = 400"
    path.write_text(SWEEP.format(etas=etas, budget=budget))
    return path


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


def test_kill_minus_nine_and_resume_gives_the_uninterrupted_results(tmp_path):
    sweep_file = write_sweep(tmp_path / "s.toml", etas="[0.2, 0.5, 1.0]", c=2.0)
    text = sweep_file.read_text().replace("width = 16", "width = 256").replace("96", "256")
    sweep_file.write_text(text)  # runs of about a second each, so kills land mid-sweep
    reference = tmp_path / "ref.sqlite"
    run_sweep(load_sweep(sweep_file), str(reference), vectorize=False)
    store = tmp_path / "killed.sqlite"
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(3):  # each time: let at least one more run finish, then kill at a random moment
        proc = subprocess.Popen(
            _cli("sweep", str(sweep_file), "--store", str(store), "--quiet"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while proc.poll() is None and _finished(store) <= finished:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished = _finished(store)
    assert 0 < finished < 12, "the kills should have interrupted the sweep part-way"
    done = subprocess.run(
        _cli("sweep", str(sweep_file), "--store", str(store), "--quiet"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    got = load_runs(store).set_index("hash").sort_index()
    ref = load_runs(reference).set_index("hash").sort_index()
    assert list(got.index) == list(ref.index) and len(got) == 12
    assert set(got["status"]) == {"done"}
    np.testing.assert_array_equal(got["t_star_epochs"], ref["t_star_epochs"])
    np.testing.assert_allclose(got["best_test_acc"], ref["best_test_acc"], atol=1e-6)
    counts = load_measurements(store).groupby("hash").size().sort_index()
    ref_counts = load_measurements(reference).groupby("hash").size().sort_index()
    assert counts.equals(ref_counts)  # no run's measurements are stored twice


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
    budget = "c = 0.5\nmax_epochs = 400"
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

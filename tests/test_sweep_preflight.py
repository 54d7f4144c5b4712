"""Validate everything, then write: bad data, executors and output paths are refused in one
line (exit 2) before a store is created or touched and before any training; a damaged store
says so; outputs take the umask's permissions."""

import os
import sys

import pytest

from l2dynamics.errors import L2DynError
from l2dynamics.sweep import RunStore, load_runs, load_sweep, run_sweep

SWEEP = """
name = "s"
[data]
name = "{data}"
n_train = {n_train}
n_test = 100
{data_extra}
[model]
name = "fc"
options = {{ depth = 1, width = 8 }}
[train]
batch_size = {batch}
measure_resolution = 0.2
[grid]
eta = [0.2, 0.5]
lam = [0.01]
seeds = [0]
[budget]
epochs = 1
"""


def sweep_file(path, data="digits", n_train=64, batch=32, data_extra=""):
    path.write_text(SWEEP.format(data=data, n_train=n_train, batch=batch, data_extra=data_extra))
    return path


def one_line_exit_2(result, *culprits):
    code, stdout, stderr = result
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("l2dyn: error:"), stderr
    for culprit in culprits:
        assert culprit in lines[0]


def state(store):
    with RunStore(store, create=False) as s:
        return [(r.hash, r.status) for r in s.runs()]


@pytest.mark.parametrize(
    "kwargs, culprits",
    [
        ({"data": "imagenet"}, ["unknown data set 'imagenet'"]),
        ({"n_train": 5000}, ["n_train", "5000"]),
        ({"batch": 65}, ["train.batch_size 65 is larger", "(data.n_train)"]),
        ({"data": "mnist", "data_extra": 'data_dir = "{corrupt}"'}, ["train-images"]),
    ],
)
def test_data_errors_leave_no_store_and_no_ghost_runs(run_cli, tmp_path, kwargs, culprits):
    corrupt = tmp_path / "mnist"
    corrupt.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (corrupt / name).write_bytes(b"\x00\x00\x08\x03junk")
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (corrupt / name).write_bytes(b"\x00\x00\x08\x03junk")
    kwargs = {k: v.format(corrupt=corrupt) if isinstance(v, str) else v for k, v in kwargs.items()}
    bad = sweep_file(tmp_path / "bad.toml", **kwargs)
    store = tmp_path / "runs.sqlite"
    one_line_exit_2(run_cli(["sweep", str(bad), "--store", str(store), "--quiet"]), *culprits)
    assert not store.exists() and not (tmp_path / "runs.sqlite.lock").exists()
    # an existing store is left exactly as it was: no run registered queued
    run_sweep(load_sweep(sweep_file(tmp_path / "good.toml")), str(store))
    before = state(store)
    one_line_exit_2(run_cli(["sweep", str(bad), "--store", str(store), "--quiet"]), *culprits)
    assert state(store) == before


def test_ray_missing_is_refused_before_the_store_is_made(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    store = tmp_path / "runs.sqlite"
    argv = ["sweep", str(sweep_file(tmp_path / "s.toml")), "--store", str(store), "--quiet"]
    one_line_exit_2(run_cli([*argv, "--executor", "ray"]), "needs Ray")
    assert not store.exists()


@pytest.mark.parametrize(
    "options, culprit",
    [
        (["--gpus-per-task", "1"], "add --executor ray"),
        (["--executor", "ray", "--gpus-per-task", "1.5"], "--gpus-per-task 1.5"),
    ],
)
def test_bad_gpu_requests_are_refused_before_the_store_is_made(run_cli, tmp_path, options, culprit):
    if "ray" in options:
        pytest.importorskip("ray")
    store = tmp_path / "runs.sqlite"
    argv = ["sweep", str(sweep_file(tmp_path / "s.toml")), "--store", str(store), "--quiet"]
    one_line_exit_2(run_cli([*argv, *options]), culprit)
    assert not store.exists()


def test_a_gpu_request_without_ray_is_refused_before_a_figure_directory_is_made(run_cli, tmp_path):
    out = tmp_path / "fig"
    argv = ["reproduce", "quickstart", "--out", str(out), "--gpus-per-task", "1", "--quiet"]
    one_line_exit_2(run_cli(argv), "add --executor ray")
    assert not out.exists()


TRAIN = ["train", "--n-train", "64", "--n-test", "100", "--depth", "1", "--width", "8"]
TRAIN += ["--epochs", "1", "--quiet"]


def test_bad_output_paths_are_refused_before_any_work(run_cli, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    a_dir = tmp_path / "dir"
    a_dir.mkdir()
    one_line_exit_2(run_cli([*TRAIN, "--out", str(a_dir)]), "--out", "is a directory")
    inside = a_file / "c.csv"
    one_line_exit_2(run_cli([*TRAIN, "--out", str(inside)]), f"{a_file} is not a directory")
    missing = tmp_path / "no" / "c.csv"
    one_line_exit_2(run_cli([*TRAIN, "--out", str(missing)]), "does not exist")
    for command in (["quickstart"], ["reproduce", "fig2"]):
        result = run_cli([*command, "--out", str(a_file), "--quiet"])
        one_line_exit_2(result, "--out", "is a file, not a directory")
    sweep = sweep_file(tmp_path / "s.toml")
    one_line_exit_2(run_cli(["sweep", str(sweep), "--store", str(a_dir)]), "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file.txt", "s.toml"]


def test_export_refuses_bad_targets_and_mismatched_formats(run_cli, tmp_path):
    store = tmp_path / "runs.sqlite"
    run_sweep(load_sweep(sweep_file(tmp_path / "s.toml")), str(store))
    base = ["export", "--store", str(store)]
    one_line_exit_2(run_cli([*base, "--out", str(tmp_path)]), "is a directory")
    result = run_cli([*base, "--format", "parquet", "--out", str(tmp_path / "runs.csv")])
    one_line_exit_2(result, "--format parquet does not match --out")
    code, out, _ = run_cli([*base, "--out", str(tmp_path / "runs.parquet")])
    assert code == 0 and (tmp_path / "runs_measurements.parquet").exists()
    assert str(tmp_path / "runs_layers.parquet") in out  # in the "wrote ..." line
    assert (tmp_path / "runs_layers.parquet").exists()
    assert (tmp_path / "runs.parquet").read_bytes()[:4] == b"PAR1"  # the suffix chose it
    assert not list(tmp_path.glob("*.csv"))
    (tmp_path / "r_layers.csv").mkdir()  # the layers file's name is taken: checked first
    one_line_exit_2(run_cli([*base, "--out", str(tmp_path / "r.csv")]), "its layers file")
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "r_measurements.csv").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_unwritable_directory_is_refused(run_cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_line_exit_2(run_cli([*TRAIN, "--out", str(locked / "c.csv")]), "cannot write in")


def damage(path):
    """Overwrite one whole page in the middle of the file with garbage."""
    size, page = path.stat().st_size, 4096
    assert size >= 4 * page
    with open(path, "r+b") as f:
        f.seek((size // page // 2) * page)
        f.write(b"\xa5" * page)


def test_a_damaged_store_is_one_line_everywhere(run_cli, tmp_path):
    spec_file = sweep_file(tmp_path / "s.toml")
    store = tmp_path / "runs.sqlite"
    run_sweep(load_sweep(spec_file), str(store))
    with RunStore(store, create=False) as s:  # pad it with curve rows: several pages
        for r in s.runs():
            s.record_result(r.hash, "done", {}, _long_curve())
    damage(store)
    one_line_exit_2(run_cli(["status", "--store", str(store)]), "damaged")
    one_line_exit_2(run_cli(["sweep", str(spec_file), "--store", str(store)]), "damaged")
    result = run_cli(["export", "--store", str(store), "--out", str(tmp_path / "r.csv")])
    one_line_exit_2(result, "damaged")
    assert not (tmp_path / "r.csv").exists()
    with pytest.raises(L2DynError, match="damaged"):
        load_runs(store)


def _long_curve():
    import numpy as np

    from l2dynamics.sweep.store import MEASUREMENT_COLUMNS

    n = 2000
    curve = {c: np.linspace(0, 1, n) for c in MEASUREMENT_COLUMNS}
    curve["step"] = np.arange(n)
    return curve


def test_outputs_take_the_umask_permissions(run_cli, tmp_path):
    old = os.umask(0o027)
    try:
        store = tmp_path / "runs.sqlite"
        sweep = sweep_file(tmp_path / "s.toml")
        assert run_cli(["sweep", str(sweep), "--store", str(store), "--quiet"])[0] == 0
        assert run_cli(["export", "--store", str(store), "--out", str(tmp_path / "r.csv")])[0] == 0
        assert run_cli([*TRAIN, "--out", str(tmp_path / "c.csv")])[0] == 0
    finally:
        os.umask(old)
    written = ["runs.sqlite", "runs.sqlite.lock", "r.csv", "r_measurements.csv", "r_layers.csv",
               "c.csv"]  # fmt: skip
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in written}
    assert modes == dict.fromkeys(written, 0o640)

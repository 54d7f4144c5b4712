"""The Ray executor on a real local Ray cluster (skipped when Ray is not installed)."""

import numpy as np
import pytest

from l2dynamics.sweep import load_measurements, load_runs, load_sweep, run_sweep

ray = pytest.importorskip("ray")

SWEEP = """
name = "ray-grid"
[data]
name = "digits"
n_train = 64
n_test = 100
[model]
name = "fc"
options = { depth = 1, width = 16 }
[train]
batch_size = 32
measure_resolution = 0.1
[grid]
eta = [0.3, 1.0]
lam = [0.01, 0.03]
seeds = [0]
[budget]
c = 0.5
max_epochs = 100
"""


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("vectorize", [True])  # one-by-one (4 tasks) passes too, at 80 s
def test_ray_store_equals_local_store(cluster, tmp_path, vectorize):
    path = tmp_path / "s.toml"
    path.write_text(SWEEP)
    sweep = load_sweep(path)
    local, remote = tmp_path / "local.sqlite", tmp_path / "ray.sqlite"
    run_sweep(sweep, str(local), vectorize=vectorize)
    report = run_sweep(sweep, str(remote), vectorize=vectorize, executor="ray")
    assert (report.done, report.failed) == (4, 0)
    a = load_runs(local).drop(columns=["wall_s"]).set_index("hash").sort_index()
    b = load_runs(remote).drop(columns=["wall_s"]).set_index("hash").sort_index()
    assert a.index.equals(b.index) and (b["status"] == "done").all()
    for column in a.columns:
        if a[column].dtype.kind == "f":
            np.testing.assert_array_equal(a[column], b[column], err_msg=column)
        else:
            assert a[column].equals(b[column]), column
    ma = load_measurements(local).sort_values(["hash", "step"]).reset_index(drop=True)
    mb = load_measurements(remote).sort_values(["hash", "step"]).reset_index(drop=True)
    np.testing.assert_array_equal(
        ma.drop(columns="hash").to_numpy(), mb.drop(columns="hash").to_numpy()
    )

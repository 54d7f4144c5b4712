"""The Ray executor on a real local Ray cluster (skipped when Ray is not installed): its stores
equal the local executor's, a worker killed mid-task is retried and leaves the store as if
nothing happened, a task that fails every try marks its runs failed and the sweep goes on, and
each task asks for the GPUs the cluster offers (two GPUs declared to Ray; JAX stays on the CPU
here, so they only test what the tasks are given). Workers never open the store. The tests
that need a cluster skip where Ray is not installed."""

import json
import os
import sys

import numpy as np
import pytest

from l2dynamics.errors import L2DynError
from l2dynamics.sweep import load_measurements, load_runs, load_sweep, ray_executor, run_sweep
from l2dynamics.sweep.ray_executor import MAX_RETRIES, task_options

SWEEP = """
name = "ray-grid"
[data]
name = "digits"
n_train = 64
n_test = 100
[model]
name = "fc"
options = {{ depth = 1, width = 16 }}
[train]
batch_size = 32
measure_resolution = 0.1
[grid]
eta = {eta}
lam = [0.01, 0.03]
seeds = [0]
[budget]
c = 0.5
max_epochs = 100
"""


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        num_gpus=2,  # declared, not real: GPU tasks get CUDA_VISIBLE_DEVICES, JAX stays on CPU
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    # the task bodies below travel to the workers by value (the workers cannot import tests/)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def sweep_of(tmp_path, eta):
    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(eta=eta))
    return load_sweep(path)


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory):
    """Two runs (two chunks, one by one) and their store from the local executor."""
    tmp_path = tmp_path_factory.mktemp("local")
    sweep = sweep_of(tmp_path, "[0.5]")
    store = tmp_path / "local.sqlite"
    run_sweep(sweep, str(store), vectorize=False)
    return sweep, store


def assert_same_results(local, remote, hashes=None):
    """The runs ``hashes`` (default all) of two stores hold equal results and curves."""
    a = load_runs(local).drop(columns=["wall_s"]).set_index("hash").sort_index()
    b = load_runs(remote).drop(columns=["wall_s"]).set_index("hash").sort_index()
    hashes = sorted(hashes if hashes is not None else a.index)
    a, b = a.loc[hashes], b.loc[hashes]
    assert a.index.equals(b.index) and (b["status"] == "done").all()
    assert a.pop("error").isna().all() and b.pop("error").isna().all()
    for column in a.columns:
        if a[column].dtype.kind == "f":
            np.testing.assert_array_equal(a[column], b[column], err_msg=column)
        else:
            assert a[column].equals(b[column]), column
    ma, mb = load_measurements(local), load_measurements(remote)
    ma, mb = ma[ma["hash"].isin(hashes)], mb[mb["hash"].isin(hashes)]
    ma = ma.sort_values(["hash", "step"]).reset_index(drop=True)
    mb = mb.sort_values(["hash", "step"]).reset_index(drop=True)
    assert len(ma) > len(hashes)
    np.testing.assert_array_equal(
        ma.drop(columns="hash").to_numpy(), mb.drop(columns="hash").to_numpy()
    )


def watched_task(log, *, die_once=None, fail=None):
    """A task body around the product's, for the tests only: it logs each attempt (its worker's
    pid, GPUs and JAX platform) to the file ``log``, makes SQLite refuse to open (workers must
    not write the store), and then either dies mid-task (``os._exit`` once its first run has
    trained, on the first attempt to create the file ``die_once``), raises on every try (the
    chunk holding the run ``fail``), or trains the chunk as the product does."""

    def task(chunk):
        import sqlite3

        import ray as worker_ray

        from l2dynamics.sweep import ray_executor as worker_executor

        def note(**entry):
            with open(log, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")

        def no_store(*args, **kwargs):
            raise AssertionError("a Ray worker opened a database")

        sqlite3.connect = no_store
        gpus = [str(g) for g in worker_ray.get_gpu_ids()]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        note(hashes=list(chunk.hashes), gpus=gpus, visible=visible,
             jax_platforms=os.environ.get("JAX_PLATFORMS"))  # fmt: skip
        if fail in chunk.hashes:
            raise RuntimeError("this chunk fails on every try")
        if die_once is not None:
            try:
                os.close(os.open(die_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass  # another attempt died already
            else:
                train = worker_executor.train_chunk

                def dying(chunk, ctx, on_result, *args, **kwargs):
                    def die(run_hash, result):
                        note(died=run_hash)
                        os._exit(1)

                    train(chunk, ctx, die, *args, **kwargs)

                worker_executor.train_chunk = dying
        return worker_executor.train_chunk_task(chunk)

    return task


def attempts(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("vectorize", [True])  # one-by-one (4 tasks) passes too, at 80 s
def test_ray_store_equals_local_store(cluster, tmp_path, vectorize, monkeypatch):
    sweep = sweep_of(tmp_path, "[0.3, 1.0]")
    local, remote = tmp_path / "local.sqlite", tmp_path / "ray.sqlite"
    run_sweep(sweep, str(local), vectorize=vectorize)
    log = tmp_path / "attempts.jsonl"
    monkeypatch.setattr(ray_executor, "train_chunk_task", watched_task(str(log)))
    report = run_sweep(sweep, str(remote), vectorize=vectorize, executor="ray", gpus_per_task=0)
    assert (report.done, report.failed) == (4, 0)
    assert_same_results(local, remote)
    for entry in attempts(log):  # CPU tasks on a GPU cluster: no GPU, JAX on the CPU
        assert entry["gpus"] == [] and entry["jax_platforms"] == "cpu", entry


@pytest.mark.slow
def test_a_worker_killed_mid_task_is_retried_and_the_store_ends_as_uninterrupted(
    cluster, one_by_one, tmp_path, monkeypatch
):
    sweep, local = one_by_one
    log, marker = tmp_path / "attempts.jsonl", tmp_path / "died"
    monkeypatch.setattr(ray_executor, "train_chunk_task", watched_task(str(log), die_once=marker))
    remote = tmp_path / "ray.sqlite"
    report = run_sweep(sweep, str(remote), vectorize=False, executor="ray")
    assert marker.exists()  # a worker did die
    assert (report.done, report.failed) == (2, 0)
    assert_same_results(local, remote)
    tries = attempts(log)
    died = [entry for entry in tries if "died" in entry]
    starts = [entry for entry in tries if "hashes" in entry]
    assert len(died) == 1 and len(starts) == 3  # two chunks, one of them twice
    again = [e for e in starts if died[0]["died"] in e["hashes"]]
    assert len(again) == 2 and again[0]["pid"] != again[1]["pid"]
    for entry in starts:  # on a GPU cluster each task is given one GPU, and sees it
        assert len(entry["gpus"]) == 1 and entry["visible"] == entry["gpus"][0], entry
        assert entry["jax_platforms"] is None


@pytest.mark.slow
def test_a_task_failing_every_try_marks_its_runs_failed_and_the_sweep_goes_on(
    cluster, one_by_one, tmp_path, monkeypatch
):
    sweep, local = one_by_one
    doomed, *others = sorted(load_runs(local)["hash"])
    log = tmp_path / "attempts.jsonl"
    monkeypatch.setattr(ray_executor, "train_chunk_task", watched_task(str(log), fail=doomed))
    remote = tmp_path / "ray.sqlite"
    report = run_sweep(sweep, str(remote), vectorize=False, executor="ray", gpus_per_task=0)
    assert (report.done, report.failed) == (len(others), 1)
    runs = load_runs(remote).set_index("hash")
    assert runs.loc[doomed, "status"] == "failed"
    assert "this chunk fails on every try" in runs.loc[doomed, "error"]
    assert (load_measurements(remote)["hash"] != doomed).all()
    assert_same_results(local, remote, others)
    tries = [entry for entry in attempts(log) if doomed in entry["hashes"]]
    assert len(tries) == 1 + MAX_RETRIES


def test_a_ray_driver_keeps_its_jax_off_the_gpus(monkeypatch):
    from l2dynamics import cli

    monkeypatch.setenv("JAX_PLATFORMS", "")
    monkeypatch.delenv("JAX_PLATFORMS")  # restored as unset afterwards
    monkeypatch.delitem(sys.modules, "jax")  # as when `l2dyn` starts: JAX not imported yet
    cli._ray_driver("local")
    assert "JAX_PLATFORMS" not in os.environ
    cli._ray_driver("ray")
    assert os.environ["JAX_PLATFORMS"] == "cpu"
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")  # the user's choice stands
    cli._ray_driver("ray")
    assert os.environ["JAX_PLATFORMS"] == "cuda"


def test_more_gpus_than_the_cluster_has_are_refused_before_the_store_is_made(cluster, tmp_path):
    store = tmp_path / "ray.sqlite"
    with pytest.raises(L2DynError, match="asks for 3 GPUs .* the Ray cluster has 2"):
        run_sweep(sweep_of(tmp_path, "[0.5]"), str(store), executor="ray", gpus_per_task=3)
    assert not store.exists()


@pytest.mark.parametrize(
    "resources, gpus, asked",
    [
        ({"CPU": 8}, None, (1, 0)),
        ({"CPU": 8, "GPU": 4}, None, (1, 1)),
        ({"CPU": 8, "GPU": 4}, 0, (1, 0)),
        ({"CPU": 8, "GPU": 4}, 0.25, (1, 0.25)),
        ({"CPU": 8, "GPU": 4}, 2, (1, 2)),
    ],
)
def test_tasks_ask_for_a_gpu_where_the_cluster_has_them(resources, gpus, asked):
    options = task_options(resources, gpus)
    assert (options["num_cpus"], options["num_gpus"]) == asked
    env = options.get("runtime_env", {}).get("env_vars", {})
    if asked[1] == 0:  # Ray leaves CUDA_VISIBLE_DEVICES alone: keep JAX off the node's GPUs
        assert env == {"JAX_PLATFORMS": "cpu"} and "max_calls" not in options
    else:  # a fresh worker per GPU task, so that its JAX starts on the GPUs it is given
        assert options["max_calls"] == 1 and "JAX_PLATFORMS" not in env
    if 0 < asked[1] < 1:  # tasks sharing a GPU preallocate their share of its memory only
        assert float(env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == pytest.approx(0.75 * asked[1])


@pytest.mark.parametrize(
    "resources, gpus, culprit",
    [({"CPU": 8}, 1, "cluster has 0"), ({"GPU": 1}, 2, "cluster has 1"), ({"GPU": 4}, 1.5, "1.5")],
)
def test_gpu_requests_ray_cannot_schedule_are_refused(resources, gpus, culprit):
    with pytest.raises(L2DynError, match=culprit):
        task_options(resources, gpus)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


@pytest.mark.parametrize(
    "address, message",
    [
        ("127.0.0.1:{closed}", "no Ray cluster answers there"),
        ("ray://127.0.0.1:{closed}", "no Ray cluster answers there"),
        ("nonsense", "not HOST:PORT"),
        ("10.0.0.1:port", "not HOST:PORT"),
    ],
)
def test_a_bad_cluster_address_is_one_line_before_the_store_is_made(
    tmp_path, monkeypatch, address, message
):
    """Ray alone retries an address where nothing listens for minutes, then prints its own
    traceback; the sweep refuses it in one line naming --address, and writes nothing."""
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh `l2dyn sweep`
    monkeypatch.setattr(ray, "init", lambda **kw: pytest.fail("ray.init reached"))
    store = tmp_path / "ray.sqlite"
    address = address.format(closed=_closed_port())
    with pytest.raises(L2DynError, match=f"--address {address}: {message}"):
        run_sweep(sweep_of(tmp_path, "[0.5]"), str(store), executor="ray", address=address)
    assert not store.exists()


def test_an_address_that_answers_is_left_to_ray():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        ray_executor.check_address(f"127.0.0.1:{server.getsockname()[1]}")
    for address in (None, "auto", "local"):
        ray_executor.check_address(address)

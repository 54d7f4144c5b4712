"""`l2dyn status` tells a live sweep from a dead one and lists the best runs; Ctrl-C and
SIGTERM stop a sweep saying how to resume, with no run left `running`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import l2dynamics
from l2dynamics import cli
from l2dynamics.sweep import RunStore, load_sweep, run_sweep
from l2dynamics.sweep.store import MEASUREMENT_COLUMNS, writer_alive


def curve(n=3):
    out = {c: np.linspace(0.1, 0.9, n) for c in MEASUREMENT_COLUMNS}
    out["step"] = np.arange(n)
    return out


def fake_store(path, statuses):
    """A store with one run per status given (run i: η = i + 1), finished runs with a best
    test accuracy of η/10."""
    with RunStore(path) as store:
        runs = [(f"h{i}", {"eta": i + 1.0, "lam": 0.01, "seed": 0}) for i in range(len(statuses))]
        store.add_runs(runs)
        for (h, cfg), status in zip(runs, statuses, strict=True):
            if status == "running":
                store.mark_running([h])
            elif status == "done":
                summary = {"best_test_acc": cfg["eta"] / 10, "t_star_epochs": 3.0}
                store.record_result(h, "done", summary, curve())


def test_running_runs_of_a_dead_sweep_are_interrupted_and_of_a_live_one_running(run_cli, tmp_path):
    store = tmp_path / "runs.sqlite"
    fake_store(store, ["done", "running", "running", "queued", "done"])
    assert not writer_alive(store)
    code, out, _ = run_cli(["status", "--store", str(store), "--json"])
    state = json.loads(out)
    assert code == 0 and not state["live"]
    assert state["counts"]["interrupted"] == 2 and state["counts"]["running"] == 0
    assert [b["eta"] for b in state["best"]] == [5.0, 1.0]
    assert state["best"][0] == {
        "hash": "h4",
        "status": "done",
        "eta": 5.0,
        "lam": 0.01,
        "seed": 0,
        "best_test_acc": 0.5,
        "t_star_epochs": 3.0,
    }
    _, text, _ = run_cli(["status", "--store", str(store)])
    assert "interrupted 2" in text and "\n  running" not in text
    assert "eta=5 " in text and "t*=3 epochs" in text
    with RunStore(store, create=False, lock=True):  # a sweep holds the lock: alive
        assert writer_alive(store)
        state = json.loads(run_cli(["status", "--store", str(store), "--json"])[1])
        assert state["live"] and state["counts"]["running"] == 2
        assert state["counts"]["interrupted"] == 0
    assert not writer_alive(store)


SWEEP = """
name = "s"
[data]
name = "digits"
n_train = 64
n_test = 100
[model]
name = "fc"
options = {{ depth = 1, width = 8 }}
[train]
batch_size = 16
measure_resolution = 0.2
[grid]
eta = [0.1, 0.2, 0.3]
lam = [0.01]
seeds = [0]
[budget]
epochs = {epochs}
"""


def test_an_interrupted_sweep_leaves_no_run_running(tmp_path):
    (tmp_path / "s.toml").write_text(SWEEP.format(epochs=1))
    store = tmp_path / "runs.sqlite"

    def stop_after_the_first(update):
        if update.task == "sweep" and update.runs[0] >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_sweep(tmp_path / "s.toml"), str(store), progress=stop_after_the_first,
                  vectorize=False)  # fmt: skip
    with RunStore(store, create=False) as s:
        counts = s.counts()
    assert counts["running"] == 0 and counts["done"] == 1 and counts["queued"] == 2


def exit_normally(code):
    raise SystemExit(code)


def test_ctrl_c_prints_the_command_that_resumes(run_cli, tmp_path, monkeypatch):
    from l2dynamics.sweep import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_sweep", interrupted)
    monkeypatch.setattr(cli, "_leave", exit_normally)  # os._exit would end pytest
    (tmp_path / "my sweep.toml").write_text(SWEEP.format(epochs=1))
    argv = ["sweep", str(tmp_path / "my sweep.toml"), "--store", str(tmp_path / "r.sqlite")]
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or Ray's after a test that ran Ray
    code, _, stderr = run_cli([*argv, "--quiet"])
    assert code == 130
    assert "stopped by Ctrl-C" in stderr
    assert (
        f"Resume with: l2dyn sweep '{tmp_path}/my sweep.toml' --store {tmp_path}/r.sqlite" in stderr
    )
    assert cli.signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_sigterm_stops_a_sweep_saying_how_to_resume(tmp_path):
    (tmp_path / "s.toml").write_text(SWEEP.format(epochs=5000))
    store = tmp_path / "runs.sqlite"
    argv = [sys.executable, "-m", "l2dynamics", "sweep", "s.toml", "--store", "runs.sqlite"]
    env = os.environ | {"PYTHONPATH": str(Path(l2dynamics.__file__).parents[1])}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _running(store):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr
    assert "Resume with: l2dyn sweep s.toml --store runs.sqlite" in stderr
    with RunStore(store, create=False) as s:
        assert s.counts()["running"] == 0


def _running(store):
    if not store.exists():
        return False
    with RunStore(store, create=False) as s:
        return s.counts()["running"] > 0

"""Experiment files and the sweep-figure pipeline (a tiny experiment end to end)."""

import json

import numpy as np
import pandas as pd
import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.experiments import FIGURES, ReproduceRequest
from l2dynamics.experiments.kinds import _compare_setting, epochs_to_near_best, epochs_to_reach
from l2dynamics.experiments.spec import experiment_names, load_experiment, merge
from l2dynamics.experiments.sweep_figure import run_experiment

TINY = """
[experiment]
figure = "tiny"
title = "Tiny scaling check"
kind = "scaling"
predict_budget_epochs = 100
predict_eta = 1.0

[sweep.data]
name = "digits"
n_train = 64
n_test = 100

[sweep.model]
name = "fc"
options = { depth = 1, width = 64 }

[sweep.train]
measure_resolution = 0.2

[sweep.grid]
eta = [1.0, 2.0, 4.0, 8.0]
lam = [0.002, 0.005]

[sweep.budget]
c = 2.0

[cpu.model]
options = { width = 32 }
"""


def test_merge_is_deep_and_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    out = merge(base, {"a": {"b": 5}, "d": [2]})
    assert out == {"a": {"b": 5, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


def test_cpu_scale_overrides_the_paper_scale():
    paper = load_experiment("tiny", "paper", text=TINY)
    cpu = load_experiment("tiny", "cpu", text=TINY)
    assert paper.sweeps[0][1].runs[0].model.options["width"] == 64
    assert cpu.sweeps[0][1].runs[0].model.options["width"] == 32
    assert cpu.sweeps[0][1].runs[0].model.options["depth"] == 1
    with pytest.raises(ConfigError, match="scale"):
        load_experiment("tiny", "huge", text=TINY)


def test_every_experiment_file_parses_at_both_scales():
    for name in experiment_names():
        for scale in ("cpu", "paper"):
            exp = load_experiment(name, scale)
            assert exp.sweeps and all(len(s.runs) for _, s in exp.sweeps)
        assert name in FIGURES, f"{name} has a file but no runner"


def test_tiny_experiment_end_to_end(tmp_path):
    exp = load_experiment("tiny", "cpu", text=TINY)
    seen = []
    request = ReproduceRequest("tiny", "cpu", tmp_path, progress=lambda *a: seen.append(a))
    summary = run_experiment(exp, request)
    assert summary["n_runs"] == 8 and summary["n_runs_from_store"] == 0 and seen
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["n_runs"] == 8 and "slope" in on_disk
    for name in ("tiny.png", "runs.csv", "best_acc_vs_lam.csv", "report.html", "store.sqlite"):
        assert (tmp_path / name).stat().st_size > 0, name
    again = run_experiment(exp, request)  # resumes: nothing left to train
    assert again["n_runs"] == 8 and again["n_runs_from_store"] == 8


@pytest.fixture
def tiny_experiment(monkeypatch):
    """Make every experiment the tiny one (the CLI plumbing is what these tests check)."""
    import l2dynamics.experiments.sweep_figure as sf

    monkeypatch.setattr(
        sf,
        "load_experiment",
        lambda figure, scale, data_dir=None: load_experiment("tiny", scale, data_dir, text=TINY),
    )


def test_quickstart_command_end_to_end(run_cli, tmp_path, tiny_experiment):
    out = tmp_path / "qs"
    code, stdout, stderr = run_cli(["quickstart", "--out", str(out), "--quiet"])
    assert code in (0, None), stderr
    assert "slope" in stdout and "predicted λ" in stdout and "report.html" in stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("slope", "c", "n_runs", "wall_s", "report", "lam_pred"):
        assert key in summary


def test_reproduce_command_json_and_bad_figure(run_cli, tmp_path, tiny_experiment):
    code, stdout, _ = run_cli(
        ["reproduce", "fig2", "--out", str(tmp_path / "f"), "--json", "--quiet"]
    )
    assert code in (0, None) and json.loads(stdout)["n_runs"] == 8
    code, stdout, stderr = run_cli(["reproduce", "fig99", "--out", str(tmp_path / "g")])
    assert code == 2 and "fig99" in stderr and not (tmp_path / "g").exists()


TINY_AUTOL2 = """
[experiment]
figure = "tinyauto"
title = "Tiny AutoL2 comparison"
kind = "autol2"

[sweep.data]
name = "digits"
n_train = 64
n_test = 100

[sweep.model]
name = "fc"
options = { depth = 1, width = 32 }

[sweep.train]
measure_resolution = 0.2

[sweep.grid]
eta = [1.0]
lam = [0.1]

[sweep.budget]
epochs = 60

[[variants]]
label = "fc/autol2"
train = { autol2 = true, autol2_period = 2 }

[[variants]]
label = "fc/fixed"
grid = { lam = [0.001, 0.01] }
"""


def test_epochs_to_near_best_is_the_first_epoch_within_tol():
    curves = pd.DataFrame(
        {
            "hash": ["a"] * 5 + ["b"] * 3,
            "epoch": [1, 2, 4, 8, 16, 1, 2, 4],
            "test_acc": [0.5, 0.795, 0.80, 0.81, 0.79, 0.3, 0.3, 0.3],
        }
    )
    got = epochs_to_near_best(curves, 0.012)
    assert got["a"] == 4.0  # 0.80 ≥ 0.81 − 0.012; 0.795 is not
    assert got["b"] == 1.0


def _autol2_frames():
    # AutoL2 (hash a) stalls at 0.15 from epoch 1: within 0.005 of its own best at once, yet it
    # never comes near the best fixed λ's 0.80, which seed b reaches at epoch 8.
    rows = pd.DataFrame(
        {
            "hash": ["a", "b", "c", "d"],
            "mode": ["autol2", "fixed", "fixed", "autol2 λ0=0.01"],
            "lam": [0.1, 1e-3, 1e-2, 0.01],
            "seed": [0, 0, 0, 0],
            "best_test_acc": [0.15, 0.80, 0.70, 0.82],
            "near_best_epochs": [1.0, 8.0, 4.0, 4.0],
        }
    )
    curves = pd.DataFrame(
        {
            "hash": list("aaa") + list("bbb") + list("ccc") + list("ddd"),
            "step": [0, 1, 2] * 4,
            "epoch": [0.0, 1.0, 8.0] * 4,
            "test_acc": [0.1, 0.15, 0.15, 0.1, 0.5, 0.8, 0.1, 0.7, 0.6, 0.1, 0.82, 0.8],
            "lam_now": [0.1, 0.01, 0.001, 1e-3, 1e-3, 1e-3, 1e-2, 1e-2, 1e-2, 0.01, 0.01, 0.001],
        }
    )
    return rows, curves


def test_a_dead_autol2_run_is_not_faster_than_the_fixed_grid():
    rows, curves = _autol2_frames()
    assert epochs_to_reach(curves, 0.795).to_dict() == pytest.approx(
        {"a": float("nan"), "b": 8.0, "c": float("nan"), "d": 1.0}, nan_ok=True
    )
    got = _compare_setting(rows, curves, 0.005)
    assert got["best_fixed_lam"] == 1e-3 and got["autol2_epochs_to_within_0.005"] == 1.0
    assert got["autol2_epochs_to_fixed_best_within_0.005"] is None
    assert got["fixed_epochs_to_fixed_best_within_0.005"] == 8.0
    assert not got["autol2_faster"] and not got["as_good_and_faster"]
    assert got["autol2_final_lam_by_seed"] == {"0": 0.001}
    other = got["other_autol2"]["autol2 λ0=0.01"]
    assert other["epochs_to_fixed_best"] == 1.0 and other["faster"]


def test_seeds_are_compared_with_their_own_partner():
    # The best fixed λ (mean 0.75) has seeds at 0.80 (within 0.005 at epoch 1) and 0.70 (at
    # epoch 8): 4.5 epochs on average. AutoL2 seed 0 reaches 0.795 at epoch 8 and seed 1
    # reaches 0.695 at epoch 1: 4.5 epochs too, so it is not faster; with seed 0 at epoch 1
    # instead, it is (1 epoch on average).
    rows = pd.DataFrame(
        {
            "hash": ["a0", "a1", "f0", "f1"],
            "mode": ["autol2", "autol2", "fixed", "fixed"],
            "lam": [0.1, 0.1, 1e-3, 1e-3],
            "seed": [0, 1, 0, 1],
            "best_test_acc": [0.80, 0.70, 0.80, 0.70],
            "near_best_epochs": [8.0, 1.0, 1.0, 8.0],
        }
    )
    curves = pd.DataFrame(
        {
            "hash": ["a0", "a0", "a1", "a1", "f0", "f0", "f1", "f1"],
            "step": [0, 1] * 4,
            "epoch": [1.0, 8.0] * 4,
            "test_acc": [0.5, 0.8, 0.7, 0.7, 0.8, 0.8, 0.6, 0.7],
            "lam_now": [0.1, 0.01, 0.1, 0.01, 1e-3, 1e-3, 1e-3, 1e-3],
        }
    )
    got = _compare_setting(rows, curves, 0.005)
    assert got["fixed_epochs_to_fixed_best_within_0.005"] == 4.5
    assert got["autol2_epochs_to_fixed_best_within_0.005"] == 4.5
    assert got["autol2_at_least_as_good"] and not got["autol2_faster"]
    curves.loc[0, "test_acc"] = 0.8  # AutoL2 seed 0 now there at epoch 1
    got = _compare_setting(rows, curves, 0.005)
    assert got["autol2_epochs_to_fixed_best_within_0.005"] == 1.0
    assert got["autol2_faster"] and got["as_good_and_faster"]


def test_a_setting_without_fixed_runs_or_plain_autol2_is_reported_not_fatal():
    rows, curves = _autol2_frames()
    assert "missing" in _compare_setting(rows[rows["mode"] != "fixed"], curves, 0.005)
    assert "missing" in _compare_setting(rows[rows["mode"] != "autol2"], curves, 0.005)
    nan_fixed = rows.assign(best_test_acc=np.where(rows["mode"] == "fixed", np.nan, 0.5))
    assert "missing" in _compare_setting(nan_fixed, curves, 0.005)


def test_autol2_comparison_end_to_end(tmp_path):
    exp = load_experiment("tinyauto", "cpu", text=TINY_AUTOL2)
    summary = run_experiment(exp, ReproduceRequest("tinyauto", "cpu", tmp_path))
    assert summary["n_runs"] == 3
    fc = summary["settings"]["fc"]
    assert fc["best_fixed_lam"] in (0.001, 0.01)
    assert set(fc["fixed_grid"]) == {"0.001", "0.01"}
    assert fc["best_fixed_test_acc"] == max(fc["fixed_grid"].values())
    assert fc["autol2_at_least_as_good"] == (
        fc["autol2_best_test_acc"] >= fc["best_fixed_test_acc"]
    )
    assert (tmp_path / "tinyauto-fc.png").stat().st_size > 0

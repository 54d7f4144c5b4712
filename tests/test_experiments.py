"""Experiment files and the sweep-figure pipeline (a tiny experiment end to end)."""

import json

import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.experiments import FIGURES, ReproduceRequest, sweep_figure
from l2dynamics.experiments.spec import experiment_names, load_experiment, merge
from l2dynamics.experiments.sweep_figure import run_experiment, write_outputs
from sweep_frames import experiment, tiny_sweep_tables
from test_analysis_equilibrium import _frames

TINY = (
    """
[experiment]
figure = "tiny"
title = "Tiny scaling check"
kind = "scaling"
predict_budget_epochs = 100
predict_eta = 1.0

"""
    + tiny_sweep_tables(64)
    + """
[sweep.grid]
eta = [1.0, 2.0, 4.0, 8.0]
lam = [0.002, 0.005]

[sweep.budget]
c = 2.0

[cpu.model]
options = { width = 32 }
"""
)


def test_merge_is_deep_and_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    out = merge(base, {"a": {"b": 5}, "d": [2]})
    assert out == {"a": {"b": 5, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


def test_merge_replaces_a_table_that_names_another_model():
    """Another model's options do not leak into the model the override names."""
    base = {"model": {"name": "wrn", "options": {"depth": 28, "sigma_w": 1.0}}}
    out = merge(base, {"model": {"name": "cnn", "options": {"channels": 8}}})
    assert out["model"] == {"name": "cnn", "options": {"channels": 8}}
    same = merge(base, {"model": {"name": "wrn", "options": {"depth": 10}}})
    assert same["model"]["options"] == {"depth": 10, "sigma_w": 1.0}


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
    assert "report.html" in stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("slope", "c", "n_runs", "wall_s", "report", "lam_pred", "paper", "n_test"):
        assert key in summary
    lines = stdout.splitlines()
    for estimator in ("t* as the near-peak centre (", "t* as the first maximum of test accuracy ("):
        (line,) = [x for x in lines if x.startswith(estimator)]
        assert ("slope" in line) or ("no fit" in line)
    assert ("slope" in lines[1]) == (summary["slope"] is not None)
    assert ("slope" in lines[2]) == (summary["paper"]["slope"] is not None)
    assert ("predicted λ" in stdout) == (summary["lam_pred"] is not None)
    assert "small test set: 100 images" in stdout


def test_reproduce_command_json_and_bad_figure(run_cli, tmp_path, tiny_experiment):
    code, stdout, _ = run_cli(
        ["reproduce", "fig2", "--out", str(tmp_path / "f"), "--json", "--quiet"]
    )
    assert code in (0, None) and json.loads(stdout)["n_runs"] == 8
    # again as text (resumed from its store): the findings in the report's words, then the files
    code, stdout, _ = run_cli(["reproduce", "fig2", "--out", str(tmp_path / "f"), "--quiet"])
    lines = stdout.splitlines()
    assert code in (0, None) and lines[0].endswith(": 8 runs")
    assert lines[1].startswith("t* as the near-peak centre (")
    assert lines[-1].startswith(f"wrote {tmp_path / 'f'}/ (summary.json, report.html, fig2.png)")
    code, stdout, stderr = run_cli(["reproduce", "fig99", "--out", str(tmp_path / "g")])
    assert code == 2 and "fig99" in stderr and not (tmp_path / "g").exists()


def test_the_small_test_set_note_goes_with_the_kinds_that_hold_t_star(tmp_path):
    """Runs on 100 test images: a kind whose outputs hold t* and accuracies gets the note; the
    equilibrium report (angles, no test accuracy) does not, though it still counts the images."""
    runs, layers = _frames([(0.05, lam) for lam in (1e-3, 4e-3)])
    data = {"name": "digits", "n_train": 64, "n_test": 100}
    runs["config"] = [json.dumps({**json.loads(c), "data": data}) for c in runs["config"]]
    notes: list[str] = []
    assert sweep_figure.test_set_note(runs, notes, "scaling") == 100
    assert len(notes) == 1 and notes[0].startswith("small test set: 100 images")
    exp = experiment("equilibrium")
    summary = write_outputs(exp, runs, layers.iloc[:0], tmp_path, title="t", head={}, tail={},
                            start=0.0, layers=layers)  # fmt: skip
    assert summary["n_test"] == 100 and summary["n_layer_runs"] == 2
    assert not [n for n in summary["notes"] if "small test set" in n]
    assert "small test set" not in (tmp_path / "report.html").read_text(encoding="utf-8")

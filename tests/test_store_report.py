"""``l2dyn report``: any store's analysis, chosen from its runs; labelled, readable summaries;
bad paths refused before anything is written; the report renders in headless Chromium."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from l2dynamics.experiments.store_report import choose_kind, default_out
from l2dynamics.sweep import RunStore, load_sweep, run_sweep
from l2dynamics.sweep.spec import config_dict, run_hash
from sweep_frames import write_sweep

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_report.py"
CHROMIUM = Path("/usr/bin/chromium")


def train(tmp_path, etas="[0.5, 1.0]", name="runs.sqlite"):
    path = write_sweep(tmp_path / "s.toml", etas, name="tiny-grid")
    store = tmp_path / name
    run_sweep(load_sweep(path), str(store))
    return store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store whose current grid (η 0.5, 1) follows an earlier one (η 0.25, 0.5)."""
    tmp = tmp_path_factory.mktemp("store")
    train(tmp, "[0.25, 0.5]")
    return train(tmp, "[0.5, 1.0]")


def summary_text(html):
    """The text of the report's summary section (between its heading and the figures)."""
    part = html.split("<h2>Summary</h2>", 1)[1].split("<h2>", 1)[0]
    return re.sub(r"<[^>]+>", " ", part)


def test_a_fixed_lambda_grid_gets_the_scaling_analysis_beside_the_store(trained, run_cli):
    code, stdout, stderr = run_cli(["report", "--store", str(trained)])
    assert code in (0, None), stderr
    out = default_out(trained)
    assert out == trained.parent / "runs_report" and "(scaling analysis)" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "scaling" and "η·λ" in summary["kind_reason"]
    assert summary["n_runs"] == 8 and summary["runs_shown"] == "the current grid"
    assert any("4 run(s) of earlier grids" in n for n in summary["notes"])
    for name in ("tiny-grid.png", "runs.csv", "best_acc_vs_lam.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    html = (out / "report.html").read_text(encoding="utf-8")
    text = summary_text(html)
    for raw in ("slope_ci", "c_slope_minus_1", "n_fit_runs", "seed_agreement", "best_acc_by"):
        assert raw not in text, raw  # every known key by its label
    assert "slope b of t* = c/(η·λ)^b" in text and "the same fit of the paper" in text
    assert "pairs of seeds" in text and "λ = 0.01" in text
    assert "median t* of its 2 seeds, bars the range of t* over the seeds" in html  # caption
    assert "±1 standard deviation over the seeds" in html


def test_all_runs_of_every_grid_with_all(trained, run_cli, tmp_path):
    code, stdout, stderr = run_cli(
        ["report", "--store", str(trained), "--all", "--out", str(tmp_path / "r"), "--json"]
    )
    assert code in (0, None), stderr
    summary = json.loads(stdout)
    assert summary["n_runs"] == 12 and summary["runs_shown"] == "every grid"
    assert (tmp_path / "r" / "report.html").exists()


def test_bad_paths_are_refused_before_anything_is_written(trained, run_cli, tmp_path):
    code, _, stderr = run_cli(["report", "--store", str(tmp_path / "none.sqlite")])
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "none.sqlite" in stderr
    assert not (tmp_path / "none_report").exists()
    (tmp_path / "file").write_text("x")
    code, _, stderr = run_cli(["report", "--store", str(trained), "--out", str(tmp_path / "file")])
    assert code == 2 and "--out" in stderr and "is a file" in stderr
    code, _, stderr = run_cli(["report", "--store", str(tmp_path / "file")])
    assert code == 2 and not (tmp_path / "file_report").exists()


def test_a_store_without_finished_runs_is_refused(tmp_path, run_cli):
    sweep = load_sweep(write_sweep(tmp_path / "s.toml", "[0.5]", name="tiny-grid"))
    store = tmp_path / "queued.sqlite"
    with RunStore(store) as s:
        runs = [(run_hash(c), config_dict(c)) for c in sweep.runs]
        s.register_sweep(sweep.name, sweep.source, sweep.sections, runs)
    code, _, stderr = run_cli(["report", "--store", str(store)])
    assert code == 2 and "no finished run" in stderr and "4 queued" in stderr
    assert not default_out(store).exists()


def runs_frame(rows):
    """Runs as load_runs gives them, for choose_kind: eta, lam, config (JSON)."""
    return pd.DataFrame(
        [{"eta": e, "lam": lam, "config": json.dumps({"autol2": a})} for e, lam, a in rows]
    )


@pytest.mark.parametrize(
    ("rows", "kind"),
    [
        ([(0.5, 0.01, False), (1.0, 0.01, False)], "scaling"),
        ([(0.5, 0.01, False), (1.0, 0.005, False)], "curves"),  # one η·λ: nothing to fit
        ([(0.5, 0.0, False), (0.5, 0.01, False)], "curves"),  # λ = 0 has no η·λ
        ([(0.5, 0.01, False), (1.0, 0.01, False), (0.5, 0.0, True)], "autol2"),
        ([(0.5, 0.0, True), (1.0, 0.0, True)], "curves"),  # AutoL2 alone: no grid to compare
    ],
)
def test_the_kind_is_chosen_from_the_runs(rows, kind):
    got, why = choose_kind(runs_frame(rows))
    assert got == kind and why


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_the_report_renders_in_headless_chromium(trained, run_cli, tmp_path):
    out = tmp_path / "shown"
    code, _, stderr = run_cli(["report", "--store", str(trained), "--out", str(out)])
    assert code in (0, None), stderr
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out / "report.html"), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 figures" in proc.stdout and shot.stat().st_size > 10_000

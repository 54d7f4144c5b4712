"""``l2dyn report``: any store's analysis, chosen from its runs and their per-layer
measurements; labelled, readable summaries; bad paths refused before anything is written; the
report renders in headless Chromium."""

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from l2dynamics.experiments.store_report import choose_kind, default_out
from l2dynamics.results import LAYER_COLUMNS
from l2dynamics.sweep import RunStore, load_layer_measurements, load_runs, load_sweep, run_sweep
from l2dynamics.sweep.spec import config_dict, run_hash
from sweep_frames import write_sweep
from test_analysis_equilibrium import _frames
from test_store import make_curve, make_summary

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
    """Runs as load_runs gives them, for choose_kind: hash, eta, lam, config (JSON)."""
    return pd.DataFrame(
        [
            {"hash": f"h{i}", "eta": e, "lam": lam, "config": json.dumps({"autol2": a})}
            for i, (e, lam, a) in enumerate(rows)
        ]
    )


def layer_frame(rows):
    """Layer rows for choose_kind: (hash, scale_invariant) per row."""
    return pd.DataFrame(
        [{"hash": h, "step": 1, "layer": "x", "angle": 0.1, "scale_invariant": i} for h, i in rows]
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


GRID = [(0.5, 0.01, False), (1.0, 0.01, False)]  # two values of η·λ: scaling without layers


@pytest.mark.parametrize(
    ("rows", "layers", "kind", "said"),
    [
        # BatchNorm-fed kernels measured: equilibrium, naming the analysis it takes the place of
        (GRID, [("h0", True), ("h0", False), ("h1", True)], "equilibrium", "scaling analysis"),
        ([(0.5, 0.01, False)], [("h0", True)], "equilibrium", "1 run(s) at a fixed λ"),
        # an FC net's layers (none scale-invariant): the grid's analysis, saying why not
        (GRID, [("h0", False), ("h1", False)], "scaling", "no run has a kernel followed by"),
        # only AutoL2 or λ = 0 runs measured them: no prediction, the runs' analysis
        ([*GRID, (0.5, 0.0, True)], [("h2", True)], "autol2", "AutoL2 runs or at λ = 0"),
        ([(0.5, 0.0, False), (0.5, 0.01, False)], [("h0", True)], "curves", "not analysed"),
    ],
)
def test_layer_rows_of_batchnorm_fed_kernels_choose_the_equilibrium_analysis(
    rows, layers, kind, said
):
    got, why = choose_kind(runs_frame(rows), layer_frame(layers))
    assert got == kind and said in why


def test_without_layer_rows_the_choice_and_its_reason_are_the_runs_alone():
    runs = runs_frame(GRID)
    assert (
        choose_kind(runs, layer_frame([]).iloc[:0]) == choose_kind(runs) == choose_kind(runs, None)
    )


def test_an_old_store_without_the_layer_table_reports_as_before(run_cli, tmp_path):
    store = tmp_path / "old.sqlite"
    store.write_bytes((Path(__file__).parent / "fixtures" / "store-v0.1.0.sqlite").read_bytes())
    code, stdout, stderr = run_cli(["report", "--store", str(store), "--json"])
    assert code in (0, None), stderr
    summary = json.loads(stdout)
    done = load_runs(store).query("status == 'done'")
    assert (summary["kind"], summary["kind_reason"]) == choose_kind(done)
    with sqlite3.connect(store) as db:  # a report reads: the table is not added
        assert not db.execute(
            "SELECT 1 FROM sqlite_master WHERE name='layer_measurements'"
        ).fetchall()


def layer_store(path, runs):
    """A store of finished runs ``(η, λ stored, autol2)`` of a BatchNorm CNN whose layer rows are
    :func:`test_analysis_equilibrium._frames`' (relaxing to 1.05× the prediction at the λ they
    were made with: λ stored, or 8e-3 where it is 0)."""
    made = [(eta, lam or 8e-3) for eta, lam, _ in runs]
    _, layers = _frames(made)
    with RunStore(path) as store:
        store.set_meta("name", "eq-mix")
        for i, (eta, lam, auto) in enumerate(runs):
            config = {"eta": eta, "lam": lam, "seed": 0, "momentum": 0.9, "autol2": auto,
                      "data": {"name": "digits", "n_train": 64, "n_test": 100},
                      "model": {"name": "cnn", "options": {"batch_norm": True}}}  # fmt: skip
            store.add_runs([(f"r{i}", config)])
            store.mark_running([f"r{i}"])
            own = layers[layers["hash"] == f"r{i}"]
            rows = {c: own[c].to_numpy() for c in LAYER_COLUMNS}
            store.record_result(f"r{i}", "done", make_summary(), make_curve(5), rows)
    return path


def test_equilibrium_of_a_mixed_store_reads_its_fixed_lambda_runs_and_counts_the_others(
    run_cli, tmp_path
):
    """Two fixed-λ runs, an AutoL2 run and a run at λ = 0, all with BatchNorm-fed kernels
    measured: the equilibrium analysis reads the two (their ratio 1.05, as made), the note
    says why the other two are left out, the reason what the store would get otherwise."""
    store = layer_store(
        tmp_path / "mix.sqlite",
        [(0.05, 4e-3, False), (0.05, 1.6e-2, False), (0.05, 8e-3, True), (0.05, 0.0, False)],
    )
    code, stdout, stderr = run_cli(["report", "--store", str(store), "--json"])
    assert code in (0, None), stderr
    summary = json.loads(stdout)
    assert summary["kind"] == "equilibrium" and "autol2 analysis" in summary["kind_reason"]
    # every finished run goes to the analysis, which reads the two and counts the others
    assert summary["n_runs"] == 4 and summary["n_layer_runs"] == 2
    assert summary["ratio_median"] == pytest.approx(1.05, rel=1e-3)
    assert summary["t_eq_slope"] == pytest.approx(1.0, abs=0.05)
    left = [n for n in summary["notes"] if "left out of the equilibrium analysis" in n]
    assert left == [
        "2 run(s) left out of the equilibrium analysis: 1 AutoL2 (λ changes during the run: no "
        "fixed λ to predict the angle from), 1 at η·λ = 0 (λ = 0: no angle to predict, no "
        "1/(η·λ) to fit against)"
    ]
    # 100 test images, but no t* or accuracy in this report: no small-test-set note
    assert summary["n_test"] == 100 and not [n for n in summary["notes"] if "small test" in n]
    table = pd.read_csv(default_out(store) / "equilibrium.csv")
    assert sorted(table["lam"]) == [4e-3, 1.6e-2]


def test_a_batchnorm_sweep_measuring_its_layers_gets_the_equilibrium_report(run_cli, tmp_path):
    """End to end: a tiny BatchNorm CNN sweep with measure_layers over two λ (two values of
    η·λ, the scaling analysis without layers) is reported as its rotational equilibrium."""
    sweep = tmp_path / "bn.toml"
    sweep.write_text(BN_SWEEP)
    store = tmp_path / "bn.sqlite"
    code, _, stderr = run_cli(["sweep", str(sweep), "--store", str(store), "--quiet"])
    assert code in (0, None), stderr
    code, stdout, stderr = run_cli(["report", "--store", str(store)])
    assert code in (0, None), stderr
    assert "(equilibrium analysis)" in stdout
    # the findings in words (summary_text.headline), as the report's lead says them
    assert "Equilibrium angle per step of the BatchNorm-fed kernels: measured/predicted" in stdout
    assert "Time to equilibrium" in stdout
    out = default_out(store)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "equilibrium" and "scaling analysis" in summary["kind_reason"]
    assert summary["n_layer_runs"] == 2 and len(summary["ratios"]) == 2
    table = pd.read_csv(out / "equilibrium.csv")
    layers = load_layer_measurements(store)
    assert set(table["hash"]) == set(layers["hash"]) and (table["measured"] > 0).all()
    assert (table["predicted"] > 0).all() and (out / "bn-eq.png").stat().st_size > 10_000
    text = summary_text((out / "report.html").read_text(encoding="utf-8"))
    assert "measured/predicted equilibrium angle per step, median over runs" in text
    for key in ("n_layer_runs", "ratio_median", "ratio_range", "t_eq_slope", "t_eq_n_runs"):
        assert key not in text, key  # every key by its label


# A BatchNorm CNN small enough for 2 loaded cores (~10 s): 8×8 digits keep their size through
# the convolutions with 1×1 pools (2×2/2 pools would leave nothing after the second).
BN_SWEEP = """
name = "bn-eq"
[data]
name = "digits"
n_train = 64
n_test = 100
[model]
name = "cnn"
options = { channels = 2, dense = 4, batch_norm = true, pool_window = 1, pool_stride = 1 }
[train]
batch_size = 16
momentum = 0.9
measure_layers = true
measure_resolution = 0.1
[grid]
eta = [0.1]
lam = [0.01, 0.04]
seeds = [0]
[budget]
c = 0.2
"""


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

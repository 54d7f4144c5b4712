"""The ``equilibrium`` kind on hand-built runs and layer rows (:mod:`test_analysis_equilibrium`'s
frames): its summary, table and figure, and what it says without layer measurements."""

import pytest

from l2dynamics.experiments.kinds import LAYER_KINDS, analyse
from sweep_frames import experiment
from test_analysis_equilibrium import _frames, _mixed


def test_equilibrium_kind_reports_ratios_and_the_time_slope(tmp_path):
    runs, layers = _frames([(0.05, lam) for lam in (1e-3, 4e-3, 1.6e-2)])
    assert "equilibrium" in LAYER_KINDS
    got = analyse(experiment("equilibrium"), runs, layers.iloc[:0], tmp_path, layers)
    s = got.summary
    assert s["n_layer_runs"] == s["ratio_n_runs"] == 3
    assert s["ratio_median"] == pytest.approx(1.05, rel=1e-3)
    assert s["t_eq_slope"] == pytest.approx(1.0, abs=0.05) and len(s["t_eq_slope_ci"]) == 2
    pairs = zip(runs["lam"], runs["hash"], strict=True)
    keys = {f"eta=0.05, lam={lam:g}, run={h}" for lam, h in pairs}
    assert set(s["ratios"]) == keys and len(keys) == 3
    assert got.figures[0][1].exists() and len(got.tables["equilibrium"]) == 3
    empty = analyse(experiment("equilibrium"), runs, layers.iloc[:0], tmp_path, None)
    assert empty.summary["n_layer_runs"] == 0 and empty.summary["t_eq_slope"] is None
    assert any("measure_layers" in n for n in empty.notes)


def test_the_kind_reads_its_fixed_lambda_runs_and_counts_the_others_in_a_note(tmp_path):
    """Beside two fixed-λ runs an AutoL2 run and a run at λ = 0 (both with layer rows): the
    summary and table hold the two, a note says why the others are left out."""
    runs, layers = _mixed()
    got = analyse(experiment("equilibrium"), runs, layers.iloc[:0], tmp_path, layers)
    assert got.summary["n_layer_runs"] == 2 and len(got.summary["ratios"]) == 2
    assert sorted(got.tables["equilibrium"]["lam"]) == [4e-3, 1.6e-2]
    assert got.summary["t_eq_slope"] is not None and got.summary["t_eq_n_runs"] == 2
    (note,) = [n for n in got.notes if "left out of the equilibrium analysis" in n]
    assert note.startswith("2 run(s) left out") and "1 AutoL2" in note and "1 at η·λ = 0" in note


def test_without_a_fit_of_the_time_a_note_says_why(tmp_path):
    runs, layers = _frames([(0.05, 1e-2), (0.05, 1e-2)])  # two runs (seeds), one η·λ
    got = analyse(experiment("equilibrium"), runs, layers.iloc[:0], tmp_path, layers)
    assert got.summary["t_eq_slope"] is None and got.summary["t_eq_n_runs"] == 2
    assert "no fit of the time to equilibrium: the 2 run(s) that reached" in " ".join(got.notes)

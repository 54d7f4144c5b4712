"""The ``autol2`` kind: AutoL2 against a grid of fixed λ, one tiny experiment end to end."""

from l2dynamics.experiments import ReproduceRequest
from l2dynamics.experiments.spec import load_experiment
from l2dynamics.experiments.sweep_figure import run_experiment
from sweep_frames import tiny_sweep_tables

TINY_AUTOL2 = (
    """
[experiment]
figure = "tinyauto"
title = "Tiny AutoL2 comparison"
kind = "autol2"

"""
    + tiny_sweep_tables(32)
    + """
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
)


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
    assert (tmp_path / "tinyauto-fc-grid.png").stat().st_size > 0
    assert list(fc["modes"]) == ["autol2"]
    assert fc["modes"]["autol2"]["at_least_as_good"] == fc["autol2_at_least_as_good"]
    claim = "the claim shows" if fc["as_good_and_faster"] else "the claim does not show"
    assert len(fc["verdicts"]) == 1
    assert fc["verdicts"][0].startswith("autol2: ") and fc["verdicts"][0].endswith(claim)

"""The ``fixed_budget`` kind on hand-built runs (budgets read off truncated curves, one budget
rule per variant) and one tiny experiment end to end."""

import json

import pandas as pd
import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.experiments import ReproduceRequest
from l2dynamics.experiments.kinds import analyse
from l2dynamics.experiments.spec import load_experiment
from l2dynamics.experiments.sweep_figure import run_experiment
from sweep_frames import experiment, peaked, run_rows, tiny_sweep_tables


def test_fixed_budget_kind_truncated(tmp_path):
    # the peak improves as λ decreases (SPEC §2.2): 0.9, 0.85, 0.8
    lams, tops = [1e-3, 1e-2, 1e-1], [0.9, 0.85, 0.8]
    parts = [
        peaked(f"r{i}", 0.2, lam, c=0.05, top=t)
        for i, (lam, t) in enumerate(zip(lams, tops, strict=True))
    ]
    long = [p[p["epoch"] <= 2000] for p in parts]
    curves = pd.concat(long, ignore_index=True)
    runs = run_rows(curves)
    exp = experiment("fixed_budget", budgets=[5, 50, 500])
    outcome = analyse(exp, runs, curves, tmp_path)
    s = outcome.summary
    assert s["calibration_lam"] == pytest.approx(0.1)
    assert s["c"] == pytest.approx(0.05, rel=0.1)  # the peaks were placed at τ = 0.05
    # t* = 0.05/(0.2·λ): 2.5 epochs at λ = 0.1, 25 at 0.01, 250 at 1e-3 → optimum ∝ 1/T
    assert [s["per_budget"][k]["best_lam"] for k in ("5", "50", "500")] == [0.1, 0.01, 0.001]
    assert s["lam_opt_vs_T_slope"] == pytest.approx(-1.0)
    assert outcome.figures[0][1].stat().st_size > 0


def test_fixed_budget_refuses_truncating_scheduled_runs(tmp_path):
    curves = peaked("s", 0.2, 1e-2)
    runs = run_rows(curves, config={"s": {"lr_schedule": "step"}})
    with pytest.raises(ConfigError, match="schedule"):
        analyse(experiment("fixed_budget", budgets=[10]), runs, curves, tmp_path)


def test_fixed_budget_kind_per_variant(tmp_path):
    lams = [1e-3, 1e-2, 1e-1]
    fixed = [peaked(f"f{i}", 0.2, lam, top=0.9 - 0.1 * abs(i - 1)) for i, lam in enumerate(lams)]
    scaled = [peaked(f"s{i}", 0.2, lam, top=0.95 - 0.05 * i) for i, lam in enumerate(lams)]
    curves = pd.concat(fixed + scaled, ignore_index=True)
    variant = {f"f{i}": "T = 200" for i in range(3)} | {f"s{i}": "T = 0.1/λ" for i in range(3)}
    curves["variant"] = curves["hash"].map(variant)
    runs = run_rows(curves, variant=variant)
    s = analyse(experiment("fixed_budget"), runs, curves, tmp_path).summary
    assert s["variants"]["T = 200"]["best_lam"] == 1e-2
    assert s["variants"]["T = 200"]["best_lam_inside"] is True
    assert s["variants"]["T = 0.1/λ"]["best_lam_is_smallest"] is True
    assert s["variants"]["T = 0.1/λ"]["best_lam_inside"] is False
    assert s["variants"]["T = 0.1/λ"]["spearman_acc_vs_lam"] == pytest.approx(-1.0)


TINY = (
    """
[experiment]
figure = "tiny1b"
title = "Tiny fixed-budget check"
kind = "fixed_budget"
budgets = [2, 10, 50]

"""
    + tiny_sweep_tables(32)
    + """
[sweep.grid]
eta = [2.0]
lam = [0.003, 0.03]

[sweep.budget]
epochs = 50
"""
)


def test_tiny_fixed_budget_end_to_end(tmp_path):
    exp = load_experiment("tiny1b", "cpu", text=TINY)
    summary = run_experiment(exp, ReproduceRequest("tiny1b", "cpu", tmp_path))
    assert summary["n_runs"] == 2 and set(summary["per_budget"]) == {"2", "10", "50"}
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["mode"] == "truncated"
    for name in ("tiny1b.png", "acc_by_budget.csv", "optimal_by_budget.csv", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name

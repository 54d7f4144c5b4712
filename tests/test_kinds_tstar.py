"""The ``scaling`` kind on hand-built runs whose peaks sit at τ = c: slope −1, the c of
t* = c/(η·λ), λ_pred = c/(η·T), and the notes on runs outside the law."""

import pandas as pd
import pytest

from l2dynamics.experiments.kinds import analyse
from sweep_frames import curve_rows, experiment, peaked, run_rows


def test_scaling_kind_recovers_the_law_and_predicts_lambda(tmp_path):
    parts = [
        peaked(f"{eta}-{lam}", eta, lam, c=0.05, top=0.9 - lam)
        for eta in (0.1, 0.4)
        for lam in (1e-3, 1e-2, 1e-1)
    ]
    parts.append(peaked("under", 0.1, 3e-2, top=0.5, fit_epoch=1e9))  # never fits the data
    parts.append(curve_rows("zero", 0.1, 0.0, [0, 10, 20, 40], [0.1, 0.5, 0.7, 0.6]))
    curves = pd.concat(parts, ignore_index=True)
    exp = experiment("scaling", predict_budget_epochs=100, predict_eta=0.2)
    outcome = analyse(exp, run_rows(curves), curves, tmp_path)
    s = outcome.summary
    assert s["slope"] == pytest.approx(-1.0, abs=0.02)
    assert s["c_slope_minus_1"] == pytest.approx(0.05, rel=0.05)
    assert s["n_fit_runs"] == 6 and s["lam0_t_star_epochs"] == [20.0]
    assert s["lam_pred"] == pytest.approx(s["c_slope_minus_1"] / (0.2 * 100))
    assert s["lam_pred_2c"] == pytest.approx(2 * s["lam_pred"])
    assert s["best_lam"] == 1e-3 and s["best_acc_by_lam"]["0"] == 0.7
    assert any("(η=0.1, λ=0.03)" in note for note in outcome.notes)
    assert set(outcome.tables) == {"runs", "best_acc_vs_lam"}
    assert (tmp_path / "synthetic.png").stat().st_size > 0


def test_scaling_kind_without_enough_runs_notes_why(tmp_path):
    curves = pd.concat([peaked("a", 0.1, 1e-2), peaked("b", 0.2, 1e-2)], ignore_index=True)
    s = analyse(experiment("scaling"), run_rows(curves), curves, tmp_path)
    assert s.summary["slope"] is None and s.summary["c"] is None
    assert "lam_pred" not in s.summary
    assert any(note.startswith("fit of t* not possible: only 2 usable") for note in s.notes)


def test_scaling_kind_gives_t_star_in_the_optimizers_timescale(tmp_path):
    """AdamW's τ_iter = 1/(η·λ) steps; at batch 64 of 256 examples τ_epoch = τ_iter/4 epochs, so
    runs peaking at t* = 0.05/(η·λ) epochs sit at t*/τ_epoch = 0.2."""
    lams = (1e-3, 1e-2, 1e-1)
    curves = pd.concat([peaked(f"r{lam}", 0.1, lam) for lam in lams], ignore_index=True)
    data = {"name": "digits", "n_train": 256}
    config = {
        f"r{lam}": {"optimizer": "adamw", "batch_size": 64, "data": data, "eta": 0.1, "lam": lam}
        for lam in lams
    }
    s = analyse(experiment("scaling"), run_rows(curves, config=config), curves, tmp_path).summary
    got = s["t_star_over_tau_epoch"]
    assert got["optimizers"] == ["adamw"] and got["n_runs"] == 3
    assert got["median"] == pytest.approx(0.2, rel=0.05)

"""The ``curves`` and ``sigma_w`` kinds on hand-built runs: curves collapse against τ, σ_w
matters early and not late."""

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis.curves import spread_vs_tau
from l2dynamics.experiments.kinds import analyse
from sweep_frames import curve_rows, experiment, peaked, run_rows


def test_curves_kind_collapse(tmp_path):
    parts = []
    for lam in (1e-4, 1e-3, 1e-2):
        run = peaked(f"r{lam}", 0.15, lam, c=0.05)
        run["train_loss"] = (np.log(run["tau"] / 0.2)) ** 2 + 0.1  # minimum at τ = 0.2
        parts.append(run)
    curves = pd.concat(parts, ignore_index=True)
    curves["variant"] = "fc"
    runs = run_rows(curves, variant=dict.fromkeys(curves["hash"], "fc"))
    outcome = analyse(experiment("curves"), runs, curves, tmp_path)
    fc = outcome.summary["variants"]["fc"]
    # peaks one decade apart in epochs (λ decades apart at one η), at the same τ
    assert fc["std_log10_peak_epochs"] == pytest.approx(np.std([0, 1, 2]), rel=0.05)
    assert fc["peak_collapse_ratio"] < 0.05
    assert fc["loss_min_collapse_ratio"] < 0.05
    assert fc["per_lam"]["0.001"]["tau_star"] == pytest.approx(0.05, rel=0.1)
    assert fc["per_lam"]["0.01"]["tau_loss_min"] == pytest.approx(0.2, rel=0.1)
    assert (tmp_path / "synthetic.png").stat().st_size > 0


def test_sigma_w_spread(tmp_path):
    parts, variant, config = [], {}, {}
    for sw, top in ((0.5, 0.80), (1.0, 0.82), (2.0, 0.81)):
        for lam in (1e-3, 1e-2):
            h = f"{sw}-{lam}"
            epochs = np.geomspace(0.1, 1 / (0.2 * lam), 50)
            tau = 0.2 * lam * epochs
            # early: σ_w-dependent speed; late: all at the same plateau `top`
            acc = top * (1 - np.exp(-tau / (0.01 * sw)))
            parts.append(curve_rows(h, 0.2, lam, epochs, acc))
            variant[h] = f"σ_w = {sw:g}"
            config[h] = {"lr_schedule": "constant", "model": {"options": {"sigma_w": sw}}}
    curves = pd.concat(parts, ignore_index=True)
    curves["variant"] = curves["hash"].map(variant)
    runs = run_rows(curves, config=config, variant=variant)
    s = analyse(experiment("sigma_w"), runs, curves, tmp_path).summary
    assert s["values"] == {"σ_w = 0.5": 0.5, "σ_w = 1": 1.0, "σ_w = 2": 2.0}
    assert s["best_acc_spread_max"] == pytest.approx(0.02, abs=1e-3)
    per = s["per_lam"]["0.01"]
    assert per["max_spread_before_peak"] > 0.3 > 0.03 > per["mean_spread_after_peak"]
    spread = spread_vs_tau(curves)
    assert set(spread["lam"]) == {1e-3, 1e-2} and (spread["spread"] >= 0).all()

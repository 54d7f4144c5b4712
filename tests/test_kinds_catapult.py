"""The ``catapult`` kind on hand-built MSE runs: L2 flattens the η dependence, the MSE rises
after its minimum."""

import numpy as np
import pandas as pd
import pytest

from l2dynamics.experiments.kinds import analyse
from sweep_frames import curve_rows, experiment, run_rows


def test_catapult_kind(tmp_path):
    parts = []
    for i, eta in enumerate((0.01, 0.1, 1.0)):
        for lam in (1e-3, 1e-2):
            epochs = np.geomspace(0.1, 1 / (eta * lam), 40)
            tau = eta * lam * epochs
            loss = 0.05 * ((np.log(tau / 0.05)) ** 2 + 0.1)  # minimum at τ = 0.05, then rises
            parts.append(
                curve_rows(
                    f"{eta}-{lam}", eta, lam, epochs, 0.9 - 0.01 * i + 0 * epochs, train_loss=loss
                )  # fmt: skip
            )
        epochs = np.arange(0, 50.0)
        train = np.where(epochs >= 10, 1.0, 0.5)
        acc = np.where(epochs >= 10, 0.7 + 0.1 * i, 0.3)  # λ = 0: η changes the accuracy
        parts.append(curve_rows(f"{eta}-0", eta, 0.0, epochs, acc, train))
    curves = pd.concat(parts, ignore_index=True)
    s = analyse(experiment("catapult"), run_rows(curves), curves, tmp_path).summary
    assert s["eta_spread_lam0_at_fit"] == pytest.approx(0.2)
    assert s["eta_spread_l2_median"] == pytest.approx(0.02)
    assert s["l2_flattens_eta_dependence"] is True
    assert s["mse_rises_fraction"] == 1.0
    assert s["mse_min_tau_median"] == pytest.approx(0.05, rel=0.2)

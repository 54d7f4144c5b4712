"""MSE and the catapult: where the training loss is lowest and whether it rises after, the
accuracy at training accuracy 1, the η spread, and the figure."""

import pandas as pd
import pytest

from l2dynamics.analysis import catapult as K
from sweep_frames import assert_png, curve_rows


def test_loss_minimum_and_accuracy_at_fit():
    up = curve_rows("up", 0.1, 1e-2, [0, 1, 2, 3], [0.2] * 4, train_loss=[1.0, 0.1, 0.2, 0.5])
    down = curve_rows("dn", 0.1, 1e-2, [0, 1, 2, 3], [0.2] * 4, train_loss=[1.0, 0.5, 0.2, 0.1])
    flat = curve_rows("fl", 0.1, 1e-2, [0, 1, 2, 3], [0.2] * 4, train_loss=[1.0, 0.1, 0.1, 0.102])
    m = K.loss_minimum(pd.concat([up, down, flat]), rise_tol=0.05).set_index("hash")
    assert m.loc["up", "rises"] and not m.loc["dn", "rises"] and not m.loc["fl", "rises"]
    assert m.loc["fl", "interior"] and not m.loc["dn", "interior"]
    assert m.loc["up", "epoch_min"] == 1.0 and m.loc["up", "tau_min"] == pytest.approx(1e-3)
    fit = curve_rows("z", 0.3, 0.0, [0, 1, 2, 3], [0.1, 0.6, 0.7, 0.9], train_acc=[0, 0.9, 1, 1])
    got = K.acc_at_train_fit(fit).iloc[0]
    assert got["fit_epoch"] == 2.0 and got["acc_at_fit"] == pytest.approx(0.7)
    spread = K.eta_spread(
        pd.DataFrame({"lam": [1, 1, 2], "eta": [1, 2, 1], "mean": [0.5, 0.7, 0.9]})
    )
    assert spread == {1.0: pytest.approx(0.2)}


def test_runs_without_a_finite_loss_or_a_fit_are_reported_as_such():
    nan = curve_rows("n", 0.1, 1e-2, [0, 1], [0.2, 0.3], train_loss=[float("nan")] * 2)
    assert K.loss_minimum(nan).empty and list(K.loss_minimum(nan).columns)[-1] == "rises"
    never = curve_rows("v", 0.1, 0.0, [0, 1], [0.2, 0.3], train_acc=[0.5, 0.9])
    assert K.acc_at_train_fit(never)["acc_at_fit"].isna().all()


def test_plot_writes_a_png_also_from_empty_data(tmp_path):
    acc = pd.DataFrame({"lam": [1e-3, 1e-3, 1e-2], "eta": [0.1, 1.0, 0.1], "mean": [0.8, 0.7, 0.9]})
    lam0 = pd.DataFrame({"eta": [0.1, 1.0], "acc_at_fit": [0.6, 0.8]})
    curves = curve_rows("a", 0.1, 1e-3, [0.5, 1, 2, 3], [0.2] * 4, train_loss=[1, 0.1, 0.2, 0.5])
    minima = K.loss_minimum(curves)
    out = K.plot_catapult(acc, lam0, curves, minima, tmp_path / "a.png", title="S5")
    assert_png(tmp_path / "a.png", out)
    empty = K.plot_catapult(acc.iloc[:0], lam0.iloc[:0], curves.iloc[:0], minima.iloc[:0],
                            tmp_path / "e.png")  # fmt: skip
    assert_png(tmp_path / "e.png", empty)
    assert not list(tmp_path.glob(".*"))  # no temporary files left

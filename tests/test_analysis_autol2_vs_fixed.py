"""AutoL2 against the best fixed λ: epochs to an accuracy, the comparison seed by seed (a run
that never reaches the fixed λ's accuracy is not faster), and the λ(t) figure."""

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis import autol2_vs_fixed as A
from sweep_frames import assert_png, sweep_tables


def test_epochs_to_near_best_is_the_first_epoch_within_tol():
    curves = pd.DataFrame(
        {
            "hash": ["a"] * 5 + ["b"] * 3,
            "epoch": [1, 2, 4, 8, 16, 1, 2, 4],
            "test_acc": [0.5, 0.795, 0.80, 0.81, 0.79, 0.3, 0.3, 0.3],
        }
    )
    got = A.epochs_to_near_best(curves, 0.012)
    assert got["a"] == 4.0  # 0.80 ≥ 0.81 − 0.012; 0.795 is not
    assert got["b"] == 1.0


def _autol2_frames():
    # AutoL2 (hash a) stalls at 0.15 from epoch 1: within 0.005 of its own best at once, yet it
    # never comes near the best fixed λ's 0.80, which seed b reaches at epoch 8.
    rows = pd.DataFrame(
        {
            "hash": ["a", "b", "c", "d"],
            "mode": ["autol2", "fixed", "fixed", "autol2 λ0=0.01"],
            "lam": [0.1, 1e-3, 1e-2, 0.01],
            "seed": [0, 0, 0, 0],
            "best_test_acc": [0.15, 0.80, 0.70, 0.82],
            "near_best_epochs": [1.0, 8.0, 4.0, 4.0],
        }
    )
    curves = pd.DataFrame(
        {
            "hash": list("aaa") + list("bbb") + list("ccc") + list("ddd"),
            "step": [0, 1, 2] * 4,
            "epoch": [0.0, 1.0, 8.0] * 4,
            "test_acc": [0.1, 0.15, 0.15, 0.1, 0.5, 0.8, 0.1, 0.7, 0.6, 0.1, 0.82, 0.8],
            "lam_now": [0.1, 0.01, 0.001, 1e-3, 1e-3, 1e-3, 1e-2, 1e-2, 1e-2, 0.01, 0.01, 0.001],
        }
    )
    return rows, curves


def test_a_dead_autol2_run_is_not_faster_than_the_fixed_grid():
    rows, curves = _autol2_frames()
    assert A.epochs_to_reach(curves, 0.795).to_dict() == pytest.approx(
        {"a": float("nan"), "b": 8.0, "c": float("nan"), "d": 1.0}, nan_ok=True
    )
    got = A.compare_setting(rows, curves, 0.005)
    assert got["best_fixed_lam"] == 1e-3 and got["autol2_epochs_to_within_0.005"] == 1.0
    assert got["autol2_epochs_to_fixed_best_within_0.005"] is None
    assert got["fixed_epochs_to_fixed_best_within_0.005"] == 8.0
    assert not got["autol2_faster"] and not got["as_good_and_faster"]
    assert got["autol2_final_lam_by_seed"] == {"0": 0.001}
    other = got["other_autol2"]["autol2 λ0=0.01"]
    assert other["epochs_to_fixed_best"] == 1.0 and other["faster"]
    # 0.15 vs 0.80: 65 points below; 0.82 vs 0.80: 2 points above, at epoch 1 against 8.
    assert got["verdicts"] == [
        "autol2: 65.00 points below the best fixed λ (0.001), not faster (never within 0.005"
        " of the best fixed λ's accuracy): the claim does not show",
        "autol2 λ0=0.01: as good (+2.00 points), faster (1 vs 8 epochs): the claim shows",
    ]
    assert list(got["modes"]) == ["autol2", "autol2 λ0=0.01"]
    assert got["modes"]["autol2"]["diff_points"] == -65.0 and other["diff_points"] == 2.0
    assert other["at_least_as_good"] and other["as_good_and_faster"]
    assert other["start_lam_by_seed"] == {"0": 0.01}
    assert got["modes"]["autol2"]["start_lam_by_seed"] == {"0": 0.1}


def test_seeds_are_compared_with_their_own_partner():
    # The best fixed λ (mean 0.75) has seeds at 0.80 (within 0.005 at epoch 1) and 0.70 (at
    # epoch 8): 4.5 epochs on average. AutoL2 seed 0 reaches 0.795 at epoch 8 and seed 1
    # reaches 0.695 at epoch 1: 4.5 epochs too, so it is not faster; with seed 0 at epoch 1
    # instead, it is (1 epoch on average).
    rows = pd.DataFrame(
        {
            "hash": ["a0", "a1", "f0", "f1"],
            "mode": ["autol2", "autol2", "fixed", "fixed"],
            "lam": [0.1, 0.1, 1e-3, 1e-3],
            "seed": [0, 1, 0, 1],
            "best_test_acc": [0.80, 0.70, 0.80, 0.70],
            "near_best_epochs": [8.0, 1.0, 1.0, 8.0],
        }
    )
    curves = pd.DataFrame(
        {
            "hash": ["a0", "a0", "a1", "a1", "f0", "f0", "f1", "f1"],
            "step": [0, 1] * 4,
            "epoch": [1.0, 8.0] * 4,
            "test_acc": [0.5, 0.8, 0.7, 0.7, 0.8, 0.8, 0.6, 0.7],
            "lam_now": [0.1, 0.01, 0.1, 0.01, 1e-3, 1e-3, 1e-3, 1e-3],
        }
    )
    got = A.compare_setting(rows, curves, 0.005)
    assert got["fixed_epochs_to_fixed_best_within_0.005"] == 4.5
    assert got["autol2_epochs_to_fixed_best_within_0.005"] == 4.5
    assert got["autol2_at_least_as_good"] and not got["autol2_faster"]
    assert got["verdicts"] == [
        "autol2: as good (+0.00 points), not faster (4.5 vs 4.5 epochs): the claim does not show"
    ]
    curves.loc[0, "test_acc"] = 0.8  # AutoL2 seed 0 now there at epoch 1
    got = A.compare_setting(rows, curves, 0.005)
    assert got["autol2_epochs_to_fixed_best_within_0.005"] == 1.0
    assert got["autol2_faster"] and got["as_good_and_faster"]
    assert got["modes"]["autol2"]["as_good_and_faster"]
    assert got["verdicts"] == [
        "autol2: as good (+0.00 points), faster (1 vs 4.5 epochs): the claim shows"
    ]


def _preset_frames():
    # Two seeds. Fixed λ = 1e-3 (best 0.80, 0.78; within 0.005 at epoch 8) beats 1e-2 (0.70,
    # 0.72). The plain AutoL2 (configured λ₀ = 0.1) reaches each partner's best at epoch 2; the
    # "autol2-paper" preset is stored with lam = 0, starts at its first lam_now (0.3, 0.2) and
    # never comes within 0.005 of 0.80.
    best = {"a": [0.81, 0.79], "p": [0.7712, 0.7680], "f": [0.80, 0.78], "g": [0.70, 0.72]}
    mode = {"a": "autol2", "p": "autol2-paper", "f": "fixed", "g": "fixed"}
    lam = {"a": 0.1, "p": 0.0, "f": 1e-3, "g": 1e-2}
    rows = pd.DataFrame(
        [
            {"hash": f"{k}{s}", "mode": mode[k], "lam": lam[k], "seed": s, "best_test_acc": b}
            for k, accs in best.items()
            for s, b in enumerate(accs)
        ]
    ).assign(near_best_epochs=8.0)
    acc = {
        "a0": [0.1, 0.80, 0.81],
        "a1": [0.1, 0.78, 0.79],
        "p0": [0.1, 0.70, 0.7712],
        "p1": [0.1, 0.70, 0.7680],
        "f0": [0.1, 0.5, 0.80],
        "f1": [0.1, 0.5, 0.78],
        "g0": [0.1, 0.70, 0.70],
        "g1": [0.1, 0.72, 0.72],
    }
    lam_now = {
        "a0": [0.1, 0.05, 0.02],
        "a1": [0.1, 0.05, 0.03],
        "p0": [0.3, 0.1, 0.01],
        "p1": [0.2, 0.1, 0.01],
    }
    curves = pd.concat(
        pd.DataFrame(
            {
                "hash": h,
                "step": [0, 1, 2],
                "epoch": [0.0, 2.0, 8.0],
                "test_acc": a,
                "lam_now": lam_now.get(h, [lam[h[0]]] * 3),
            }
        )
        for h, a in acc.items()
    )
    return rows, curves


def test_every_autol2_mode_gets_its_own_verdict():
    rows, curves = _preset_frames()
    got = A.compare_setting(rows, curves, 0.005)
    fixed = round((0.80 + 0.78) / 2, 4)
    assert got["best_fixed_lam"] == 1e-3 and got["best_fixed_test_acc"] == fixed
    plain, paper = got["modes"]["autol2"], got["modes"]["autol2-paper"]
    assert plain["diff_points"] == pytest.approx(100 * (round((0.81 + 0.79) / 2, 4) - fixed))
    assert paper["diff_points"] == pytest.approx(100 * (round((0.7712 + 0.768) / 2, 4) - fixed))
    assert paper["diff_points"] == -2.04 and not paper["at_least_as_good"]
    assert plain["epochs_to_fixed_best"] == 2.0 and plain["fixed_epochs_to_fixed_best"] == 8.0
    assert plain["at_least_as_good"] and plain["as_good_and_faster"]
    assert not paper["faster"] and not paper["as_good_and_faster"]
    assert paper["start_lam_by_seed"] == {"0": 0.3, "1": 0.2}
    assert paper["final_lam_by_seed"] == {"0": 0.01, "1": 0.01}
    assert got["verdicts"] == [
        "autol2: as good (+1.00 points), faster (2 vs 8 epochs): the claim shows",
        "autol2-paper: 2.04 points below the best fixed λ (0.001), not faster (never within"
        " 0.005 of the best fixed λ's accuracy): the claim does not show",
    ]
    # The plain mode's top-level keys are kept and agree with its entry.
    assert got["autol2_at_least_as_good"] == plain["at_least_as_good"]
    assert got["as_good_and_faster"] == plain["as_good_and_faster"]
    assert got["other_autol2"] == {"autol2-paper": paper}


def test_autol2_modes_are_means_over_seeds_plain_first():
    rows, curves = _preset_frames()
    got = A.autol2_modes(rows, curves)
    assert list(got.index) == ["autol2", "autol2-paper"]
    assert got.loc["autol2-paper", "start_lam"] == pytest.approx((0.3 + 0.2) / 2)
    assert got.loc["autol2", "final_lam"] == pytest.approx((0.02 + 0.03) / 2)
    assert got.loc["autol2-paper", "best_test_acc"] == pytest.approx((0.7712 + 0.768) / 2)


def test_modes_vs_grid_plot_writes_a_png_also_from_empty_data(tmp_path):
    rows, curves = _preset_frames()
    assert_png(tmp_path / "g.png", A.plot_modes_vs_grid(rows, curves, tmp_path / "g.png"))
    with_zero = rows.assign(lam=np.where(rows["hash"] == "g0", 0.0, rows["lam"]))
    assert_png(tmp_path / "z.png", A.plot_modes_vs_grid(with_zero, curves, tmp_path / "z.png"))
    empty = A.plot_modes_vs_grid(rows.iloc[:0], curves.iloc[:0], tmp_path / "e.png", title="t")
    assert_png(tmp_path / "e.png", empty)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_a_setting_without_fixed_runs_or_plain_autol2_is_reported_not_fatal():
    rows, curves = _autol2_frames()
    assert "missing" in A.compare_setting(rows[rows["mode"] != "fixed"], curves, 0.005)
    assert "missing" in A.compare_setting(rows[rows["mode"] != "autol2"], curves, 0.005)
    nan_fixed = rows.assign(best_test_acc=np.where(rows["mode"] == "fixed", np.nan, 0.5))
    assert "missing" in A.compare_setting(nan_fixed, curves, 0.005)


def test_split_variant_gives_setting_and_mode():
    table = pd.DataFrame({"variant": ["wrn/autol2", "wrn/fixed", "fc/autol2 λ0=0.01"]})
    got = A.split_variant(table)
    assert list(got["setting"]) == ["wrn", "wrn", "fc"]
    assert list(got["mode"]) == ["autol2", "fixed", "autol2 λ0=0.01"]


# -- λ(t) -------------------------------------------------------------------------------------


def test_schedule_plot_writes_a_png_also_from_empty_data(tmp_path):
    curves, _, _ = sweep_tables()
    autol2 = curves[curves["hash"].isin(["h1", "h2"])].copy()
    autol2.loc[autol2["hash"] == "h1", "lam"] = np.where(autol2["epoch"] > 50, 1e-4, 1e-3)[
        autol2["hash"] == "h1"
    ]
    assert_png(tmp_path / "s.png", A.plot_lambda_schedule(autol2, tmp_path / "s.png"))
    assert_png(tmp_path / "5.png", A.plot_lambda_schedule(curves.iloc[:0], tmp_path / "5.png"))
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_schedule_legend_names_the_variant_and_the_lambda():
    fixed = pd.DataFrame({"lam": 3e-4, "lam_now": [3e-4, 3e-4], "variant": ["wrn/fixed"] * 2})
    auto = pd.DataFrame({"lam": 0.1, "lam_now": [0.1, 0.01], "variant": ["wrn/autol2"] * 2})
    assert A.run_label(fixed) == "wrn/fixed: λ = 0.0003"
    assert A.run_label(auto) == "wrn/autol2: AutoL2, λ₀ = 0.1"
    assert A.run_label(fixed.drop(columns="variant")) == "λ = 0.0003"


def test_a_preset_autol2_run_is_labelled_with_its_first_lambda_in_force():
    # Configured lam = 0 (λ₀ from a preset): the start is the first lam_now by epoch, here
    # the row listed second.
    preset = pd.DataFrame(
        {"lam": 0.0, "epoch": [4.0, 0.0, 2.0], "lam_now": [0.01, 0.3, 0.1], "variant": "w/autol2-p"}
    )
    assert A.run_label(preset) == "w/autol2-p: AutoL2, λ₀ = 0.3"
    steady = pd.DataFrame({"lam": 0.0, "epoch": [0.0, 1.0], "lam_now": [0.3, 0.3]})
    assert A.run_label(steady) == "AutoL2, λ₀ = 0.3"  # λ never changed, yet not λ = 0
    zero = pd.DataFrame({"lam": 0.0, "epoch": [0.0, 1.0], "lam_now": [0.0, 0.0]})
    assert A.run_label(zero) == "λ = 0"

"""The rotational-equilibrium analysis: the predictions, the time-to-equilibrium rule on a
synthetic curve, the table and fit on synthetic layer rows, which runs it reads (not AutoL2, not
η·λ = 0) and the figure."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis.equilibrium import (
    LAST_FRACTION,
    equilibrium_angle,
    equilibrium_runs,
    equilibrium_table,
    fit_time_to_equilibrium,
    left_out,
    left_out_note,
    plot_equilibrium,
    predicted_angle,
    time_to_equilibrium,
)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"eta": 0.05, "lam": 0.004, "momentum": 0.9}, math.sqrt(2 * 0.05 * 0.004 / 1.9)),
        ({"eta": 0.5, "lam": 1e-3}, math.sqrt(2 * 0.5 * 1e-3)),  # plain SGD, μ = 0
        ({"eta": 0.5, "lam": 1e-3, "convention": "script"}, math.sqrt(2 * 0.5 * 2e-3)),
        ({"eta": 2e-3, "lam": 0.5, "optimizer": "adamw"}, math.sqrt(2 * 1e-3 * 0.1 / 1.9)),
        (
            {"eta": 2e-3, "lam": 0.5, "optimizer": "adamw", "beta1": 0.8},
            math.sqrt(2e-3 * 0.2 / 1.8),
        ),
        ({"eta": 0.1, "lam": 0.01, "optimizer": "sgdw"}, math.sqrt(2 * 0.1 * 0.01)),
        ({"eta": 0.1, "lam": 0.01, "optimizer": "sgdw", "momentum": 0.9}, None),
        ({"eta": 1e-3, "lam": 0.01, "optimizer": "adam"}, None),
    ],
)
def test_predicted_angle_per_optimizer(config, expected):
    got = predicted_angle(config)
    assert got == (None if expected is None else pytest.approx(expected, rel=1e-12))


def _relaxing(steps, level, rate, start):
    """An angle relaxing exponentially from ``start`` to ``level`` at ``rate`` per step."""
    return level + (start - level) * np.exp(-rate * steps)


def test_time_to_equilibrium_is_the_first_step_after_which_the_smoothed_angle_stays_within_10pct():
    steps = np.unique(np.round(np.geomspace(1, 1e5, 400))).astype(np.int64)
    angle = _relaxing(steps, 0.01, 1e-3, 0.1)
    level = equilibrium_angle(steps, angle, float(steps[-1]))
    assert level == pytest.approx(0.01, rel=1e-9)
    t_eq = time_to_equilibrium(steps, angle, level)
    # without smoothing, 0.09·e^(−t/1000) ≤ 0.001 at t = 1000·ln 90 ≈ 4500; the ±0.1 decade mean
    # reaches it a little later, and never more than a factor 10^0.1 later
    exact = 1000 * math.log(90)
    assert exact <= t_eq <= exact * 10**0.1
    # a relapse late in the run moves the time past it; one that lasts to the end: never
    later = angle.copy()
    later[(steps > 20_000) & (steps < 25_000)] *= 1.5
    assert time_to_equilibrium(steps, later, level) > 25_000
    assert math.isnan(time_to_equilibrium(steps, angle * (steps < 9e4), level))
    # a level already held from the first step
    assert time_to_equilibrium(steps, np.full(len(steps), 0.02), 0.02) == steps[0]


def test_equilibrium_angle_is_the_median_of_the_last_part():
    steps = np.arange(1, 101)
    angle = np.where(steps >= (1 - LAST_FRACTION) * 100, 2.0, 50.0)
    angle[-1] = 1e9  # one outlier does not move a median
    assert equilibrium_angle(steps, angle, 100.0) == 2.0


def _frames(etas_lams, momentum=0.9):
    """Runs and layer rows: per run two BatchNorm-fed kernels relaxing to 1.05× the SGD
    prediction at rate 20·η·λ per step, and a non-invariant kernel at a tenth of it."""
    runs, rows = [], []
    for i, (eta, lam) in enumerate(etas_lams):
        h = f"r{i}"
        config = {"eta": eta, "lam": lam, "momentum": momentum}
        runs.append({"hash": h, "eta": eta, "lam": lam, "config": json.dumps(config)})
        total = 4.0 / (eta * lam)
        steps = np.unique(np.round(np.geomspace(1, total, 300))).astype(np.int64)
        level = 1.05 * predicted_angle(config)
        for name, inv, scale in (("conv_0/kernel", True, 1.0), ("conv_1/kernel", True, 1.0),
                                 ("dense/kernel", False, 0.1)):  # fmt: skip
            angle = scale * _relaxing(steps, level, 20 * eta * lam, 5 * level)
            for s, a in zip(steps, angle, strict=True):
                rows.append({"hash": h, "step": s, "layer": name, "angle": a, "norm_sq": 1.0,
                             "scale_invariant": inv})  # fmt: skip
    return pd.DataFrame(runs), pd.DataFrame(rows)


def test_table_and_fit_recover_the_ratio_and_a_time_proportional_to_one_over_eta_lam(tmp_path):
    runs, layers = _frames([(0.05, lam) for lam in (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)])
    table = equilibrium_table(runs, layers)
    np.testing.assert_allclose(table["ratio"], 1.05, rtol=1e-3)
    np.testing.assert_allclose(table["other_kernels"], 0.1 * table["measured"], rtol=1e-6)
    # the same relaxation in units of 1/(η·λ) for every run: t_eq·η·λ is one constant
    np.testing.assert_allclose(table["t_eq_eta_lam"], table["t_eq_eta_lam"].iloc[0], rtol=0.05)
    fit = fit_time_to_equilibrium(table, n_boot=200)
    assert fit["slope"] == pytest.approx(1.0, abs=0.03)
    lo, hi = fit["slope_ci"]
    assert lo <= fit["slope"] <= hi and fit["n_runs"] == 6
    assert fit["decades"] == pytest.approx(math.log10(32), rel=1e-9)
    png = plot_equilibrium(table, layers, fit, tmp_path / "eq.png", title="t")
    assert png.stat().st_size > 10_000


def test_fit_without_two_distinct_eta_lam_says_none_and_an_empty_figure_draws(tmp_path):
    runs, layers = _frames([(0.05, 1e-2)])
    fit = fit_time_to_equilibrium(equilibrium_table(runs, layers))
    assert fit["slope"] is None and fit["n_runs"] == 1
    empty = equilibrium_table(runs, layers.iloc[:0])
    assert empty.empty
    plot_equilibrium(empty, layers.iloc[:0], fit, tmp_path / "none.png")


def _mixed():
    """Four runs made as :func:`_frames`' at λ 4e-3, 1.6e-2, 8e-3, 8e-3; the third stored as an
    AutoL2 run (λ₀ 8e-3), the fourth at λ = 0 (its layer rows those of 8e-3)."""
    runs, layers = _frames([(0.05, 4e-3), (0.05, 1.6e-2), (0.05, 8e-3), (0.05, 8e-3)])
    configs = [json.loads(c) for c in runs["config"]]
    configs[2]["autol2"] = True
    configs[3]["lam"] = 0.0
    runs["config"] = [json.dumps(c) for c in configs]
    runs.loc[3, "lam"] = 0.0
    return runs, layers


def test_autol2_runs_and_runs_at_eta_lam_zero_are_left_out_and_counted():
    runs, layers = _mixed()
    runs.loc[4] = {"hash": "r4", "eta": 0.05, "lam": 4e-3, "config": runs.loc[0, "config"]}
    assert list(equilibrium_runs(runs, layers)) == [True, True, False, False, False]
    table = equilibrium_table(runs, layers)
    assert list(table["hash"]) == ["r0", "r1"] and np.isfinite(table["t_eq"]).all()
    assert left_out(runs, layers) == {"autol2": 1, "no_eta_lam": 1, "unmeasured": 1}
    assert left_out_note(runs, layers) == (
        "3 run(s) left out of the equilibrium analysis: 1 AutoL2 (λ changes during the run: "
        "no fixed λ to predict the angle from), 1 at η·λ = 0 (λ = 0: no angle to predict, no "
        "1/(η·λ) to fit against), 1 without layer measurements of a BatchNorm-fed kernel"
    )
    assert left_out_note(runs.iloc[:2], layers) is None
    # an AutoL2 configuration's stored λ is λ₀, not the λ in force: no prediction from it
    assert predicted_angle(json.loads(runs.loc[2, "config"])) is None


def test_the_fit_leaves_out_rows_at_eta_lam_zero_instead_of_taking_log_of_infinity():
    runs, layers = _frames([(0.05, lam) for lam in (1e-3, 4e-3, 1.6e-2)])
    table = equilibrium_table(runs, layers)
    # a table not built by equilibrium_table (a CSV, a hand-made one) may hold η·λ = 0
    zero = table.iloc[[0]].assign(lam=0.0, eta_lam=0.0, t_eq=100.0)
    fit = fit_time_to_equilibrium(pd.concat([table, zero], ignore_index=True), n_boot=200)
    assert fit == fit_time_to_equilibrium(table, n_boot=200)
    assert math.isfinite(fit["prefactor"]) and fit["prefactor"] > 0 and fit["n_runs"] == 3

"""Per-run tables: t* as the first epoch of the maximum, its resolution interval, training
accuracy 1, budgets, fixed-budget peaks, best accuracy per λ; round trip through a real store."""

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis.tables import (
    RUN_TABLE_COLUMNS,
    best_acc_vs_lam,
    run_table,
    run_table_from_store,
    within_budget,
)
from l2dynamics.sweep.store import MEASUREMENT_COLUMNS, RunStore, load_measurements, load_runs

ANALYSIS_SRC = Path(__file__).resolve().parents[1] / "src" / "l2dynamics" / "analysis"


def curve(h, eta, lam, epochs, test_acc, train_acc=None, seed=0):
    """The measurement rows of one run (every store column, ``time``/``tau`` consistent)."""
    epochs = np.asarray(epochs, dtype=float)
    n = len(epochs)
    train = np.zeros(n) if train_acc is None else np.asarray(train_acc, dtype=float)
    return pd.DataFrame(
        {
            "hash": h,
            "eta": eta,
            "lam": lam,
            "seed": seed,
            "step": (epochs * 4).astype(np.int64),
            "epoch": epochs,
            "time": eta * epochs,
            "tau": eta * lam * epochs,
            "train_loss": 1 - train,
            "train_acc": train,
            "test_loss": 1.0,
            "test_acc": np.asarray(test_acc, dtype=float),
            "l2_norm_sq": 1.0,
            "eta_now": eta,
            "lam_now": lam,
        }
    )


def runs_frame(rows):
    """Runs rows ``(hash, status, eta, lam, seed, budget_epochs)`` on a test set of 500."""
    frame = pd.DataFrame(rows, columns=["hash", "status", "eta", "lam", "seed", "budget_epochs"])
    return frame.assign(n_test=500)


def one_run_table(epochs, test_acc, train_acc=None, budget=None, status="done"):
    budget = epochs[-1] if budget is None else budget
    runs = runs_frame([("a", status, 0.1, 0.01, 0, budget)])
    return run_table(runs, curve("a", 0.1, 0.01, epochs, test_acc, train_acc)).iloc[0]


def test_t_star_is_the_first_epoch_of_the_maximum_with_neighbouring_epochs():
    row = one_run_table([0, 1, 2, 4, 8, 16], [0.1, 0.5, 0.9, 0.7, 0.9, 0.8])
    assert row["best_test_acc"] == 0.9
    assert row["t_star_epochs"] == 2  # not 8, the later equal maximum
    assert (row["t_star_lo"], row["t_star_hi"]) == (1, 4)
    assert row["peak_inside"]
    assert row["eta_lam"] == pytest.approx(1e-3)
    assert row["t_star_tau"] == pytest.approx(2e-3)


def test_peak_at_either_end_has_an_open_interval_and_a_peak_at_the_end_is_not_inside():
    first = one_run_table([0, 1, 2], [0.9, 0.5, 0.4])
    assert math.isnan(first["t_star_lo"]) and first["t_star_hi"] == 1 and first["peak_inside"]
    last = one_run_table([0, 1, 2], [0.1, 0.5, 0.6])
    assert last["t_star_lo"] == 1 and math.isnan(last["t_star_hi"])
    assert not last["peak_inside"]
    # a run stopped early (at its peak) but whose t* is at its budget is not inside either
    assert not one_run_table([0, 1, 2], [0.1, 0.9, 0.5], budget=1.0)["peak_inside"]


def test_unsorted_measurements_are_ordered_by_epoch():
    row = one_run_table([4, 0, 2, 1], [0.3, 0.1, 0.8, 0.8])
    assert (row["t_star_epochs"], row["t_star_lo"], row["t_star_hi"]) == (1, 0, 2)


def test_reached_train_acc_1_and_the_first_epoch_it_happens():
    row = one_run_table([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.2], train_acc=[0.2, 0.99, 1.0, 0.998])
    assert row["reached_train_acc_1"] and row["epochs_to_train_acc_1"] == 2
    assert row["max_train_acc"] == 1.0
    row = one_run_table([0, 1, 2], [0.1, 0.2, 0.3], train_acc=[0.2, 0.9995, 0.999])
    assert not row["reached_train_acc_1"] and math.isnan(row["epochs_to_train_acc_1"])
    assert row["max_train_acc"] == 0.9995
    # float32 arithmetic of N/N is exactly 1
    acc = float(np.float32(512) / np.float32(512))
    assert one_run_table([0, 1], [0.1, 0.2], train_acc=[0.5, acc])["reached_train_acc_1"]


def test_only_finished_runs_in_order_with_budget_fallbacks_and_empty_curves():
    runs = runs_frame(
        [
            ("q", "queued", 0.1, 0.01, 0, np.nan),
            ("d", "diverged", 1.0, 0.01, 0, np.nan),  # no budget: its last measured epoch
            ("f", "failed", 0.1, 0.01, 1, np.nan),
            ("a", "done", 0.1, 0.0, 2, 50.0),
            ("e", "done", 0.2, 0.1, 0, 7.0),  # finished but no measurements
        ]
    )
    m = pd.concat(
        [
            curve("a", 0.1, 0.0, [0, 10, 20], [0.2, 0.6, 0.5]),
            curve("d", 1.0, 0.01, [0, 1, 2, 3], [0.3, 0.4, np.nan, np.nan]),
        ]
    )
    table = run_table(runs, m)
    assert list(table.columns) == list(RUN_TABLE_COLUMNS)
    assert list(table["hash"]) == ["d", "a", "e"]
    d, a, e = (table.iloc[i] for i in range(3))
    assert d["budget_epochs"] == 3 and d["best_test_acc"] == 0.4 and d["t_star_epochs"] == 1
    assert a["budget_epochs"] == 50 and a["eta_lam"] == 0 and a["t_star_tau"] == 0
    assert e["budget_epochs"] == 7 and math.isnan(e["t_star_epochs"])
    assert not e["reached_train_acc_1"] and not e["peak_inside"]
    no_budget = run_table(runs.drop(columns="budget_epochs"), m)
    assert list(no_budget["budget_epochs"][:2]) == [3, 20]


def test_variant_column_is_passed_through():
    runs = runs_frame([("a", "done", 0.1, 0.01, 0, 2.0)]).assign(variant="bn")
    table = run_table(runs, curve("a", 0.1, 0.01, [0, 1, 2], [0.1, 0.5, 0.2]))
    assert table["variant"].tolist() == ["bn"]


def test_within_budget_restricts_the_peak_to_epochs_up_to_the_budget():
    m = pd.concat(
        [
            curve("a", 0.1, 0.01, [0, 1, 2, 4, 8], [0.1, 0.5, 0.6, 0.9, 0.95], seed=3),
            curve("b", 0.2, 0.0, [0, 1, 2], [0.2, 0.7, 0.3]),
        ]
    )
    w = within_budget(m, 2.0).set_index("hash")
    assert w.loc["a", ["best_test_acc", "t_star_epochs"]].tolist() == [0.6, 2.0]
    assert w.loc["a", "covers_budget"] and w.loc["a", "seed"] == 3
    assert (w.loc["a", "eta"], w.loc["a", "lam"]) == (0.1, 0.01)
    assert w.loc["b", ["best_test_acc", "t_star_epochs"]].tolist() == [0.7, 1.0]
    late = within_budget(m, 5.0).set_index("hash")
    assert late.loc["a", "best_test_acc"] == 0.9 and not late.loc["b", "covers_budget"]


def test_within_budget_equals_a_brute_force_maximum_and_the_full_table():
    rng = np.random.default_rng(0)
    epochs = np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 1.0, 39))])
    m = pd.concat([curve(f"h{i}", 0.1, 0.01, epochs, rng.uniform(size=40)) for i in range(5)])
    for budget in (0.5, 3.0, 10.0, 25.0):
        w = within_budget(m, budget)
        for h, g in m.groupby("hash"):
            inside = g[g["epoch"] <= budget]
            row = w[w["hash"] == h].iloc[0]
            assert row["best_test_acc"] == inside["test_acc"].max()
            assert row["t_star_epochs"] == inside["epoch"][inside["test_acc"].idxmax()]
    runs = runs_frame([(f"h{i}", "done", 0.1, 0.01, 0, epochs[-1]) for i in range(5)])
    full, table = within_budget(m, np.inf), run_table(runs, m)
    np.testing.assert_array_equal(full["t_star_epochs"], table["t_star_epochs"])
    np.testing.assert_array_equal(full["best_test_acc"], table["best_test_acc"])


def test_within_budget_before_the_first_measurement_is_nan():
    w = within_budget(curve("a", 0.1, 0.01, [1, 2], [0.5, 0.6]), 0.5)
    assert math.isnan(w["best_test_acc"].iloc[0]) and w["covers_budget"].iloc[0]


def test_best_acc_vs_lam_averages_seeds_then_picks_the_best_eta():
    table = pd.DataFrame(
        [  # (lam, eta, seed, best)
            (1e-3, 0.1, 0, 0.85),
            (1e-3, 0.1, 1, 0.87),
            (1e-3, 0.2, 0, 0.90),
            (1e-3, 0.2, 1, 0.86),
            (0.0, 0.1, 0, 0.80),
            (0.0, 0.1, 1, 0.82),
            (1e-2, 0.1, 0, np.nan),
        ],
        columns=["lam", "eta", "seed", "best_test_acc"],
    )
    acc = best_acc_vs_lam(table)
    assert acc["lam"].tolist() == [0.0, 1e-3, 1e-2]
    zero, mid, nan = (acc.iloc[i] for i in range(3))
    assert zero["mean"] == pytest.approx(0.81) and zero["best_eta"] == 0.1
    assert mid["mean"] == pytest.approx(0.88) and mid["best_eta"] == 0.2
    assert mid["std"] == pytest.approx(np.std([0.90, 0.86], ddof=1))
    assert (mid["n_seeds"], mid["n_eta"]) == (2, 2)
    assert math.isnan(nan["mean"]) and nan["n_seeds"] == 0
    assert best_acc_vs_lam(table.iloc[:0]).empty


DATA = {"name": "digits", "n_test": 300}


def test_round_trip_through_a_real_store(tmp_path):
    path = tmp_path / "sweep.db"
    curves = {
        "h0": curve(
            "h0", 0.1, 1e-3, [0, 0.5, 1, 2, 4], [0.1, 0.6, 0.8, 0.7, 0.8], [0, 0.5, 1, 1, 1]
        ),
        "h1": curve("h1", 0.4, 0.0, [0, 1, 2], [0.2, 0.3, 0.4], [0, 0.9, 0.95]),
    }
    with RunStore(path) as store:
        store.add_runs([(h, {"eta": c["eta"][0], "lam": c["lam"][0], "seed": 0, "data": DATA})
                        for h, c in [*curves.items(), ("h2", curves["h0"])]])  # fmt: skip
        for h, c in curves.items():
            acc = c["test_acc"].to_numpy()
            summary = {"t_star_epochs": c["epoch"][int(np.argmax(acc))], "budget_epochs": 4.0}
            store.record_result(
                h, "done", summary, {k: c[k].to_numpy() for k in MEASUREMENT_COLUMNS}
            )
    table = run_table_from_store(path)
    pd.testing.assert_frame_equal(table, run_table(load_runs(path), load_measurements(path)))
    assert table["hash"].tolist() == ["h0", "h1"]  # h2 is still queued
    np.testing.assert_array_equal(table["t_star_epochs"], load_runs(path)["t_star_epochs"][:2])
    assert table["t_star_epochs"].tolist() == [1.0, 2.0]
    assert table["reached_train_acc_1"].tolist() == [True, False]
    assert table.loc[0, ["t_star_lo", "t_star_hi", "budget_epochs"]].tolist() == [0.5, 2.0, 4.0]


def test_a_store_without_finished_runs_gives_an_empty_typed_table(tmp_path):
    with RunStore(tmp_path / "s.db") as store:
        store.add_runs([("q", {"eta": 0.1, "lam": 0.01, "seed": 0})])
    table = run_table_from_store(tmp_path / "s.db")
    assert table.empty and list(table.columns) == list(RUN_TABLE_COLUMNS)
    assert table["peak_inside"].dtype == bool and table["t_star_epochs"].dtype == np.float64
    assert within_budget(load_measurements(tmp_path / "s.db"), 10.0).empty


@pytest.mark.parametrize("source", sorted(ANALYSIS_SRC.glob("*.py")), ids=lambda p: p.name)
def test_analysis_never_imports_jax_training_or_the_cli(source):
    forbidden = ("jax", "flax", "optax", "l2dynamics.train", "l2dynamics.cli")
    for node in ast.walk(ast.parse(source.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            assert not any(name == f or name.startswith(f + ".") for f in forbidden), name


def test_a_store_written_before_the_near_peak_rule_gets_both_t_star_without_retraining():
    """Stores of 0.1.0 hold curves, not the toolkit's t*: the run table computes it from them,
    with the test-set size from each run's stored configuration."""
    from pathlib import Path

    from l2dynamics.results import near_peak

    fixture = Path(__file__).parent / "fixtures" / "store-v0.1.0.sqlite"
    runs, curves = load_runs(fixture), load_measurements(fixture)
    table = run_table(runs, curves)
    assert len(table) and table["t_star_robust"].notna().all()
    for row in table.itertuples():
        c = curves[curves["hash"] == row.hash].sort_values("epoch")
        near = near_peak(c["epoch"], c["test_acc"], row.n_test)
        assert (row.t_star_robust, row.t_star_robust_lo, row.t_star_robust_hi) == (
            near.t_star, near.lo, near.hi)  # fmt: skip


def test_the_run_table_gives_each_run_its_optimizers_timescale_in_steps_and_epochs():
    """τ_iter and τ_epoch from each run's stored configuration (as a store holds it: fields at
    their later-added defaults left out), the same numbers as the config's own definition; a
    frame without configurations gets τ_iter from η and λ (SGD) and no τ_epoch."""
    import json

    from l2dynamics.config import DataConfig, TrainConfig, timescale_epochs, timescale_steps
    from l2dynamics.sweep.spec import config_dict

    data = DataConfig("digits", n_train=512)
    cfgs = {
        "sgd": TrainConfig(data=data, eta=0.1, lam=0.01, momentum=0.9, batch_size=128),
        "sgdw": TrainConfig(data=data, eta=0.1, lam=0.01, momentum=0.9, optimizer="sgdw"),
        "adamw": TrainConfig(eta=1e-3, lam=0.1, optimizer="adamw", batch_size=100),
        "zero": TrainConfig(data=data, eta=0.1, lam=0.0, batch_size=128),
    }
    rows = [(h, "done", c.eta, c.lam, 0, 2.0) for h, c in cfgs.items()]
    runs = runs_frame(rows).assign(config=[json.dumps(config_dict(c)) for c in cfgs.values()])
    measurements = pd.concat([curve(h, c.eta, c.lam, [0, 1, 2], [0.1, 0.5, 0.2])
                              for h, c in cfgs.items()])  # fmt: skip
    table = run_table(runs, measurements).set_index("hash")
    for h, cfg in cfgs.items():
        assert table.loc[h, "tau_iter"] == pytest.approx(timescale_steps(cfg), rel=1e-12)
        assert table.loc[h, "tau_epoch"] == pytest.approx(timescale_epochs(cfg), rel=1e-12)
    assert table.loc["sgd", "tau_iter"] == pytest.approx(100)  # (1 − 0.9)/(0.1·0.01)
    assert table.loc["sgdw", "tau_epoch"] == pytest.approx(1000)  # full batch: 1 step/epoch
    assert table.loc["adamw", "tau_epoch"] == pytest.approx(1e4 * 100 / 1297)
    bare = run_table(runs.drop(columns="config"), measurements).set_index("hash")
    assert bare.loc["adamw", "tau_iter"] == pytest.approx(1e4)
    assert bare["tau_epoch"].isna().all()


def test_autol2_runs_are_told_by_their_stored_configuration():
    """A config stored as a store writes it (``config_dict``: ``autol2`` true, λ₀ in ``lam``)
    is an AutoL2 run; one without the key, or a frame without configurations, is not."""
    import json

    from l2dynamics.analysis.tables import is_autol2, uses_autol2
    from l2dynamics.config import TrainConfig
    from l2dynamics.sweep.spec import config_dict

    auto, fixed = TrainConfig(lam=0.0, autol2=True), TrainConfig(lam=0.01)
    assert uses_autol2(config_dict(auto)) and not uses_autol2(config_dict(fixed))
    assert not uses_autol2({})
    rows = [("a", "done", 0.1, 0.0, 0, 2.0), ("f", "done", 0.1, 0.01, 0, 2.0)]
    runs = runs_frame(rows).assign(config=[json.dumps(config_dict(c)) for c in (auto, fixed)])
    runs.index = [7, 9]  # aligned with the frame's own index
    assert is_autol2(runs).to_dict() == {7: True, 9: False}
    assert is_autol2(runs.drop(columns="config")).to_dict() == {7: False, 9: False}

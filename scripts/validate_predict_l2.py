"""Validate ``l2dyn predict-l2`` (SPEC §2.3) on digits FC: does the predicted λ do as well, at a
budget of T epochs, as the best λ of a grid swept at that budget?

Setup (the quickstart's): digits, 256 of its 1,297 training images, tested on its fixed
500-image test split (one image = 0.2 points), FC with 3 hidden layers of width 128, σ_w = √2,
σ_b = 0, full batch, plain SGD at η = 1.

1. ``predict_l2`` calibrates once at λ = 0.01 and predicts λ_pred = c/(η·T) and 2c/(η·T).
2. A grid of λ (plus λ_pred and 2c/(η·T) themselves), 2 seeds each, is trained for exactly T
   epochs (no early stop: the best test accuracy within T is the performance, SPEC §1).
3. The table shows each λ's best test accuracy (mean over seeds); the check is whether the
   predicted λ's is within 0.5 points of the grid's best.

    python scripts/validate_predict_l2.py [--budget-epochs 1000] [--store runs.sqlite]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import pandas as pd

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
from l2dynamics.predict import Prediction, predict_l2
from l2dynamics.sweep import load_runs, parse_sweep, run_sweep

GRID = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2]
SEEDS = [0, 1]
ETA = 1.0
TOLERANCE = 0.005  # 0.5 points of accuracy
DATA = {"name": "digits", "n_train": 256}
MODEL = {"name": "fc", "options": {"depth": 3, "width": 128, "sigma_w": math.sqrt(2.0)}}
MODEL["options"]["sigma_b"] = 0.0
RESOLUTION = 0.05


def base_config() -> TrainConfig:
    """The setup to predict for (η = 1, full batch, log-spaced measurements)."""
    return TrainConfig(
        data=DataConfig(**DATA),
        model=ModelConfig(MODEL["name"], dict(MODEL["options"])),
        eta=ETA,
        measure_resolution=RESOLUTION,
    )


def sweep_table(lams: list[float], budget: float) -> dict:
    """The fixed-budget sweep: every λ for exactly ``budget`` epochs, each seed."""
    return {
        "name": "validate-predict-l2",
        "data": DATA,
        "model": MODEL,
        "train": {"measure_resolution": RESOLUTION},
        "grid": {"eta": [ETA], "lam": lams, "seeds": SEEDS},
        "budget": {"epochs": budget},
    }


def grid_frame(store: Path, pred: Prediction) -> pd.DataFrame:
    """One row per λ: best test accuracy per seed and their mean, mean t*, role."""
    runs = load_runs(store)
    rows = []
    for lam, g in runs.groupby("lam"):
        acc = {f"acc_seed{int(s)}": a for s, a in zip(g["seed"], g["best_test_acc"], strict=True)}
        role = "grid" if any(math.isclose(lam, x) for x in GRID) else ""
        if math.isclose(lam, pred.lam_pred):
            role = (role + "+" if role else "") + "λ_pred (c/ηT)"
        if math.isclose(lam, pred.lam_pred_2c):
            role = (role + "+" if role else "") + "λ_pred (2c/ηT)"
        rows.append(
            {
                "lam": lam,
                **acc,
                "mean_acc": g["best_test_acc"].mean(),
                "t_star_mean": g["t_star_epochs"].mean(),
                "max_train_acc": g["max_train_acc"].min(),
                "role": role,
            }
        )
    return pd.DataFrame(rows).sort_values("lam").reset_index(drop=True)


def print_table(df: pd.DataFrame, best_lam: float) -> None:
    seeds = [c for c in df.columns if c.startswith("acc_seed")]
    head = f"{'λ':>10}  " + "  ".join(f"{s:>9}" for s in seeds)
    print(head + f"  {'mean':>7}  {'t* mean':>8}  {'min train acc':>13}  role")
    for r in df.itertuples():
        accs = "  ".join(f"{100 * getattr(r, s):9.2f}" for s in seeds)
        mark = " ← grid best" if r.lam == best_lam else ""
        print(
            f"{r.lam:10.4g}  {accs}  {100 * r.mean_acc:7.2f}  {r.t_star_mean:8.0f}  "
            f"{r.max_train_acc:13.3f}  {r.role}{mark}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-epochs", type=float, default=1000.0, help="the budget T")
    parser.add_argument("--store", type=Path, default=None, help="SQLite store (resumable)")
    args = parser.parse_args()
    T = args.budget_epochs

    pred = predict_l2(base_config(), T)
    print(
        f"calibration: λ = {pred.cal_lam:g}, η = {pred.cal_eta:g}, t* = {pred.t_star_epochs:g}"
        f" epochs (±{100 * pred.t_star_resolution:.1f}%), {pred.cal_epochs:g} epochs, "
        f"{pred.wall_s:.1f} s; max train acc {pred.max_train_acc:.3f}"
    )
    print(
        f"c = t*·η·λ = {pred.c:.4g};  λ_pred = c/(η·T) = {pred.lam_pred:.4g};  "
        f"2c/(η·T) = {pred.lam_pred_2c:.4g};  cost = {pred.cal_epochs:g}/{T:g} epochs "
        f"= {100 * pred.cost_fraction:.1f}% of T"
    )
    for note in pred.notes:
        print(f"note: {note}")

    lams = sorted(set(GRID) | {pred.lam_pred, pred.lam_pred_2c})
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "runs.sqlite"
        start = time.perf_counter()
        report = run_sweep(parse_sweep(sweep_table(lams, T)), str(store))
        print(
            f"\nfixed-budget sweep: {report.total} runs at T = {T:g} epochs, η = {ETA:g}, "
            f"seeds {SEEDS}: {time.perf_counter() - start:.0f} s "
            f"({report.done} done, {report.diverged} diverged, {report.failed} failed)\n"
        )
        df = grid_frame(store, pred)

    on_grid = df[df["role"].str.contains("grid")]
    best = on_grid.loc[on_grid["mean_acc"].idxmax()]
    print_table(df, float(best["lam"]))
    results = {"lam_best_grid": float(best["lam"]), "acc_best_grid": float(best["mean_acc"])}
    print(
        f"\ngrid best: λ = {best['lam']:g}, mean best test accuracy {100 * best['mean_acc']:.2f}%"
    )
    for name, lam in (("c/(η·T)", pred.lam_pred), ("2c/(η·T)", pred.lam_pred_2c)):
        acc = float(df.loc[df["lam"].map(lambda x, v=lam: math.isclose(x, v)), "mean_acc"].iloc[0])
        gap = best["mean_acc"] - acc
        ok = gap <= TOLERANCE + 1e-6  # "within" is inclusive; accuracies are float32
        print(
            f"λ_pred = {name} = {lam:.4g}: {100 * acc:.2f}%, grid best − this = "
            f"{100 * gap:+.2f} points -> {'PASS' if ok else 'FAIL'} (need <= {100 * TOLERANCE:g})"
        )
        results[name] = {"lam": lam, "acc": acc, "gap_points": 100 * gap, "pass": bool(ok)}
    print(json.dumps({"prediction": pred.to_dict(), **results}))


if __name__ == "__main__":
    main()

"""Validate AutoL2 against a grid search (issue 17): does one AutoL2 run do as well as the best
fixed λ of a half-decade grid, at the same budget, on settings it was not designed on?

For every setting of ``scripts/autol2_validation.toml`` and every seed, the script trains the
fixed-λ grid and AutoL2 in each variant (:data:`AUTOL2_VARIANTS`: the default preset, the
``paper`` and the ``authors-code`` presets)
into one resumable store per setting and variant (kill it and run it again: finished runs are
kept), then writes, per setting and AutoL2 variant:

- the best fixed λ (highest best test accuracy, averaged over seeds) and its accuracy;
- AutoL2's best test accuracy and its difference from the best fixed λ's, paired by seed;
- whether that difference is within the issue's tolerance: ≥ −0.5 points, or ≥ −1 standard
  error of the test set (``√(p(1−p)/n_test)`` at the best fixed accuracy), whichever is looser;
- the epochs each needs to reach (best fixed accuracy − 1 point);
- AutoL2's start and final λ, and whether each fit the training set (training accuracy 1).

    python scripts/validate_autol2.py --data-dir ../shared/data --stores DIR --out DIR
    python scripts/validate_autol2.py ... --only fc64-mnist-b16   # one setting
"""

from __future__ import annotations

import argparse
import math
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.analysis.autol2_vs_fixed import epochs_to_reach
from l2dynamics.config import TrainConfig
from l2dynamics.files import write_text
from l2dynamics.sweep import Sweep, load_measurements, load_runs, parse_sweep, run_hash, run_sweep
from l2dynamics.train.run import load_data

HERE = Path(__file__).resolve().parent
SETTINGS = HERE / "autol2_validation.toml"
# The AutoL2 variants: each one's training options (λ₀ from the preset: the grid's lam is 0).
AUTOL2_VARIANTS = {
    "autol2": {"autol2": True},
    "autol2-paper": {"autol2": True, "autol2_preset": "paper"},
    "autol2-authors": {"autol2": True, "autol2_preset": "authors-code"},
}
VARIANTS = ("fixed", *AUTOL2_VARIANTS)
TOLERANCE = 0.005  # half a point of test accuracy
REACH = 0.01  # epochs to the best fixed accuracy minus one point
FIT = 1.0 - 1e-6  # training accuracy 1


def setting_sweeps(name: str, setting: dict[str, Any], plan: dict[str, Any], data_dir: str | None):
    """(variant, Sweep) of one setting: the fixed grid, then each AutoL2 variant."""
    data = dict(setting["data"]) | ({"data_dir": data_dir} if data_dir else {})
    base = {"data": data, "model": setting["model"], "budget": {"epochs": setting["epochs"]}}
    grids = {"fixed": ({}, plan["fixed_lam"])}
    grids |= {variant: (train, [0.0]) for variant, train in AUTOL2_VARIANTS.items()}
    out = []
    for variant, (train, lams) in grids.items():
        table = base | {
            "name": f"{name}-{variant}",
            "train": dict(setting.get("train", {})) | train,
            "grid": {"eta": [setting["eta"]], "lam": lams, "seeds": plan["seeds"]},
        }
        out.append((variant, parse_sweep(table)))
    return out


def summarize(name: str, sweeps: list[tuple[str, Sweep]], runs: pd.DataFrame, curves: pd.DataFrame):
    """The table rows of one setting (one per AutoL2 variant)."""
    if runs.empty:
        return []
    label = {run_hash(c): v for v, s in sweeps for c in s.runs}
    mine = runs[runs["hash"].isin(label)].assign(variant=lambda f: f["hash"].map(label))
    fixed = mine[mine["variant"] == "fixed"]
    per_lam = fixed.groupby("lam")["best_test_acc"].mean()
    if per_lam.isna().all():
        return []
    best_lam = float(per_lam.idxmax())
    best = fixed[fixed["lam"] == best_lam].set_index("seed")
    target = float(best["best_test_acc"].mean())
    n_test = test_size(sweeps[0][1].runs[0])
    se = math.sqrt(target * (1 - target) / n_test) if n_test else 0.0
    reach = epochs_to_reach(curves[curves["hash"].isin(label)], target - REACH)
    rows = []
    for variant in VARIANTS[1:]:
        auto = mine[mine["variant"] == variant].set_index("seed")
        diff = (auto["best_test_acc"] - best["best_test_acc"]).dropna()
        lams = curves[curves["hash"].isin(auto["hash"])].sort_values("step", kind="stable")
        first, last = (lams.groupby("hash")["lam_now"].agg(f) for f in ("first", "last"))
        rows.append(
            {
                "setting": name,
                "autol2": variant,
                "best_fixed_lam": best_lam,
                "best_fixed_acc": round(target, 4),
                "autol2_acc": round(float(auto["best_test_acc"].mean()), 4),
                "paired_diff": round(float(diff.mean()), 4) if len(diff) else math.nan,
                "test_se": round(se, 4),
                "passes": bool(len(diff) and diff.mean() >= -max(TOLERANCE, se)),
                "autol2_epochs_to_reach": _mean(reach.reindex(auto["hash"])),
                "fixed_epochs_to_reach": _mean(reach.reindex(best["hash"])),
                "autol2_start_lam": float(f"{first.mean():.4g}") if len(first) else math.nan,
                "autol2_final_lam": float(f"{last.mean():.4g}") if len(last) else math.nan,
                "autol2_fits": float((auto["max_train_acc"] >= FIT).mean()),
                "fixed_fits": float((best["max_train_acc"] >= FIT).mean()),
                "seeds": int(len(diff)),
            }
        )
    return rows


def test_size(cfg: TrainConfig) -> int:
    """Images in the test set of ``cfg``'s data (its ``n_test``, else the whole test split)."""
    return cfg.data.n_test or len(load_data(cfg).y_test)


def store_path(folder: Path, name: str, variant: str) -> Path:
    """The store of one setting's variant (one sweep per store)."""
    return folder / f"{name}-{variant}.sqlite"


def results(folder: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs and measurements of every variant of setting ``name`` that has a store."""
    paths = [store_path(folder, name, v) for v in VARIANTS]
    paths = [p for p in paths if p.exists()]
    if not paths:
        return pd.DataFrame(columns=["hash"]), pd.DataFrame(columns=["hash"])
    runs = pd.concat([load_runs(p) for p in paths], ignore_index=True)
    return runs, pd.concat([load_measurements(p) for p in paths], ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
    """``table`` as a Markdown table."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines) + "\n"


def _mean(values: pd.Series) -> float:
    finite = values.to_numpy(np.float64)
    finite = finite[np.isfinite(finite)]
    return round(float(finite.mean()), 3) if len(finite) else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", type=Path, required=True, help="directory of the stores")
    parser.add_argument("--out", type=Path, default=Path("autol2-validation"))
    parser.add_argument("--data-dir", default=None, help="MNIST / CIFAR-10 directory")
    parser.add_argument("--settings", type=Path, default=SETTINGS)
    parser.add_argument("--only", action="append", help="train only these settings")
    parser.add_argument("--no-train", action="store_true", help="only write the table")
    args = parser.parse_args(argv)
    plan = tomllib.loads(args.settings.read_text())
    names = args.only or list(plan["settings"])
    sweeps = {n: setting_sweeps(n, plan["settings"][n], plan, args.data_dir) for n in names}
    args.stores.mkdir(parents=True, exist_ok=True)
    for name, pairs in sweeps.items():
        for variant, sweep in pairs if not args.no_train else ():
            report = run_sweep(sweep, str(store_path(args.stores, name, variant)))
            print(f"{name} {variant}: {report.done} done, {report.skipped} kept", file=sys.stderr)
    rows = [r for n, pairs in sweeps.items() for r in summarize(n, pairs, *results(args.stores, n))]
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "autol2_validation.csv", table.to_csv(index=False))
    write_text(args.out / "autol2_validation.md", markdown(table))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Hand-built runs and measurements frames (the columns of the store's load_runs and
load_measurements) shared by the analysis and experiment-kind tests, and PNG checks."""

import json

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from l2dynamics.analysis.fits import fit_tstar
from l2dynamics.analysis.tables import run_table
from l2dynamics.experiments.spec import Experiment

PNG = b"\x89PNG\r\n\x1a\n"
ETAS = (0.1, 0.4)
N_TEST = 500  # test examples of the hand-built runs (the digits' test set)
LAMS = (0.0, 1e-3, 1e-2, 1e-1)


# -- a Figure-2-like sweep ------------------------------------------------------------------


def synthetic_sweep():
    """Runs and measurements whose test accuracy peaks at τ = 0.5 (t* = 0.5/(η·λ) epochs)."""
    runs, curves = [], []
    for i, (eta, lam) in enumerate((e, la) for e in ETAS for la in LAMS):
        h, budget = f"h{i}", 2.0 / (eta * lam) if lam else 2000.0
        epoch = np.concatenate([[0.0], np.geomspace(0.05, budget, 40)])
        tau = eta * lam * epoch
        peak = 0.5 if lam else 0.5 / (eta * 1e-3)
        x = tau if lam else eta * 1e-3 * epoch
        acc = 0.9 - 0.02 * np.log((x + 1e-9) / 0.5) ** 2
        train = np.minimum(1.0, 4 * epoch / (peak / (eta * lam) if lam else peak))
        runs.append((h, "done", eta, lam, 0, budget))
        curves.append(
            pd.DataFrame(
                dict(
                    hash=h,
                    eta=eta,
                    lam=lam,
                    seed=0,
                    step=np.arange(41),
                    epoch=epoch,
                    time=eta * epoch,
                    tau=tau,
                    train_loss=1 - train,
                    train_acc=train,
                    test_loss=1 - acc,
                    test_acc=acc,
                    l2_norm_sq=1.0,
                    eta_now=eta,
                    lam_now=lam,
                )  # fmt: skip
            )
        )
    runs = pd.DataFrame(runs, columns=["hash", "status", "eta", "lam", "seed", "budget_epochs"])
    runs["n_test"] = N_TEST
    return runs, pd.concat(curves, ignore_index=True)


def sweep_tables():
    """(measurements, run table, t* fit) of :func:`synthetic_sweep`."""
    runs, curves = synthetic_sweep()
    table = run_table(runs, curves)
    return curves, table, fit_tstar(table, n_boot=100)


def assert_png(path, returned):
    assert returned == path
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


def new_ax():
    return Figure().subplots()


def data_points(ax):
    """(x, y) of every errorbar's data points in ``ax``."""
    return np.concatenate([np.column_stack(c.lines[0].get_data()) for c in ax.containers])


# -- runs built one by one ------------------------------------------------------------------


def curve_rows(run_hash, eta, lam, epochs, test_acc, train_acc=None, train_loss=None, **extra):
    """Measurement rows of one run (the columns of load_measurements, plus ``extra``)."""
    epochs = np.asarray(epochs, np.float64)
    n = len(epochs)
    return pd.DataFrame(
        {
            "hash": run_hash,
            "eta": eta,
            "lam": lam,
            "seed": 0,
            "step": np.arange(n),
            "epoch": epochs,
            "time": eta * epochs,
            "tau": eta * lam * epochs,
            "train_loss": np.ones(n) if train_loss is None else np.asarray(train_loss, float),
            "train_acc": np.ones(n) if train_acc is None else np.asarray(train_acc, float),
            "test_loss": np.ones(n),
            "test_acc": np.asarray(test_acc, np.float64),
            "l2_norm_sq": np.ones(n),
            "eta_now": eta,
            "lam_now": lam,
            **extra,
        }
    )


def run_rows(curves, *, config=None, stopped=(), status=None, variant=None):
    """One store-like runs row per run of ``curves``."""
    rows = []
    for run_hash, c in curves.groupby("hash", sort=False):
        cfg = (config or {}).get(run_hash, {"lr_schedule": "constant"})
        rows.append(
            {
                "hash": run_hash,
                "status": (status or {}).get(run_hash, "done"),
                "eta": float(c["eta"].iloc[0]),
                "lam": float(c["lam"].iloc[0]),
                "seed": 0,
                "budget_epochs": float(c["epoch"].max()),
                "final_test_acc": float(c["test_acc"].iloc[-1]),
                "stopped_at_peak": int(run_hash in stopped),
                "config": json.dumps(cfg),
                "n_test": N_TEST,
            }
        )
    runs = pd.DataFrame(rows)
    if variant is not None:
        runs["variant"] = runs["hash"].map(variant)
    return runs


def peaked(run_hash, eta, lam, c=0.05, top=0.9, epochs=None, fit_epoch=1.0, **extra):
    """A run whose test accuracy peaks at τ = c (t* = c/(η·λ) epochs) and falls after it."""
    epochs = np.geomspace(0.1, 40 * c / (eta * lam), 80) if epochs is None else epochs
    tau = eta * lam * np.asarray(epochs)
    acc = 0.1 + (top - 0.1) * np.exp(-(np.log(tau / c) ** 2) / 2)
    train = np.minimum(1.0, np.asarray(epochs) / fit_epoch)
    return curve_rows(run_hash, eta, lam, epochs, acc, train_acc=train, **extra)


def experiment(kind, **settings):
    return Experiment("synthetic", "Synthetic", kind, settings, ())


# -- the tiny experiment files of the end-to-end tests ------------------------------------------


def tiny_sweep_tables(width: int = 32) -> str:
    """The ``[sweep.data]``, ``[sweep.model]`` and ``[sweep.train]`` tables shared by the tests'
    tiny experiment files: a one-hidden-layer FC of ``width`` on 64 digits, 100 test images."""
    return f"""
[sweep.data]
name = "digits"
n_train = 64
n_test = 100

[sweep.model]
name = "fc"
options = {{ depth = 1, width = {width} }}

[sweep.train]
measure_resolution = 0.2
"""


# -- a tiny sweep file (FC on 96 digits, 2 seeds) -------------------------------------------

TINY_SWEEP = """
name = "{name}"
[data]
name = "digits"
n_train = 96
n_test = 150
[model]
name = "fc"
options = {{ depth = 1, width = 16 }}
[train]
batch_size = 32
measure_resolution = 0.1
[grid]
eta = {etas}
lam = [0.01, 0.03]
seeds = [0, 1]
[budget]
{budget}
"""


def write_sweep(path, etas="[0.2, 0.5, 1.0]", c=0.5, budget=None, name="test-grid"):
    """Write :data:`TINY_SWEEP` to ``path`` (budget ``c``/(η·λ) epochs, capped at 400, unless
    ``budget`` gives the table's lines) and return ``path``."""
    budget = budget or f"c = {c}\nmax_epochs = 400"
    path.write_text(TINY_SWEEP.format(name=name, etas=etas, budget=budget))
    return path

"""Sweeps: (η, λ, seed) grids trained in vectorized pools into a crash-safe SQLite store."""

from l2dynamics.sweep.runner import SweepReport, run_sweep
from l2dynamics.sweep.spec import Sweep, load_sweep, parse_sweep, run_hash
from l2dynamics.sweep.store import (
    RunStore,
    StoreError,
    export,
    load_layer_measurements,
    load_measurements,
    load_runs,
)

__all__ = [
    "RunStore",
    "StoreError",
    "Sweep",
    "SweepReport",
    "export",
    "load_layer_measurements",
    "load_measurements",
    "load_runs",
    "load_sweep",
    "parse_sweep",
    "run_hash",
    "run_sweep",
]

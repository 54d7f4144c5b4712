"""Checkpoints: their cost, and the work a SIGKILL loses with and without them.

Three measurements, each in a fresh process (compilation included, as a user meets it):

- ``cost SWEEP EVERY``: train SWEEP (``quickstart``: the quickstart's pool of 40 FC runs on
  digits; ``fc2048``: one run of the paper's FC, depth 3 × width 2048, on 512 MNIST images
  (2,000 test images), full batch, 150 steps) into a fresh store with checkpoints every EVERY
  seconds (``inf``: none). The seconds spent checkpointing are timed where they are spent
  (copying the states to the host, encoding, the store's transaction), so their share of the
  wall time does not depend on other work on the machine; the wall time itself does.
- ``kill SWEEP EVERY AT``: start ``cost`` in a subprocess, SIGKILL it AT seconds in, then count
  the work kept in its store (run-steps a resumed sweep does not train again: finished runs,
  and the steps of the runs a checkpoint holds; a pool's runs that ended after its checkpoint
  are retrained, so they count as lost), and time the resumed sweep to its end.

Run from the repository root: ``python benchmarks/checkpoints.py all`` (writes
``benchmarks/RESULTS-checkpoints.json``; about 20 minutes on 2 cores).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import l2dynamics.train.run as run_mod
import l2dynamics.train.vector as vector
from l2dynamics.experiments.spec import load_experiment
from l2dynamics.sweep import RunStore, Sweep, load_runs, run_sweep
from l2dynamics.sweep.spec import parse_sweep
from l2dynamics.sweep.store import pool_key
from l2dynamics.train.checkpoint import Checkpointer, from_bytes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FC2048 = {
    "name": "fc2048-mnist",
    "data": {"name": "mnist", "n_train": 512, "n_test": 2000, "data_dir": str(DATA)},
    "model": {"name": "fc", "options": {"depth": 3, "width": 2048, "sigma_w": 2**0.5}},
    "train": {"batch_size": 512, "measure_resolution": 0.05},
    "grid": {"eta": [0.1], "lam": [1e-3], "seeds": [0]},
    "budget": {"epochs": 150},
}


def load(name: str) -> Sweep:
    """The benchmark's sweep ``quickstart`` or ``fc2048``."""
    if name == "quickstart":
        return load_experiment("quickstart", "cpu").sweeps[0][1]
    return parse_sweep(FC2048, source="benchmarks/checkpoints.py")


def timed(owner: Any, name: str, spent: list[float]) -> None:
    """Wrap ``owner.name`` so that each call adds its seconds to ``spent``."""
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def cost(name: str, every: float, store: str) -> dict[str, Any]:
    """Train sweep ``name`` into ``store``, checkpointing every ``every`` s; the seconds spent."""
    copies: list[float] = []
    writes: list[float] = []
    timed(run_mod, "host_leaves", copies)  # the one-run program's copies to the host
    timed(vector, "host_leaves", copies)  # a pool's (one per checkpoint) and its tail's
    timed(Checkpointer, "write", writes)  # encoding and the store's transaction
    start = time.perf_counter()
    report = run_sweep(load(name), store, checkpoint_every_s=every)
    wall = time.perf_counter() - start
    spent = sum(copies) + sum(writes)
    return {"sweep": name, "every_s": every, "wall_s": wall, "checkpoints": len(writes),
            "checkpoint_s": spent, "share": spent / wall, "runs": report.done + report.diverged,
            "largest_checkpoint_mb": largest(store)}  # fmt: skip


def largest(store: str) -> float:
    """The largest checkpoint left in ``store`` (MB; 0 when none is left)."""
    with RunStore(store, create=False) as s:
        sizes = [len(s.checkpoint(k) or b"") for k in s.checkpoint_runs()]
    return max(sizes, default=0) / 1e6


def kept_steps(store: str) -> tuple[int, int]:
    """(run-steps a resumed sweep keeps, runs finished) of a killed sweep's ``store``."""
    runs = load_runs(store)
    finished = runs[runs["status"].isin(["done", "diverged"])]
    steps = dict(zip(finished["hash"], finished["steps"].astype(int), strict=True))
    kept = 0
    with RunStore(store, create=False) as s:
        for key, hashes in s.checkpoint_runs().items():
            snap = from_bytes(s.checkpoint(key))
            kept += sum(int(b["done"]) for b in snap.books.values())
            if key == pool_key(hashes):  # retrained: its runs in training or waiting then
                for i in [*snap.books, *snap.queue]:
                    steps.pop(hashes[i], None)
    return kept + sum(steps.values()), len(finished)


def kill(name: str, every: float, at: float, total_steps: int) -> dict[str, Any]:
    """SIGKILL ``cost`` ``at`` s in; the work kept, and the resumed sweep's wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        store = f"{tmp}/killed.sqlite"
        proc = subprocess.Popen([sys.executable, __file__, "cost", name, str(every), store])
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kept, finished = kept_steps(store)
        resumed = json.loads(_run("cost", name, str(every), store))
    return {"sweep": name, "every_s": every, "killed_at_s": at, "finished_runs": finished,
            "kept_run_steps": kept, "total_run_steps": total_steps,
            "kept_share": kept / total_steps, "resume_wall_s": resumed["wall_s"]}  # fmt: skip


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout.strip().splitlines()[-1]


def fresh_cost(name: str, every: float) -> dict[str, Any]:
    """``cost`` in a fresh process and store; adds the run-steps trained."""
    with tempfile.TemporaryDirectory() as tmp:
        out = json.loads(_run("cost", name, str(every), f"{tmp}/s.sqlite"))
        out["run_steps"] = int(load_runs(f"{tmp}/s.sqlite")["steps"].sum())
    return out


def main(argv: list[str]) -> None:
    if argv[0] == "cost":
        print(json.dumps(cost(argv[1], float(argv[2]), argv[3])))
        return
    if argv[0] == "kill":  # kill NAME EVERY AT TOTAL_RUN_STEPS
        print(json.dumps(kill(argv[1], float(argv[2]), float(argv[3]), int(argv[4]))))
        return
    results: dict[str, Any] = {"cost": [], "kill": []}
    for name in ("quickstart", "fc2048"):
        for every in (math.inf, 60.0, 10.0) if name == "quickstart" else (math.inf, 60.0):
            results["cost"].append(fresh_cost(name, every))
            print(json.dumps(results["cost"][-1]), flush=True)
    off = next(r for r in results["cost"] if r["sweep"] == "quickstart")
    for every in (math.inf, 60.0):
        results["kill"].append(kill("quickstart", every, 0.6 * off["wall_s"], off["run_steps"]))
        print(json.dumps(results["kill"][-1]), flush=True)
    out = Path(__file__).with_name("RESULTS-checkpoints.json")
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or ["all"])

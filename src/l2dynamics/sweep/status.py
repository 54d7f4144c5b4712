"""What ``l2dyn status`` says of a store: its runs by status, the best ones, and its grid.

A run is ``running`` only while a sweep holds the store's lock (:func:`writer_alive`); the
``running`` runs of a sweep that died (``kill -9``, a crash, a lost node) are counted as
``interrupted``: the next ``l2dyn sweep`` on the store trains them again from the start.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from l2dynamics.sweep.store import FINISHED, STATUSES, RunRecord, RunStore, writer_alive

TOP = 5  # best runs shown


@dataclasses.dataclass(frozen=True)
class StoreStatus:
    """A store at one moment.

    Attributes:
        name: the name of the sweep registered last (None: never registered).
        counts: runs by status: every status of :data:`~l2dynamics.sweep.store.STATUSES`
            and ``interrupted`` (``running`` runs of a dead sweep; then ``running`` is 0).
        live: whether a sweep is writing the store now.
        best: the finished runs of highest best test accuracy, best first, each with
            ``hash``, ``status``, ``eta``, ``lam``, ``seed``, ``best_test_acc`` and
            ``t_star_epochs`` (t*, epochs).
        current_only: the counts and best runs are those of the grid registered last.
        not_current: runs of the store outside that grid (0 when ``current_only``, or when
            the store has no grid recorded).
    """

    name: str | None
    counts: dict[str, int]
    live: bool
    best: list[dict[str, Any]]
    current_only: bool
    not_current: int

    @property
    def total(self) -> int:
        """The runs counted."""
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON-able data (``runs``: the runs counted; NaN as null)."""
        best = [{k: _json_number(v) for k, v in b.items()} for b in self.best]
        return dataclasses.asdict(self) | {"runs": self.total, "best": best}

    def lines(self) -> list[str]:
        """The status as text lines."""
        scope = " in the current grid" if self.current_only else ""
        state = "a sweep is writing it" if self.live else "no sweep is writing it"
        out = [f"sweep {self.name}: {self.total} runs{scope} ({state})"]
        shown = [("interrupted" if s == "running" and not self.live else s) for s in STATUSES]
        out += [f"  {k:<12}{self.counts[k]}" for k in shown]
        if self.counts["interrupted"]:
            out.append("  (interrupted: their sweep is gone; run `l2dyn sweep` again to resume)")
        if self.not_current:
            out.append(
                f"  {self.not_current} more runs from earlier grids (--current leaves them out)"
            )
        if self.best:
            out.append("best test accuracy:")
            out += [
                f"  eta={b['eta']:<10.4g} lam={b['lam']:<10.4g} seed={b['seed']:<3} "
                f"acc={b['best_test_acc']:.4f}  t*={b['t_star_epochs']:.5g} epochs"
                for b in self.best
            ]
        return out


def store_status(path: str | os.PathLike, *, current: bool = False, top: int = TOP) -> StoreStatus:
    """Read the status of the store at ``path`` (checked for damage first).

    Args:
        path: the store.
        current: count only the runs of the grid registered last (a store without a
            recorded grid counts all).
        top: how many best runs to list.

    Raises:
        StoreError: the store is missing, not a store, or damaged.
    """
    with RunStore(path, create=False) as store:
        store.check()
        records, name, grid = store.runs(), store.get_meta("name"), store.current_hashes()
    live = writer_alive(path)
    chosen = [r for r in records if grid is None or r.hash in grid] if current else records
    not_current = 0 if grid is None else sum(r.hash not in grid for r in records)
    counts = dict.fromkeys((*STATUSES, "interrupted"), 0)
    for r in chosen:
        counts["interrupted" if r.status == "running" and not live else r.status] += 1
    return StoreStatus(
        name,
        counts,
        live,
        _best(chosen, top),
        current and grid is not None,
        0 if current else not_current,
    )


def _best(records: list[RunRecord], top: int) -> list[dict[str, Any]]:
    """The ``top`` finished runs of highest best test accuracy (NaN last)."""
    finished = [r for r in records if r.status in FINISHED]
    ranked = sorted(finished, key=_rank)[:top]
    return [
        {
            "hash": r.hash,
            "status": r.status,
            "eta": r.config.get("eta"),
            "lam": r.config.get("lam"),
            "seed": r.config.get("seed"),
            "best_test_acc": _number(r.summary.get("best_test_acc")),
            "t_star_epochs": _number(r.summary.get("t_star_epochs")),
        }
        for r in ranked
    ]


def _number(value: Any) -> float:
    """A summary number as a float (None as NaN)."""
    return float("nan") if value is None else float(value)


def _rank(record: RunRecord) -> tuple[bool, float]:
    """Sort key: highest best test accuracy first, unknown (NaN) last."""
    acc = _number(record.summary.get("best_test_acc"))
    return (math.isnan(acc), -acc if not math.isnan(acc) else 0.0)


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value

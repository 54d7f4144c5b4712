"""Checkpoints: what a run, or a whole pool, needs to continue bit for bit after a crash.

A :class:`Snapshot` holds, for each run in training, its device state (parameters, optimizer
state, AutoL2 controller state, step counter, data-order key, divergence flag: the batch order
and augmentation are functions of the key and the step, so no other RNG position exists) and
its :class:`~l2dynamics.train.book.RunBook` state (rows so far, steps trained, wall time).

Why a pool is saved whole, all lanes at one moment, with its queue: a run's float32 result
depends on the program that trains it. On XLA:CPU it is the same bit for bit in every lane of a
pool of a given width, but a pool of another width, a pool of one lane and the one-run program
may round differently (measured, ``benchmarks/RESULTS-checkpoints.md``), and when a pool hands
its tail to the one-run program depends on when its other runs end. Restoring the whole pool
(its width, which run each lane holds, the runs waiting, the tail) makes the resumed pool take
exactly the decisions the uninterrupted one took, so every run of it ends with the same bits.
Runs of the pool that finished after the snapshot are trained again (their results are
already stored; the retraining keeps the other lanes' timing).

Modes: ``"one"`` (a run of the one-run program), ``"pool"`` (``lanes``, ``lane_run``: the run
index of each lane or −1, ``queue``: the runs waiting), ``"tail"`` (``queue``: the runs of the
tail still to train, in order; the first is the one in training). Run indices refer to the
runs of the pool (or 0 for one run).

Encoding: one ``.npz`` (numpy arrays, no pickle) with a JSON header; :func:`to_bytes` and
:func:`from_bytes`. Where the bytes are kept is the caller's business (the sweep keeps them in
its store: :mod:`l2dynamics.sweep.store`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from l2dynamics.train import step as S
from l2dynamics.train.book import RunBook

FORMAT = 1  # the encoding's version; a checkpoint of another version is not restored
MODES = ("one", "pool", "tail")


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the run or program it is restored into."""


@dataclasses.dataclass
class Snapshot:
    """A checkpoint of one run or of a pool (see the module docstring for the fields)."""

    mode: str
    books: dict[int, dict[str, Any]]
    states: dict[int, list[np.ndarray]]
    lanes: int = 1
    lane_run: list[int] = dataclasses.field(default_factory=list)
    queue: list[int] = dataclasses.field(default_factory=list)
    backend: str = dataclasses.field(default_factory=jax.default_backend)


@dataclasses.dataclass
class Checkpointer:
    """When and where a training loop leaves its checkpoint: ``save(snapshot)`` keeps it (in
    place of the previous one), at a measurement point, when ``every_s`` seconds of wall time
    have passed since the last one (or since the start); ``every_s = 0``: at every
    measurement point; ``math.inf``: never."""

    save: Callable[[Snapshot], None]
    every_s: float
    last: float = dataclasses.field(default_factory=time.monotonic)

    def due(self) -> bool:
        """Whether a checkpoint is due now."""
        return time.monotonic() - self.last >= self.every_s

    def write(self, snapshot: Snapshot) -> None:
        """Save ``snapshot`` and restart the interval."""
        self.save(snapshot)
        self.last = time.monotonic()


def host_leaves(state: S.TrainState) -> list[np.ndarray]:
    """A device state's leaves as host arrays (the key as its raw ``uint32`` data)."""
    plain = state._replace(key=jax.random.key_data(state.key))
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(plain))]


def device_state(leaves: list[np.ndarray], like: S.TrainState) -> S.TrainState:
    """The device state of saved ``leaves``, shaped as ``like`` (a fresh state of the same
    run and program); raises :class:`CheckpointMismatchError` when they do not fit."""
    template = like._replace(key=jax.random.key_data(like.key))
    flat, tree = jax.tree.flatten(template)
    if len(flat) != len(leaves):
        raise CheckpointMismatchError(f"checkpoint has {len(leaves)} arrays, the state {len(flat)}")
    for saved, fresh in zip(leaves, flat, strict=True):
        if saved.shape != fresh.shape or saved.dtype != fresh.dtype:
            raise CheckpointMismatchError(
                f"checkpoint array {saved.dtype}{list(saved.shape)} where the state has "
                f"{fresh.dtype}{list(fresh.shape)}"
            )
    state = jax.tree.unflatten(tree, [jnp.asarray(x) for x in leaves])
    impl = jax.random.key_impl(like.key)
    return state._replace(key=jax.random.wrap_key_data(state.key, impl=impl))


def to_bytes(snapshot: Snapshot) -> bytes:
    """Encode a snapshot (see the module docstring)."""
    header = {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot)}
    header.pop("states")
    header["format"] = FORMAT
    header["counts"] = {str(i): len(v) for i, v in snapshot.states.items()}
    header["books"] = {str(i): b for i, b in snapshot.books.items()}
    arrays = {f"{i}/{k}": a for i, leaves in snapshot.states.items() for k, a in enumerate(leaves)}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def from_bytes(blob: bytes) -> Snapshot:
    """Decode :func:`to_bytes`'s output; raises :class:`CheckpointMismatchError` for bytes that
    are not a checkpoint, another format version, or another backend (whose programs round
    differently)."""
    try:
        return _decode(blob)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, CheckpointMismatchError):
            raise
        raise CheckpointMismatchError(f"unreadable checkpoint ({exc})") from exc


def _decode(blob: bytes) -> Snapshot:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes().decode())
        if header.get("format") != FORMAT:
            raise CheckpointMismatchError(f"checkpoint format {header.get('format')}, not {FORMAT}")
        if header["backend"] != jax.default_backend():
            raise CheckpointMismatchError(f"checkpoint of backend {header['backend']}")
        states = {int(i): [z[f"{i}/{k}"] for k in range(n)] for i, n in header["counts"].items()}
    return Snapshot(
        mode=header["mode"],
        books={int(i): b for i, b in header["books"].items()},
        states=states,
        lanes=header["lanes"],
        lane_run=header["lane_run"],
        queue=header["queue"],
        backend=header["backend"],
    )


def restore_run(book: RunBook, fresh: S.TrainState, snapshot: Snapshot, index: int) -> S.TrainState:
    """Restore run ``index`` of ``snapshot`` into its ``book``; its device state, shaped as the
    ``fresh`` (initial) state of that run."""
    state = device_state(snapshot.states[index], fresh)
    book.restore(snapshot.books[index])
    return state


def run_snapshot(
    mode: str, runs: dict[int, tuple[RunBook, list[np.ndarray]]], **pool: Any
) -> Snapshot:
    """A snapshot of ``runs`` (index → its book and host state leaves), with the pool fields
    ``pool`` (``lanes``, ``lane_run``, ``queue``)."""
    books = {i: book.state() for i, (book, _) in runs.items()}
    return Snapshot(mode, books, {i: leaves for i, (_, leaves) in runs.items()}, **pool)

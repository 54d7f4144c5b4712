"""Checkpoints: a run or a pool interrupted after a checkpoint and resumed from it ends bit for
bit as uninterrupted (the interruption is simulated in-process: the checkpoint's save raises)."""

import dataclasses
import math

import numpy as np
import pytest

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
from l2dynamics.train.checkpoint import (
    Checkpointer,
    CheckpointMismatchError,
    Snapshot,
    device_state,
    from_bytes,
    host_leaves,
    to_bytes,
)
from l2dynamics.train.run import build_program, init_state, load_data, run_program
from l2dynamics.train.vector import train_vectorized
from same_run import assert_same_run

BASE = TrainConfig(
    data=DataConfig("digits", n_train=128, n_test=200),
    model=ModelConfig("fc", {"depth": 2, "width": 32}),
    eta=0.5,
    lam=0.01,
    budget_epochs=6.0,
    batch_size=32,
    measure_resolution=0.2,
)


class CrashError(Exception):
    """The simulated kill."""


def crashing(after: int) -> tuple[Checkpointer, list[bytes]]:
    """A checkpointer saving at every measurement point that crashes right after save
    number ``after`` (the saves, encoded, in the returned list)."""
    saved: list[bytes] = []

    def save(snapshot: Snapshot) -> None:
        saved.append(to_bytes(snapshot))
        if len(saved) == after:
            raise CrashError

    return Checkpointer(save, every_s=0.0), saved


def test_a_snapshot_round_trips_and_refuses_a_state_of_another_shape():
    ds = load_data(BASE)
    program = build_program(BASE, ds)
    state = init_state(BASE, program)
    book = {
        "rows": [{"step": 0, "train_loss": math.nan}],
        "done": 3,
        "diverged": None,
        "wall_s": 1.0,
    }
    snap = Snapshot("pool", {2: book}, {2: host_leaves(state)}, lanes=3, lane_run=[-1, -1, 2])
    back = from_bytes(to_bytes(snap))
    assert (back.mode, back.lanes, back.lane_run, back.queue) == ("pool", 3, [-1, -1, 2], [])
    assert back.books[2]["done"] == 3 and math.isnan(back.books[2]["rows"][0]["train_loss"])
    for a, b in zip(
        host_leaves(device_state(back.states[2], state)), host_leaves(state), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    wide = dataclasses.replace(BASE, model=ModelConfig("fc", {"depth": 2, "width": 33}))
    other = init_state(wide, build_program(wide, ds))
    with pytest.raises(CheckpointMismatchError):
        device_state(back.states[2], other)


@pytest.mark.parametrize("after", [1, 4, 9])
def test_one_run_resumed_from_a_checkpoint_ends_bit_for_bit_as_uninterrupted(after):
    cfg = dataclasses.replace(BASE, momentum=0.9, autol2=True, autol2_measure="minibatch")
    ds = load_data(cfg)
    program = build_program(cfg, ds)
    ref = run_program(cfg, ds, program)
    checkpointer, saved = crashing(after)
    with pytest.raises(CrashError):
        run_program(cfg, ds, program, checkpointer=checkpointer)
    got = run_program(cfg, ds, program, resume=from_bytes(saved[-1]))
    assert_same_run(got, ref)
    with pytest.raises(CheckpointMismatchError):
        run_program(
            cfg, ds, program, resume=dataclasses.replace(from_bytes(saved[-1]), mode="pool")
        )


def _pool_cfgs():
    """Budgets of 4 to 48 steps (the two longest may stop at their peak) in 4 lanes: the pool
    refills twice, then hands its tail of two runs to the one-run program."""
    budgets = (1.0, 2.0, 12.0, 3.0, 10.0, 1.5)
    return [
        dataclasses.replace(
            BASE, eta=0.3 + 0.2 * i, budget_epochs=b, seed=i % 2, peak_stop=3.0 if b > 10 else None
        )  # fmt: skip
        for i, b in enumerate(budgets)
    ]


def _train_pool(cfgs, ds, program, **kw):
    got = {}
    train_vectorized(cfgs, ds, program, on_result=got.__setitem__, lanes=4, tail_min_saving=0, **kw)
    return got


def test_a_pool_resumed_from_any_checkpoint_ends_bit_for_bit_as_uninterrupted():
    """CrashError after every possible checkpoint, in the pool and in its tail: each resumed pool
    reports every run with the uninterrupted bits (runs ended before the crash, as reported
    then; runs ended after the checkpoint, again with the same bits)."""
    cfgs = _pool_cfgs()
    ds = load_data(BASE)
    program = build_program(BASE, ds)
    ref = _train_pool(cfgs, ds, program)
    checkpointer, saved = crashing(0)
    _train_pool(cfgs, ds, program, checkpointer=checkpointer)
    modes = [from_bytes(b).mode for b in saved]
    assert {"pool", "tail"} <= set(modes)
    points = {*np.linspace(1, len(saved), 6).astype(int).tolist(), modes.index("tail") + 1}
    for after in sorted(points):
        checkpointer, crashed = crashing(after)
        before = {}
        with pytest.raises(CrashError):
            train_vectorized(cfgs, ds, program, on_result=before.__setitem__, lanes=4,
                             tail_min_saving=0, checkpointer=checkpointer)  # fmt: skip
        after_crash = _train_pool(cfgs, ds, program, resume=from_bytes(crashed[-1]))
        assert set(before) | set(after_crash) == set(range(len(cfgs)))
        for i, result in (before | after_crash).items():
            assert_same_run(result, ref[i])


def test_a_run_measuring_layers_resumes_with_its_angles_and_layer_rows():
    """The angles are part of the device state and the layer rows part of the book: a run
    resumed from a checkpoint ends with the same per-layer rows, bit for bit."""
    from test_train import LAYERED

    ds = load_data(LAYERED)
    program = build_program(LAYERED, ds)
    ref = run_program(LAYERED, ds, program)
    checkpointer, saved = crashing(4)
    with pytest.raises(CrashError):
        run_program(LAYERED, ds, program, checkpointer=checkpointer)
    got = run_program(LAYERED, ds, program, resume=from_bytes(saved[-1]))
    assert_same_run(got, ref)
    for column, values in ref.layers.items():
        np.testing.assert_array_equal(got.layers[column], values, err_msg=column)

"""A run's host-side book: when to measure, rows, when the run ends, its result."""

import dataclasses
import math

import pytest

from l2dynamics.config import TrainConfig
from l2dynamics.train.book import RunBook

# 64 examples, batch 16: 4 steps an epoch; a budget of 2.5 epochs is 10 steps, measured every 5.
CFG = TrainConfig(eta=0.5, lam=0.01, batch_size=16, budget_epochs=2.5, measure="every",
                  measure_every=5)  # fmt: skip


def metrics(test_acc, train_loss=1.0):
    return {"train_loss": train_loss, "train_acc": 0.5, "test_loss": 1.0, "test_acc": test_acc,
            "l2_norm_sq": 2.0}  # fmt: skip


def test_the_book_measures_on_schedule_and_ends_at_its_budget():
    book = RunBook(CFG, 64, 16, 500)
    assert (book.total, list(book.schedule)) == (10, [0, 5, 10])
    assert book.gap() == 0
    row = book.record(metrics(0.2), 0.01)
    assert (row["step"], row["epoch"], row["tau"], row["eta_now"], row["lam_now"]) == (
        0,
        0.0,
        0.0,
        0.5,
        0.01,
    )
    assert book.gap() == 5 and not book.trained(5, -1)
    book.record(metrics(0.6), 0.01)
    assert not book.ended and not book.trained(10, -1)
    row = book.record(metrics(0.4), 0.01)
    assert book.ended and row["time"] == pytest.approx(0.5 * 10 * 16 / 64)
    result = book.result()
    assert (result.status, result.t_star_step, result.best_test_acc) == ("done", 5, 0.6)
    assert not result.stopped_at_peak and result.steps == 10


def test_divergence_on_the_device_or_in_a_measurement_ends_the_run():
    book = RunBook(CFG, 64, 16, 500)
    book.record(metrics(0.2), 0.01)
    assert book.trained(4, 3)  # the device saw a non-finite minibatch loss at step 3
    assert book.result().diverged_step == 3 and book.result().status == "diverged"
    book = RunBook(CFG, 64, 16, 500)
    book.record(metrics(0.2), 0.01)
    book.trained(5, -1)
    book.record(metrics(0.1, train_loss=math.inf), 0.01)
    assert book.ended and book.result().diverged_step == 5


def test_the_peak_aware_stop_ends_a_run_past_its_peak():
    cfg = dataclasses.replace(CFG, budget_epochs=25.0, measure_every=4, peak_stop=2.0)
    book = RunBook(cfg, 64, 16, 500)
    for step, acc in zip((0, 4, 8), (0.2, 0.8, 0.5), strict=True):
        book.trained(step, -1)
        book.record(metrics(acc), 0.01)
    assert not book.ended  # past the paper's t* (epoch 1), but one window on is not measured
    book.trained(12, -1)
    book.record(metrics(0.5), 0.01)  # epoch 3: more than a factor 10^0.1 past epoch 2
    assert book.ended and book.result().stopped_at_peak and book.result().t_star_step == 4

"""The peak-aware stop: the rule itself, and that it keeps t* and the best accuracy."""

import dataclasses

import numpy as np
import pytest

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig, validate
from l2dynamics.errors import ConfigError
from l2dynamics.train.run import build_program, load_data, train
from l2dynamics.train.stopping import passed_peak
from l2dynamics.train.vector import train_vectorized


def _peaked(end: float) -> tuple[np.ndarray, np.ndarray]:
    """A curve that rises to 0.9 at epoch 10, falls clearly after 40, measured up to ``end``."""
    epochs = np.concatenate([[0.0], np.geomspace(1, end, int(60 * np.log10(end)) + 2)])
    acc = np.where(epochs < 10, 0.1 + 0.08 * epochs, 0.9)
    acc = np.where(epochs > 40, 0.6, acc)
    return epochs, acc


@pytest.mark.parametrize(
    "epochs,acc,expected",
    [
        (*_peaked(200.0), True),  # past both t*: 200 ≥ 2·10, 0.6 ≤ 0.9 − 0.01, band settled
        ([0, 1], [0.07, 0.048], False),  # the paper's t* = 0 (before training) is no peak
        ([0, 1, 2, 4], [0.1, 0.9, 0.85, 0.7], True),  # sparse: each window holds one point
        ([0, 1, 2, 2.2], [0.1, 0.9, 0.85, 0.7], False),  # 2.2 is within a window of 2
        # a best within the first epoch is no peak (measured: a CNN stopped at step 3 of 8 per
        # epoch); the same curve three times slower is past its peak
        ([0, 0.125, 0.25, 0.375], [0.121, 0.179, 0.102, 0.159], False),
        ([0, 1.0, 2.0, 3.0], [0.121, 0.179, 0.102, 0.159], True),
        ([0], [0.5], False),
    ],
)
def test_passed_peak(epochs, acc, expected):
    assert passed_peak(epochs, acc, factor=2.0, drop=0.01, n_test=500) is expected


def test_passed_peak_waits_for_the_end_of_a_plateau():
    """The paper's t* (first maximum) early on a long plateau is not the end of the peak."""
    epochs = np.geomspace(1, 1000, 200)
    acc = np.where(epochs < 3, 0.5, 0.9)
    acc[np.argmin(np.abs(epochs - 5))] = 0.92  # a one-image high early on the plateau
    acc[-1] = 0.85  # and a dip at the end: the paper's rule alone would stop here
    assert not passed_peak(epochs, acc, factor=3.0, drop=0.01, n_test=500)


CFG = TrainConfig(
    data=DataConfig("digits", n_train=256, n_test=300),
    model=ModelConfig("fc", {"depth": 2, "width": 64}),
    eta=1.0,
    lam=0.05,
    budget_c=3.0,
    measure_resolution=0.1,
)


def test_peak_stop_keeps_t_star_and_best_and_saves_steps():
    full = train(CFG)
    early = train(dataclasses.replace(CFG, peak_stop=2.0, peak_drop=0.01))
    assert early.stopped_at_peak and not full.stopped_at_peak
    assert early.steps < full.steps
    assert early.t_star_epochs == full.t_star_epochs
    assert early.best_test_acc == full.best_test_acc
    n = len(early.curve["step"])
    np.testing.assert_array_equal(early.curve["test_acc"], full.curve["test_acc"][:n])


def test_vectorized_peak_stop_equals_one_by_one():
    cfgs = [dataclasses.replace(CFG, lam=lam, peak_stop=2.0) for lam in (0.05, 0.1)]
    cfgs.append(dataclasses.replace(CFG, lam=0.1))  # no stop: runs to its budget
    ds = load_data(CFG)
    got = {}
    train_vectorized(cfgs, ds, build_program(CFG, ds), on_result=got.__setitem__)
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, dataset=ds)
        assert (got[i].steps, got[i].stopped_at_peak) == (alone.steps, alone.stopped_at_peak)
        assert got[i].t_star_epochs == alone.t_star_epochs
    assert got[1].stopped_at_peak and not got[2].stopped_at_peak


@pytest.mark.parametrize("field,value", [("peak_stop", 1.0), ("peak_drop", 0.0), ("peak_drop", 1)])
def test_bad_peak_options_are_named(field, value):
    with pytest.raises(ConfigError, match=field):
        validate(dataclasses.replace(CFG, **{field: value}))

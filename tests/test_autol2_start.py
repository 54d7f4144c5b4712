"""The scale-aware start of AutoL2: its value, and what it means for the weights, simulated."""

import math

import pytest

from l2dynamics.autol2.start import (
    REACTION_PERIODS,
    SHRINK,
    budget_lam0,
    preset,
    step_scale_lam0,
)
from l2dynamics.errors import ConfigError


def l2_only_shrink(eta, momentum, lam, steps):
    """1 − |θ_steps|/|θ_0| for heavy-ball SGD on (λ/2)θ² alone (coupled L2, buffer from 0)."""
    theta, v = 1.0, 0.0
    for _ in range(steps):
        v = momentum * v + lam * theta
        theta -= eta * v
    return 1.0 - theta


def test_the_start_is_one_thousandth_per_step_at_the_papers_period():
    assert step_scale_lam0(1.0) == pytest.approx(1e-3)
    assert step_scale_lam0(0.2, 0.9) == pytest.approx(1e-3 * 0.1 / 0.2)
    assert step_scale_lam0(1.0, period=100) == pytest.approx(1e-4)


@pytest.mark.parametrize("eta, momentum, period", [(1.0, 0.0, 10), (0.05, 0.9, 10), (3.0, 0.5, 4)])
def test_l2_alone_shrinks_the_weights_by_at_most_delta_before_the_first_possible_decay(
    eta, momentum, period
):
    lam0 = step_scale_lam0(eta, momentum, period)
    shrink = l2_only_shrink(eta, momentum, lam0, 3 * period)
    assert shrink <= SHRINK
    if momentum == 0:  # without a buffer to fill, the bound is met almost exactly
        assert shrink == pytest.approx(1 - math.exp(-SHRINK), rel=0.02)


def test_a_budget_shorter_than_the_reaction_bound_starts_where_l2s_time_scale_is_the_budget():
    """η_eff·λ₀·T = 1 for T < 3k/δ steps (1000 at k = 10); longer budgets keep the bound."""
    bound = REACTION_PERIODS * 10 / SHRINK
    assert bound == pytest.approx(1000)
    for eta, momentum, budget in [(0.05, 0.9, 480), (0.02, 0.0, 480), (1.0, 0.0, 999)]:
        lam0 = step_scale_lam0(eta, momentum, budget_steps=budget)
        assert eta / (1 - momentum) * lam0 * budget == pytest.approx(1.0)
        assert lam0 > step_scale_lam0(eta, momentum)
    for budget in (1000, 5000):
        assert step_scale_lam0(0.3, 0.5, budget_steps=budget) == step_scale_lam0(0.3, 0.5)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((0.0,), {}),
        ((-1.0,), {}),
        ((math.inf,), {}),
        ((1.0, 1.0), {}),
        ((1.0, -0.1), {}),
        ((1.0, 0.0, 0), {}),
        ((1.0,), {"budget_steps": 0}),
    ],
)
def test_bad_input_names_the_option(args, kwargs):
    with pytest.raises(ConfigError):
        step_scale_lam0(*args, **kwargs)


def test_the_budget_aware_start_is_a_margin_above_the_prediction():
    assert budget_lam0(2e-4) == pytest.approx(6e-4)
    with pytest.raises(ConfigError):
        budget_lam0(0.0)
    with pytest.raises(ConfigError):
        budget_lam0(1e-3, margin=0.5)


def test_presets_start_and_rule_as_documented():
    lam0 = step_scale_lam0(0.5, 0.9, 10, budget_steps=300)
    assert preset("default", 0.5, 0.9, 10, budget_steps=300) == (
        lam0, math.inf, False, False, "subset")  # fmt: skip
    assert preset("paper", 0.5) == (0.1, 1.0, False, False, "minibatch")
    assert preset("authors-code", 0.5) == (0.1, math.inf, True, True, "minibatch")
    with pytest.raises(ConfigError, match="autol2_preset"):
        preset("bogus", 0.5)

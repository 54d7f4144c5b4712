"""Where AutoL2 starts: the scale-aware default λ₀ (SPEC §3, "The start").

AutoL2 only ever divides λ, so its start decides what it can reach, and the paper's λ₀ = 0.1 is
not scale-free. What acts on the weights per step under coupled L2 is not λ but ``η_eff·λ``
with ``η_eff = η/(1−μ)`` (SPEC §6: heavy-ball momentum μ multiplies the step by ``1/(1−μ)`` at
steady state): far from the data's pull, ``θ`` shrinks by about ``e^{−η_eff·λ·s}`` in ``s``
steps, and ``1/(η_eff·λ)`` steps is L2's own time scale.

The controller can decay λ at the earliest after two measurements that rise against the best
before them: about ``n₀ = 3·k`` steps with a measurement every ``k`` steps. Until then λ₀ acts
unchecked. The rule makes L2's own time scale ``1/(η_eff·λ₀)`` the shorter of two horizons:

    λ₀ = 1 / (η_eff · min(n₀/δ, T)),   n₀ = 3·k,   δ = 0.03,   T = the budget in steps.

- **The reaction bound** ``n₀/δ`` (1000 steps at the paper's ``k = 10``): the weights may shrink
  by at most a fraction ``δ`` from L2 alone before AutoL2 could first react
  (``η_eff·λ₀·n₀ = δ``), i.e. ``η_eff·λ₀ = 10⁻³`` per step at ``k = 10``. It is the scale that
  matched the best fixed λ in the FC measurements behind SPEC §3, where λ₀ = 0.1
  (``η_eff·λ₀`` = 0.02–0.2 there) shrank ‖θ‖² several-fold before the first possible decay.
- **The budget** ``T``, when it is shorter: AutoL2 only decreases λ, so it must start at or
  above the best fixed λ for the budget (SPEC §2.2–2.3: the best λ is the one whose peak
  ``t* ≈ c/(η·λ)`` falls within the budget). A λ whose time scale exceeds the whole budget
  (``η_eff·λ·T < 1``) barely acts within it; starting there, AutoL2 could never reach a λ that
  does. For a budget under ``n₀/δ`` steps the start is therefore the λ whose time scale is
  the budget, ``η_eff·λ₀·T = 1``, accepting a shrinkage of more than ``δ`` before the first
  possible decay. Without a known budget (``budget_steps=None``) only the reaction bound holds.

The budget floor was added openly after the first validation run of issue 17, where the
reaction bound alone started the BatchNorm CNN's short budget below its best fixed λ and lost
(``benchmarks/RESULTS-autol2-validation.md`` has the numbers, and the settings fixed before the
floor was validated again). It changes the start of budgets under ``n₀/δ`` steps only. It uses
only the optimizer's step scale, the controller's period and the budget: no data.

**What it measures.** The controller decays λ when two measurements in a row rise above the
best one before them. The best is the minimum of all earlier measurements; on a fresh minibatch
each time, it is the minimum of noisy samples, biased low, and once the training loss falls
more slowly than its minibatch noise, two rises in a row come by chance and decay λ by ×10
for nothing. The paper measured minibatches of 1024 images, where that noise is small. The
default preset measures a fixed subset of ``autol2_measure_size`` = 1024 training examples
instead (the whole training set when it is smaller), drawn once per run: the same examples at
every measurement, so a rise is a rise of the training loss, not of the sample. This was changed
openly during issue 17's validation, after a BatchNorm CNN at batch 64 decayed λ by two decades
from its minibatch measurements and lost to the best fixed λ, and measuring its whole training
set did not (``benchmarks/RESULTS-autol2-validation.md``); the issue itself had measured spurious
decays from minibatches of 32.

**Other optimizers** (SPEC §6). The controller only sets the λ that the optimizer reads each
step, so it runs unchanged with every optimizer; the start rule is the same statement about the
decay's own timescale ``τ_iter`` (:func:`l2dynamics.config.timescale_steps`), made with the
terms of :func:`l2dynamics.config.decay_rate_terms`: ``τ_iter(λ₀) = min(n₀/δ, T)``. For SGDW and
AdamW (decoupled, θ shrinks by η·λ per step whatever the momentum) that is
``λ₀ = 1/(η·min(n₀/δ, T))``: no ``1−μ``, since the decay never enters the momentum buffer; for
Adam with coupled L2 the nominal rate η·λ (Adam's ``√v̂`` rescales it per coordinate, so this is
a scale, not an exact timescale).

Where a calibration run is affordable, the budget-aware start :func:`budget_lam0` is
``m·λ_pred`` with ``λ_pred = c/(η·T)`` from ``predict-l2``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from l2dynamics.config import AUTOL2_PRESETS, PAPER_LAM0
from l2dynamics.errors import ConfigError

SHRINK = 0.03  # δ: the most L2 alone may shrink the weights before AutoL2 can first react
REACTION_PERIODS = 3  # n₀ = 3·k: the earliest decay needs two rises after a first measurement
BUDGET_MARGIN = 3.0  # m: a budget-aware start this many times above the predicted λ


def step_scale_lam0(
    eta: float,
    momentum: float = 0.0,
    period: int = 10,
    *,
    budget_steps: int | None = None,
    shrink: float = SHRINK,
) -> float:
    """The scale-aware default λ₀ = ``(1−μ)/(η·min(3·period/shrink, budget_steps))`` (see the
    module docstring): L2's time scale ``1/(η_eff·λ₀)`` is the reaction bound or the budget.

    Args:
        eta: the learning rate η per step (the base rate of a schedule).
        momentum: heavy-ball μ in [0, 1) (coupled L2: the L2 term enters the buffer).
        period: AutoL2's measurement period k, in steps.
        budget_steps: the run's budget T in steps, if known (None: no budget floor).
        shrink: δ, the fraction by which L2 alone may shrink the weights in the
            ``3·period`` steps before the first possible decay.

    Returns:
        λ₀, the coefficient of ``(λ/2)‖θ‖²``.

    Raises:
        ConfigError: η ≤ 0, μ outside [0, 1), a period < 1, a budget < 1 step or δ outside
            (0, 1).
    """
    if not (math.isfinite(eta) and eta > 0):
        raise ConfigError(f"eta must be > 0 for AutoL2's scale-aware start (got {eta})")
    if not 0 <= momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1) (got {momentum})")
    if period < 1:
        raise ConfigError(f"autol2_period must be >= 1 (got {period})")
    if not 0 < shrink < 1:
        raise ConfigError(f"shrink must be in (0, 1) (got {shrink})")
    if budget_steps is not None and budget_steps < 1:
        raise ConfigError(f"the budget must be >= 1 step (got {budget_steps})")
    horizon = REACTION_PERIODS * period / shrink  # steps
    if budget_steps is not None:
        horizon = min(horizon, budget_steps)
    return (1.0 - momentum) / (eta * horizon)


def budget_lam0(lam_pred: float, margin: float = BUDGET_MARGIN) -> float:
    """The budget-aware start ``m·λ_pred``: a margin above the λ predicted for the budget
    (``λ_pred = c/(η·T)``, :func:`l2dynamics.predict.predict_l2`), so that AutoL2, which only
    decreases λ, starts above the best fixed λ even when c is underestimated (small λ needs
    about 2c, SPEC §2.3)."""
    if not (math.isfinite(lam_pred) and lam_pred > 0):
        raise ConfigError(f"the predicted λ must be > 0 (got {lam_pred})")
    if not margin >= 1:
        raise ConfigError(f"the margin above the predicted λ must be >= 1 (got {margin})")
    return margin * lam_pred


class Preset(NamedTuple):
    """Where an AutoL2 preset starts when λ₀ is not given, and its controller rules: λ₀, the
    initial best loss, whether ties count as rises, whether the run starts refractory, and what
    it measures (:data:`l2dynamics.config.AUTOL2_MEASURES`)."""

    lam0: float
    initial_best_loss: float
    count_ties: bool = False
    start_refractory: bool = False
    measure: str = "minibatch"


def preset(
    name: str,
    eta: float,
    momentum: float = 0.0,
    period: int = 10,
    budget_steps: int | None = None,
) -> Preset:
    """The AutoL2 preset ``name`` (:data:`l2dynamics.config.AUTOL2_PRESETS`) for SGD at η, μ,
    measuring every ``period`` steps, over a budget of ``budget_steps`` steps:

    - ``"default"``: the scale-aware :func:`step_scale_lam0`, the best loss at +∞, SPEC §3's
      strict comparisons, and measurements on a fixed subset of the training set (see the
      module docstring);
    - ``"paper"``: the SM's Algorithm 1 as listed, λ₀ = 0.1 and the best loss at 1;
    - ``"authors-code"``: what the authors' script (``jax_wideresnet_exps.py``) does when it is
      given the paper's λ₀ = 0.1: a tie with the best counts as a rise (``<=``/``>=``), the run
      starts inside a refractory period (no decay before step ``r/λ₀``), the bests start
      unset (+∞). It measures the minibatch that the step's update then trains on, at the
      parameters before that update: the ``"minibatch"`` source of the training loop.
    """
    if name == "default":
        lam0 = step_scale_lam0(eta, momentum, period, budget_steps=budget_steps)
        return Preset(lam0, math.inf, measure="subset")
    if name == "paper":
        return Preset(PAPER_LAM0, 1.0)
    if name == "authors-code":
        return Preset(PAPER_LAM0, math.inf, count_ties=True, start_refractory=True)
    raise ConfigError(f"unknown autol2_preset {name!r} (choose from {', '.join(AUTOL2_PRESETS)})")

"""SGD with coupled L2 regularization, η and λ held as arrays in the optimizer state.

The update on the regularized loss ``L(θ) = L_data(θ) + (λ/2)‖θ‖²`` (SPEC §1) is

    g = ∇L_data(θ) + λ·m⊙θ          (m: the L2 mask, all ones by default)
    v ← μ·v + g                      (heavy-ball buffer; μ = 0 gives plain SGD)
    θ ← θ − η·v

so the L2 term enters *before* the momentum buffer (coupled L2, not decoupled weight decay).
η, λ and μ are injected hyperparameters: arrays inside ``opt_state.hyperparams`` that jitted
code reads and writes at run time, so one compilation serves every (η, λ) and a λ schedule
(AutoL2) never recompiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from l2dynamics.config import L2_MASKS

STEP_MILESTONES = (0.3, 0.6, 0.9)
STEP_FACTOR = 0.2


def weights_only_mask(params: Any) -> Any:
    """A mask pytree: True for weight kernels, False for biases and BatchNorm scale/shift."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params
    )


def l2_mask(name: str) -> Callable[[Any], Any] | None:
    """The L2 mask called ``name``: ``"all"`` (every parameter, the paper) or ``"weights"``."""
    if name == "all":
        return None
    if name == "weights":
        return weights_only_mask
    raise ValueError(f"unknown L2 mask {name!r} (choose from {', '.join(L2_MASKS)})")


def sgd_l2(
    learning_rate: float = 0.1,
    l2: float = 0.0,
    momentum: float = 0.0,
    *,
    mask: Callable[[Any], Any] | None = None,
    heavy_ball: bool | None = None,
) -> optax.GradientTransformationExtraArgs:
    """SGD (optionally heavy-ball momentum) on the loss plus ``(λ/2)‖θ‖²``.

    Args:
        learning_rate: η, per step.
        l2: λ, the coefficient of ``(λ/2)‖θ‖²``; the authors' code used ``λ·‖θ‖²``, i.e. half
            our λ.
        momentum: μ of the heavy-ball buffer (0 = plain SGD).
        mask: optional callable params → bool pytree selecting the parameters that L2 acts on
            (default: all of them, as in the paper).
        heavy_ball: whether the transformation keeps a momentum buffer ``v`` (default: when
            ``momentum`` ≠ 0). Without it the update is ``θ ← θ − η·g``, the same numbers as
            μ = 0 with the buffer, but with no buffer to store, read and write per step (one
            parameter-sized array). A state without the buffer ignores
            ``hyperparams["momentum"]``.

    Returns:
        An optax transformation whose state holds ``hyperparams["learning_rate"]``,
        ``hyperparams["l2"]`` and ``hyperparams["momentum"]`` as float32 arrays; change them
        with :func:`set_hyperparams`.
    """
    buffered = momentum != 0 if heavy_ball is None else heavy_ball

    def chain(learning_rate, l2, momentum):
        momentum_buffer = [optax.trace(decay=momentum)] if buffered else []
        return optax.chain(
            optax.add_decayed_weights(l2, mask),
            *momentum_buffer,
            optax.scale_by_learning_rate(learning_rate),
        )

    # Python floats (not arrays) so that every ``init`` makes fresh buffers: a state can then
    # be donated to a jitted step without invalidating the next ``init``.
    return optax.inject_hyperparams(chain, hyperparam_dtype=jnp.float32)(
        learning_rate=float(learning_rate), l2=float(l2), momentum=float(momentum)
    )


def set_hyperparams(opt_state: Any, **values: jax.Array | float) -> Any:
    """A copy of an :func:`sgd_l2` state with some hyperparameters replaced (jittable)."""
    hyper = dict(opt_state.hyperparams)
    for name, value in values.items():
        if name not in hyper:
            raise KeyError(f"no hyperparameter {name!r} (have {', '.join(hyper)})")
        hyper[name] = jnp.asarray(value, dtype=hyper[name].dtype)
    return opt_state._replace(hyperparams=hyper)


def lr_factor(schedule: str, step: jax.Array, total_steps: jax.Array) -> jax.Array:
    """Multiplier of η at ``step`` (steps) out of ``total_steps``.

    ``"constant"``: 1. ``"step"``: ×0.2 at 30%, 60% and 90% of training (the paper's WRN
    schedule), i.e. ``0.2**(number of milestones passed)``.
    """
    if schedule == "constant":
        return jnp.float32(1.0)
    if schedule == "step":
        frac = step.astype(jnp.float32) / jnp.maximum(total_steps, 1).astype(jnp.float32)
        passed = sum((frac >= m).astype(jnp.float32) for m in STEP_MILESTONES)
        return jnp.float32(STEP_FACTOR) ** passed
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (choose from constant, step)")


def lr_factors_host(schedule: str, steps: np.ndarray, total_steps: int) -> np.ndarray:
    """:func:`lr_factor` in numpy (float64) for many steps at once, for host-side bookkeeping
    (physical time, the η column of a curve) without dispatching to the device."""
    if schedule == "constant":
        return np.ones(np.shape(steps))
    if schedule == "step":
        frac = np.asarray(steps, np.float64) / max(total_steps, 1)
        passed = sum((frac >= m).astype(np.float64) for m in STEP_MILESTONES)
        return STEP_FACTOR**passed
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (choose from constant, step)")

"""The optimizers of a run (SPEC §1, §6), η and λ held as arrays in the optimizer state.

``sgd`` (:func:`sgd_l2`), the paper's: SGD on the regularized loss
``L(θ) = L_data(θ) + (λ/2)‖θ‖²``,

    g = ∇L_data(θ) + λ·m⊙θ          (m: the L2 mask, all ones by default)
    v ← μ·v + g                      (heavy-ball buffer; μ = 0 gives plain SGD)
    θ ← θ − η·v

so the L2 term enters *before* the momentum buffer (coupled L2, not decoupled weight decay).
``sgdw`` (:func:`sgdw`) decouples it, ``v ← μ·v + ∇L_data``, ``θ ← θ − η·(v + λ·m⊙θ)``;
``adam`` (:func:`adam_l2`) is Adam on ``g`` (coupled), ``adamw`` (:func:`adamw`) Adam with
``θ ← θ − η·(adam(∇L_data) + λ·m⊙θ)`` (decoupled, scaled by η, as ``optax.adamw`` and
``torch.optim.AdamW``). Each is a chain of optax's own transforms.

η, λ (and μ for the SGDs) are injected hyperparameters, named ``learning_rate``, ``l2`` and
``momentum`` for every optimizer: arrays inside ``opt_state.hyperparams`` that jitted code reads
and writes at run time, so one compilation serves every (η, λ), pools vmap over them and a λ
schedule (AutoL2) never recompiles. Adam's β₁, β₂, ε are constants of the compiled program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from l2dynamics.config import L2_MASKS, OPTIMIZERS, TrainConfig, adam_options

# The step schedule's milestones as fractions (num, den) of the budget, compared in integers
# (den·step ≥ num·total): host and device, CPU and GPU switch at the same step. (A float32
# division on XLA:CPU put the milestones at 30% and 60% of a 100-step budget one step late,
# while the host's float64 bookkeeping switched on time.)
STEP_MILESTONES = ((3, 10), (6, 10), (9, 10))
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
        l2: λ, the coefficient of ``(λ/2)‖θ‖²``. The authors' code used ``λ·‖θ‖²`` with a
            data loss CE/k, twice the SM's CE/(2k): the factors cancel (SPEC §1), so their
            λ is ours and their learning rate is half of ours.
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
    return _sgd(learning_rate, l2, momentum, mask, heavy_ball, decoupled=False)


def _injected(chain: Callable[..., Any], **hyper: float) -> optax.GradientTransformationExtraArgs:
    """``chain(**hyper)`` with ``hyper`` injected as float32 arrays of its state."""
    # Python floats (not arrays) so that every ``init`` makes fresh buffers: a state can then
    # be donated to a jitted step without invalidating the next ``init``.
    floats = {name: float(value) for name, value in hyper.items()}
    return optax.inject_hyperparams(chain, hyperparam_dtype=jnp.float32)(**floats)


def sgdw(
    learning_rate: float = 0.1,
    l2: float = 0.0,
    momentum: float = 0.0,
    *,
    mask: Callable[[Any], Any] | None = None,
    heavy_ball: bool | None = None,
) -> optax.GradientTransformationExtraArgs:
    """SGD (optionally heavy-ball momentum) with decoupled weight decay scaled by η:
    ``v ← μ·v + ∇L_data``, ``θ ← θ − η·(v + λ·θ)`` (θ shrinks by ``1 − η·λ`` per step whatever
    μ is; PyTorch's ``SGD`` with ``weight_decay`` is :func:`sgd_l2` instead, coupled).

    Args and state as :func:`sgd_l2`; λ is the weight decay per unit of η (per step: η·λ).
    """
    return _sgd(learning_rate, l2, momentum, mask, heavy_ball, decoupled=True)


def _sgd(
    learning_rate: float,
    l2: float,
    momentum: float,
    mask: Callable[[Any], Any] | None,
    heavy_ball: bool | None,
    *,
    decoupled: bool,
) -> optax.GradientTransformationExtraArgs:
    """The SGD chain of :func:`sgd_l2` (λθ added before the momentum buffer) or of :func:`sgdw`
    (after it, ``decoupled``), then −η."""
    buffered = momentum != 0 if heavy_ball is None else heavy_ball

    def chain(learning_rate, l2, momentum):
        decay = [optax.add_decayed_weights(l2, mask)]
        buffer = [optax.trace(decay=momentum)] if buffered else []
        parts = buffer + decay if decoupled else decay + buffer
        return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))

    return _injected(chain, learning_rate=learning_rate, l2=l2, momentum=momentum)


def _scale_by_adam(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """``optax.scale_by_adam`` traced under JAX's standard dtype promotion: its bias correction
    raises β (a Python float) to the int32 step count, which strict promotion (the test suite's,
    or a user's ``jax_numpy_dtype_promotion="strict"``) refuses; standard promotion makes it the
    float32 that optax means. The numbers are optax's."""
    tx = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

    def init(params: Any) -> Any:
        with jax.numpy_dtype_promotion("standard"):
            return tx.init(params)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        with jax.numpy_dtype_promotion("standard"):
            return tx.update(updates, state, params)

    return optax.GradientTransformation(init, update)


def adam_l2(
    learning_rate: float = 1e-3,
    l2: float = 0.0,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    mask: Callable[[Any], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Adam on the loss plus ``(λ/2)‖θ‖²`` (coupled L2): ``optax.adam`` applied to
    ``∇L_data + λ·m⊙θ``, so Adam's moments (and its per-coordinate scaling) see the L2 term.

    Args:
        learning_rate: η, per step.
        l2: λ, the coefficient of ``(λ/2)‖θ‖²``.
        b1, b2, eps: Adam's β₁, β₂ (decay rates of the moments, per step) and ε (added to
            ``√v̂``); constants of the transformation, not injected.
        mask: as :func:`sgd_l2`.

    Returns:
        An optax transformation whose state holds ``hyperparams["learning_rate"]`` and
        ``hyperparams["l2"]`` (float32 arrays; no ``"momentum"``).
    """
    return _adam(learning_rate, l2, b1, b2, eps, mask, decoupled=False)


def adamw(
    learning_rate: float = 1e-3,
    l2: float = 0.0,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    mask: Callable[[Any], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdamW: ``θ ← θ − η·(m̂/(√v̂ + ε) + λ·m⊙θ)`` with Adam's moments of ``∇L_data`` alone,
    the chain of ``optax.adamw(learning_rate=η, weight_decay=λ)``. ``torch.optim.AdamW`` first
    multiplies θ by ``1 − η·λ`` and then takes the Adam step, which does not depend on θ: the
    same update. Args and state as :func:`adam_l2`, λ being the decay per unit of η.
    """
    return _adam(learning_rate, l2, b1, b2, eps, mask, decoupled=True)


def _adam(
    learning_rate: float,
    l2: float,
    b1: float,
    b2: float,
    eps: float,
    mask: Callable[[Any], Any] | None,
    *,
    decoupled: bool,
) -> optax.GradientTransformationExtraArgs:
    """The Adam chain of :func:`adam_l2` (λθ added before Adam's moments) or of :func:`adamw`
    (after them, ``decoupled``), then −η."""

    def chain(learning_rate, l2):
        decay = [optax.add_decayed_weights(l2, mask)]
        adam = [_scale_by_adam(b1, b2, eps)]
        parts = adam + decay if decoupled else decay + adam
        return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))

    return _injected(chain, learning_rate=learning_rate, l2=l2)


def run_optimizer(
    cfg: TrainConfig, *, heavy_ball: bool | None = None
) -> optax.GradientTransformationExtraArgs:
    """The optimizer of ``cfg`` (``cfg.optimizer``, :data:`l2dynamics.config.OPTIMIZERS`) at its
    η, λ, μ (SGDs) or β₁, β₂, ε (Adams), with its L2 mask; ``heavy_ball`` as :func:`sgd_l2`
    (SGDs only: the Adams keep their moments always)."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {cfg.optimizer!r} (choose from {', '.join(OPTIMIZERS)})"
        )
    mask = l2_mask(cfg.l2_mask)
    if cfg.optimizer in ("sgd", "sgdw"):
        build = sgd_l2 if cfg.optimizer == "sgd" else sgdw
        return build(cfg.eta, cfg.lam, cfg.momentum, mask=mask, heavy_ball=heavy_ball)
    b1, b2, eps = adam_options(cfg)
    build = adam_l2 if cfg.optimizer == "adam" else adamw
    return build(cfg.eta, cfg.lam, b1=b1, b2=b2, eps=eps, mask=mask)


def set_hyperparams(opt_state: Any, **values: jax.Array | float) -> Any:
    """A copy of an injected optimizer state (:func:`sgd_l2`, :func:`sgdw`, :func:`adam_l2`,
    :func:`adamw`) with some hyperparameters replaced (jittable)."""
    hyper = dict(opt_state.hyperparams)
    for name, value in values.items():
        if name not in hyper:
            raise KeyError(f"no hyperparameter {name!r} (have {', '.join(hyper)})")
        hyper[name] = jnp.asarray(value, dtype=hyper[name].dtype)
    return opt_state._replace(hyperparams=hyper)


def lr_factor(schedule: str, step: Any, total_steps: Any, *, xp: Any = jnp) -> Any:
    """Multiplier of η at ``step`` (steps) out of ``total_steps``: the one definition of the
    learning-rate schedule, used on the device (``xp=jnp``, float32, jittable) and on the host
    (``xp=np``, float64, for physical time and the η column of a curve).

    ``"constant"``: 1. ``"step"``: ×0.2 at 30%, 60% and 90% of training (the paper's WRN
    schedule), i.e. ``0.2**(number of milestones passed)``. ``step`` may be an array of steps.
    """
    dtype = np.float64 if xp is np else jnp.float32
    if schedule == "constant":
        return xp.ones(xp.shape(step), dtype)
    if schedule == "step":
        step, total = xp.asarray(step), xp.maximum(xp.asarray(total_steps), 1)
        passed = sum((den * step >= num * total).astype(dtype) for num, den in STEP_MILESTONES)
        return dtype(STEP_FACTOR) ** passed
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (choose from constant, step)")


def lr_milestones(schedule: str, total_steps: int) -> tuple[int, ...]:
    """The steps at which :func:`lr_factor` changes, for a budget of ``total_steps`` steps: none
    for ``"constant"``; for ``"step"`` the first step of each milestone, ``⌈num·total/den⌉``
    (the integer comparison ``den·step ≥ num·total`` of :func:`lr_factor`)."""
    if schedule == "constant":
        return ()
    if schedule == "step":
        total = max(int(total_steps), 1)
        return tuple(-(-num * total // den) for num, den in STEP_MILESTONES)
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (choose from constant, step)")


def cumulative_lr_factor(schedule: str, steps: Any, total_steps: int) -> np.ndarray:
    """``Σ_{s' < s} lr_factor(s')`` for each ``s`` of ``steps`` (host, float64): the schedule is
    piecewise constant, so each segment between milestones adds its factor times its overlap
    with ``[0, s)``. Closed form, so a budget of 10⁸ steps costs nothing to book."""
    s = np.asarray(steps, dtype=np.float64)
    bounds = (0, *lr_milestones(schedule, total_steps))
    factors = lr_factor(schedule, np.asarray(bounds), total_steps, xp=np)
    ends = (*bounds[1:], np.inf)
    out = np.zeros_like(s)
    for start, end, factor in zip(bounds, ends, factors, strict=True):
        out += factor * np.clip(np.minimum(s, end) - start, 0.0, None)
    return out


def eta_now(schedule: str, eta0: Any, step: Any, total_steps: Any, *, xp: Any = jnp) -> Any:
    """The learning rate in force at ``step``: ``η₀ · lr_factor(step)`` (per step), on the
    device or the host as :func:`lr_factor`."""
    return eta0 * lr_factor(schedule, step, total_steps, xp=xp)

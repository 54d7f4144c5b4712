"""AutoL2 as an optax transformation: adds ``λ·θ`` to the updates, λ from the controller.

    opt = optax.chain(
        autol2(learning_rate=eta, momentum=0.9, budget_steps=total_steps),
        optax.sgd(eta, momentum=0.9),
    )
    loss, grads = jax.value_and_grad(bare_loss)(params, batch)     # no L2 term in the loss
    updates, opt_state = opt.update(grads, opt_state, params, value=loss, error=err)

``λ·θ`` is the gradient of ``(λ/2)‖θ‖²`` (coupled L2); placed before ``optax.sgd`` it enters
the momentum buffer, as in SPEC §1.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from l2dynamics.autol2.controller import AutoL2State, init, update
from l2dynamics.autol2.options import AutoL2Options, resolve_options
from l2dynamics.autol2.start import step_scale_lam0
from l2dynamics.errors import ConfigError


class AutoL2TransformState(NamedTuple):
    """State of :func:`autol2`.

    Attributes:
        count: number of ``update`` calls so far = the step of the next call (int32).
        controller: the controller's state; ``controller.lam`` is the λ of the latest update.
    """

    count: jax.Array
    controller: AutoL2State


def _measurement(name: str, value: Any) -> jax.Array:
    if value is None:
        raise ValueError(
            f"autol2: pass `{name}=` to every update call (the bare training loss as `value`, "
            "the training error as `error`; read every `period`-th call, ignored otherwise)"
        )
    array = jnp.asarray(value)
    if array.shape != ():
        raise ValueError(f"autol2: `{name}` must be a scalar, got shape {array.shape}")
    return array


def _add_l2(updates: Any, params: Any, lam: jax.Array, mask: Any) -> Any:
    def add(g: jax.Array, p: jax.Array, on: bool = True) -> jax.Array:
        return g + lam.astype(g.dtype) * p if on else g

    if mask is None:
        return jax.tree.map(add, updates, params)
    mask_tree = mask(params) if callable(mask) else mask
    return jax.tree.map(add, updates, params, mask_tree)


def autol2(
    options: AutoL2Options | None = None,
    *,
    learning_rate: float | None = None,
    momentum: float = 0.0,
    budget_steps: int | None = None,
    mask: Any = None,
    **overrides: Any,
) -> optax.GradientTransformationExtraArgs:
    """Coupled L2 with the AutoL2 schedule of λ (SPEC §3): ``updates + λ·θ``.

    The transform counts its ``update`` calls; call ``c`` (0-based) is step ``c``, with
    ``params`` = θ_c (the parameters after ``c`` updates). On calls with ``c % period == 0`` it
    folds ``(c, value, error)`` into the controller (see
    :mod:`l2dynamics.autol2.controller`) *before* adding ``λ·θ_c``, so the λ used by the
    update θ_c → θ_{c+1} reflects the measurements at steps ``0, k, …, k·⌊c/k⌋``, including
    the one passed in this very call. This is the authors' order: measure, decide, update.

    Pass ``value`` (the bare training loss at θ_c, without the L2 term, e.g. the minibatch loss
    from ``value_and_grad``) and ``error`` (the training error, a fraction) as extra args on
    *every* call: the step count is traced, so the transform cannot know when they are needed.
    On the other calls they are ignored; any finite scalar (or the current loss) will do.

    Args:
        options: the schedule (default :class:`AutoL2Options`), with ``overrides`` applied
            (``lam0``, ``decay``, ``refractory``, ``period`` in steps, ...).
        learning_rate, momentum: the η and heavy-ball μ of the SGD that follows in the chain.
            Without ``options`` and without ``lam0``, λ₀ is the scale-aware start
            :func:`l2dynamics.autol2.start.step_scale_lam0` for them (``learning_rate`` is then
            required).
        budget_steps: the training budget in steps, if known: the scale-aware start of a
            budget shorter than its reaction bound is the λ whose time scale is the budget.
        mask: optional pytree of Python bools shaped like the params, or a callable
            ``params -> such a pytree``, selecting the parameters L2 acts on (default: all of
            them, as in the paper).

    Returns:
        A transformation composable with :func:`optax.chain`; read λ with :func:`autol2_lam`.
    """
    opts = resolve_options(options, **overrides)  # names and values checked first
    if options is None and "lam0" not in overrides:
        if learning_rate is None:
            raise ConfigError(
                "autol2: give learning_rate= (and momentum=) of the SGD it feeds for the "
                "scale-aware start, or lam0="
            )
        lam0 = step_scale_lam0(learning_rate, momentum, opts.period, budget_steps=budget_steps)
        opts = resolve_options(opts, lam0=lam0)

    def init_fn(params: Any) -> AutoL2TransformState:
        del params
        return AutoL2TransformState(count=jnp.zeros([], jnp.int32), controller=init(opts))

    def update_fn(
        updates: Any,
        state: AutoL2TransformState,
        params: Any = None,
        *,
        value: Any = None,
        error: Any = None,
        **extra_args: Any,
    ) -> tuple[Any, AutoL2TransformState]:
        del extra_args
        if params is None:
            raise ValueError("autol2: `params` are required (the L2 gradient is λ·params)")
        loss, err = _measurement("value", value), _measurement("error", error)
        measured = update(state.controller, state.count, loss, err, opts)
        is_measurement = state.count % opts.period == 0
        controller = jax.tree.map(
            lambda new, old: jnp.where(is_measurement, new, old), measured, state.controller
        )
        updates = _add_l2(updates, params, controller.lam, mask)
        count = optax.safe_int32_increment(state.count)
        return updates, AutoL2TransformState(count=count, controller=controller)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def find_autol2_state(opt_state: Any) -> AutoL2TransformState:
    """The (single) :class:`AutoL2TransformState` inside an optimizer state, e.g. a chain's.

    Raises:
        ValueError: if there is none, or more than one.
    """
    found = [
        leaf
        for leaf in jax.tree.leaves(
            opt_state, is_leaf=lambda x: isinstance(x, AutoL2TransformState)
        )
        if isinstance(leaf, AutoL2TransformState)
    ]
    if len(found) != 1:
        raise ValueError(f"expected one autol2 state in the optimizer state, found {len(found)}")
    return found[0]


def autol2_lam(opt_state: Any) -> jax.Array:
    """λ used by the latest update (λ₀ before the first one) of the :func:`autol2` inside
    ``opt_state``: it reflects the measurements at steps ≤ the latest update's step."""
    return find_autol2_state(opt_state).controller.lam

"""The pure, jitted pieces of a run: batch gathering, the training step, many steps per
dispatch, and batched evaluation.

Everything here is a function of arrays: the data live on the device once (:class:`DeviceData`)
and batches are gathered inside jitted code; η₀, λ and the step budget enter as arrays
(:class:`Hyper`), so one compilation serves any (η, λ) and vmaps over a grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import l2dynamics.autol2.controller as controller
from l2dynamics.autol2.controller import AutoL2State
from l2dynamics.autol2.options import AutoL2Options
from l2dynamics.data.augment import augment_batch
from l2dynamics.losses import correct, l2_norm_sq
from l2dynamics.models.norm import near_equal_chunks
from l2dynamics.models.registry import param_name
from l2dynamics.optim import eta_now, set_hyperparams


class DeviceData(NamedTuple):
    """Data on the device: images ``(N, H, W, C)`` float32 and one-hot targets ``(N, k)``."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


class Hyper(NamedTuple):
    """Run-time hyperparameters (float32/int32 arrays; a leading axis when vmapped).

    ``eta0``: base learning rate per step; ``lam``: λ of ``(λ/2)‖θ‖²``; ``total_steps``: the
    budget in steps (the step learning-rate schedule is relative to it).
    """

    eta0: jax.Array
    lam: jax.Array
    total_steps: jax.Array


class TrainState(NamedTuple):
    """Parameters, optimizer state, the step counter, the data-order key, the first step
    whose minibatch loss was not finite (−1 while every loss has been finite), the state of
    the AutoL2 controller that schedules λ (carried, unused, by runs with a fixed λ), and, for
    a program that measures layers (``StepSpec.measure_layers``), ``angles``: a pytree shaped
    as ``params`` of float32 scalars, the angle (radians) each parameter tensor turned by in
    the last step (:func:`layer_angles`; NaN before the first step). None otherwise, an empty
    subtree: pools, checkpoints and the step carry it as any other part of the state."""

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    diverged_step: jax.Array
    controller: AutoL2State
    angles: Any = None


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """The static part of a step: the model's apply, the loss, the optimizer, batch size, the
    learning-rate schedule's kind, augmentation, the factor of λ in the L2 gradient
    (``l2_scale``: 1 for ``(λ/2)‖θ‖²``, 2 for the script convention's ``λ‖θ‖²``), and the
    options of the AutoL2 controller when λ is scheduled (``controller``; None for a fixed λ)
    with what it measures (``measure_source`` of :data:`l2dynamics.config.AUTOL2_MEASURES`,
    ``measure_size`` examples for ``"subset"``, in chunks of ``eval_batch``), and where a
    minibatch lives (``batch_sharding``: None, or split along its examples over the devices of
    a data-parallel run, :mod:`l2dynamics.train.devices`), and whether each step keeps the
    angle each parameter tensor turned by (``measure_layers``; the measurement then reports
    them with each tensor's ‖θ_l‖², :func:`layer_metrics`)."""

    apply: Callable[..., jax.Array]
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    tx: optax.GradientTransformation
    batch_size: int
    n_train: int
    lr_schedule: str = "constant"
    flip: bool = False
    crop: int = 0
    mixup_alpha: float = 0.0
    l2_scale: float = 1.0
    controller: AutoL2Options | None = None
    measure_source: str = "minibatch"
    measure_size: int = 0
    eval_batch: int = 1000
    batch_sharding: Any = None
    measure_layers: bool = False


def batch_indices(key: jax.Array, step: jax.Array, batch_size: int, n: int) -> jax.Array:
    """Indices ``(batch_size,)`` of minibatch ``step`` in a stream of per-epoch permutations.

    The stream is the concatenation of one random permutation of ``range(n)`` per epoch (each
    from ``fold_in(key, epoch)``); batch ``s`` covers stream positions ``[s·B, (s+1)·B)``, so
    epochs are exactly ``step·B/n`` and a batch may straddle two epochs. Requires ``B ≤ n``.
    """
    q, r = step // n, step % n
    epoch0 = q * batch_size + (r * batch_size) // n
    offset = (r * batch_size) % n
    pos = offset + jnp.arange(batch_size, dtype=jnp.int32)
    perm0 = jax.random.permutation(jax.random.fold_in(key, epoch0), n)
    perm1 = jax.random.permutation(jax.random.fold_in(key, epoch0 + 1), n)
    return jnp.where(pos < n, perm0[pos % n], perm1[pos % n])


def get_batch(spec: StepSpec, data: DeviceData, key: jax.Array, step: jax.Array):
    """The (augmented) training minibatch of ``step``: ``(B, H, W, C)``, ``(B, k)``; split
    over devices along ``B`` when ``spec.batch_sharding`` says so (each device gathers its
    share; the rest of the step follows)."""
    if spec.batch_size >= spec.n_train:
        x, y = data.x_train, data.y_train
    else:
        idx = batch_indices(key, step, spec.batch_size, spec.n_train)
        x, y = data.x_train[idx], data.y_train[idx]
    if spec.batch_sharding is not None:
        x, y = jax.lax.with_sharding_constraint((x, y), spec.batch_sharding)
    aug_key = jax.random.fold_in(jax.random.fold_in(key, 0x5EED), step)
    return augment_batch(
        aug_key, x, y, flip=spec.flip, crop=spec.crop, mixup_alpha=spec.mixup_alpha
    )


def train_step(spec: StepSpec, data: DeviceData, state: TrainState, hyper: Hyper) -> TrainState:
    """One step of ``spec.tx`` at ``η_t = η₀·schedule(step)`` and L2 coefficient ``s·λ``, with
    ``s = spec.l2_scale`` (1; 2 in the script convention); for SGD with coupled L2,
    ``θ ← θ − η_t(v)``, ``v ← μv + ∇L_data + s·λθ`` (the others: :mod:`l2dynamics.optim`).

    With AutoL2 (``spec.controller``), λ is the controller's: every ``period`` steps (at steps
    0, k, 2k, …) the bare loss and error at the parameters before this update, on this step's
    minibatch or on the source ``spec.measure_source`` names, are fed to the controller, and
    its new λ applies from this update on.
    """
    x, y = get_batch(spec, data, state.key, state.step)

    def bare_loss(params):
        f = spec.apply({"params": params}, x, train=True)
        return spec.loss(f, y), f

    (loss, logits), grads = jax.value_and_grad(bare_loss, has_aux=True)(state.params)
    ctrl = _controller_update(spec, data, state, loss, logits, y)
    lam = hyper.lam if spec.controller is None else ctrl.lam
    lr = eta_now(spec.lr_schedule, hyper.eta0, state.step, hyper.total_steps)
    opt_state = set_hyperparams(state.opt_state, learning_rate=lr, l2=lam * spec.l2_scale)
    updates, opt_state = spec.tx.update(grads, opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    first_bad = (state.diverged_step < 0) & ~jnp.isfinite(loss)
    diverged = jnp.where(first_bad, state.step, state.diverged_step)
    angles = layer_angles(state.params, params) if spec.measure_layers else state.angles
    return TrainState(params, opt_state, state.step + 1, state.key, diverged, ctrl, angles)


def turn_angle(old: jax.Array, new: jax.Array) -> jax.Array:
    """The angle (radians, in [0, π]) between a parameter tensor before and after a step,
    ``arccos(⟨θ, θ'⟩/(‖θ‖‖θ'‖))``, flattened; NaN when ``‖θ‖ = 0``.

    Computed without the arccos, whose float32 value near 1 loses the small angles of an
    equilibrium (at 1e-3 rad, cos = 1 − 5e-7 is resolved to about 6%): with the step
    ``d = θ' − θ`` (exact in float32, both being close), ``c = ⟨θ, d⟩/‖θ‖²`` and
    ``d⊥ = d − c·θ`` (the part of the step orthogonal to θ), ``θ' = (1 + c)·θ + d⊥`` and the
    angle is ``atan2(‖d⊥‖, (1 + c)·‖θ‖)``, accurate to float32 rounding at any angle.
    """
    a = jnp.ravel(old).astype(jnp.float32)
    d = jnp.ravel(new).astype(jnp.float32) - a
    a2 = jnp.sum(jnp.square(a))
    c = jnp.sum(a * d) / a2
    perp = jnp.sqrt(jnp.sum(jnp.square(d - c * a)))
    return jnp.arctan2(perp, (1.0 + c) * jnp.sqrt(a2))


def layer_angles(old: Any, new: Any) -> Any:
    """:func:`turn_angle` of every parameter tensor: a pytree shaped as the parameters, of
    float32 scalars."""
    return jax.tree.map(turn_angle, old, new)


def initial_angles(params: Any) -> Any:
    """The ``angles`` of a state before its first step: NaN for every tensor."""
    return jax.tree.map(lambda _: jnp.float32(jnp.nan), params)


def layer_metrics(params: Any, angles: Any) -> dict[str, dict[str, jax.Array]]:
    """Per parameter tensor (named by :func:`l2dynamics.models.param_name`,
    ``"conv_0/kernel"``): ``norm_sq`` = ‖θ_l‖² now and ``angle``, the angle it turned by in
    the last step (radians; NaN before the first step), float32 scalars."""
    norms = jax.tree_util.tree_flatten_with_path(params)[0]
    turned = jax.tree_util.tree_flatten_with_path(angles)[0]
    return {
        "norm_sq": {param_name(p): jnp.sum(jnp.square(x)) for p, x in norms},
        "angle": {param_name(p): x for p, x in turned},
    }


def _controller_update(
    spec: StepSpec,
    data: DeviceData,
    state: TrainState,
    loss: jax.Array,
    logits: jax.Array,
    y: jax.Array,
) -> AutoL2State:
    """The controller's state after this step's measurement (unchanged off-period)."""
    opts = spec.controller
    if opts is None:
        return state.controller

    def measure(ctrl: AutoL2State) -> AutoL2State:
        if spec.measure_source == "minibatch":
            got, error = loss, 1.0 - correct(logits, y) / jnp.float32(y.shape[0])
        else:
            x_m, y_m = measured_set(spec, data, state.key)
            got, acc = evaluate(spec.apply, spec.loss, state.params, x_m, y_m, spec.eval_batch)
            error = 1.0 - acc
        return controller.update(ctrl, state.step, got, error, opts)

    return jax.lax.cond(state.step % opts.period == 0, measure, lambda c: c, state.controller)


MEASURE_STREAM = 0x4D45  # the stream of the data-order key that draws AutoL2's fixed subset


def measured_set(spec: StepSpec, data: DeviceData, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The training examples AutoL2 measures when its source is not the minibatch: all of them
    (``"train"``), or a subset of ``spec.measure_size`` drawn once per run from its data-order
    key (``"subset"``: the same examples at every measurement)."""
    n = spec.n_train
    if spec.measure_source == "train" or spec.measure_size >= n:
        return data.x_train, data.y_train
    idx = jax.random.permutation(jax.random.fold_in(key, MEASURE_STREAM), n)[: spec.measure_size]
    return data.x_train[idx], data.y_train[idx]


def run_steps(
    spec: StepSpec, data: DeviceData, state: TrainState, hyper: Hyper, n_steps: jax.Array
) -> TrainState:
    """Up to ``n_steps`` steps in one dispatch (a ``while_loop``: the count is a traced int, so
    no recompilation for different gaps), stopping early at the first non-finite loss."""

    def cond(carry):
        i, s = carry
        return (i < n_steps) & (s.diverged_step < 0)

    def body(carry):
        i, s = carry
        return i + 1, train_step(spec, data, s, hyper)

    _, state = jax.lax.while_loop(cond, body, (jnp.int32(0), state))
    return state


def guarded_step(
    spec: StepSpec, data: DeviceData, state: TrainState, hyper: Hyper, go: jax.Array
) -> TrainState:
    """One :func:`train_step` where ``go`` holds and no earlier step diverged; else ``state``
    unchanged (the step that first meets a non-finite loss is applied and recorded, as in
    :func:`run_steps`)."""
    new = train_step(spec, data, state, hyper)
    keep = go & (state.diverged_step < 0)
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state)


def stepwise(step: Callable[..., TrainState]) -> Callable[..., TrainState]:
    """``run_steps`` as a host loop over one jitted (guarded, donated) step per call.

    ``step(data, state, hyper, go)`` is :func:`guarded_step` (or its vmap); the returned
    ``run(data, state, hyper, n_steps)`` takes the same arguments as :func:`run_steps` (or
    its vmap, ``n_steps`` per run) and gives the same result. Used for convolutional models
    on XLA:CPU, which leaves its fast convolution path inside a ``while_loop`` body (measured
    in ``benchmarks/``); a call costs one dispatch per step, small next to a convolution's
    step.
    """

    def run(data: DeviceData, state: TrainState, hyper: Hyper, n_steps: Any) -> TrainState:
        n = np.asarray(n_steps)
        for i in range(int(n.max(initial=0))):
            state = step(data, state, hyper, jnp.asarray(n > i))
        return state

    return run


MAX_UNROLLED_CHUNKS = 8


def evaluate(
    apply: Callable[..., jax.Array],
    loss: Callable[[jax.Array, jax.Array], jax.Array],
    params: Any,
    x: jax.Array,
    y: jax.Array,
    max_batch: int,
) -> tuple[jax.Array, jax.Array]:
    """Bare loss and accuracy over a whole set ``x (N, …)``, ``y (N, k)`` in chunks of at most
    ``max_batch`` (BatchNorm uses each chunk's statistics, as in the paper).

    Up to ``MAX_UNROLLED_CHUNKS`` chunks are unrolled (static slices): on XLA:CPU a
    ``lax.map`` loop costs a small model's measurement a measurable share (``benchmarks/``);
    more chunks go through ``lax.map`` to bound compilation.
    """
    n = x.shape[0]
    a, sa, b, sb = near_equal_chunks(n, max_batch)

    def one(chunk):
        f = apply({"params": params}, chunk[0], train=False)
        return loss(f, chunk[1]) * chunk[0].shape[0], correct(f, chunk[1])

    def part(xs, ys, count, size):
        if count == 0:
            return jnp.float32(0.0), jnp.float32(0.0)
        if count <= MAX_UNROLLED_CHUNKS:
            parts = [
                one((xs[i * size : (i + 1) * size], ys[i * size : (i + 1) * size]))
                for i in range(count)
            ]
            losses, hits = (jnp.stack(v) for v in zip(*parts, strict=True))
        else:
            xs = xs.reshape(count, size, *xs.shape[1:])
            ys = ys.reshape(count, size, *ys.shape[1:])
            losses, hits = jax.lax.map(one, (xs, ys))
        return jnp.sum(losses), jnp.sum(hits)

    la, ca = part(x[: a * sa], y[: a * sa], a, sa)
    lb, cb = part(x[a * sa :], y[a * sa :], b, sb)
    return (la + lb) / n, (ca + cb) / n


def measure(
    spec: StepSpec, data: DeviceData, params: Any, eval_batch: int, angles: Any = None
) -> dict[str, Any]:
    """Bare train loss/accuracy (full training set, no augmentation), test loss/accuracy (full
    test set) and ‖θ‖², as float32 scalars; with ``spec.measure_layers`` also ``"layers"``,
    :func:`layer_metrics` of ``params`` and the state's ``angles``."""
    train_loss, train_acc = evaluate(
        spec.apply, spec.loss, params, data.x_train, data.y_train, eval_batch
    )
    test_loss, test_acc = evaluate(
        spec.apply, spec.loss, params, data.x_test, data.y_test, eval_batch
    )
    return {
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "l2_norm_sq": l2_norm_sq(params),
    } | ({"layers": layer_metrics(params, angles)} if spec.measure_layers else {})


def lane(stack: Any, index: jax.Array) -> Any:
    """Lane ``index`` of a pytree stacked along a leading run axis (a traced index: one
    compiled program serves every lane)."""
    return jax.tree.map(lambda x: x[index], stack)


def measure_lane(
    spec: StepSpec,
    data: DeviceData,
    params: Any,
    index: jax.Array,
    eval_batch: int,
    angles: Any = None,
) -> dict[str, Any]:
    """:func:`measure` of lane ``index`` of stacked ``params`` (and ``angles``; leading run
    axis).

    The lane is copied out before use (an optimization barrier): on XLA:CPU that is faster
    than letting XLA fuse the lane's slice into its users (``benchmarks/``)."""
    one, turned = jax.lax.optimization_barrier(lane((params, angles), index))
    return measure(spec, data, one, eval_batch, turned)


def put_lane(stack: Any, index: jax.Array, one: Any) -> Any:
    """``stack`` with lane ``index`` replaced by the unstacked pytree ``one``."""
    return jax.tree.map(lambda s, x: s.at[index].set(x), stack, one)

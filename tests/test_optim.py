import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from l2dynamics.config import OPTIMIZERS, TrainConfig, timescale_steps
from l2dynamics.optim import (
    adam_l2,
    adamw,
    cumulative_lr_factor,
    eta_now,
    lr_factor,
    run_optimizer,
    set_hyperparams,
    sgd_l2,
    sgdw,
    weights_only_mask,
)


def _injected_step(tx, data_loss, traces):
    """One jitted step of ``tx`` that sets η and λ as run-time values; ``traces`` counts its
    compilations."""

    @jax.jit
    def step(params, state, lr, lam):
        traces.append(1)
        state = set_hyperparams(state, learning_rate=lr, l2=lam)
        updates, state = tx.update(jax.grad(data_loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    return step


def _problem(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = {
        "dense": {"kernel": jax.random.normal(k1, (4, 3)), "bias": jax.random.normal(k2, (3,))}
    }
    x = jax.random.normal(k3, (8, 4))

    def data_loss(p):
        return jnp.mean(jnp.tanh(x @ p["dense"]["kernel"] + p["dense"]["bias"]) ** 2)

    return params, data_loss


def _run(tx, params, grad_fn, steps=25):
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(grad_fn(params), state, params)
        params = optax.apply_updates(params, updates)
    return params


def _penalized(data_loss, lam):
    return lambda p: data_loss(p) + 0.5 * lam * sum(jnp.sum(v**2) for v in jax.tree.leaves(p))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_l2_equals_optax_sgd_on_penalized_loss(momentum):
    params, data_loss = _problem()
    eta, lam = 0.3, 0.05
    ours = _run(sgd_l2(eta, lam, momentum), params, jax.grad(data_loss))
    ref_tx = optax.sgd(eta, momentum=momentum if momentum else None)
    ref = _run(ref_tx, params, jax.grad(_penalized(data_loss, lam)))
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-6)


def test_momentum_is_heavy_ball_with_l2_inside_the_buffer():
    """v ← μv + ∇L_data + λθ ; θ ← θ − ηv, written out by hand in numpy (float64)."""
    params, data_loss = _problem(1)
    eta, lam, mu = 0.2, 0.1, 0.8
    grad = jax.grad(data_loss)
    theta = {k: np.asarray(v, np.float64) for k, v in params["dense"].items()}
    v = {k: np.zeros_like(t) for k, t in theta.items()}
    for _ in range(10):
        g = grad({"dense": {k: jnp.asarray(t, jnp.float32) for k, t in theta.items()}})["dense"]
        for k in theta:
            v[k] = mu * v[k] + np.asarray(g[k], np.float64) + lam * theta[k]
            theta[k] = theta[k] - eta * v[k]
    ours = _run(sgd_l2(eta, lam, mu), params, grad, steps=10)["dense"]
    for k in theta:
        np.testing.assert_allclose(np.asarray(ours[k]), theta[k], atol=1e-5)


def test_plain_sgd_has_no_buffer_and_equals_the_buffered_update_at_zero_momentum():
    params, data_loss = _problem(2)
    plain, buffered = sgd_l2(0.3, 0.05), sgd_l2(0.3, 0.05, heavy_ball=True)
    assert len(jax.tree.leaves(plain.init(params))) < len(jax.tree.leaves(buffered.init(params)))
    a = _run(plain, params, jax.grad(data_loss))
    b = _run(buffered, params, jax.grad(data_loss))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_weights_only_mask_leaves_biases_undecayed():
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}}
    zero = jax.tree.map(jnp.zeros_like, params)
    tx = sgd_l2(1.0, 0.5, mask=weights_only_mask)
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["dense"]["kernel"]), -0.5)
    np.testing.assert_allclose(np.asarray(updates["dense"]["bias"]), 0.0)


def test_hyperparameters_are_arrays_changed_without_recompiling():
    params, data_loss = _problem()
    tx = sgd_l2(0.1, 0.0)
    traces = []
    step = _injected_step(tx, data_loss, traces)

    state = tx.init(params)
    for lr, lam in [(0.1, 0.0), (0.5, 0.01), (0.05, 1e-4)]:
        params, state = step(params, state, jnp.float32(lr), jnp.float32(lam))
        assert float(state.hyperparams["learning_rate"]) == pytest.approx(lr)
        assert float(state.hyperparams["l2"]) == pytest.approx(lam)
    assert len(traces) == 1


def test_set_hyperparams_rejects_unknown_name():
    params, _ = _problem()
    tx = sgd_l2()
    with pytest.raises(KeyError, match="nope"):
        set_hyperparams(tx.init(params), nope=1.0)


def test_step_schedule_factors():
    total = jnp.int32(100)
    got = [float(lr_factor("step", jnp.int32(s), total)) for s in (0, 29, 30, 59, 60, 89, 90, 99)]
    np.testing.assert_allclose(got, [1, 1, 0.2, 0.2, 0.04, 0.04, 0.008, 0.008], rtol=1e-6)
    assert float(lr_factor("constant", jnp.int32(99), total)) == 1.0
    with pytest.raises(ValueError, match="cosine"):
        lr_factor("cosine", jnp.int32(0), total)


@pytest.mark.parametrize("schedule", ["constant", "step"])
def test_the_schedule_on_the_host_equals_the_schedule_on_the_device(schedule):
    """One definition serves both: float64 on the host, float32 on the device, same factors."""
    steps = np.arange(0, 101)
    host = lr_factor(schedule, steps, 100, xp=np)
    device = jax.vmap(lambda s: lr_factor(schedule, s, jnp.int32(100)))(jnp.asarray(steps))
    assert host.dtype == np.float64 and device.dtype == jnp.float32
    np.testing.assert_allclose(host, np.asarray(device), rtol=1e-6)
    assert eta_now(schedule, 0.5, 95, 100, xp=np) == 0.5 * host[95]


# --- the other optimizers (SPEC §6): each against optax's own or a hand-written update ---------


def _random_grads(params, steps, seed=3):
    """``steps`` gradient pytrees shaped as ``params``, drawn independently of the parameters
    (so that a reference needs no model: the same gradients drive both updates)."""
    keys = jax.random.split(jax.random.key(seed), steps)
    leaves, tree = jax.tree.flatten(params)
    out = []
    for key in keys:
        parts = jax.random.split(key, len(leaves))
        draws = [jax.random.normal(k, leaf.shape) for k, leaf in zip(parts, leaves, strict=True)]
        out.append(jax.tree.unflatten(tree, draws))
    return out


def _run_grads(tx, params, grads):
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params


def _optax_reference(run, *args):
    """``run(*args)`` under standard dtype promotion: optax's own Adam raises a Python-float β to
    an int32 count, which the suite's strict promotion refuses (the toolkit's Adam allows it)."""
    with jax.numpy_dtype_promotion("standard"):
        return run(*args)


def _max_diff(a, b):
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y)))) for x, y in pairs)


ADAM = dict(b1=0.8, b2=0.99, eps=1e-6)  # not optax's defaults: the options must arrive


@pytest.mark.parametrize("mask", [None, weights_only_mask])
def test_adamw_equals_optax_adamw(mask):
    params, _ = _problem(4)
    grads = _random_grads(params, 12)
    eta, lam = 0.05, 0.3
    ours = _run_grads(adamw(eta, lam, mask=mask, **ADAM), params, grads)
    ref_tx = optax.adamw(eta, weight_decay=lam, mask=mask, **ADAM)
    assert _max_diff(ours, _optax_reference(_run_grads, ref_tx, params, grads)) <= 1e-6


def test_adam_with_l2_is_optax_adam_on_the_penalized_gradient():
    params, _ = _problem(5)
    grads = _random_grads(params, 12)
    eta, lam = 0.05, 0.3
    ours = _run_grads(adam_l2(eta, lam, **ADAM), params, grads)

    def reference(params):
        tx = optax.adam(eta, **ADAM)
        state = tx.init(params)
        for g in grads:  # g + λθ at the current θ, then plain Adam
            penalized = jax.tree.map(lambda gi, p: gi + lam * p, g, params)
            updates, state = tx.update(penalized, state, params)
            params = optax.apply_updates(params, updates)
        return params

    assert _max_diff(ours, _optax_reference(reference, params)) <= 1e-6
    # and it is not AdamW: the L2 term inside Adam's moments moves θ differently
    assert _max_diff(ours, _run_grads(adamw(eta, lam, **ADAM), params, grads)) > 1e-3


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgdw_is_the_hand_written_decoupled_update(momentum):
    """v ← μv + g ; θ ← θ − η(v + λθ), in float64 numpy, with the same gradients."""
    params, _ = _problem(6)
    grads = _random_grads(params, 15)
    eta, lam = 0.1, 0.5
    theta = jax.tree.map(lambda p: np.asarray(p, np.float64), params)
    v = jax.tree.map(np.zeros_like, theta)
    for g in grads:
        v = jax.tree.map(lambda vi, gi: momentum * vi + np.asarray(gi, np.float64), v, g)
        theta = jax.tree.map(lambda t, vi: t - eta * (vi + lam * t), theta, v)
    ours = _run_grads(sgdw(eta, lam, momentum), params, grads)
    assert _max_diff(theta, ours) <= 1e-6
    if momentum:  # decoupled differs from coupled once there is a buffer for λθ to enter
        assert _max_diff(ours, _run_grads(sgd_l2(eta, lam, momentum), params, grads)) > 1e-3


def test_run_optimizer_builds_each_optimizer_from_its_config():
    params, _ = _problem(7)
    grads = _random_grads(params, 6)
    base = TrainConfig(eta=0.05, lam=0.2)
    adam_cfg = dict(beta1=ADAM["b1"], beta2=ADAM["b2"], eps=ADAM["eps"])
    cases = [
        (TrainConfig(eta=0.05, lam=0.2, momentum=0.5), sgd_l2(0.05, 0.2, 0.5)),
        (TrainConfig(eta=0.05, lam=0.2, optimizer="sgdw", momentum=0.5), sgdw(0.05, 0.2, 0.5)),
        (TrainConfig(eta=0.05, lam=0.2, optimizer="adam", **adam_cfg), adam_l2(0.05, 0.2, **ADAM)),
        (TrainConfig(eta=0.05, lam=0.2, optimizer="adamw"), adamw(0.05, 0.2)),
    ]
    for cfg, ref in cases:
        got = _run_grads(run_optimizer(cfg), params, grads)
        assert _max_diff(got, _run_grads(ref, params, grads)) == 0.0, cfg.optimizer
    with pytest.raises(ValueError, match="lion"):
        run_optimizer(TrainConfig(optimizer="lion"))
    assert base.optimizer == "sgd"


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_takes_eta_and_lam_at_run_time_without_recompiling(optimizer):
    """The names the training step writes (``learning_rate``, ``l2``) exist in every
    optimizer's state, and new values change the update inside one compiled step."""
    params, data_loss = _problem()
    tx = run_optimizer(TrainConfig(optimizer=optimizer, eta=0.1))
    traces = []
    step = _injected_step(tx, data_loss, traces)

    state, moved = tx.init(params), []
    for lr, lam in [(0.1, 0.0), (0.1, 0.5), (0.05, 1e-4)]:
        new, state = step(params, state, jnp.float32(lr), jnp.float32(lam))
        assert float(state.hyperparams["l2"]) == pytest.approx(lam)
        moved.append(_max_diff(new, params))
    assert len(traces) == 1 and len(set(moved)) == 3
    has_momentum = "momentum" in state.hyperparams
    assert has_momentum == (optimizer in ("sgd", "sgdw"))


def test_torch_adamw_agrees_with_the_toolkits_adamw():
    """torch.optim.AdamW multiplies θ by 1 − η·λ, then takes the Adam step; optax adds λθ to
    the Adam direction before scaling by −η. The Adam step does not depend on θ, so the two
    are the same update; only float32 rounding differs. Both train the same tiny problem from
    the same start, each with its own autograd, for 30 steps."""
    torch = pytest.importorskip("torch")
    params, _ = _problem(8)
    x = np.asarray(jax.random.normal(jax.random.key(9), (16, 4)))
    eta, lam = 0.01, 0.1
    cfg = TrainConfig(optimizer="adamw", eta=eta, lam=lam, beta1=0.85, beta2=0.995, eps=1e-7)

    def loss(p, xs):
        return jnp.mean(jnp.tanh(xs @ p["dense"]["kernel"] + p["dense"]["bias"]) ** 2)

    tx = run_optimizer(cfg)
    ours = _run(tx, params, lambda p: jax.grad(loss)(p, jnp.asarray(x)), steps=30)

    kernel, bias = (torch.tensor(np.asarray(params["dense"][k])) for k in ("kernel", "bias"))
    kernel.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.AdamW([kernel, bias], lr=eta, betas=(0.85, 0.995), eps=1e-7, weight_decay=lam)
    xt = torch.tensor(x)
    for _ in range(30):
        opt.zero_grad()
        torch.mean(torch.tanh(xt @ kernel + bias) ** 2).backward()
        opt.step()
    theirs = {"dense": {"kernel": kernel.detach().numpy(), "bias": bias.detach().numpy()}}
    diff = _max_diff(theirs, ours)
    moved = _max_diff(params, ours)
    assert moved > 0.1 and diff <= 1e-5, (diff, moved)


@pytest.mark.parametrize(
    "optimizer,momentum,rtol",
    [("sgd", 0.0, 1e-3), ("sgd", 0.9, 0.02), ("sgdw", 0.9, 1e-3), ("adamw", 0.0, 1e-3)],
)
def test_the_timescale_is_the_e_folding_time_of_the_decay_alone(optimizer, momentum, rtol):
    """With no data gradient, θ decays geometrically; its measured e-folding time in steps is
    ``timescale_steps``: exactly for the decoupled ones and plain SGD, and for coupled SGD with
    momentum at steady state (the root of v ← μv + λθ, θ ← θ − ηv is 1 − ηλ/(1−μ) to first
    order in ηλ/(1−μ)²: 0.9% off at these numbers)."""
    cfg = TrainConfig(optimizer=optimizer, momentum=momentum, eta=0.1, lam=1e-3)
    tx = run_optimizer(cfg)
    params = {"w": jnp.ones((3,))}
    state, zero = tx.init(params), {"w": jnp.zeros((3,))}
    norms = []
    for _ in range(400):  # the buffer's fast mode (μ^t) is gone after the first ~100 steps
        updates, state = tx.update(zero, state, params)
        params = optax.apply_updates(params, updates)
        norms.append(float(params["w"][0]))
    measured = 200 / np.log(norms[199] / norms[399])
    assert measured == pytest.approx(timescale_steps(cfg), rel=rtol)


@pytest.mark.parametrize("schedule", ["constant", "step"])
@pytest.mark.parametrize("total", [1, 2, 3, 7, 10, 99, 100, 101, 1000])
def test_cumulative_lr_factor_is_the_running_sum_of_the_factor(schedule, total):
    """The closed form equals summing the schedule step by step, at every step of the budget."""
    factors = lr_factor(schedule, np.arange(total), total, xp=np)
    expected = np.concatenate([[0.0], np.cumsum(factors)])
    got = cumulative_lr_factor(schedule, np.arange(total + 1), total)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from l2dynamics.optim import eta_now, lr_factor, set_hyperparams, sgd_l2, weights_only_mask


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

    @jax.jit
    def step(params, state, lr, lam):
        traces.append(1)
        state = set_hyperparams(state, learning_rate=lr, l2=lam)
        updates, state = tx.update(jax.grad(data_loss)(params), state, params)
        return optax.apply_updates(params, updates), state

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

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.integrate import quad
from scipy.linalg import expm

from l2dynamics.errors import ConfigError
from l2dynamics.theory import (
    TwoLayerReLU,
    evolve_outputs,
    fit_decay_rate,
    gd_segment,
    kernel_decay_factor,
    kernel_deviation,
    kernel_overlap,
    mode_evolution,
    relative_error,
    solve_eq1,
    train_with_kernels,
)

# ---------------------------------------------------------------- eq. (3) against references


def _random_problem(seed, n=10):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    theta0 = (q * np.exp(rng.uniform(np.log(1e-3), np.log(1e2), n))) @ q.T
    return theta0, rng.normal(size=n), rng.choice([-1.0, 1.0], size=n)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("lam", [0.01, 0.5])
def test_eq3_matches_ode_solve_on_random_pd_kernels(k, lam):
    theta0, f0, y = _random_problem(seed=10 * k + int(lam * 100))
    t = np.linspace(0.0, 5.0 / lam, 31)
    closed = evolve_outputs(theta0, f0, y, t, lam=lam, k=k)
    ode = solve_eq1(theta0, f0, y, t, lam=lam, k=k)
    assert relative_error(closed, ode) < 1e-6


def _literal_eq3(lam_a, f0, y, t, lam, k):
    """Eq. (3) exactly as printed, its integral by adaptive quadrature in t'."""
    r = 2 * (k - 1) * lam
    lam_t = lam_a * np.exp(-r * t)

    def integrand(tp):
        return np.exp(-(k - 2) * lam * tp + (lam_t - lam_a * np.exp(-r * tp)) / r)

    breaks = [max(t - c / lam_a, 0.0) for c in (1.0, 10.0, 100.0)]
    integral, _ = quad(integrand, 0, t, epsabs=0, epsrel=1e-12, limit=400, points=breaks)
    return np.exp(-k * lam * t) * (np.exp((lam_t - lam_a) / r) * f0 + lam_a * y * integral)


@pytest.mark.parametrize("k", [1.5, 2, 3])
def test_mode_quadrature_matches_adaptive_quadrature_of_eq3(k):
    lam = 0.01
    for lam_a in (1e-3, 0.05, 3.0, 300.0):
        for t in (0.3, 20.0, 400.0):
            ref = _literal_eq3(lam_a, 0.7, -1.3, t, lam, k)
            got = mode_evolution([lam_a], [0.7], [-1.3], [t], lam=lam, k=k)[0, 0]
            assert got == pytest.approx(ref, rel=1e-8, abs=1e-300)


def test_k1_is_the_continuous_limit_and_matches_the_linear_model():
    lam_a = np.array([1e-3, 0.2, 5.0, 80.0])
    f0, y, t = np.array([0.3, -1.0, 0.5, 2.0]), np.array([1.0, 1.0, -1.0, 1.0]), [0, 1, 30, 300]
    exact = mode_evolution(lam_a, f0, y, t, lam=0.01, k=1)
    near = mode_evolution(lam_a, f0, y, t, lam=0.01, k=1 + 1e-7)
    np.testing.assert_allclose(near, exact, rtol=1e-5, atol=1e-9)
    rate = lam_a + 0.01
    tt = np.asarray(t, float)[:, None]
    linear = np.exp(-rate * tt) * f0 + lam_a * y / rate * (1 - np.exp(-rate * tt))
    np.testing.assert_allclose(exact, linear, rtol=1e-12)


def test_asymptotics_k2_switches_off_k1_converges_to_ridge_value():
    lam, lam_a = 0.01, np.array([0.001, 0.1, 10.0])
    ones = np.ones(3)
    late = [3000.0]
    assert np.abs(mode_evolution(lam_a, ones, ones, late, lam=lam, k=2)).max() < 1e-6
    k1 = mode_evolution(lam_a, ones, ones, [1e5], lam=lam, k=1)[0]
    np.testing.assert_allclose(k1, lam_a / (lam_a + lam), rtol=1e-9)


def test_without_l2_every_k_is_the_constant_kernel_flow():
    lam_a, f0, y, t = np.array([0.01, 1.0, 50.0]), np.ones(3), -np.ones(3), [0.5, 5, 50]
    base = mode_evolution(lam_a, f0, y, t, lam=0.0, k=1)
    for k in (2, 3):
        np.testing.assert_allclose(mode_evolution(lam_a, f0, y, t, lam=0.0, k=k), base, rtol=1e-9)


def test_matrix_form_equals_matrix_exponentials_for_k1():
    theta0, f0, y = _random_problem(seed=3, n=6)
    lam, t = 0.2, 3.0
    a = theta0 + lam * np.eye(6)
    decay = expm(-a * t)
    expected = decay @ f0 + np.linalg.solve(a, (np.eye(6) - decay) @ theta0 @ y)
    got = evolve_outputs(theta0, f0, y, [t], lam=lam, k=1)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_kernel_decay_factor_and_input_checks():
    assert kernel_decay_factor(2.0, 0.1, 3)[()] == pytest.approx(np.exp(-0.8))
    with pytest.raises(ConfigError, match="k must be >= 1"):
        mode_evolution([1.0], [0.0], [1.0], [1.0], lam=0.1, k=0.5)
    with pytest.raises(ConfigError, match="lam"):
        mode_evolution([1.0], [0.0], [1.0], [1.0], lam=-0.1, k=2)


# ---------------------------------------------------------------- kernel decay measurement


def test_decay_fit_and_deviation_on_synthetic_kernels():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 5))
    k0 = base @ base.T
    t = np.linspace(0, 2, 9)
    kernels = np.exp(-0.3 * t)[:, None, None] * k0
    assert fit_decay_rate(t, kernels) == pytest.approx(0.3, rel=1e-12)
    np.testing.assert_allclose(kernel_overlap(kernels), np.exp(-0.3 * t), rtol=1e-12)
    assert kernel_deviation(t, kernels, lam=0.15, k=2).max() < 1e-12
    assert kernel_deviation(t, kernels, lam=0.1, k=2)[-1] == pytest.approx(-np.expm1(-0.1 * 2))


def _sum_loss(apply, params, x, y, lam):
    residual = apply(params, x) - y
    l2 = sum(jnp.sum(p**2) for p in jax.tree.leaves(params))
    return 0.5 * jnp.sum(residual**2) + 0.5 * lam * l2


def test_gd_segment_is_sgd_on_the_summed_loss_with_l2():
    x = jax.random.normal(jax.random.key(1), (12, 7), jnp.float32)
    y = jnp.sign(x[:, 0])
    net = TwoLayerReLU(width=32)
    params = net.init(jax.random.key(2), x)["params"]

    def apply(p, xs):
        return net.apply({"params": p}, xs)

    eta, lam = 0.01, 0.3
    got, outs = gd_segment(
        apply, params, x, y, jnp.float32(eta), jnp.float32(lam), records=3, every=2
    )
    opt = optax.sgd(eta)
    state, ref = opt.init(params), params
    for _ in range(6):
        grads = jax.grad(lambda p: _sum_loss(apply, p, x, y, lam))(ref)
        updates, state = opt.update(grads, state)
        ref = optax.apply_updates(ref, updates)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert outs.shape == (3, 12)
    np.testing.assert_allclose(outs[-1], apply(ref, x), rtol=1e-5, atol=1e-6)


def test_linear_model_kernel_is_constant_under_l2():
    # k = 1: the predicted decay rate 2(k−1)λ is 0, and the kernel of a linear model is exact.
    x = jax.random.normal(jax.random.key(3), (10, 4), jnp.float32)
    model = nn.Dense(1)
    params = model.init(jax.random.key(0), x)["params"]

    def apply(p, xs):
        return model.apply({"params": p}, xs)[:, 0]

    trace = train_with_kernels(
        apply,
        params,
        x,
        jnp.sign(x[:, 1]),
        x[:6],
        eta=0.01,
        lam=1.0,
        segments=2,
        segment_steps=20,
        record_every=10,
    )
    assert abs(fit_decay_rate(trace.kernel_times, trace.kernels)) < 1e-5
    assert trace.outputs.shape == (5, 10)
    np.testing.assert_allclose(trace.output_times, [0, 0.1, 0.2, 0.3, 0.4])


def test_wide_relu_net_kernel_decays_at_two_lambda():
    x = jax.random.normal(jax.random.key(4), (16, 20), jnp.float32)
    net = TwoLayerReLU(width=2048)
    params = net.init(jax.random.key(5), x)["params"]

    def apply(p, xs):
        return net.apply({"params": p}, xs)

    lam = 2.0
    trace = train_with_kernels(
        apply,
        params,
        x,
        jnp.sign(x[:, 0]),
        x,
        eta=0.002,
        lam=lam,
        segments=3,
        segment_steps=100,
        record_every=50,
    )
    assert fit_decay_rate(trace.kernel_times, trace.kernels) == pytest.approx(2 * lam, rel=0.05)
    assert kernel_deviation(trace.kernel_times, trace.kernels, lam=lam, k=2).max() < 0.1

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.models import FC
from l2dynamics.theory import TwoLayerReLU, empirical_ntk, two_layer_ntk
from l2dynamics.theory.ntk import METHODS, ntk_block

# rbg keys: XLA:CPU compiles threefry-based inits several times slower (see test_models.py).
KEY = jax.random.key(0, impl="rbg")
RNG = np.random.default_rng(0)
X1 = jnp.asarray(RNG.normal(size=(7, 6)).astype(np.float32))
X2 = jnp.asarray(RNG.normal(size=(5, 6)).astype(np.float32))


def _module_fn(model, x=X1):
    params = jax.jit(model.init)(KEY, x)["params"]

    def apply(p, xs):
        return model.apply({"params": p}, xs)

    return apply, params


@pytest.fixture(scope="module")
def linear():
    return _module_fn(nn.Dense(3))


@pytest.fixture(scope="module")
def fc():
    return _module_fn(FC(depth=1, width=16, num_classes=3, activation="tanh", sigma_b=0.5))


@pytest.mark.parametrize("method", METHODS)
def test_linear_model_kernel_matches_closed_form(linear, method):
    # f(x) = xW + b with K outputs: Θ_ij(x, x') = δ_ij (x·x' + 1), whatever W and b are.
    apply, params = linear
    gram = np.asarray(X1 @ X2.T) + 1.0
    full = empirical_ntk(apply, params, X1, X2, method=method, trace=False, block_size=3)
    assert full.shape == (7, 5, 3, 3)
    np.testing.assert_allclose(full, gram[:, :, None, None] * np.eye(3), rtol=1e-5, atol=1e-5)
    traced = empirical_ntk(apply, params, X1, X2, method=method, block_size=4)
    np.testing.assert_allclose(traced, 3 * gram, rtol=1e-5, atol=1e-5)


def test_jacobian_and_implicit_agree_on_a_nonlinear_multi_output_net(fc):
    apply, params = fc
    kw = {"trace": False, "block_size": 4}
    jac = empirical_ntk(apply, params, X1, X2, method="jacobian", **kw)
    imp = empirical_ntk(apply, params, X1, X2, method="implicit", **kw)
    assert jac.shape == (7, 5, 3, 3)
    np.testing.assert_allclose(imp, jac, rtol=1e-4, atol=1e-5)
    assert np.abs(jac[..., 0, 1]).max() > 1e-3  # the output pairs really are not diagonal
    traced = empirical_ntk(apply, params, X1, X2, method="jacobian", block_size=4)
    np.testing.assert_allclose(traced, np.trace(jac, axis1=2, axis2=3), rtol=1e-5, atol=1e-6)


def test_symmetric_assembly_equals_explicit_second_argument(fc):
    apply, params = fc
    sym = empirical_ntk(apply, params, X1, trace=False, block_size=4)
    explicit = empirical_ntk(apply, params, X1, X1, trace=False, block_size=4)
    np.testing.assert_allclose(sym, explicit, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sym, np.transpose(sym, (1, 0, 3, 2)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
def test_two_layer_relu_kernel_matches_its_closed_form(parametrization):
    net = TwoLayerReLU(width=64, parametrization=parametrization)
    apply, params = _module_fn(net)
    expected = np.asarray(two_layer_ntk(net, params, X1, X1))
    for method in METHODS:
        got = empirical_ntk(apply, params, X1, method=method, block_size=4)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_ntk_parametrization_kernel_is_width_independent_standard_grows():
    diag = {}
    for p in ("ntk", "standard"):
        for width in (256, 4096):
            net = TwoLayerReLU(width=width, parametrization=p)
            params = net.init(KEY, X1)["params"]
            diag[p, width] = float(np.trace(np.asarray(two_layer_ntk(net, params, X1, X1))))
    assert diag["ntk", 4096] == pytest.approx(diag["ntk", 256], rel=0.2)
    # standard: the readout part (nearly all of it) grows ∝ width; finite-width noise ~ 10 %
    assert diag["standard", 4096] / diag["standard", 256] == pytest.approx(16, rel=0.2)


@pytest.mark.parametrize("method", METHODS)
def test_width_5000_mnist_sized_block_fits_in_a_few_gb(method):
    # The kernel is assembled block by block, so its peak memory is one block's program:
    # compile (do not run) that program for a width-5000 net on 784-pixel inputs.
    net = TwoLayerReLU(width=5000)
    x = jax.ShapeDtypeStruct((32, 784), jnp.float32)
    params = jax.eval_shape(net.init, KEY, x)["params"]

    def apply(p, xs):
        return net.apply({"params": p}, xs)

    compiled = ntk_block(apply, method, True).lower(params, x, x).compile()
    memory = compiled.memory_analysis()
    if memory is None:
        pytest.skip("this backend reports no memory analysis")
    total = memory.temp_size_in_bytes + memory.argument_size_in_bytes
    assert 1e8 < total < 3e9


def test_mnist_width_5000_kernel_matches_closed_form(shared_data):
    from l2dynamics.data.datasets import load_dataset

    ds = load_dataset("mnist", data_dir=shared_data, n_train=6, n_test=2, standardize=False)
    x = jnp.asarray(ds.x_train.reshape(6, -1))
    net = TwoLayerReLU(width=5000)
    apply, params = _module_fn(net, x)
    expected = np.asarray(two_layer_ntk(net, params, x, x))
    got = empirical_ntk(apply, params, x, block_size=3)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_bad_options_are_config_errors(linear):
    apply, params = linear
    with pytest.raises(ConfigError, match="unknown NTK method 'exact'"):
        empirical_ntk(apply, params, X1, method="exact")
    with pytest.raises(ConfigError, match="block_size"):
        empirical_ntk(apply, params, X1, block_size=0)

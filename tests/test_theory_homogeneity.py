import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2dynamics.models import FC
from l2dynamics.theory import (
    TwoLayerReLU,
    euler_residual,
    hessian_euler_residual,
    homogeneity_degree,
)

X = jnp.asarray(np.random.default_rng(0).normal(size=(6, 4, 4, 1)).astype(np.float32))


def _fn(model):
    params = jax.jit(model.init)(jax.random.key(1, impl="rbg"), X)["params"]

    def apply(p, xs):
        return model.apply({"params": p}, xs)

    return apply, params


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_bias_free_relu_net_with_l_layers_is_l_homogeneous_and_obeys_lemma_1(layers):
    apply, params = _fn(FC(depth=layers - 1, width=16, num_classes=3, use_bias=False))
    assert homogeneity_degree(apply, params, X) == pytest.approx(layers, abs=1e-4)
    assert euler_residual(apply, params, X, layers) < 1e-5
    assert hessian_euler_residual(apply, params, X, layers) < 1e-4
    # The identity singles out k: the next degree fails it.
    assert euler_residual(apply, params, X, layers + 1) > 0.5


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
def test_two_layer_theory_net_has_k_2(parametrization):
    apply, params = _fn(TwoLayerReLU(width=32, parametrization=parametrization))
    assert homogeneity_degree(apply, params, X) == pytest.approx(2, abs=1e-4)
    assert euler_residual(apply, params, X, 2) < 1e-5
    assert hessian_euler_residual(apply, params, X, 2) < 1e-4


@pytest.mark.parametrize(
    "model",
    [
        FC(depth=2, width=16, num_classes=3, sigma_b=1.0),  # biases break homogeneity
        FC(depth=2, width=16, num_classes=3, activation="tanh", use_bias=False),
    ],
)
def test_non_homogeneous_nets_fail_the_checks(model):
    apply, params = _fn(model)
    k = homogeneity_degree(apply, params, X)
    assert abs(k - round(k)) > 1e-3 or euler_residual(apply, params, X, round(k)) > 1e-2
    assert hessian_euler_residual(apply, params, X, round(k)) > 1e-2

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.models import (
    ACTIVATIONS,
    CNN,
    FC,
    MODELS,
    BatchStatNorm,
    WideResNet,
    build_model,
    count_params,
)

KEY = jax.random.key(0)
# With jax_threefry_partitionable (the default), XLA:CPU compiles threefry-based inits about 4x
# slower than rbg ones; the initializers' distributions do not depend on the PRNG, so the
# larger inits below use an rbg key (test_bias_variance_is_sigma_b2 keeps the default key).
FAST_KEY = jax.random.key(0, impl="rbg")


def _shape_count(model, shape):
    """Parameter count from shapes only (nothing is materialized)."""
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return count_params(jax.eval_shape(model.init, KEY, x))


def _images(shape, seed=1):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _init(model, x, key=FAST_KEY):
    """Jitted init: one compiled program is much faster on CPU than op-by-op execution."""
    return jax.jit(model.init)(key, x)


def _apply(model, variables, x, **kwargs):
    return jax.jit(model.apply, static_argnames=("train",))(variables, x, **kwargs)


# ---------------------------------------------------------------- parameter counts


def test_fc_param_count_matches_hand_formula():
    expected = (64 * 32 + 32) + 2 * (32 * 32 + 32) + (32 * 10 + 10)
    assert _shape_count(FC(depth=3, width=32), (2, 8, 8, 1)) == expected
    no_bias = (64 * 32) + 2 * (32 * 32) + (32 * 10)
    assert _shape_count(FC(depth=3, width=32, use_bias=False), (2, 8, 8, 1)) == no_bias


def _cnn_count(c_in, ch, dense, spatial, classes=10, bn=False):
    convs = (9 * c_in * ch + ch) + 3 * (9 * ch * ch + ch)
    fcs = (spatial * spatial * ch * dense + dense) + (dense * classes + classes)
    return convs + fcs + (3 * 2 * ch if bn else 0)


# 32 -SAME-> 32 -VALID-> 30 -pool-> p1 -SAME-> p1 -VALID-> p1-2 -pool-> spatial
@pytest.mark.parametrize(
    ("window", "stride", "spatial"),
    [(2, 2, 6), (6, 1, 18)],  # (2,2): 30->15, 13->6;  (6,1): 30->25, 23->18
)
@pytest.mark.parametrize("bn", [False, True])
def test_cnn_param_count_matches_hand_formula(window, stride, spatial, bn):
    model = CNN(channels=4, dense=16, batch_norm=bn, pool_window=window, pool_stride=stride)
    assert _shape_count(model, (2, 32, 32, 3)) == _cnn_count(3, 4, 16, spatial, bn=bn)


def test_cnn_paper_scale_count():
    expected = (9 * 3 * 300 + 300) + 3 * (9 * 300 * 300 + 300) + (6 * 6 * 300 * 500 + 500)
    expected += 500 * 10 + 10
    assert expected == 7_844_810
    assert _shape_count(CNN(), (2, 32, 32, 3)) == expected


def _conv(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def _block(c_in, c_out, stride, bias=True):
    """BN(c_in) + conv3x3 + BN(c_out) + conv3x3 (+ 1x1 shortcut when the shape changes)."""
    n = 2 * c_in + _conv(3, c_in, c_out, bias) + 2 * c_out + _conv(3, c_out, c_out, bias)
    return n + (_conv(1, c_in, c_out, bias) if c_in != c_out or stride != 1 else 0)


def _wrn_count(depth, width, c_in=3, classes=10, bias=True):
    n = (depth - 4) // 6
    total, ch = _conv(3, c_in, 16, bias), 16
    for base, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(n):
            total += _block(ch, base * width, stride if b == 0 else 1, bias)
            ch = base * width
    return total + 2 * ch + ch * classes + (classes if bias else 0)


def test_wrn_10_1_count_block_by_block():
    stem = 3 * 3 * 3 * 16 + 16
    g0 = 2 * 16 + (9 * 16 * 16 + 16) + 2 * 16 + (9 * 16 * 16 + 16)  # 16 -> 16: identity
    g1 = 2 * 16 + (9 * 16 * 32 + 32) + 2 * 32 + (9 * 32 * 32 + 32) + (16 * 32 + 32)
    g2 = 2 * 32 + (9 * 32 * 64 + 64) + 2 * 64 + (9 * 64 * 64 + 64) + (32 * 64 + 64)
    head = 2 * 64 + 64 * 10 + 10
    expected = stem + g0 + g1 + g2 + head
    assert expected == _wrn_count(10, 1)
    assert _shape_count(WideResNet(depth=10, width=1), (2, 8, 8, 3)) == expected


def test_wrn_16_2_count_block_by_block():
    def bn(c):
        return 2 * c

    stem = _conv(3, 3, 16)
    g0 = [
        bn(16) + _conv(3, 16, 32) + bn(32) + _conv(3, 32, 32) + _conv(1, 16, 32),  # 16 -> 32
        bn(32) + _conv(3, 32, 32) + bn(32) + _conv(3, 32, 32),
    ]
    g1 = [
        bn(32) + _conv(3, 32, 64) + bn(64) + _conv(3, 64, 64) + _conv(1, 32, 64),  # stride 2
        bn(64) + _conv(3, 64, 64) + bn(64) + _conv(3, 64, 64),
    ]
    g2 = [
        bn(64) + _conv(3, 64, 128) + bn(128) + _conv(3, 128, 128) + _conv(1, 64, 128),
        bn(128) + _conv(3, 128, 128) + bn(128) + _conv(3, 128, 128),
    ]
    head = bn(128) + 128 * 10 + 10
    expected = stem + sum(g0) + sum(g1) + sum(g2) + head
    assert expected == _wrn_count(16, 2)
    assert _shape_count(WideResNet(depth=16, width=2), (2, 32, 32, 3)) == expected


def test_wrn_28_10_count_without_materializing():
    count = _shape_count(WideResNet(), (2, 32, 32, 3))
    assert count == _wrn_count(28, 10) == 36_489_290  # ≈ 36.5M, with conv biases
    no_bias = _shape_count(WideResNet(use_bias=False), (2, 32, 32, 3))
    assert no_bias == _wrn_count(28, 10, bias=False)
    # Reference implementations (bias-free convs, biased readout) report 36,479,194.
    assert no_bias + 10 == 36_479_194


# ---------------------------------------------------------------- initialization
# Compiling threefry-based inits dominates this file's time on CPU, so each model below is
# initialized once (module-scoped fixtures) and reused by several tests.

SMALL = {
    "fc": ({"depth": 2, "width": 512, "sigma_w_last": 0.5}, (3, 8, 8, 1)),
    "cnn": ({"channels": 64, "dense": 8}, (3, 16, 16, 3)),
    "cnn_bn": ({"channels": 8, "dense": 8, "batch_norm": True, "pool_stride": 1}, (3, 12, 12, 3)),
    "wrn": ({"depth": 10, "width": 1}, (3, 8, 8, 3)),
}


@pytest.fixture(scope="module")
def small():
    """{key: (model, x, variables)} for the small models above, with 7 classes."""
    out = {}
    for key, (options, shape) in SMALL.items():
        model = build_model(key.removesuffix("_bn"), 7, **options)
        x = _images(shape)
        out[key] = (model, x, _init(model, x))
    return out


def _check_normal_variance(w, variance, tol=0.04):
    w = np.asarray(w, np.float64).ravel()
    assert abs(np.mean(w)) < 4 * math.sqrt(variance / w.size)
    assert np.var(w) == pytest.approx(variance, rel=tol)
    # Untruncated: about 4.55% of N(0, 1) draws lie beyond 2σ (a 2σ-truncated normal has none).
    assert np.mean(np.abs(w) > 2 * math.sqrt(variance)) == pytest.approx(0.0455, abs=0.005)


def test_dense_kernel_variance_is_sigma_w2_over_fan_in(small):
    params = small["fc"][2]["params"]  # σ_w = √2, readout σ = 0.5, σ_b = 0
    _check_normal_variance(params["dense_0"]["kernel"], 2.0 / 64)  # (64, 512): fan_in 8·8·1
    _check_normal_variance(params["dense_1"]["kernel"], 2.0 / 512)  # (512, 512)
    readout = np.asarray(params["readout"]["kernel"], np.float64)  # (512, 7)
    assert np.var(readout) == pytest.approx(0.25 / 512, rel=0.1)
    for layer in ("dense_0", "dense_1", "readout"):
        np.testing.assert_array_equal(params[layer]["bias"], 0.0)


def test_conv_kernel_variance_uses_kernel_area_times_channels(small):
    params = small["cnn"][2]["params"]  # σ_w = √2
    kernel = params["conv_1"]["kernel"]
    assert kernel.shape == (3, 3, 64, 64)
    _check_normal_variance(kernel, 2.0 / (3 * 3 * 64))
    np.testing.assert_array_equal(params["conv_1"]["bias"], 0.0)
    wrn = small["wrn"][2]["params"]["group_2_block_0"]  # σ_w = 1
    _check_normal_variance(wrn["conv_1"]["kernel"], 1.0 / (3 * 3 * 64))


def test_bias_variance_is_sigma_b2():
    model = FC(depth=1, width=20_000, sigma_b=0.5)
    params = _init(model, _images((1, 1, 1, 1)), key=KEY)["params"]
    bias = np.asarray(params["dense_0"]["bias"], np.float64)
    assert np.var(bias) == pytest.approx(0.25, rel=0.05)
    assert abs(np.mean(bias)) < 0.02


DEEP = 8


@pytest.fixture(scope="module")
def deep_fc():
    """A bias-free deep ReLU FC at σ_w = √2, its input ``(64, 8, 8, 1)`` and its params."""
    model = FC(depth=DEEP, width=1024, use_bias=False)
    x = _images((64, 8, 8, 1))  # E[x²] = 1
    return model, x, _init(model, x)["params"]


def _second_moments(model, params, x):
    run = jax.jit(partial(model.apply, capture_intermediates=True, mutable=["intermediates"]))
    out = run({"params": params}, x)[1]["intermediates"]
    return [float(jnp.mean(out[f"dense_{i}"]["__call__"][0] ** 2)) for i in range(DEEP)]


def test_deep_relu_fc_forward_variance_is_preserved_at_sigma_w_sqrt2(deep_fc):
    # q_l = σ_w²·E[relu(h)²] = σ_w²/2·q_{l-1}: preserved at σ_w² = 2 (q = 2·E[x²] = 2).
    model, x, params = deep_fc
    q = _second_moments(model, params, x)
    assert all(0.75 < qi / 2.0 < 1.33 for qi in q), q
    # ... and halved at every layer at σ_w = 1 (same draws, kernels scaled by 1/√2).
    q = _second_moments(model, jax.tree.map(lambda w: w / math.sqrt(2.0), params), x)
    assert q[-1] / q[0] == pytest.approx(0.5 ** (DEEP - 1), rel=0.35)


def test_bias_free_relu_fc_is_homogeneous_of_degree_depth_plus_one(deep_fc):
    model, x, params = deep_fc
    f = _apply(model, {"params": params}, x)
    f_scaled = _apply(model, {"params": jax.tree.map(lambda w: 1.2 * w, params)}, x)
    np.testing.assert_allclose(f_scaled, 1.2 ** (DEEP + 1) * f, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- BatchStatNorm


def test_batch_stat_norm_normalizes_each_channel():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(32, 4, 4, 6)), jnp.float32)
    x = x * jnp.arange(1.0, 7.0) + jnp.arange(-3.0, 3.0)
    norm = BatchStatNorm()
    variables = norm.init(KEY, x)
    apply = jax.jit(norm.apply, static_argnames="train")
    assert set(variables) == {"params"}
    np.testing.assert_array_equal(variables["params"]["scale"], 1.0)
    np.testing.assert_array_equal(variables["params"]["bias"], 0.0)
    y = np.asarray(apply(variables, x), np.float64)
    np.testing.assert_allclose(np.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.var(y, axis=(0, 1, 2)), 1.0, rtol=1e-3)
    np.testing.assert_array_equal(apply(variables, x, train=False), y)
    params = {"scale": jnp.full((6,), 2.0), "bias": jnp.full((6,), 0.5)}
    np.testing.assert_allclose(apply({"params": params}, x), 2.0 * y + 0.5, rtol=1e-5)


def test_batch_stat_norm_uses_the_current_batch():
    norm = BatchStatNorm()
    x = _images((16, 3))
    variables = norm.init(KEY, x)
    assert not np.allclose(norm.apply(variables, x[:8]), norm.apply(variables, x)[:8])


def test_grouped_statistics_normalize_each_group_on_its_own():
    x = _images((20, 2, 2, 3)) * 3.0 + 1.0
    params = {"params": {"scale": jnp.full((3,), 1.5), "bias": jnp.full((3,), -0.2)}}
    grouped = BatchStatNorm(group=8).apply(params, x)  # 3 groups of near-equal size: 7, 7, 6
    whole = BatchStatNorm()
    alone = [whole.apply(params, x[a:b]) for a, b in ((0, 7), (7, 14), (14, 20))]
    np.testing.assert_allclose(grouped, jnp.concatenate(alone), rtol=1e-5, atol=1e-6)
    for off in (0, 20):  # 0 (off) or a group as large as the batch: whole-batch statistics
        np.testing.assert_array_equal(
            BatchStatNorm(group=off).apply(params, x), whole.apply(params, x)
        )
    assert not np.allclose(grouped, whole.apply(params, x), atol=1e-3)


def test_wrn_with_bn_groups_is_the_net_applied_to_each_group():
    ungrouped = WideResNet(depth=10, width=1, num_classes=3)
    grouped = WideResNet(depth=10, width=1, num_classes=3, bn_group=4)
    x = _images((8, 8, 8, 3))
    variables = _init(ungrouped, x)
    halves = jnp.concatenate(
        [_apply(ungrouped, variables, x[:4]), _apply(ungrouped, variables, x[4:])]
    )
    np.testing.assert_allclose(_apply(grouped, variables, x), halves, rtol=2e-4, atol=1e-5)


# ---------------------------------------------------------------- shapes and modes


@pytest.mark.parametrize("key", list(SMALL))
def test_outputs_shape_and_train_flag(small, key):
    model, x, variables = small[key]
    assert set(variables) == {"params"}  # stateless: params only
    logits = _apply(model, variables, x, train=True)
    assert logits.shape == (x.shape[0], 7) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
    np.testing.assert_array_equal(_apply(model, variables, x, train=False), logits)


def test_params_vmap_over_a_batch_of_models(small):
    model, x, variables = small["cnn_bn"]
    stacked = jax.tree.map(lambda p: jnp.stack([p, 0.5 * p, 2.0 * p]), variables["params"])
    logits = jax.jit(jax.vmap(lambda p: model.apply({"params": p}, x)))(stacked)
    assert logits.shape == (3, x.shape[0], 7)
    np.testing.assert_allclose(logits[0], _apply(model, variables, x), rtol=1e-4, atol=1e-5)


def test_gradients_are_finite_for_every_parameter(small):
    model, x, variables = small["cnn_bn"]
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x) ** 2)))(
        variables["params"]
    )
    assert jax.tree.structure(grads) == jax.tree.structure(variables["params"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_runs(small, activation):
    _, x, variables = small["fc"]  # parameters do not depend on the activation
    model = build_model("fc", 7, depth=2, width=512, activation=activation)
    out = _apply(model, variables, x)
    assert out.shape == (x.shape[0], 7) and np.all(np.isfinite(out))


def test_cnn_too_small_input_names_the_pool():
    with pytest.raises(ConfigError, match="pool_window"):
        jax.eval_shape(CNN(channels=2, dense=2).init, KEY, jnp.zeros((1, 8, 8, 1)))


@pytest.mark.parametrize("window,stride,spatial", [(2, 2, 8), (2, 2, 7), (3, 3, 10), (3, 2, 9)])
def test_window_max_pool_equals_flax_max_pool_and_its_gradient(window, stride, spatial):
    """Same values and, without ties (continuous random input), bit-equal gradients."""
    from flax import linen as nn

    from l2dynamics.models.cnn import window_max_pool

    h = jax.random.normal(KEY, (2, spatial, spatial, 3))

    def flax_pool(x):
        return nn.max_pool(x, (window, window), strides=(stride, stride), padding="VALID")

    def mine(x):
        return window_max_pool(x, window, stride)

    out, back = jax.vjp(mine, h)
    ref, back_ref = jax.vjp(flax_pool, h)
    g = jax.random.normal(jax.random.key(1), ref.shape)
    assert out.shape == ref.shape and np.array_equal(out, ref)
    assert np.array_equal(back(g)[0], back_ref(g)[0])


def test_the_cnns_gradient_is_unchanged_by_its_pool_formulation():
    """After a ReLU a window's ties are zeros; select-and-scatter and the reshape's max split
    their gradient differently, and the ReLU drops it: the CNN's gradients are bit-equal."""
    from flax import linen as nn

    class FlaxPoolCNN(CNN):
        def _pool(self, h):
            return nn.max_pool(h, (2, 2), strides=(2, 2), padding="VALID")

    x = jax.random.normal(KEY, (4, 16, 16, 1))
    params = CNN(channels=4, dense=8).init(FAST_KEY, x)["params"]

    def grad(cls):
        def loss(p):
            return jnp.sum(cls(channels=4, dense=8).apply({"params": p}, x) ** 2)

        return jax.grad(loss)(params)

    for a, b in zip(jax.tree.leaves(grad(CNN)), jax.tree.leaves(grad(FlaxPoolCNN)), strict=True):
        assert np.array_equal(a, b)


def test_tied_zeros_after_a_relu_get_the_same_gradient():
    from flax import linen as nn

    from l2dynamics.models.cnn import window_max_pool

    z = jax.random.normal(KEY, (2, 8, 8, 3)) - 1.0  # most windows are all negative
    windows = np.asarray(z).reshape(2, 4, 2, 4, 2, 3).max(axis=(2, 4))
    assert (windows < 0).sum() > 10  # ties of zeros after the ReLU

    def grad(pool):
        return jax.grad(lambda v: jnp.sum(jnp.sin(pool(jax.nn.relu(v)))))(z)

    flax_pool = partial(nn.max_pool, window_shape=(2, 2), strides=(2, 2), padding="VALID")
    assert np.array_equal(grad(partial(window_max_pool, window=2, stride=2)), grad(flax_pool))


# ---------------------------------------------------------------- registry errors


def test_models_tuple():
    assert MODELS == ("fc", "cnn", "wrn")
    assert isinstance(build_model("cnn", 10), CNN)


@pytest.mark.parametrize(
    ("name", "options", "culprit"),
    [
        ("foo", {}, "unknown model 'foo' (choose from fc, cnn, wrn)"),
        ("fc", {"channels": 3}, "'channels'"),
        ("fc", {"widht": 3}, "'widht'"),
        ("fc", {"width": 0}, "'width'"),
        ("fc", {"depth": -1}, "'depth'"),
        ("fc", {"depth": 2.0}, "'depth'"),
        ("cnn", {"channels": 0}, "'channels'"),
        ("cnn", {"pool_stride": 0}, "'pool_stride'"),
        ("cnn", {"batch_norm": 1}, "'batch_norm'"),
        ("cnn", {"bn_group": -1}, "'bn_group'"),
        ("cnn", {"bn_group": 64}, "'bn_group' needs batch_norm"),
        ("wrn", {"bn_group": 2.5}, "'bn_group'"),
        ("fc", {"sigma_w": 0.0}, "'sigma_w'"),
        ("fc", {"sigma_w": float("nan")}, "'sigma_w'"),
        ("fc", {"sigma_b": -0.1}, "'sigma_b'"),
        ("fc", {"sigma_w_last": 0}, "'sigma_w_last'"),
        ("fc", {"activation": "swish"}, "'activation'"),
        ("wrn", {"depth": 12}, "wrn depth"),
        ("wrn", {"depth": 4}, "wrn depth"),
        ("wrn", {"activation": "tanh"}, "'activation'"),
    ],
)
def test_build_model_errors_name_the_culprit(name, options, culprit):
    with pytest.raises(ConfigError) as err:
        build_model(name, 10, **options)
    message = str(err.value)
    assert culprit in message and "\n" not in message


def test_build_model_rejects_bad_num_classes():
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("fc", 0)


def test_wrn_bad_depth_raises_when_built_directly():
    with pytest.raises(ConfigError, match="wrn depth"):
        jax.eval_shape(WideResNet(depth=11, width=1).init, KEY, jnp.zeros((1, 8, 8, 3)))

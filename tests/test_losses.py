import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2dynamics import losses


def _random(seed, b=7, k=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(b, k)).astype(np.float32) * 3
    labels = rng.integers(0, k, size=b)
    return logits, labels, np.eye(k, dtype=np.float32)[labels]


def test_cross_entropy_matches_paper_normalization():
    logits, labels, y = _random(0)
    b, k = logits.shape
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.sum(y * logp) / (2 * k * b)
    got = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(y))
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_cross_entropy_is_half_over_k_of_optax_mean():
    import optax

    logits, labels, y = _random(1)
    k = logits.shape[1]
    mean_ce = optax.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(y)).mean()
    got = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(y))
    np.testing.assert_allclose(float(got), float(mean_ce) / (2 * k), rtol=1e-6)


def test_mse_matches_formula():
    logits, _, y = _random(2)
    b, k = logits.shape
    expected = np.sum((logits - y) ** 2) / (2 * k * b)
    np.testing.assert_allclose(
        float(losses.mse(jnp.asarray(logits), jnp.asarray(y))), expected, rtol=1e-6
    )


def test_accuracy_and_correct():
    logits = jnp.asarray([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    y = losses.one_hot(jnp.asarray([0, 0, 0]), 2)
    assert float(losses.correct(logits, y)) == 2.0
    np.testing.assert_allclose(float(losses.accuracy(logits, y)), 2 / 3, rtol=1e-6)


def test_l2_norm_sq_sums_every_leaf():
    params = {"a": jnp.arange(3.0), "b": {"c": jnp.full((2, 2), 2.0)}}
    assert float(losses.l2_norm_sq(params)) == pytest.approx(0 + 1 + 4 + 4 * 4)


def test_loss_fn_names():
    assert losses.loss_fn("xent") is losses.cross_entropy
    assert losses.loss_fn("mse") is losses.mse
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.loss_fn("hinge")


def test_one_hot_dtype():
    y = losses.one_hot(jnp.asarray([1, 0]), 3)
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(y), [[0, 1, 0], [1, 0, 0]])
    assert jax.numpy.issubdtype(y.dtype, jnp.floating)


def test_the_scripts_cross_entropy_is_the_mean_over_batch_and_classes():
    """The authors' script: ``-mean(logsoftmax(f) * y)`` over both axes, CE/k; its MSE,
    ``0.5·mean((y − f)²)``, is the SM's."""
    logits, _, y = _random(4)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    got = losses.loss_fn("xent", "script")(jnp.asarray(logits), jnp.asarray(y))
    np.testing.assert_allclose(float(got), -np.mean(logp * y), rtol=1e-6)
    mse = losses.loss_fn("mse", "script")(jnp.asarray(logits), jnp.asarray(y))
    np.testing.assert_allclose(float(mse), 0.5 * np.mean((y - logits) ** 2), rtol=1e-6)
    assert (losses.l2_scale("sm"), losses.l2_scale("script")) == (1.0, 2.0)
    with pytest.raises(ValueError, match="convention"):
        losses.loss_fn("xent", "bogus")

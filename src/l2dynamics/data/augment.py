"""Training-batch augmentations of the paper (WRN runs): flip, padded random crop, mixup.

Pure JAX functions of a PRNG key and a batch of NHWC images ``(B, H, W, C)``; all jit, vmap
over an extra leading axis, and give the same output for the same key. Static arguments
(``pad``, and the booleans of :func:`augment_batch`) are Python values; ``alpha`` may be a
Python float or a traced scalar.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_flip(key: jax.Array, x: jax.Array) -> jax.Array:
    """Flip each image horizontally (along W) with probability 1/2, independently.

    Args:
        key: PRNG key.
        x: ``(B, H, W, C)`` images.

    Returns:
        ``(B, H, W, C)``: image ``i`` is ``x[i, :, ::-1]`` where a fair coin came up heads.
    """
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0],))
    return jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)


def crop_at(x: jax.Array, offsets: jax.Array, *, pad: int) -> jax.Array:
    """Zero-pad H and W by ``pad`` pixels, then cut each image back to ``(H, W)`` at an offset.

    Args:
        x: ``(B, H, W, C)`` images.
        offsets: int32 ``(B, 2)`` top-left corners (row, column) in the padded image, each in
            ``[0, 2·pad]``; ``(pad, pad)`` returns the image unchanged.
        pad: padding in pixels (static).

    Returns:
        ``(B, H, W, C)`` crops.
    """
    _, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    zero = jnp.zeros((), offsets.dtype)

    def one(img: jax.Array, off: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(img, (off[0], off[1], zero), (h, w, c))

    return jax.vmap(one)(padded, offsets)


def random_crop(key: jax.Array, x: jax.Array, pad: int = 4) -> jax.Array:
    """Random translation: pad by ``pad`` zeros, crop ``(H, W)`` at a uniform random offset.

    Args:
        key: PRNG key.
        x: ``(B, H, W, C)`` images.
        pad: padding in pixels (static; the paper uses 4). ``pad = 0`` returns ``x``.

    Returns:
        ``(B, H, W, C)``; each image is shifted by an independent offset, uniform in
        ``[−pad, pad]`` along H and along W, with zeros filling the border.
    """
    if pad == 0:
        return x
    offsets = jax.random.randint(key, (x.shape[0], 2), 0, 2 * pad + 1, dtype=jnp.int32)
    return crop_at(x, offsets, pad=pad)


def mix(x: jax.Array, y: jax.Array, lam: jax.Array, perm: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The mixup convex combination ``lam·z + (1 − lam)·z[perm]`` of images and targets.

    Args:
        x: ``(B, H, W, C)`` images.
        y: ``(B, K)`` float targets (one-hot or already mixed).
        lam: scalar weight in [0, 1] (array or Python float).
        perm: int ``(B,)`` permutation pairing each example with a partner.

    Returns:
        ``(x_mixed, y_mixed)`` of the input shapes and dtypes; rows of ``y_mixed`` keep the row
        sums of ``y`` (1 for one-hot targets).
    """
    lam = jnp.asarray(lam)
    lx, ly = lam.astype(x.dtype), lam.astype(y.dtype)
    return lx * x + (1 - lx) * x[perm], ly * y + (1 - ly) * y[perm]


def mixup(
    key: jax.Array, x: jax.Array, y: jax.Array, alpha: float | jax.Array = 1.0
) -> tuple[jax.Array, jax.Array]:
    """Mixup (Zhang et al. 2018): mix each example with a random partner of the same batch.

    One weight ``lam ~ Beta(alpha, alpha)`` is drawn for the whole batch and one random
    permutation pairs the examples, as in the standard implementation.

    Args:
        key: PRNG key.
        x: ``(B, H, W, C)`` images.
        y: ``(B, K)`` float one-hot targets.
        alpha: Beta parameter ``α > 0`` (the paper uses 1, i.e. lam uniform on [0, 1]).

    Returns:
        ``(x_mixed, y_mixed)``, see :func:`mix`.
    """
    k_lam, k_perm = jax.random.split(key)
    lam = jax.random.beta(k_lam, alpha, alpha, dtype=jnp.float32)
    perm = jax.random.permutation(k_perm, x.shape[0])
    return mix(x, y, lam, perm)


def augment_batch(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array | None = None,
    *,
    flip: bool = False,
    crop: int = 0,
    mixup_alpha: float | None = None,
) -> tuple[jax.Array, jax.Array | None]:
    """Augment a training batch: random flip, then random crop, then (optionally) mixup.

    Flip and crop change only the images; mixup also mixes the targets, so it runs only when
    ``mixup_alpha`` is a positive number and one-hot targets ``y`` are given. The key is split
    into three streams (flip, crop, mixup), so switching one augmentation on or off does not
    change the randomness of the others.

    Args:
        key: PRNG key.
        x: ``(B, H, W, C)`` images.
        y: ``(B, K)`` float one-hot targets, or None (then mixup is not allowed).
        flip: apply :func:`random_flip` (static).
        crop: padding of :func:`random_crop`; 0 disables it (static).
        mixup_alpha: Beta parameter of :func:`mixup`; None or 0 disables it (static).

    Returns:
        ``(x_aug, y_aug)``; ``y_aug`` is ``y`` itself unless mixup ran.

    Raises:
        ValueError: mixup requested without targets ``y``.
    """
    k_flip, k_crop, k_mix = jax.random.split(key, 3)
    if flip:
        x = random_flip(k_flip, x)
    if crop:
        x = random_crop(k_crop, x, pad=crop)
    if mixup_alpha:
        if y is None:
            raise ValueError("augment_batch: mixup_alpha needs the targets y")
        x, y = mixup(k_mix, x, y, alpha=mixup_alpha)
    return x, y

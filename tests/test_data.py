"""Tests of l2dynamics.data: loaders on tiny self-written files, real data, and augmentations."""

import gzip
import pickle
import struct
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2dynamics.data import augment, datasets, load_dataset
from l2dynamics.errors import DataError

MNIST_NAMES = datasets.MNIST_FILES


# --------------------------------------------------------------------------- tiny files


def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array."""
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}i", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def tiny_mnist(rng, n_train=30, n_test=12, side=5):
    """Random uint8 images and labels covering every class."""
    x_tr = rng.integers(0, 256, size=(n_train, side, side), dtype=np.uint8)
    x_te = rng.integers(0, 256, size=(n_test, side, side), dtype=np.uint8)
    y_tr = (np.arange(n_train) % 10).astype(np.uint8)
    y_te = (np.arange(n_test) % 10).astype(np.uint8)
    return x_tr, y_tr, x_te, y_te


def write_mnist(folder: Path, arrays, gz: bool) -> dict[str, Path]:
    """Write the four MNIST IDX files (gzipped or raw); return their paths by base name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, arr in zip(MNIST_NAMES, arrays, strict=True):
        data = idx_bytes(arr)
        path = folder / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        paths[name] = path
    return paths


@pytest.fixture
def mnist_dir(tmp_path):
    arrays = tiny_mnist(np.random.default_rng(0))
    paths = write_mnist(tmp_path / "m", arrays, gz=False)
    return tmp_path / "m", arrays, paths


def cifar_images(n, offset):
    """uint8 (n, 3072) rows whose R, G and B planes hold distinct, position-dependent values."""
    pix = np.arange(32 * 32)
    rows = [
        np.concatenate([(pix + offset + i) % 80, 80 + (pix + i) % 80, 160 + (pix % 90)])
        for i in range(n)
    ]
    return np.asarray(rows, dtype=np.uint8)


def write_cifar(folder: Path, n_per_batch=(7, 5), n_test=6) -> dict[str, dict]:
    """Two training batches and a test batch, pickled as the official files."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    names = [f"data_batch_{i + 1}" for i in range(len(n_per_batch))] + ["test_batch"]
    for j, (name, n) in enumerate(zip(names, [*n_per_batch, n_test], strict=True)):
        batch = {b"data": cifar_images(n, 3 * j), b"labels": [(i + j) % 10 for i in range(n)]}
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
        batches[name] = batch
    return batches


def expected_hwc(data: np.ndarray) -> np.ndarray:
    """Plain-loop decoding of CIFAR rows: pixel (r, c) of channel ch is row[ch·1024 + 32r + c]."""
    out = np.zeros((data.shape[0], 32, 32, 3), np.uint8)
    for ch in range(3):
        for r in range(32):
            out[:, r, :, ch] = data[:, ch * 1024 + 32 * r : ch * 1024 + 32 * r + 32]
    return out


# --------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_and_fixed_split():
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1297, 8, 8, 1) and ds.x_test.shape == (500, 8, 8, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.n_train == 1297 and ds.n_test == 500 and ds.input_shape == (8, 8, 1)
    assert ds.num_classes == 10 and set(np.unique(ds.y_test)) == set(range(10))
    # The split is stratified: every class has 500/1797 of its images, up to rounding.
    sizes = np.bincount(np.concatenate([ds.y_train, ds.y_test]))
    assert np.all(np.abs(np.bincount(ds.y_test) - sizes * 500 / 1797) <= 1)
    # ... and independent of the subset seed.
    other = load_dataset("digits", seed=7, n_test=None)
    np.testing.assert_array_equal(other.x_test, ds.x_test)


def test_digits_split_is_a_partition():
    y = np.arange(1797) % 10
    train, test = datasets.digits_split(y)
    assert len(test) == 500 and len(train) == 1297
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))


def test_digits_raw_pixels_are_sixteenths():
    ds = load_dataset("digits", standardize=False)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(ds.x_train * 16, np.round(ds.x_train * 16))


def test_subset_is_deterministic_per_seed_and_differs_across_seeds():
    a = load_dataset("digits", n_train=100, n_test=50, seed=3)
    b = load_dataset("digits", n_train=100, n_test=50, seed=3)
    c = load_dataset("digits", n_train=100, n_test=50, seed=4)
    assert a.x_train.shape == (100, 8, 8, 1) and a.x_test.shape == (50, 8, 8, 1)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_test, c.x_test)


def test_balanced_subset_has_exact_class_counts():
    ds = load_dataset("digits", n_train=203, balanced=True, seed=1)
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), [21, 21, 21] + [20] * 7)


def test_balanced_subset_fails_when_a_class_is_short():
    labels = np.array([0] * 5 + [1] * 20)
    with pytest.raises(DataError, match="n_train=20 .*class 0"):
        datasets.subset_indices(
            labels, 20, rng=np.random.default_rng(0), balanced=True, num_classes=2
        )


def test_standardize_uses_training_statistics():
    ds = load_dataset("digits", n_train=300, seed=2)
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
    raw = load_dataset("digits", n_train=300, seed=2, standardize=False)
    mean, std = raw.x_train.mean(), raw.x_train.std()
    np.testing.assert_allclose(ds.x_test, (raw.x_test - mean) / std, atol=1e-5)
    assert ds.x_test.dtype == np.float32


def test_even_odd_labels():
    base = load_dataset("digits", n_train=100, balanced=True, seed=5)
    ds = load_dataset("digits", n_train=100, balanced=True, seed=5, even_odd=True)
    assert ds.num_classes == 2 and ds.y_train.dtype == np.int32
    np.testing.assert_array_equal(ds.y_train, base.y_train % 2)
    np.testing.assert_array_equal(ds.y_test, base.y_test % 2)
    np.testing.assert_array_equal(np.bincount(ds.y_train), [50, 50])


# --------------------------------------------------------------------------- MNIST files


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_round_trip(tmp_path, gz):
    arrays = tiny_mnist(np.random.default_rng(1))
    write_mnist(tmp_path, arrays, gz=gz)
    ds = load_dataset("mnist", data_dir=tmp_path, standardize=False)
    x_tr, y_tr, x_te, y_te = arrays
    assert ds.x_train.shape == (30, 5, 5, 1) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(np.round(ds.x_train[..., 0] * 255), x_tr)
    np.testing.assert_array_equal(np.round(ds.x_test[..., 0] * 255), x_te)
    np.testing.assert_array_equal(ds.y_train, y_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)


def test_mnist_found_in_mnist_subdir_via_env(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist", tiny_mnist(np.random.default_rng(2)), gz=True)
    monkeypatch.setenv("L2DYN_DATA", str(tmp_path))
    assert load_dataset("mnist", n_train=10).x_train.shape == (10, 5, 5, 1)


def test_parse_idx_reads_header_shape():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(datasets.parse_idx(idx_bytes(arr), "x", ndim=3), arr)


def test_mnist_missing_dir_names_dir_and_option(tmp_path):
    with pytest.raises(DataError, match=r"nowhere.*--data-dir"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")


def test_mnist_without_any_data_dir(monkeypatch):
    monkeypatch.delenv("L2DYN_DATA", raising=False)
    with pytest.raises(DataError, match="--data-dir.*L2DYN_DATA"):
        load_dataset("mnist")


def test_mnist_missing_one_file_is_named(mnist_dir):
    folder, _, paths = mnist_dir
    paths["t10k-labels-idx1-ubyte"].unlink()
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=folder)
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte" in msg and "yann.lecun.com" in msg
    assert "train-images" not in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("head", "why"),
    [(b"\x00\x00\x08\x01", "magic 0x00000801"), (b"\x1f\x8b\x08\x00", "gzip data")],
)
def test_mnist_wrong_magic(mnist_dir, head, why):
    folder, _, paths = mnist_dir
    path = paths["train-images-idx3-ubyte"]
    path.write_bytes(head + path.read_bytes()[4:])
    with pytest.raises(DataError, match=rf"train-images-idx3-ubyte: .*{why}"):
        load_dataset("mnist", data_dir=folder)


def test_mnist_truncated_images(mnist_dir):
    folder, _, paths = mnist_dir
    path = paths["t10k-images-idx3-ubyte"]
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: truncated"):
        load_dataset("mnist", data_dir=folder)


def test_mnist_label_count_differs_from_images(mnist_dir):
    folder, arrays, paths = mnist_dir
    paths["train-labels-idx1-ubyte"].write_bytes(idx_bytes(arrays[1][:-1]))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: 29 labels for 30 images"):
        load_dataset("mnist", data_dir=folder)


def test_mnist_label_out_of_range(mnist_dir):
    folder, arrays, paths = mnist_dir
    labels = arrays[3].copy()
    labels[4] = 11
    paths["t10k-labels-idx1-ubyte"].write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label 11 out of range"):
        load_dataset("mnist", data_dir=folder)


def test_mnist_corrupt_gzip(tmp_path):
    paths = write_mnist(tmp_path, tiny_mnist(np.random.default_rng(3)), gz=True)
    bad = paths["train-images-idx3-ubyte"]
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: corrupt gzip"):
        load_dataset("mnist", data_dir=tmp_path)
    bad.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: corrupt gzip"):
        load_dataset("mnist", data_dir=tmp_path)


# --------------------------------------------------------------------------- CIFAR files


@pytest.mark.parametrize("subdir", ["", "cifar-10-batches-py"])
def test_cifar_round_trip_and_rgb_planes(tmp_path, subdir):
    batches = write_cifar(tmp_path / subdir if subdir else tmp_path)
    ds = load_dataset("cifar10", data_dir=tmp_path, standardize=False)
    train = np.concatenate([batches["data_batch_1"][b"data"], batches["data_batch_2"][b"data"]])
    assert ds.x_train.shape == (12, 32, 32, 3) and ds.x_test.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(np.round(ds.x_train * 255), expected_hwc(train))
    np.testing.assert_array_equal(
        np.round(ds.x_test * 255), expected_hwc(batches["test_batch"][b"data"])
    )
    # R values < 80, G in [80, 160), B ≥ 160 by construction: the planes are not mixed up.
    x = np.round(ds.x_train * 255)
    assert x[..., 0].max() < 80 and x[..., 1].min() >= 80 and x[..., 2].min() >= 160
    np.testing.assert_array_equal(
        ds.y_train, batches["data_batch_1"][b"labels"] + batches["data_batch_2"][b"labels"]
    )
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])


def test_cifar_missing_test_batch(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").unlink()
    with pytest.raises(DataError, match=r"missing CIFAR-10 file\(s\) in .*: test_batch; .*kriz"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_not_a_pickle(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(b"\x80\x04garbage that is not a pickle")
    with pytest.raises(DataError, match=r"data_batch_2: not a valid CIFAR-10 pickle"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_pickle_with_foreign_global_is_refused(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": print}))
    with pytest.raises(DataError, match=r"test_batch: .*refusing global builtins.print"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_wrong_data_size(tmp_path):
    write_cifar(tmp_path)
    bad = {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0, 1, 2, 3]}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError, match=r"data_batch_1: 'data' must be a uint8 array \(n, 3072\)"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_label_count_mismatch(tmp_path):
    write_cifar(tmp_path)
    bad = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError, match=r"test_batch: 3 labels for 4 images"):
        load_dataset("cifar10", data_dir=tmp_path)


# --------------------------------------------------------------------------- options


def test_unknown_dataset():
    msg = r"unknown data set 'foo' \(choose from digits, mnist, cifar10\)"
    with pytest.raises(DataError, match=msg):
        load_dataset("foo")


def test_negative_seed():
    with pytest.raises(DataError, match="seed must be a non-negative integer"):
        load_dataset("digits", n_train=10, seed=-1)


@pytest.mark.parametrize("n", [0, -3, 1298])
def test_n_train_out_of_range(n):
    with pytest.raises(DataError, match=rf"n_train must be between 1 and 1297 .*got {n}"):
        load_dataset("digits", n_train=n)


def test_n_test_too_large():
    with pytest.raises(DataError, match=r"n_test must be between 1 and 500"):
        load_dataset("digits", n_test=501)


# --------------------------------------------------------------------------- real data


def test_real_mnist_subset(shared_data):
    ds = load_dataset("mnist", data_dir=shared_data / "mnist", n_train=512, seed=0)
    assert ds.x_train.shape == (512, 28, 28, 1) and ds.n_test == 10_000
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_real_mnist_pixel_mean(shared_data):
    ds = load_dataset("mnist", data_dir=shared_data / "mnist", standardize=False)
    assert ds.n_train == 60_000
    assert abs(float(ds.x_train.mean()) - 0.1307) < 1e-3


def test_real_cifar10(shared_data):
    ds = load_dataset("cifar10", data_dir=shared_data / "cifar-10-batches-py", standardize=False)
    assert ds.n_train == 10_000 and ds.n_test == 10_000 and ds.input_shape == (32, 32, 3)
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1, 2)), [0.4914, 0.4822, 0.4465], atol=0.01)


# --------------------------------------------------------------------------- augmentation


def _images(b=16, h=5, w=7, c=2, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(b, h, w, c)).astype(np.float32))


# Compiling the random samplers takes seconds (Beta the most), so every test below reads the
# outputs of ONE jitted function at one set of shapes: x (16, 5, 7, 2), y = I (16, 16), pad 2.
X = _images()
Y = jnp.eye(16, dtype=jnp.float32)
PAD = 2


@jax.jit
def run_all(key, x, y):
    """Every augmentation under jit, with ``key``; ``pre`` is flip then crop on their streams."""
    k_flip, k_crop, _ = jax.random.split(key, 3)
    return {
        "flip": augment.random_flip(key, x),
        "crop": augment.random_crop(key, x, pad=PAD),
        "mixup": augment.mixup(key, x, y, alpha=1.0),
        "batch": augment.augment_batch(key, x, y, flip=True, crop=PAD, mixup_alpha=1.0),
        "batch_no_mix": augment.augment_batch(key, x, flip=True, crop=PAD, mixup_alpha=None)[0],
        "pre": augment.random_crop(k_crop, augment.random_flip(k_flip, x), pad=PAD),
    }


def assert_mixed_pairs(xm, ym, x):
    """``ym = lam·I + (1 − lam)·P`` for one lam and a permutation P, and ``xm = ym @ x``."""
    b = ym.shape[0]
    xm, ym, x = np.asarray(xm), np.asarray(ym), np.asarray(x)
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(xm.reshape(b, -1), ym @ x.reshape(b, -1), rtol=1e-5, atol=1e-5)
    lam = np.diag(ym)
    moved = lam < 1 - 1e-6  # rows whose partner is another example
    assert moved.any() and np.allclose(lam[moved], lam[moved][0])
    partner = np.argmax(ym - np.diag(lam), axis=1)
    assert sorted(partner[moved]) == sorted(np.flatnonzero(moved))  # a permutation


def test_flip_flips_exactly_the_chosen_images_and_is_an_involution():
    key = jax.random.key(0)
    out = np.asarray(run_all(key, X, Y)["flip"])
    flipped = np.all(out == np.flip(np.asarray(X), axis=2), axis=(1, 2, 3))
    kept = np.all(out == np.asarray(X), axis=(1, 2, 3))
    assert np.all(flipped ^ kept) and 0 < flipped.sum() < 16
    np.testing.assert_array_equal(run_all(key, jnp.asarray(out), Y)["flip"], X)


def test_crop_at_center_offset_is_identity():
    offsets = jnp.full((16, 2), 3, jnp.int32)
    crop = jax.jit(augment.crop_at, static_argnames="pad")
    np.testing.assert_array_equal(crop(X, offsets, pad=3), X)


def test_crop_is_a_window_of_the_padded_image():
    out = np.asarray(run_all(jax.random.key(1), X, Y)["crop"])
    padded = np.pad(np.asarray(X), ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
    _, h, w, _ = X.shape
    offsets = set()
    for i in range(X.shape[0]):
        windows = [
            (r, c)
            for r in range(2 * PAD + 1)
            for c in range(2 * PAD + 1)
            if np.array_equal(out[i], padded[i, r : r + h, c : c + w])
        ]
        assert windows, f"image {i} is not a window of the padded image"
        offsets.add(windows[0])
    assert len(offsets) > 3  # offsets vary between images
    assert augment.random_crop(jax.random.key(1), X, pad=0) is X


def test_mix_is_the_convex_combination():
    x, y = X[:4], jnp.eye(4, dtype=jnp.float32)
    perm = jnp.array([2, 0, 3, 1])
    xm, ym = jax.jit(augment.mix)(x, y, jnp.float32(0.3), perm)
    np.testing.assert_allclose(
        xm, 0.3 * np.asarray(x) + 0.7 * np.asarray(x)[[2, 0, 3, 1]], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(ym, 0.3 * np.eye(4) + 0.7 * np.eye(4)[[2, 0, 3, 1]], rtol=1e-6)


def test_mixup_mixes_pairs_with_one_weight():
    # With y = I, y_mixed = lam·I + (1 − lam)·P, so the images must be x_mixed = y_mixed @ x.
    xm, ym = run_all(jax.random.key(3), X, Y)["mixup"]
    assert_mixed_pairs(xm, ym, X)


def test_augmentations_jit_are_deterministic_and_key_dependent():
    a, b, c = (run_all(jax.random.key(k), X, Y) for k in (10, 10, 11))
    for name in ("flip", "crop", "mixup", "batch"):
        xa, xb, xc = (
            out[name][0] if name in ("mixup", "batch") else out[name] for out in (a, b, c)
        )
        assert xa.shape == X.shape and xa.dtype == X.dtype, name
        np.testing.assert_array_equal(xa, xb, err_msg=name)
        assert not np.array_equal(xa, xc), name


def test_augmentations_vmap_over_a_leading_axis():
    x = jnp.stack([X, _images(seed=1)])
    keys = jax.random.split(jax.random.key(0), 2)
    flip = jax.jit(augment.random_flip)
    out = jax.vmap(flip)(keys, x)
    np.testing.assert_array_equal(out[1], flip(keys[1], x[1]))


def test_augment_batch_applies_flip_then_crop_then_mixup():
    out = run_all(jax.random.key(5), X, Y)
    assert not np.array_equal(out["pre"], X)
    np.testing.assert_array_equal(out["batch_no_mix"], out["pre"])
    assert_mixed_pairs(*out["batch"], out["pre"])


def test_augment_batch_mixup_needs_labels():
    with pytest.raises(ValueError, match="mixup_alpha needs the targets y"):
        augment.augment_batch(jax.random.key(0), X, flip=False, crop=0, mixup_alpha=1.0)

"""Data sets of the paper: digits (embedded), MNIST (IDX files) and CIFAR-10 (python batches).

Every loader returns images in NHWC layout, float32, and int32 class labels. Pixels are scaled
to [0, 1] (MNIST and CIFAR-10 divide by 255, digits by 16, its maximum) and then, by default,
standardized per channel with the mean and standard deviation of the (subsetted) training images.

Files are read from a directory the user names (``data_dir``, the CLI's ``--data-dir``, or the
``L2DYN_DATA`` environment variable); nothing is ever downloaded. Parsing is pure
(:func:`parse_idx`, :func:`parse_cifar_batch`) and separate from file I/O, and every bad input
raises :class:`~l2dynamics.errors.DataError` with one line naming the file or option at fault.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from l2dynamics.config import TEST_SET_SIZES
from l2dynamics.errors import DataError

DATASETS = ("digits", "mnist", "cifar10")
NUM_CLASSES = 10
ENV_VAR = "L2DYN_DATA"

DIGITS_N_TEST = TEST_SET_SIZES["digits"]
DIGITS_SPLIT_SEED = 0

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_SUBDIR = "mnist"
MNIST_SOURCE = "from the MNIST database (yann.lecun.com/exdb/mnist or a mirror)"

CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_SUBDIR = "cifar-10-batches-py"
CIFAR_SOURCE = "the python version from www.cs.toronto.edu/~kriz/cifar.html"
CIFAR_SIDE = 32

_IDX_UBYTE = 0x08


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split of images and labels.

    Attributes:
        name: ``"digits"``, ``"mnist"`` or ``"cifar10"``.
        x_train: float32 ``(N_train, H, W, C)`` training images (NHWC).
        y_train: int32 ``(N_train,)`` class labels in ``[0, num_classes)``.
        x_test: float32 ``(N_test, H, W, C)`` test images.
        y_test: int32 ``(N_test,)`` test labels.
        num_classes: number of classes k (10, or 2 with even/odd labels).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 4 or y.shape != (x.shape[0],):
                raise DataError(
                    f"Dataset {self.name!r}: x_{split} {x.shape} must be (N, H, W, C) and "
                    f"y_{split} {y.shape} must be (N,)"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"Dataset {self.name!r}: train images {self.x_train.shape[1:]} and test images "
                f"{self.x_test.shape[1:]} differ in shape"
            )

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(H, W, C)`` of one image."""
        h, w, c = self.x_train.shape[1:]
        return int(h), int(w), int(c)


class RawSplit(NamedTuple):
    """Unscaled images and labels as stored: uint8 ``(N, H, W, C)``, int32 ``(N,)``.

    ``scale`` is the largest possible pixel value (dividing by it maps pixels to [0, 1]).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scale: float


# --------------------------------------------------------------------------- public entry


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    balanced: bool = False,
    standardize: bool = True,
    even_odd: bool = False,
) -> Dataset:
    """Load a data set, draw the requested subsets, standardize, and relabel.

    Args:
        name: one of :data:`DATASETS`. ``digits`` is scikit-learn's bundled 8×8 handwritten
            digits (1,797 images) under a fixed split (see :func:`digits_split`) of 1,297
            training and 500 test images; ``mnist`` reads the four IDX files (raw or ``.gz``)
            from ``data_dir`` or ``data_dir/mnist``; ``cifar10`` reads the python batches from
            ``data_dir`` or ``data_dir/cifar-10-batches-py`` (``test_batch`` and any non-empty
            subset of ``data_batch_1`` … ``data_batch_5``).
        data_dir: directory of the MNIST / CIFAR-10 files; default ``$L2DYN_DATA``. Ignored for
            ``digits``.
        n_train: size of a random training subset (None: the whole training pool).
        n_test: size of a random test subset (None: the whole test set).
        seed: seed of the subsets (``np.random.default_rng(seed)`` for the training subset, an
            independent stream derived from it for the test subset); same seed, same arrays.
        balanced: draw the training subset with ``n_train // 10`` images per class, the
            remainder spread one each over the first classes.
        standardize: subtract the per-channel mean and divide by the per-channel standard
            deviation, both measured on the (subsetted) training images; else pixels in [0, 1].
        even_odd: replace labels by ``y % 2`` (0 = even, 1 = odd) and set ``num_classes = 2``,
            after subsetting (a balanced subset balances the 10 original classes).

    Returns:
        The :class:`Dataset`, images float32 ``(N, H, W, C)`` and labels int32 ``(N,)``.

    Raises:
        DataError: an unknown name, a missing directory or file, a corrupt file, or a subset
            size out of range; the message names the culprit.
    """
    raw = load_raw(name, data_dir=data_dir)
    tr = subset_indices(
        raw.y_train, n_train, rng=_rng(seed, 0), balanced=balanced, option="n_train"
    )
    te = subset_indices(raw.y_test, n_test, rng=_rng(seed, 1), option="n_test")
    x_train = _to_unit(raw.x_train[tr], raw.scale)
    x_test = _to_unit(raw.x_test[te], raw.scale)
    y_train, y_test, k = raw.y_train[tr], raw.y_test[te], NUM_CLASSES
    if standardize:
        x_train, x_test = standardize_images(x_train, x_test)
    if even_odd:
        y_train, y_test, k = y_train % 2, y_test % 2, 2
    return Dataset(name, x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32), k)


def load_raw(name: str, *, data_dir: str | os.PathLike | None = None) -> RawSplit:
    """The full training pool and test set of ``name`` as stored (uint8), before any subsetting.

    Raises:
        DataError: unknown name, missing directory or files, corrupt file.
    """
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist(resolve_data_dir(data_dir, name))
    if name == "cifar10":
        return load_cifar10(resolve_data_dir(data_dir, name))
    raise DataError(f"unknown data set {name!r} (choose from {', '.join(DATASETS)})")


def resolve_data_dir(data_dir: str | os.PathLike | None, name: str) -> Path:
    """``data_dir``, else ``$L2DYN_DATA``; it must be an existing directory.

    Raises:
        DataError: neither is given, or the directory does not exist.
    """
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
    if data_dir is None:
        raise DataError(
            f"data set {name!r} needs its files: pass --data-dir DIR (data_dir) or set {ENV_VAR}"
        )
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory {path} does not exist (option --data-dir / {ENV_VAR})")
    return path


# --------------------------------------------------------------------------- subsets, scaling


def subset_indices(
    labels: np.ndarray,
    n: int | None,
    *,
    rng: np.random.Generator,
    balanced: bool = False,
    option: str = "n_train",
    num_classes: int = NUM_CLASSES,
) -> np.ndarray | slice:
    """Indices of a random subset of size ``n`` of the examples with ``labels`` ``(N,)``.

    Args:
        labels: int ``(N,)`` class labels of the pool.
        n: subset size, ``1 ≤ n ≤ N``; None selects everything (``slice(None)``, original order).
        rng: the generator the subset is drawn with.
        balanced: ``n // num_classes`` examples of each class, plus one more for each of the
            first ``n % num_classes`` classes; the result is shuffled (classes interleaved).
        option: the option name that errors report (``"n_train"``, ``"n_test"``).
        num_classes: classes to balance over.

    Returns:
        int64 ``(n,)`` indices without repetition, or ``slice(None)`` when ``n`` is None.

    Raises:
        DataError: ``n`` is not an integer, ``n ≤ 0``, ``n > N`` or a class has too few examples.
    """
    if n is None:
        return slice(None)
    available = labels.shape[0]
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise DataError(f"{option} must be an integer or None (got {n!r})")
    if not 0 < n <= available:
        raise DataError(f"{option} must be between 1 and {available} (available); got {n}")
    if not balanced:
        return rng.choice(available, size=int(n), replace=False)
    return rng.permutation(_balanced_indices(labels, int(n), rng, option, num_classes))


def _balanced_indices(
    labels: np.ndarray, n: int, rng: np.random.Generator, option: str, num_classes: int
) -> np.ndarray:
    """``n // K`` random indices of each class (+1 for the first ``n % K``), class by class."""
    parts = []
    for c in range(num_classes):
        want = n // num_classes + (c < n % num_classes)
        pool = np.flatnonzero(labels == c)
        if pool.size < want:
            raise DataError(
                f"{option}={n} balanced needs {want} examples of class {c}, only {pool.size} exist"
            )
        parts.append(rng.choice(pool, size=want, replace=False))
    return np.concatenate(parts)


def standardize_images(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel standardization with the training statistics.

    Args:
        x_train: ``(N_train, H, W, C)`` images; the mean and std over ``(N, H, W)`` are its own.
        x_test: ``(N_test, H, W, C)`` images, transformed with the training statistics.

    Returns:
        ``(x_train', x_test')`` float32, ``x' = (x − mean_c) / std_c`` (a channel with std 0 is
        only centred).
    """
    mean = x_train.mean(axis=(0, 1, 2), dtype=np.float64)
    std = x_train.std(axis=(0, 1, 2), dtype=np.float64)
    std = np.where(std > 0, std, 1.0)

    def apply(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(np.float32)

    return apply(x_train), apply(x_test)


def _to_unit(x: np.ndarray, scale: float) -> np.ndarray:
    """uint8 pixels → float32 in [0, 1]."""
    return x.astype(np.float32) / np.float32(scale)


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Stream 0 is ``default_rng(seed)`` (training subset); others are independent of it."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed must be a non-negative integer (got {seed!r})")
    return np.random.default_rng(int(seed) if stream == 0 else [int(seed), stream])


# --------------------------------------------------------------------------- digits


def load_digits() -> RawSplit:
    """scikit-learn's bundled 8×8 digits (pixel values 0–16) under :func:`digits_split`."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.images.astype(np.uint8)[..., None]
    y = bunch.target.astype(np.int32)
    train, test = digits_split(y)
    return RawSplit(x[train], y[train], x[test], y[test], 16.0)


def digits_split(labels: np.ndarray, n_test: int = DIGITS_N_TEST) -> tuple[np.ndarray, np.ndarray]:
    """The fixed, stratified train/test split of the digits (independent of any user seed).

    The examples are shuffled with ``default_rng(0)``, grouped by class (stable sort), and
    every ``N / n_test``-th position of that order goes to the test set, so each class gives
    ``n_test · N_c / N`` test images up to rounding. For the 1,797 digits: 1,297 train, 500 test.

    Returns:
        ``(train_idx, test_idx)``, sorted int64 index arrays partitioning ``range(N)``.
    """
    n = labels.shape[0]
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(n)
    order = perm[np.argsort(labels[perm], kind="stable")]
    is_test = np.zeros(n, dtype=bool)
    is_test[order[(np.arange(n_test) * n) // n_test]] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


# --------------------------------------------------------------------------- MNIST


def parse_idx(data: bytes, path: str | os.PathLike, *, ndim: int | None = None) -> np.ndarray:
    """Decode an IDX file of unsigned bytes (the MNIST format).

    Layout: magic ``0x0000 08 D`` (big-endian: two zero bytes, type 0x08 = uint8, D = number of
    dimensions), then D big-endian int32 sizes, then ``prod(sizes)`` bytes, row-major.

    Args:
        data: the file's (decompressed) bytes.
        path: the file, for error messages only.
        ndim: the expected D (3 for images, magic 0x00000803; 1 for labels, 0x00000801).

    Returns:
        uint8 array of the header's shape.

    Raises:
        DataError: wrong magic, or a data length that disagrees with the header.
    """
    want = f"0x{0x800 + ndim:08x}" if ndim is not None else "0x000008NN"
    if len(data) < 4 or data[:3] != bytes((0, 0, _IDX_UBYTE)):
        magic = f"0x{int.from_bytes(data[:4], 'big'):08x}" if len(data) >= 4 else "none"
        hint = "; it holds gzip data: add .gz to its name" if data[:2] == b"\x1f\x8b" else ""
        raise DataError(f"{path}: not an IDX file of bytes (magic {magic}, expected {want}){hint}")
    d = data[3]
    if ndim is not None and d != ndim:
        raise DataError(
            f"{path}: IDX file with {d} dimensions (magic 0x{0x800 + d:08x}, expected {want})"
        )
    header = 4 + 4 * d
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, needs {header})")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">i4", count=d, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "too long"
        raise DataError(
            f"{path}: {what}: header says shape {shape} ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_file(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when its name ends in ``.gz``.

    Raises:
        DataError: unreadable file or bad gzip data.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip data ({err})") from err


def load_mnist(data_dir: Path) -> RawSplit:
    """MNIST from the four IDX files (raw or ``.gz``) in ``data_dir`` or ``data_dir/mnist``.

    Returns:
        uint8 images ``(N, H, W, 1)`` (MNIST: 28×28, 60,000 train, 10,000 test; any H×W is
        accepted if train and test agree) and int32 labels.
    """
    paths = find_mnist_files(data_dir)
    x_train, y_train = _mnist_pair(paths[MNIST_FILES[0]], paths[MNIST_FILES[1]])
    x_test, y_test = _mnist_pair(paths[MNIST_FILES[2]], paths[MNIST_FILES[3]])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{paths[MNIST_FILES[2]]}: images of shape {x_test.shape[1:3]}, but the "
            f"training images are {x_train.shape[1:3]}"
        )
    return RawSplit(x_train, y_train, x_test, y_test, 255.0)


def find_mnist_files(data_dir: Path) -> dict[str, Path]:
    """Paths of the four MNIST files (raw preferred over ``.gz``) by their base name.

    Raises:
        DataError: naming every missing file, the directory searched and where to get them.
    """
    folder = _first_with_any(
        [data_dir, data_dir / MNIST_SUBDIR], [n + s for n in MNIST_FILES for s in ("", ".gz")]
    )
    found = {n: p for n in MNIST_FILES if (p := _raw_or_gz(folder / n)) is not None}
    missing = [f"{n}[.gz]" for n in MNIST_FILES if n not in found]
    if missing:
        raise DataError(
            f"missing MNIST file(s) in {folder}: {', '.join(missing)}; get them {MNIST_SOURCE}"
        )
    return found


def _mnist_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(N, H, W, 1)`` and labels int32 ``(N,)`` from one IDX pair, checked."""
    images = parse_idx(read_file(images_path), images_path, ndim=3)
    labels = parse_idx(read_file(labels_path), labels_path, ndim=1)
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images "
            f"in {images_path.name}"
        )
    _check_labels(labels, labels_path)
    return images[..., None], labels.astype(np.int32)


def _raw_or_gz(path: Path) -> Path | None:
    """``path`` if it is a file, else ``path.gz`` if that is, else None."""
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


def _first_with_any(folders: list[Path], names: list[str]) -> Path:
    """The first folder holding at least one of ``names`` (else the first folder)."""
    for folder in folders:
        if any((folder / n).is_file() for n in names):
            return folder
    return folders[0]


def _check_labels(labels: np.ndarray, path: str | os.PathLike) -> None:
    """Raise DataError naming ``path`` when a label is outside ``[0, NUM_CLASSES)``."""
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if np.any(bad):
        raise DataError(
            f"{path}: label {int(labels[bad][0])} out of range "
            f"[0, {NUM_CLASSES}) at index {int(np.flatnonzero(bad)[0])}"
        )


# --------------------------------------------------------------------------- CIFAR-10


def parse_cifar_batch(obj: object, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Decode one unpickled CIFAR-10 batch.

    Args:
        obj: the unpickled object, a dict with ``b"data"``, uint8 ``(n, 3072)`` holding the R, G
            and B planes of each 32×32 image in row-major order, and ``b"labels"``, n ints.
        path: the batch file, for error messages only.

    Returns:
        uint8 images ``(n, 32, 32, 3)`` (NHWC) and int32 labels ``(n,)``.

    Raises:
        DataError: missing keys, wrong array size or type, label count or range.
    """
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (a {type(obj).__name__}, expected a dict)")
    data, labels = _get(obj, "data", path), _get(obj, "labels", path)
    size = 3 * CIFAR_SIDE * CIFAR_SIDE
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != size
    ):
        shape = getattr(data, "shape", None)
        raise DataError(
            f"{path}: 'data' must be a uint8 array (n, {size}); got "
            f"{type(data).__name__} of shape {shape}"
        )
    try:
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: 'labels' is not a list of integers") from err
    if y.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {y.shape[0]} labels for {data.shape[0]} images")
    _check_labels(y, path)
    x = data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y.astype(np.int32)


def _get(obj: dict, key: str, path: str | os.PathLike) -> object:
    """``obj[b"key"]`` (or ``obj["key"]``), else DataError naming the key and file."""
    for k in (key.encode(), key):
        if k in obj:
            return obj[k]
    raise DataError(f"{path}: not a CIFAR-10 batch (no {key!r} entry)")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy globals a CIFAR-10 batch needs.

    Pickle can run arbitrary code through the globals it names; a CIFAR-10 batch only names
    numpy's array reconstructors, so anything else is refused.
    """

    ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> object:
        if module.startswith("numpy.core"):  # numpy 1 names; numpy 2 moved them to numpy._core
            module = "numpy._core" + module.removeprefix("numpy.core")
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle and decode the CIFAR-10 batch file ``path`` (see :func:`parse_cifar_batch`).

    Raises:
        DataError: unreadable, not a (safe) pickle, or not a CIFAR-10 batch.
    """
    try:
        with path.open("rb") as f:
            obj = _BatchUnpickler(f, encoding="bytes").load()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err
    except Exception as err:  # corrupt pickles raise almost any exception type
        raise DataError(
            f"{path}: not a valid CIFAR-10 pickle ({type(err).__name__}: {err})"
        ) from err
    return parse_cifar_batch(obj, path)


def load_cifar10(data_dir: Path) -> RawSplit:
    """CIFAR-10 from the python batches in ``data_dir`` or ``data_dir/cifar-10-batches-py``.

    The training pool is every ``data_batch_i`` present (at least one); ``test_batch`` is
    required.

    Returns:
        uint8 images ``(N, 32, 32, 3)`` and int32 labels (at most 50,000 train, 10,000 test).
    """
    train_paths, test_path = find_cifar_files(data_dir)
    batches = [read_cifar_batch(p) for p in train_paths]
    x_test, y_test = read_cifar_batch(test_path)
    x_train = np.concatenate([b[0] for b in batches])
    y_train = np.concatenate([b[1] for b in batches])
    return RawSplit(x_train, y_train, x_test, y_test, 255.0)


def find_cifar_files(data_dir: Path) -> tuple[list[Path], Path]:
    """The training batch files present and the test batch file.

    Raises:
        DataError: naming the missing files, the directory searched and where to get them.
    """
    names = [*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE]
    folder = _first_with_any([data_dir, data_dir / CIFAR_SUBDIR], names)
    train = [folder / n for n in CIFAR_TRAIN_FILES if (folder / n).is_file()]
    missing = [] if train else [f"{CIFAR_TRAIN_FILES[0]} … {CIFAR_TRAIN_FILES[-1]} (any one)"]
    if not (folder / CIFAR_TEST_FILE).is_file():
        missing.append(CIFAR_TEST_FILE)
    if missing:
        raise DataError(
            f"missing CIFAR-10 file(s) in {folder}: {', '.join(missing)}; "
            f"get {CIFAR_SOURCE} (cifar-10-python.tar.gz) and extract it there"
        )
    return train, folder / CIFAR_TEST_FILE

"""Copy the data ``device_check.py`` needs into a folder that travels to a device machine.

The device machine gets the repository and the paths named in ``carry`` only (``../shared``
stays behind), and carried paths count towards a 64 MiB limit with the working tree. This copies
the four MNIST files as they are (about 11 MB; Figure 2's slice draws its 512 training images
from all 60,000 with the toolkit's own subset seed, so it needs them all) and writes a cut
CIFAR-10 in the official python-batch layout: the first ``--cifar-train`` images of
``data_batch_1`` and the first ``--cifar-test`` of ``test_batch`` (about 9 MB at the defaults),
enough for the step-time rows (WRN at batch 1024, the CNN at batch 128), which time steps, not
accuracy. The output folder is git-ignored (``.device-data/``).

    python benchmarks/device_data.py --from ../shared/data --to .device-data
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import sys
from pathlib import Path

from l2dynamics.data.datasets import (
    CIFAR_SUBDIR,
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    MNIST_SUBDIR,
    find_mnist_files,
)


def copy_mnist(src: Path, dst: Path) -> list[Path]:
    """The four MNIST files of ``src`` (or ``src/mnist``) copied into ``dst/mnist``."""
    out = dst / MNIST_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in find_mnist_files(src).values():
        target = out / path.name
        shutil.copyfile(path, target)  # not copy2: the source may be read-only
        copied.append(target)
    return copied


def cut_cifar_batch(path: Path, target: Path, n: int) -> int:
    """The first ``n`` images of the CIFAR-10 batch at ``path`` written to ``target`` in the
    same layout; returns how many were written."""
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data, labels = batch[b"data"][:n], list(batch[b"labels"][:n])
    cut = {b"data": data, b"labels": labels}
    if b"batch_label" in batch:
        cut[b"batch_label"] = batch[b"batch_label"]
    with target.open("wb") as f:
        pickle.dump(cut, f, protocol=4)
    return len(labels)


def copy_cifar(src: Path, dst: Path, n_train: int, n_test: int) -> list[Path]:
    """A cut CIFAR-10 (``n_train`` training, ``n_test`` test images) in ``dst``."""
    folder = src / CIFAR_SUBDIR if (src / CIFAR_SUBDIR).is_dir() else src
    train = next((folder / n for n in CIFAR_TRAIN_FILES if (folder / n).is_file()), None)
    if train is None or not (folder / CIFAR_TEST_FILE).is_file():
        raise SystemExit(f"no CIFAR-10 python batches in {folder}")
    out = dst / CIFAR_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    written = [out / CIFAR_TRAIN_FILES[0], out / CIFAR_TEST_FILE]
    cut_cifar_batch(train, written[0], n_train)
    cut_cifar_batch(folder / CIFAR_TEST_FILE, written[1], n_test)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="src", default="../shared/data", help="data folder")
    parser.add_argument("--to", dest="dst", default=".device-data", help="output folder")
    parser.add_argument("--cifar-train", type=int, default=2048)
    parser.add_argument("--cifar-test", type=int, default=1000)
    args = parser.parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    files = copy_mnist(src, dst) + copy_cifar(src, dst, args.cifar_train, args.cifar_test)
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"{p}  {p.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    print(f"{len(files)} files, {total / 2**20:.1f} MiB in {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()

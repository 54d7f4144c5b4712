"""Data sets (digits, MNIST, CIFAR-10), subsets, standardization and augmentation.

See :func:`load_dataset` for loading and :mod:`l2dynamics.data.augment` for the pure JAX
training-batch augmentations.
"""

from l2dynamics.data import augment
from l2dynamics.data.augment import augment_batch, mixup, random_crop, random_flip
from l2dynamics.data.datasets import (
    DATASETS,
    Dataset,
    load_dataset,
    parse_cifar_batch,
    parse_idx,
    standardize_images,
    subset_indices,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "augment",
    "augment_batch",
    "load_dataset",
    "mixup",
    "parse_cifar_batch",
    "parse_idx",
    "random_crop",
    "random_flip",
    "standardize_images",
    "subset_indices",
]

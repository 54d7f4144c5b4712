"""Build a model by name from plain options, validating every option; count parameters."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from l2dynamics.errors import ConfigError
from l2dynamics.models.cnn import CNN
from l2dynamics.models.fc import FC
from l2dynamics.models.init import ACTIVATIONS
from l2dynamics.models.wrn import WideResNet, blocks_per_group

MODELS = ("fc", "cnn", "wrn")
_CLASSES: dict[str, type[nn.Module]] = {"fc": FC, "cnn": CNN, "wrn": WideResNet}
_NOT_OPTIONS = ("parent", "name", "num_classes")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "must be a positive integer"


def _positive_float(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "must be a number > 0"


def _optional_positive_float(value: Any) -> str | None:
    return None if value is None else _positive_float(value)


def _nonnegative_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "must be an integer >= 0"


def _nonnegative_float(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else "must be a number >= 0"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _activation(value: Any) -> str | None:
    return None if value in ACTIVATIONS else f"must be one of {', '.join(ACTIVATIONS)}"


_RULES: dict[str, Callable[[Any], str | None]] = {
    "depth": _positive_int,
    "width": _positive_int,
    "channels": _positive_int,
    "dense": _positive_int,
    "pool_window": _positive_int,
    "pool_stride": _positive_int,
    "bn_group": _nonnegative_int,
    "sigma_w": _positive_float,
    "sigma_w_last": _optional_positive_float,
    "sigma_b": _nonnegative_float,
    "use_bias": _boolean,
    "batch_norm": _boolean,
    "activation": _activation,
}


def model_options(name: str) -> tuple[str, ...]:
    """The option names model ``name`` accepts (its fields, less ``num_classes``), sorted."""
    fields = dataclasses.fields(_CLASSES[name])
    return tuple(sorted(f.name for f in fields if f.name not in _NOT_OPTIONS))


def model_defaults(name: str) -> dict[str, Any]:
    """The default of each option of model ``name`` (empty for a name not registered)."""
    if name not in _CLASSES:
        return {}
    fields = dataclasses.fields(_CLASSES[name])
    return {
        f.name: f.default
        for f in fields
        if f.name not in _NOT_OPTIONS and f.default is not dataclasses.MISSING
    }


def _check_option(model: str, option: str, value: Any) -> None:
    known = model_options(model)
    if option not in known:
        raise ConfigError(
            f"unknown option '{option}' for model '{model}' (known: {', '.join(known)})"
        )
    problem = _RULES[option](value)
    if problem is not None:
        raise ConfigError(f"{model} option '{option}' {problem} (got {value!r})")


def build_model(name: str, num_classes: int, **options: Any) -> nn.Module:
    """The model ``name`` (``fc``, ``cnn`` or ``wrn``) with ``num_classes`` logits.

    Args:
        name: Registered model name, one of :data:`MODELS`.
        num_classes: Number of output logits (≥ 1).
        **options: Fields of :class:`FC`, :class:`CNN` or :class:`WideResNet`; omitted ones
            keep the paper-scale defaults.

    Returns:
        An unbound flax module: ``init(key, x)`` and ``apply({"params": p}, x, train=...)``
        map ``(B, H, W, C)`` float32 images to ``(B, num_classes)`` logits.

    Raises:
        ConfigError: unknown model or option, or an out-of-range value; the message names it.
    """
    if name not in _CLASSES:
        raise ConfigError(f"unknown model '{name}' (choose from {', '.join(MODELS)})")
    if _positive_int(num_classes) is not None:
        raise ConfigError(f"num_classes must be a positive integer (got {num_classes!r})")
    for option, value in options.items():
        _check_option(name, option, value)
    if name == "wrn" and "depth" in options:
        blocks_per_group(options["depth"])
    if name == "cnn" and options.get("bn_group", 0) and not options.get("batch_norm", False):
        raise ConfigError("cnn option 'bn_group' needs batch_norm = true (there is no BatchNorm)")
    return _CLASSES[name](num_classes=num_classes, **options)


def scale_invariant_params(name: str, **options: Any) -> frozenset[str]:
    """The parameters of model ``name`` (with ``options``) whose scale its output ignores: the
    kernels of the layers followed by a BatchNorm (the model class's ``scale_invariant``), as
    paths ``"layer/kernel"`` of its ``params`` (:func:`param_name`). Under L2 they reach the
    rotational equilibrium of SPEC §6."""
    return frozenset(build_model(name, 10, **options).scale_invariant())


def param_name(path: tuple[Any, ...]) -> str:
    """The name of a parameter from its pytree path: its keys joined by ``/``
    (``("conv_0", "kernel")`` → ``"conv_0/kernel"``)."""
    return "/".join(str(getattr(k, "key", k)) for k in path)


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter pytree (arrays or ``jax.ShapeDtypeStruct`` s)."""
    leaves = jax.tree_util.tree_leaves(params)
    return sum(math.prod(getattr(leaf, "shape", np.shape(leaf))) for leaf in leaves)

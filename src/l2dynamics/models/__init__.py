"""The paper's networks in flax.linen, standard parametrization (SPEC §1, §5).

Every model maps NHWC float32 images ``(B, H, W, C)`` to logits ``(B, num_classes)`` via
``model.init(key, x)`` and ``model.apply({"params": params}, x, train=True)``; models keep no
state besides ``params`` (BatchNorm uses batch statistics), so a model state is one pytree.
"""

from l2dynamics.models.cnn import CNN
from l2dynamics.models.fc import FC
from l2dynamics.models.init import ACTIVATIONS, activation_fn, bias_init, weight_init
from l2dynamics.models.norm import BatchStatNorm
from l2dynamics.models.registry import (
    MODELS,
    build_model,
    count_params,
    model_defaults,
    model_options,
    param_name,
    scale_invariant_params,
)
from l2dynamics.models.wrn import WideResNet, WRNBlock

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "FC",
    "MODELS",
    "BatchStatNorm",
    "WRNBlock",
    "WideResNet",
    "activation_fn",
    "bias_init",
    "build_model",
    "count_params",
    "model_defaults",
    "model_options",
    "param_name",
    "scale_invariant_params",
    "weight_init",
]

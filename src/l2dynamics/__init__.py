"""l2dynamics: the training dynamics of deep networks under L2 regularization.

Implements Lewkowycz & Gur-Ari, "On the training dynamics of deep networks with L2
regularization" (NeurIPS 2020): L2-regularized SGD with measured curves, the paper's networks
and data, and (in later modules) sweeps, scaling laws, AutoL2 and the infinite-width theory.
"""

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
from l2dynamics.errors import ConfigError, DataError, L2DynError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataError",
    "L2DynError",
    "ModelConfig",
    "TrainConfig",
    "__version__",
]

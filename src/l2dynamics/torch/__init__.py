"""AutoL2 for PyTorch, without JAX: :class:`AutoL2` sets an optimizer's ``weight_decay``.

The controller here is :mod:`l2dynamics.autol2.pure`, plain Python, tested to take the same
decisions and give the same λ as the JAX controller; :func:`replay` runs it over a recorded
sequence of measurements. Nothing here imports JAX (nor even torch: the adapter only touches
``optimizer.param_groups``).
"""

from l2dynamics.autol2.options import AutoL2Options
from l2dynamics.autol2.pure import replay
from l2dynamics.torch.adapter import AutoL2

__all__ = ["AutoL2", "AutoL2Options", "replay"]

"""Infinite-width theory of L2-regularized training (SPEC §4), in plain JAX and numpy.

- :mod:`~l2dynamics.theory.ntk`: the empirical NTK of any model (Jacobian or implicit).
- :mod:`~l2dynamics.theory.nets`: the bias-free 2-layer ReLU net and its closed-form NTK.
- :mod:`~l2dynamics.theory.homogeneity`: the degree k and Lemma 1, checked numerically.
- :mod:`~l2dynamics.theory.dynamics`: eq. (2) kernel decay, eq. (3) per mode and in matrix form,
  and an ODE solve of eq. (1) to check it.
- :mod:`~l2dynamics.theory.kernel_decay`: train with gradient descent and L2, measure Θ_t.
- :mod:`~l2dynamics.theory.deep_linear`: the fixed point ``f = 1 − λ√n`` of a deep linear net.

Units: t is physical time (``t = η·step`` for gradient descent); the loss is the *sum*
``Σ_x ½(f − y)² + (λ/2)‖θ‖²`` over the training set. This package never imports ``train``,
``sweep``, ``analysis`` or ``cli``.
"""

from l2dynamics.theory.deep_linear import DeepLinearResult, fixed_point, train_deep_linear
from l2dynamics.theory.dynamics import (
    evolve_outputs,
    kernel_decay_factor,
    kernel_decay_rate,
    mode_evolution,
    relative_error,
    solve_eq1,
)
from l2dynamics.theory.homogeneity import (
    euler_residual,
    hessian_euler_residual,
    homogeneity_degree,
)
from l2dynamics.theory.kernel_decay import (
    DecayTrace,
    fit_decay_rate,
    gd_segment,
    kernel_deviation,
    kernel_overlap,
    sum_mse_l2,
    train_with_kernels,
)
from l2dynamics.theory.nets import TwoLayerReLU, two_layer_ntk
from l2dynamics.theory.ntk import empirical_ntk

__all__ = [
    "DecayTrace",
    "DeepLinearResult",
    "TwoLayerReLU",
    "empirical_ntk",
    "euler_residual",
    "evolve_outputs",
    "fit_decay_rate",
    "fixed_point",
    "gd_segment",
    "hessian_euler_residual",
    "homogeneity_degree",
    "kernel_decay_factor",
    "kernel_decay_rate",
    "kernel_deviation",
    "kernel_overlap",
    "mode_evolution",
    "relative_error",
    "solve_eq1",
    "sum_mse_l2",
    "train_deep_linear",
    "train_with_kernels",
    "two_layer_ntk",
]

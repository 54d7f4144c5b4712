"""FLOPs of one training step, counted from the shapes (no PyTorch; shared by the benchmarks).

Every matrix product and convolution of the forward pass costs ``2·(output size)·(contraction
size)`` (2 FLOPs per multiply-add); the backward pass costs twice the forward (a weight gradient
and an input gradient per layer) except the first layer's input gradient, which is not needed;
the update costs 4 FLOPs per parameter with plain SGD (``g + λθ``, ``η·g``, ``θ − η·g``) and 6
with momentum (``μv + g`` besides). Elementwise work (ReLU, softmax, BatchNorm, pooling) is not
counted, so the efficiency of BatchNorm nets is a lower bound. :func:`xla_step_flops` is XLA's
own count of the compiled step, a cross-check.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from l2dynamics.train import step as S

UPDATE_FLOPS_PER_PARAM = {False: 4, True: 6}  # by whether there is a momentum buffer


def _sub_jaxprs(eqn) -> list:
    """The jaxprs nested in an equation's parameters (pjit, custom_jvp, while, cond, ...), found
    by their shape (a jaxpr has ``eqns``; a closed one holds it as ``jaxpr``), so that no JAX
    version's module layout matters: the device check runs under whatever JAX a GPU has."""
    found = []
    for value in eqn.params.values():
        for v in value if isinstance(value, list | tuple) else (value,):
            inner = getattr(v, "jaxpr", v)
            if hasattr(inner, "eqns"):
                found.append(inner)
    return found


def gemm_ops(jaxpr) -> list[tuple[Any, float, tuple, tuple, dict]]:
    """``(primitive, FLOPs, lhs shape, rhs shape, params)`` of every matrix product and
    convolution in ``jaxpr``, in program order (nested jaxprs included)."""
    ops = []
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in ("dot_general", "conv_general_dilated"):
            lhs, rhs = (tuple(v.aval.shape) for v in eqn.invars[:2])
            out = eqn.outvars[0].aval.shape
            if name == "dot_general":
                (contract, _), _ = eqn.params["dimension_numbers"]
                per_out = math.prod(lhs[c] for c in contract)
            else:
                feature = eqn.params["dimension_numbers"].out_spec[1]
                per_out = math.prod(rhs) / out[feature]
            flops = 2.0 * math.prod(out) * per_out
            ops.append((eqn.primitive, flops, lhs, rhs, dict(eqn.params)))
        for sub in _sub_jaxprs(eqn):
            ops += gemm_ops(sub)
    return ops


def step_flops(program, params: Any, x: jax.Array) -> dict[str, float]:
    """Analytic FLOPs of one step on the batch ``x``: forward, backward, update and total."""
    apply = program.spec.apply
    jaxpr = jax.make_jaxpr(lambda p: apply({"params": p}, x, train=True))(params).jaxpr
    ops = gemm_ops(jaxpr)
    forward = sum(op[1] for op in ops)
    n_params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
    backward = 2 * forward - ops[0][1]
    update = UPDATE_FLOPS_PER_PARAM[program.heavy_ball] * n_params
    return {
        "forward": forward,
        "backward": backward,
        "update": update,
        "total": forward + backward + update,
        "params": n_params,
    }


def xla_step_flops(program, state, hyper) -> float:
    """XLA's cost-analysis FLOPs of one compiled ``train_step`` (a cross-check; NaN where the
    backend gives none)."""
    step = jax.jit(lambda d, s, h: S.train_step(program.spec, d, s, h))
    cost = step.lower(program.data, state, hyper).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float((cost or {}).get("flops", float("nan")))

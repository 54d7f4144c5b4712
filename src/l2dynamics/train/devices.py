"""Local devices: a pool's lanes, or one run's batch, split over them with ``jax.sharding``.

Both use one 1-D mesh of the process's local devices (axis :data:`AXIS`) and leave the program
as it is: the arrays a jitted function takes are placed with a ``NamedSharding`` and XLA
partitions the computation (one program, no per-device Python loop).

- **Lanes over devices** (a pool, :mod:`l2dynamics.train.vector`): the stacked lane arrays are
  sharded along the lane axis, the data replicated; each device steps its share of the lanes.
  The pool's width is padded to a multiple of the device count with empty lanes
  (:func:`pool_width`). Rule: :func:`pool_mesh` (more than one local device, at least two
  lanes, :data:`SHARD_POOLS`).
- **Data parallel** (one run, :func:`l2dynamics.train.run.build_program`): parameters and
  optimizer state replicated, the minibatch sharded along its first axis (a sharding constraint
  in :func:`l2dynamics.train.step.get_batch`), gradients summed across devices by XLA. BatchNorm
  with ``bn_group = B/devices`` then normalizes each device's share with its own statistics,
  as the paper's WRN (batch 1024 on 8 devices, statistics over 128 images); any other grouping
  gives the same numbers as on one device too, at the price of communication. Rule:
  :func:`data_parallel_mesh`.

On one local device both rules give no mesh and nothing is placed: the code path is the
one-device one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding, SingleDeviceSharding

from l2dynamics.errors import ConfigError

AXIS = "devices"
# Shard a pool's lanes over the local devices when there are several (the one switch; a pool
# may still be told otherwise, :func:`pool_mesh`'s ``shard``).
SHARD_POOLS = True

__all__ = [
    "AXIS",
    "SHARD_POOLS",
    "data_parallel_devices",
    "data_parallel_mesh",
    "first_device",
    "lane_sharding",
    "local_mesh",
    "placed",
    "pool_mesh",
    "pool_width",
    "replicated",
]


def local_mesh() -> Mesh | None:
    """A 1-D mesh (axis :data:`AXIS`) of the process's local devices; None when there is one."""
    devices = jax.local_devices()
    return Mesh(np.array(devices), (AXIS,)) if len(devices) > 1 else None


def pool_mesh(lanes: int, shard: bool | None = None) -> Mesh | None:
    """The mesh a pool of ``lanes`` lanes shards its lanes over, or None (one device, fewer
    than two lanes, or ``shard`` False; ``shard`` None: :data:`SHARD_POOLS`)."""
    if not (SHARD_POOLS if shard is None else shard) or lanes < 2:
        return None
    return local_mesh()


def pool_width(lanes: int, mesh: Mesh | None) -> int:
    """``lanes`` rounded up to a multiple of the mesh's devices (the extra lanes stay empty)."""
    if mesh is None:
        return lanes
    n = mesh.devices.size
    return -(-lanes // n) * n


def data_parallel_devices(batch: int, devices: int, ask: bool | None) -> int:
    """Over how many devices one run with minibatches of ``batch`` examples trains, with
    ``devices`` local devices: all of them when ``ask`` is True (raises
    :class:`~l2dynamics.errors.ConfigError` unless they divide the batch), or, with ``ask``
    None (automatic), when they divide it; else 1."""
    if ask is False or devices == 1:
        return 1
    if batch % devices == 0:
        return devices
    if ask:
        raise ConfigError(
            f"batch_size {batch} does not split over {devices} local devices for data-parallel "
            f"training: use a multiple of {devices}, or train on one device",
            "batch_size",
        )
    return 1


def data_parallel_mesh(batch: int, ask: bool | None = None) -> Mesh | None:
    """The mesh one run shards its minibatches over (:func:`data_parallel_devices` of the
    local devices), or None: one device."""
    mesh = local_mesh()
    if mesh is None or data_parallel_devices(batch, mesh.devices.size, ask) == 1:
        return None
    return mesh


def lane_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays stacked along a leading axis (lanes, or a minibatch's examples), split over
    ``mesh``."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A whole copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def first_device() -> Sharding:
    """The default device (where a one-device program runs)."""
    return SingleDeviceSharding(jax.local_devices()[0])


def placed(fn: Callable[..., Any], shardings: Sequence[Any]) -> Callable[..., Any]:
    """``fn`` whose first ``len(shardings)`` arguments are first put where ``shardings`` say
    (each a sharding or a tree of them; None: left as given). Arrays already there do not
    move; arrays committed elsewhere (a lane copied out of a sharded pool) are moved, where a
    jitted function would refuse them."""

    def call(*args: Any, **kwargs: Any) -> Any:
        moved = [
            a if s is None else jax.device_put(a, s) for a, s in zip(args, shardings, strict=False)
        ]
        return fn(*moved, *args[len(shardings) :], **kwargs)

    return call

r"""How a device evaluates the points of a chunk: in vmapped batches of a width.

A chunk (``chunk_size`` points, one compiled call) is split over the devices; each
device evaluates its points with ``jax.vmap`` (all at once) or ``lax.map`` over
vmapped batches of ``width`` points (one at a time for width 1). Accelerators vmap
the whole chunk, to be filled; on a CPU a batch of big networks is slower than the
same networks one after the other, so :func:`batch_width` picks the width from the
size of one point's matrix products (a rule on shapes, never on timings: results
must not depend on the machine's load). Any width gives the same values to rounding.
"""

from __future__ import annotations

import math

import jax
from jax import lax
from jax.extend import core as jex_core

__all__ = ["CPU_BATCH_ELEMENTS", "batch_width", "over_points", "traced_once"]

#: On a CPU, the points of a chunk are vmapped in batches of at most this many matrix
#: elements (the largest matrix-product operand of one point times the batch). XLA's
#: CPU backend runs a batch of matrix-vector products far slower than the same
#: products one after the other once each matrix outgrows ~64 x 64. Lyapunov points
#: (tanh, T = 2000, 32 of them, 2 loaded cores), one at a time against vmapped 16 at
#: once: 3.2x faster at N = 256 and N = 128, 1.15x at N = 64 (batches of 4: 1.3x),
#: 2.5x slower at N = 32, where the per-step overhead dominates; the 16 x 16 grid at
#: N = 256: 2.2x (``python -m benchmarks.sweep_scaling --batching``).
CPU_BATCH_ELEMENTS = 16384


def largest_product_operand(jaxpr) -> int:
    """Elements of the largest operand of a matrix product (``dot_general``) in
    ``jaxpr`` and the jaxprs nested in it (scan, while and cond bodies, jit calls)."""
    sizes = [math.prod(v.aval.shape) for eqn in jaxpr.eqns
             if eqn.primitive.name == "dot_general" for v in eqn.invars]
    sizes += [largest_product_operand(sub) for sub in jex_core.subjaxprs(jaxpr)]
    return max(sizes, default=0)


def batch_width(jaxpr, platform: str, length: int) -> int:
    r"""Points a device evaluates together (one ``vmap``) in a chunk of ``length``.

    On accelerators the whole chunk, to fill the device. On a CPU
    :math:`\max(1, \min(\text{length}, \lfloor E / e \rfloor))` with
    :math:`E` = :data:`CPU_BATCH_ELEMENTS` and :math:`e` the elements of the largest
    matrix-product operand in ``jaxpr``, one point's: big networks one at a time,
    small ones batched. It depends on shapes only, never on timings, so a sweep's
    results do not depend on the machine's load.
    """
    if platform != "cpu":
        return length
    largest = largest_product_operand(jaxpr)
    return max(1, min(length, CPU_BATCH_ELEMENTS // max(largest, 1)))


def traced_once(one, example: tuple):
    """``one`` traced at ``example`` (its jaxpr), and a function that replays that
    jaxpr: the measurement's Python runs once per group, not again under vmap."""
    closed, shapes = jax.make_jaxpr(one, return_shape=True)(*example)
    run = jex_core.jaxpr_as_fun(closed)
    replay = lambda *args: jax.tree.unflatten(jax.tree.structure(shapes),
                                              run(*jax.tree.leaves(args)))
    return closed.jaxpr, replay


def over_points(one, width: int, length: int):
    """``one`` mapped over a device's ``length`` points: one vmap of all of them, or
    ``lax.map`` over vmapped batches of ``width`` (one point at a time for 1)."""
    if width >= length:
        return jax.vmap(one)
    point = lambda args: one(*args)
    return lambda *args: lax.map(point, args, batch_size=None if width == 1 else width)

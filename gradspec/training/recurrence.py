r"""The training step's recurrence for a batch, with a hand-written reverse pass.

For cells that split their step as ``step(params, s, x) = activate(drive(params, x) +
W r(s), s)`` (:class:`~gradspec.cells.RNN`, :class:`~gradspec.cells.LSTM`; ``W`` =
``recurrent_matrix(params)`` (G, N_v), :math:`r(s)` the visible part ``s[..., :N_v]``)
the forward pass is

.. math::
    u_t = \mathrm{drive}(x_t), \qquad z_t = u_t + W r(s_{t-1}), \qquad
    s_t = \mathrm{activate}(z_t, s_{t-1}) + \varepsilon_t,

and the reverse pass, with :math:`g_t = \partial L / \partial s_t` (the cotangent of the
output :math:`s_t` plus what flows back from step t + 1 unless truncated BPTT cuts it),

.. math::
    (\bar z_t, \bar s^{\,\mathrm{direct}}_{t-1}) = \mathrm{vjp}(\mathrm{activate})(g_t),
    \qquad \text{carried: } \bar s^{\,\mathrm{direct}}_{t-1} + r^\top(\bar z_t W),

    \frac{\partial L}{\partial W} = \sum_{t, b} \bar z_{tb}^\top r(s_{t-1,b}), \qquad
    \frac{\partial L}{\partial u_t} = \bar z_t, \qquad
    \frac{\partial L}{\partial \varepsilon_t} = g_t.

This is what JAX's scan autodiff computes, in a cheaper order (as PyTorch and cuDNN do):
the reverse scan carries only :math:`\bar z_t W`, and the weight gradient is one (G, T B)
x (T B, N_v) product after it instead of T per-step (G, B) x (B, N_v) products summed in
the loop; the input projection :math:`u_t` of all steps is one product before the scan
(and its gradient one after, by ordinary autodiff).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["has_fast_path", "hidden_states"]


def has_fast_path(cell) -> bool:
    """Whether ``cell`` provides ``drive``, ``recurrent_matrix`` and ``activate``, from
    the class that defines its ``step`` (a subclass that redefines ``step`` alone runs
    its own step, through autodiff)."""
    def owner(name):
        return next((c for c in type(cell).__mro__ if name in vars(c)), None)

    methods = ("drive", "recurrent_matrix", "activate")
    return all(callable(getattr(cell, m, None)) for m in methods) and all(
        owner(m) is owner("step") for m in methods)


def hidden_states(cell, params, xs, eps, keep):
    r"""States :math:`s_1 .. s_L` (L, B, S) of a batch, from :math:`s_0 = \varepsilon_0`.

    Args:
        cell: a cell with :func:`has_fast_path`.
        params: the cell's params.
        xs: inputs (L, B, D), time first.
        eps: (L + 1, B, S), added to :math:`s_0 .. s_L` (zeros: its gradient is
            :math:`\partial L / \partial s_t`).
        keep: (L + 1,) bool; False at t cuts the gradient flowing from step t + 1 back
            into :math:`s_t` (truncated BPTT), as ``lax.stop_gradient`` on the carry.

    Returns:
        (L, B, S); differentiable in ``params`` and ``eps`` (not ``xs``).
    """
    u = cell.drive(params, lax.stop_gradient(xs))  # (L, B, G): one product for all t
    return _scan(cell, cell.recurrent_matrix(params), u, eps, keep)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(cell, W, u, eps, keep):
    return _scan_fwd(cell, W, u, eps, keep)[0]


def _scan_fwd(cell, W, u, eps, keep):
    n_v = W.shape[1]

    def body(s, inputs):
        u_t, e_t = inputs
        z = u_t + s[..., :n_v] @ W.T
        s_new = cell.activate(z, s) + e_t
        return s_new, (s_new, z)

    _, (hs, zs) = lax.scan(body, eps[0], (u, eps[1:]))
    prev = jnp.concatenate([eps[:1], hs[:-1]])  # s_0 .. s_{L-1}
    return hs, (W, zs, prev, keep)


def _scan_bwd(cell, res, g_hs):
    W, zs, prev, keep = res
    n_v = W.shape[1]

    def body(carried, inputs):
        g_out, z, s_prev, k = inputs
        g = g_out + jnp.where(k, carried, 0)  # dL/ds_t
        _, pull = jax.vjp(cell.activate, z, s_prev)
        g_z, g_prev = pull(g)
        g_prev = g_prev.at[..., :n_v].add(g_z @ W)
        return g_prev, (g, g_z)

    carried, (g_s, g_z) = lax.scan(body, jnp.zeros_like(prev[0]),
                                   (g_hs, zs, prev, keep[1:]), reverse=True)
    g_eps = jnp.concatenate([jnp.where(keep[0], carried, 0)[None], g_s])
    # One product over all steps and examples: sum_{t,b} g_z[t,b]^T r(s_{t-1,b}).
    g_W = jnp.einsum("tbg,tbn->gn", g_z, prev[..., :n_v])
    return g_W, g_z, g_eps, None


_scan.defvjp(_scan_fwd, _scan_bwd)

r"""Gated cells in PyTorch's layout: :class:`LSTM` (gates i, f, g, o) and :class:`GRU`
(gates r, z, n)."""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import init as _init
from ._base import Cell, _default_dtype, _matrix_shape


class _Gated(Cell):
    """Shared PyTorch layout of LSTM/GRU: ``weight_ih`` (G N, D), ``weight_hh`` (G N, N),
    ``bias_ih``, ``bias_hh`` (G N,)."""

    gates: int

    def hidden_size(self, params):
        return _matrix_shape(params, "weight_hh", type(self).__name__)[1]

    def input_size(self, params):
        return _matrix_shape(params, "weight_ih", type(self).__name__)[1]

    def param_shapes(self, hidden, inputs):
        g = self.gates * hidden
        return {
            "weight_ih": (g, inputs),
            "weight_hh": (g, hidden),
            "bias_ih": (g,),
            "bias_hh": (g,),
        }

    def init(self, key, hidden, inputs, *, recurrent_init=None, dtype=None, gates=None):
        r"""PyTorch's default U(-1/sqrt(N), 1/sqrt(N)) for every tensor; when
        ``recurrent_init`` is given, each gate's (N, N) block of ``weight_hh`` is drawn
        from it instead (e.g. orthogonal per gate).

        ``gates`` draws each gate k from the model of
        :func:`gradspec.theory.gated_mean_field` instead, :math:`W^k_{hh} \sim
        \mathcal N(0, \sigma_k^2/N)`, :math:`W^k_{ih} \sim \mathcal N(0, \nu_k^2/D)`,
        :math:`b^k_{ih} \sim \mathcal N(\mu_k, \rho_k^2)`, :math:`b_{hh} = 0` (so the
        GRU's :math:`b_{hn}` is 0): ``{gate: {"sigma", "mu", "rho", "nu"}}`` (LSTM
        i, f, g, o; GRU r, z, n; left out: 1, 0, 0, 1), as
        :func:`gradspec.theory.gated_critical` returns.

        Examples:
            >>> import jax, gradspec
            >>> params = gradspec.cells.LSTM().init(
            ...     jax.random.key(0), 8, 2, gates={"f": {"mu": 1.0}})
            >>> float(params["bias_ih"][8:16].mean()), float(params["bias_hh"].max())
            (1.0, 0.0)
        """
        dtype = _default_dtype(dtype)
        keys = jr.split(key, 4)
        shapes = self.param_shapes(hidden, inputs)
        if gates is None:
            default = _init.uniform(1.0 / math.sqrt(hidden))
            params = {n: default(k, shapes[n], dtype) for n, k in zip(shapes, keys)}
        else:
            names = {4: "ifgo", 3: "rzn"}[self.gates]
            defaults = {"sigma": 1.0, "mu": 0.0, "rho": 0.0, "nu": 1.0}
            if not isinstance(gates, Mapping) or not set(gates) <= set(names) or not all(
                    isinstance(v, Mapping) for v in gates.values()):
                raise ValueError(f"`gates` must be a dict by gate name, of "
                                 f"{', '.join(names)}; got {gates!r:.80}.")
            for gate, name, value in ((g, n, v) for g in gates for n, v in gates[g].items()):
                if name not in defaults or np.ndim(value) != 0 or (
                        not isinstance(value, jax.core.Tracer) and not (math.isfinite(
                            float(value)) and (name == "mu" or float(value) >= 0))) or (
                        name == "sigma" and recurrent_init is not None):
                    raise ValueError(f"`gates[{gate!r}][{name!r}]` = {value!r}: a gate takes "
                                     "finite scalars sigma, rho, nu >= 0 and mu (sigma not "
                                     "with recurrent_init, which draws weight_hh itself).")
            column = {n: jnp.repeat(jnp.stack([jnp.asarray(
                gates.get(g, {}).get(n, d), dtype) for g in names]), hidden)[:, None]
                for n, d in defaults.items()}  # (G N, 1): gate k's value on its rows
            normal = [jr.normal(k, shapes[n], dtype) for n, k in zip(shapes, keys[:3])]
            params = {
                "weight_ih": column["nu"] / math.sqrt(inputs) * normal[0],
                "weight_hh": column["sigma"] / math.sqrt(hidden) * normal[1],
                "bias_ih": (column["mu"] + column["rho"] * normal[2][:, None])[:, 0],
                "bias_hh": jnp.zeros(shapes["bias_hh"], dtype),
            }
        if recurrent_init is not None:
            blocks = jr.split(keys[1], self.gates)
            params["weight_hh"] = jnp.concatenate(
                [recurrent_init(k, (hidden, hidden), dtype) for k in blocks]
            )
        return params


def _lstm_gates(z):
    """(i, f, g, o) activated, from the preactivation z (..., 4N)."""
    # One sigmoid over all 4N entries, then the slices: XLA's CPU code runs one
    # contiguous loop instead of three strided ones (the LSTM's forward scan 1.6x
    # faster). The g block's sigmoid is wasted; every value is the same as per slice.
    n = z.shape[-1] // 4
    s = jax.nn.sigmoid(z)
    return s[..., :n], s[..., n:2 * n], jnp.tanh(z[..., 2 * n:3 * n]), s[..., 3 * n:]


def _lstm_update(gates, state):
    """concat(h', c') from the activated gates and the previous state concat(h, c)."""
    i, f, g, o = gates
    c = f * state[..., state.shape[-1] // 2:] + i * g
    return jnp.concatenate([o * jnp.tanh(c), c], axis=-1)


@dataclasses.dataclass(frozen=True)
class LSTM(_Gated):
    r"""LSTM with PyTorch's gate order i, f, g, o; state = concat(h, c), S = 2N.

    .. math::
        (i, f, g, o) = W_{ih} x + b_{ih} + W_{hh} h + b_{hh},\quad
        c' = \sigma(f) \odot c + \sigma(i) \odot \tanh(g),\quad
        h' = \sigma(o) \odot \tanh(c').
    """

    gates = 4

    def gate_values(self, params, state, x):
        """The activated gates ``(i, f, g, o)``, each (N,), of one step from ``state``."""
        h = state[: state.shape[-1] // 2]
        z = params["weight_ih"] @ x + params["bias_ih"] + params["weight_hh"] @ h
        return _lstm_gates(z + params["bias_hh"])

    def step(self, params, state, x):
        return _lstm_update(self.gate_values(params, state, x), state)

    # The split the training loop's fast path uses (gradspec.training.recurrence):
    # step(params, s, x) = activate(drive(params, x) + recurrent_matrix(params) @ h, s).
    def drive(self, params, xs):
        """The input part of the gates' preactivation, :math:`W_{ih} x + b_{ih} +
        b_{hh}`, of xs (..., D) at once: (..., 4N)."""
        b = params["bias_ih"] + params["bias_hh"]
        return xs @ params["weight_ih"].T + b[(None,) * (xs.ndim - 1)]

    def recurrent_matrix(self, params):
        """:math:`W_{hh}` (4N, N): what multiplies the previous h."""
        return params["weight_hh"]

    def activate(self, z, state):
        """The new state concat(h', c') (..., 2N) from the gates' whole preactivation
        z (..., 4N) and the previous state (..., 2N)."""
        return _lstm_update(_lstm_gates(z), state)

    def state_size(self, hidden):
        return 2 * hidden

    def output_size(self, state_size):
        return state_size // 2


@dataclasses.dataclass(frozen=True)
class GRU(_Gated):
    r"""GRU with PyTorch's gate order r, z, n; S = N.

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}),\quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}),
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})),\quad
        h' = (1 - z) \odot n + z \odot h.
    """

    gates = 3

    def step(self, params, state, x):
        xr, xz, xn = jnp.split(params["weight_ih"] @ x + params["bias_ih"], 3)
        hr, hz, hn = jnp.split(params["weight_hh"] @ state + params["bias_hh"], 3)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        return (1 - z) * n + z * state

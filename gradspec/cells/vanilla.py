r"""The vanilla (Elman) RNN, :math:`h_t = f(W_{hh} h_{t-1} + W_{xh} x_t + b)`, with
closed-form Jacobians."""

from __future__ import annotations

import dataclasses
from typing import Callable, Union

import jax
import jax.numpy as jnp
import jax.random as jr

from .. import init as _init
from .._nonlinearities import activation, check_nonlinearity, slope
from ._base import Cell, _default_dtype, _matrix_shape


class ElmanParams:
    """The params of the Elman family, ``W_hh`` (N, N), ``W_xh`` (N, D), ``b`` (N,): their
    sizes, checks and init, shared by :class:`RNN` and
    :class:`~gradspec.cells.RateRNN`."""

    def hidden_size(self, params):
        return _matrix_shape(params, "W_hh", type(self).__name__)[0]

    def input_size(self, params):
        return _matrix_shape(params, "W_xh", type(self).__name__)[1]

    def param_shapes(self, hidden, inputs):
        return {"W_hh": (hidden, hidden), "W_xh": (hidden, inputs), "b": (hidden,)}

    def check_params(self, params):
        shape = _matrix_shape(params, "W_hh", type(self).__name__)
        if shape[0] != shape[1]:
            raise ValueError(f"`W_hh` must be square (N, N); got {shape}.")
        super().check_params(params)

    def init(self, key, hidden, inputs, *, recurrent_init=None, dtype=None):
        """Params with ``W_hh = recurrent_init`` (default ``gaussian(1.0)``),
        ``W_xh ~ N(0, 1/D)`` and ``b = 0``."""
        dtype = _default_dtype(dtype)
        recurrent_init = recurrent_init or _init.gaussian(1.0)
        k_hh, k_xh = jr.split(key)
        return {
            "W_hh": recurrent_init(k_hh, (hidden, hidden), dtype),
            "W_xh": _init.gaussian(1.0)(k_xh, (hidden, inputs), dtype),
            "b": jnp.zeros((hidden,), dtype),
        }


@dataclasses.dataclass(frozen=True)
class RNN(ElmanParams, Cell):
    r"""Vanilla (Elman) RNN.

    .. math::
        a_t = W_{hh} h_{t-1} + W_{xh} x_t + b, \qquad h_t = f(a_t),
        \qquad J_t = \mathrm{diag}(f'(a_t))\, W_{hh}.

    Args:
        nonlinearity: ``"tanh"``, ``"sigmoid"``, ``"relu"``, ``"linear"`` or any
            elementwise differentiable callable ``f``.

    Params: ``W_hh`` (N, N), ``W_xh`` (N, D), ``b`` (N,).

    Examples:
        >>> import jax, gradspec
        >>> cell = gradspec.cells.RNN("tanh")
        >>> params = cell.init(jax.random.key(0), hidden=8, inputs=2)
        >>> cell.step(params, jax.numpy.zeros(8), jax.numpy.ones(2)).shape
        (8,)
    """

    nonlinearity: Union[str, Callable] = "tanh"

    def __post_init__(self):
        check_nonlinearity(self.nonlinearity)

    @property
    def f(self) -> Callable:
        return activation(self.nonlinearity)

    @property
    def name(self) -> str:
        nl = self.nonlinearity
        return nl if isinstance(nl, str) else getattr(nl, "__name__", "custom")

    def preactivation(self, params, state, x):
        return params["W_hh"] @ state + params["W_xh"] @ x + params["b"]

    def step(self, params, state, x):
        return self.f(self.preactivation(params, state, x))

    def slope(self, a: jax.Array) -> jax.Array:
        """f'(a) elementwise (cancellation-free for tanh and sigmoid)."""
        return slope(self.nonlinearity, a)

    # Closed forms: J = diag(f'(a)) W_hh.
    def jacobian(self, params, state, x):
        return self.slope(self.preactivation(params, state, x))[:, None] * params["W_hh"]

    def jvp(self, params, state, x, tangents):
        d = self.slope(self.preactivation(params, state, x))
        return d[:, None] * (params["W_hh"] @ tangents)

    def vjp(self, params, state, x, cotangent):
        d = self.slope(self.preactivation(params, state, x))
        return (cotangent * d) @ params["W_hh"]

    def step_and_residuals(self, params, state, x):
        # Save f'(a_t) in the forward pass: the reverse step is then one mat-vec,
        # (g * f'(a_t)) @ W_hh, instead of recomputing a_t (4N^2 flops/step, not 6N^2).
        a = self.preactivation(params, state, x)
        return self.f(a), self.slope(a)

    def vjp_from_residuals(self, params, slope, cotangent):
        return (cotangent * slope) @ params["W_hh"]

    # The split the training loop's fast path uses (gradspec.training.recurrence):
    # step(params, h, x) = activate(drive(params, x) + recurrent_matrix(params) @ h, h).
    def drive(self, params, xs):
        """The input part of the preactivation, :math:`W_{xh} x + b`, of xs (..., D) at
        once: (..., N)."""
        return xs @ params["W_xh"].T + params["b"][(None,) * (xs.ndim - 1)]

    def recurrent_matrix(self, params):
        """:math:`W_{hh}` (N, N): what multiplies the previous state."""
        return params["W_hh"]

    def activate(self, z, state):
        """The new state from the whole preactivation z (..., N): :math:`f(z)`."""
        return self.f(z)

r"""Elementwise nonlinearities f of vanilla RNNs: f, a cancellation-free f', gamma = sup|f'|.

The bottom of the stack: the cells (``h_t = f(a_t)``) and the mean-field theory
(:math:`E[f(z)^2]`, :math:`\chi = \sigma_w^2 E[f'(z)^2]`) both read f and f' from here,
so neither needs the other.
"""

from __future__ import annotations

from typing import Callable, Union

import jax
import jax.numpy as jnp

Nonlinearity = Union[str, Callable]


def _linear(a):
    return a


#: Built-in elementwise nonlinearities and their derivative's supremum gamma = sup|f'|
#: (Pascanu et al. 2013 use gamma in the vanishing bound).
NONLINEARITIES: dict[str, tuple[Callable, float]] = {
    "tanh": (jnp.tanh, 1.0),
    "sigmoid": (jax.nn.sigmoid, 0.25),
    "relu": (jax.nn.relu, 1.0),
    "linear": (_linear, 1.0),
}


def _tanh_slope(a):
    # sech^2 a = 4 e^{-2|a|} / (1 + e^{-2|a|})^2: 1 - tanh(a)^2 cancels to 0 in float32
    # for |a| > 9 and loses all digits from |a| ~ 4, which corrupts the most
    # contracting Lyapunov exponents.
    e = jnp.exp(-2 * jnp.abs(a))
    return 4 * e / (1 + e) ** 2


def _sigmoid_slope(a):
    # sigma(a) sigma(-a): sigma(a) (1 - sigma(a)) cancels for large positive a.
    return jax.nn.sigmoid(a) * jax.nn.sigmoid(-a)


#: Derivatives written to keep full relative precision where autodiff's would cancel.
_STABLE_SLOPES = {"tanh": _tanh_slope, "sigmoid": _sigmoid_slope}


def check_nonlinearity(nonlinearity) -> None:
    """A known name or a callable; raise naming ``nonlinearity`` otherwise."""
    if isinstance(nonlinearity, str) and nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"`nonlinearity` must be one of {sorted(NONLINEARITIES)} or a callable; "
            f"got {nonlinearity!r}."
        )
    if not isinstance(nonlinearity, str) and not callable(nonlinearity):
        raise TypeError(
            f"`nonlinearity` must be a name in {sorted(NONLINEARITIES)} or an elementwise "
            f"callable; got {type(nonlinearity).__name__}."
        )


def activation(nonlinearity: Nonlinearity) -> Callable:
    """f itself: the built-in function for a name, the callable otherwise."""
    return NONLINEARITIES[nonlinearity][0] if isinstance(nonlinearity, str) else nonlinearity


def slope(nonlinearity: Nonlinearity, a: jax.Array) -> jax.Array:
    """f'(a) elementwise: a cancellation-free formula for tanh and sigmoid, one
    forward-mode pass (exact for any elementwise f) otherwise."""
    stable = _STABLE_SLOPES.get(nonlinearity) if isinstance(nonlinearity, str) else None
    if stable is not None:
        return stable(a)
    return jax.jvp(activation(nonlinearity), (a,), (jnp.ones_like(a),))[1]

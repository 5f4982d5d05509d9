r"""Continuous-time rate networks, discretised: :class:`RateRNN`.

Neuroscience's standard recurrent model (Sompolinsky, Crisanti & Sommers 1988; Engelken,
Wolf & Abbott 2023):

.. math::
    \tau \frac{dh}{dt} = -h + W_{hh}\, \phi(h) + W_{xh} x + b,

integrated over one step of length ``dt`` with the input held fixed during the step:

- ``method="euler"``: :math:`h_{t} = h_{t-1} + \frac{dt}{\tau} v(h_{t-1})`,
  :math:`v(h) = -h + W_{hh}\phi(h) + W_{xh}x + b`, whose Jacobian is closed form,
  :math:`J_t = (1 - \frac{dt}{\tau}) I + \frac{dt}{\tau} W_{hh}\,\mathrm{diag}(\phi'(h_{t-1}))`;
- ``method="rk4"``: the classical fourth-order Runge–Kutta step (Jacobians by autodiff).

Exponents come per step; divide by ``dt`` (:meth:`RateRNN.per_unit_time`) for the
per-unit-time exponents the continuous-time literature reports. For
:math:`\phi = \tanh`, :math:`W_{hh} \sim \mathcal N(0, g^2/N)` and no input, the
network is chaotic for g > 1 as N grows (SCS 1988).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Union

import jax
import jax.numpy as jnp

from .._nonlinearities import activation, check_nonlinearity, slope
from ._base import Cell
from .vanilla import ElmanParams

__all__ = ["RateRNN"]


@dataclasses.dataclass(frozen=True)
class RateRNN(ElmanParams, Cell):
    r"""Rate network :math:`\tau \dot h = -h + W_{hh}\phi(h) + W_{xh} x + b`, one step of
    length ``dt`` (module doc).

    Args:
        nonlinearity: :math:`\phi`, as :class:`~gradspec.cells.RNN`'s (``"tanh"``, ...).
        dt: step length (> 0), in the units of ``tau``.
        tau: time constant (> 0).
        method: ``"euler"`` or ``"rk4"``.

    Params (as :class:`~gradspec.cells.RNN`'s): ``W_hh`` (N, N), ``W_xh`` (N, D),
    ``b`` (N,); ``init`` draws ``W_hh`` ~ N(0, 1/N) unless ``recurrent_init`` is given
    (``gradspec.init.gaussian(g)``: the g of Sompolinsky et al.).

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RateRNN("tanh", dt=0.1)
        >>> params = cell.init(jax.random.key(0), hidden=4, inputs=1)
        >>> cell.step(params, jnp.zeros(4), jnp.zeros(1)).tolist()  # h = 0 is fixed
        [0.0, 0.0, 0.0, 0.0]
    """

    nonlinearity: Union[str, Callable] = "tanh"
    dt: float = 0.1
    tau: float = 1.0
    method: str = "euler"

    def __post_init__(self):
        check_nonlinearity(self.nonlinearity)
        for name in ("dt", "tau"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a number > 0; got {value!r}.")
        if self.method not in ("euler", "rk4"):
            raise ValueError(f"`method` must be 'euler' or 'rk4'; got {self.method!r}.")

    @property
    def f(self) -> Callable:
        return activation(self.nonlinearity)

    def slope(self, h: jax.Array) -> jax.Array:
        r""":math:`\phi'(h)` elementwise."""
        return slope(self.nonlinearity, h)

    def velocity(self, params, h, x):
        r""":math:`\dot h = (-h + W_{hh}\phi(h) + W_{xh} x + b) / \tau`."""
        return (-h + params["W_hh"] @ self.f(h) + params["W_xh"] @ x + params["b"]) / self.tau

    def step(self, params, state, x):
        v, dt = (lambda h: self.velocity(params, h, x)), self.dt
        if self.method == "euler":
            return state + dt * v(state)
        k1 = v(state)
        k2 = v(state + 0.5 * dt * k1)
        k3 = v(state + 0.5 * dt * k2)
        k4 = v(state + dt * k3)
        return state + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    def per_unit_time(self, exponents: jax.Array) -> jax.Array:
        """Per-step exponents (natural log per step) as rates per unit time."""
        return jnp.asarray(exponents) / self.dt

    # Euler's closed form J = (1 - a) I + a W diag(phi'(h)), a = dt / tau; RK4 uses the
    # autodiff methods of Cell.
    def _euler(self) -> bool:
        return self.method == "euler"

    def jacobian(self, params, state, x):
        if not self._euler():
            return Cell.jacobian(self, params, state, x)
        a = self.dt / self.tau
        return (1 - a) * jnp.eye(state.shape[0], dtype=state.dtype) + a * (
            params["W_hh"] * self.slope(state)[None, :])

    def jvp(self, params, state, x, tangents):
        if not self._euler():
            return Cell.jvp(self, params, state, x, tangents)
        a = self.dt / self.tau
        return (1 - a) * tangents + a * (params["W_hh"] @ (self.slope(state)[:, None] * tangents))

    def vjp(self, params, state, x, cotangent):
        if not self._euler():
            return Cell.vjp(self, params, state, x, cotangent)
        a = self.dt / self.tau
        return (1 - a) * cotangent + a * (cotangent @ params["W_hh"]) * self.slope(state)

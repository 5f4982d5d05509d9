r"""Recurrent cells: the ``Cell`` contract and the built-in cells.

A cell is data, not magic. ``cell.step(params, state, x) -> state`` is a pure function of a
flat state vector (an LSTM's state is ``concat(h, c)``), ``params`` is a plain dict of arrays,
and the cell object itself only holds static choices (the nonlinearity), so it is hashable
and passes through ``jax.jit`` as a static argument.

Every cell gets exact step Jacobians :math:`J_t = \partial h_t / \partial h_{t-1}` by
automatic differentiation (``jax.jacrev`` / ``jax.jvp`` / ``jax.vjp`` of ``step``). The
vanilla :class:`RNN` overrides them with the closed form
:math:`J_t = \mathrm{diag}(f'(a_t))\, W_{hh}`, which is O(N^2) per product instead of a
trace through the step. A user's own step function becomes a cell with :class:`StepCell`;
stacked layers (``torch.nn.LSTM(num_layers=L)``) become one cell with :class:`Stack`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from typing import Any, Callable, Mapping, Union

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from . import init as _init
from ._checks import check_finite, check_floating
from ._nonlinearities import NONLINEARITIES, activation, check_nonlinearity, slope

Params = Mapping[str, jax.Array]

__all__ = ["Cell", "RNN", "LSTM", "GRU", "StepCell", "Stack", "as_cell", "NONLINEARITIES"]


class Cell:
    """Base class and contract of a recurrent cell.

    Subclasses implement ``step``, ``state_size``, ``hidden_size``, ``input_size``,
    ``init`` and ``param_shapes``. The Jacobian methods below are exact by autodiff and
    may be overridden by a closed form (see :class:`RNN`).
    """

    def step(self, params: Params, state: jax.Array, x: jax.Array) -> jax.Array:
        """One step ``h_t = F(params, h_{t-1}, x_t)``; ``state`` (S,), ``x`` (D,)."""
        raise self._missing("step(self, params, state, x) -> state")

    def state_size(self, hidden: int) -> int:
        """Length S of the flat state for ``hidden`` units."""
        return hidden

    def hidden_size(self, params: Params) -> int:
        """Number of hidden units N read off ``params``."""
        raise self._missing("hidden_size(self, params) -> int")

    def input_size(self, params: Params) -> int:
        """Input dimension D read off ``params``."""
        raise self._missing("input_size(self, params) -> int (or None: any D)")

    def param_shapes(self, hidden: int, inputs: int) -> dict[str, tuple[int, ...]]:
        """Expected shape of every parameter."""
        raise self._missing("param_shapes(self, hidden, inputs) -> dict of shapes")

    def init(self, key, hidden: int, inputs: int, *, recurrent_init=None, dtype=None):
        """A params dict for ``hidden`` units and ``inputs`` input channels."""
        raise self._missing("init(self, key, hidden, inputs, *, recurrent_init=None, "
                            "dtype=None) -> params")

    def _missing(self, signature: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} must implement `{signature}` (a gradspec Cell "
            "subclass defines step, hidden_size, input_size and param_shapes; or wrap a "
            "step function as gradspec.cells.StepCell(step_fn, size=S)).")

    def output_size(self, state_size: int) -> int:
        """How many leading state entries are the visible output h (rest: memory)."""
        return state_size

    # -- exact derivatives of ``step`` w.r.t. the state, by autodiff ------------------
    def jacobian(self, params, state, x) -> jax.Array:
        """J = d step / d state, shape (S, S), row i = d h_t[i] / d h_{t-1}."""
        return jax.jacrev(self.step, argnums=1)(params, state, x)

    def jvp(self, params, state, x, tangents) -> jax.Array:
        """J @ tangents for tangents of shape (S, k), without forming J."""
        push = lambda v: jax.jvp(lambda h: self.step(params, h, x), (state,), (v,))[1]
        return jax.vmap(push, in_axes=1, out_axes=1)(tangents)

    def vjp(self, params, state, x, cotangent) -> jax.Array:
        """cotangent @ J for a cotangent of shape (S,) (one reverse-mode step)."""
        _, pull = jax.vjp(lambda h: self.step(params, h, x), state)
        return pull(cotangent)[0]

    # -- one reverse step with what the forward pass already computed ---------------
    def step_and_residuals(self, params, state, x):
        """``(step(params, state, x), residuals)``: the residuals are whatever
        :meth:`vjp_from_residuals` needs, saved during the forward scan (by default the
        step's inputs, so the reverse step re-traces it)."""
        return self.step(params, state, x), (state, x)

    def vjp_from_residuals(self, params, residuals, cotangent) -> jax.Array:
        """cotangent @ J from the residuals of :meth:`step_and_residuals`."""
        state, x = residuals
        return self.vjp(params, state, x, cotangent)

    # -- input checks at the API boundary ------------------------------------------
    def check_params(self, params: Any) -> None:
        """Raise ``TypeError``/``ValueError`` naming the bad parameter."""
        if not isinstance(params, Mapping):
            raise TypeError(
                f"`params` of {type(self).__name__} must be a dict of arrays; "
                f"got {type(params).__name__}."
            )
        hidden, inputs = self.hidden_size(params), self.input_size(params)
        for name, shape in self.param_shapes(hidden, inputs).items():
            if name not in params:
                raise ValueError(
                    f"`params` of {type(self).__name__} is missing {name!r}; "
                    f"expected keys {sorted(self.param_shapes(hidden, inputs))}."
                )
            got = tuple(np.shape(params[name]))
            if got != shape:
                raise ValueError(
                    f"`params[{name!r}]` must have shape {shape} for N={hidden}, "
                    f"D={inputs}; got {got}."
                )


def _matrix_shape(params: Params, name: str, cell: str) -> tuple[int, int]:
    if not isinstance(params, Mapping) or name not in params:
        raise ValueError(f"`params` of {cell} must be a dict with key {name!r}.")
    shape = np.shape(params[name])
    if len(shape) != 2:
        raise ValueError(f"`params[{name!r}]` must be a matrix; got shape {shape}.")
    return shape


def _default_dtype(dtype):
    # float32 unless the user enabled x64 and asked for nothing else.
    return jnp.dtype(dtype) if dtype is not None else jnp.zeros(()).dtype


@dataclasses.dataclass(frozen=True)
class RNN(Cell):
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

    def hidden_size(self, params):
        return _matrix_shape(params, "W_hh", "RNN")[0]

    def input_size(self, params):
        return _matrix_shape(params, "W_xh", "RNN")[1]

    def param_shapes(self, hidden, inputs):
        return {"W_hh": (hidden, hidden), "W_xh": (hidden, inputs), "b": (hidden,)}

    def check_params(self, params):
        shape = _matrix_shape(params, "W_hh", "RNN")
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
        i, f, g, o = jnp.split(z + params["bias_hh"], 4)
        return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)

    def step(self, params, state, x):
        i, f, g, o = self.gate_values(params, state, x)
        c = f * state[state.shape[-1] // 2:] + i * g
        return jnp.concatenate([o * jnp.tanh(c), c])

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


@dataclasses.dataclass(frozen=True)
class StepCell(Cell):
    """A user's own pure step function ``step_fn(params, state, x) -> state`` as a cell.

    Its Jacobians come from autodiff. ``size`` is the state length S; ``params`` may be
    any pytree (the shape checks of the built-in cells do not apply).

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.StepCell(lambda p, h, x: jnp.tanh(p["W"] @ h + x), size=3)
        >>> cell.step({"W": jnp.eye(3)}, jnp.zeros(3), jnp.ones(3)).shape
        (3,)
    """

    step_fn: Callable = None
    size: int = None

    def __post_init__(self):
        if not callable(self.step_fn):
            raise TypeError(f"`step_fn` must be callable; got {type(self.step_fn)}.")
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"`size` must be a positive int; got {self.size!r}.")

    def step(self, params, state, x):
        return self.step_fn(params, state, x)

    def hidden_size(self, params):
        return self.size

    def input_size(self, params):
        return None

    def check_params(self, params):
        pass


@dataclasses.dataclass(frozen=True)
class Stack(Cell):
    r"""Stacked recurrent layers as one cell, run as ``torch.nn.LSTM(num_layers=L)`` runs
    them: layer 0 reads :math:`x_t`, layer :math:`l > 0` reads the visible output (the
    first ``output_size`` entries) of layer :math:`l - 1` *at the same step* :math:`t`.

    **State layout: top layer first.** The state is the layers' states concatenated from
    the last layer down to layer 0, :math:`(s^{L-1}, \dots, s^1, s^0)` (two LSTM layers:
    ``(h1, c1, h0, c0)``), so its leading ``output_size`` entries are the last layer's
    :math:`h`, the network's output, and readouts on the visible output (the default one
    included) read it unchanged. :meth:`split_state` and :meth:`join_states` convert from
    and to layer order (PyTorch's ``h_n``/``c_n`` list layer 0 first).

    **Widths.** Every layer has the same width N (as in torch's stacked modules), and the
    ``hidden`` of ``init``, ``state_size`` and ``hidden_size`` is that per-layer N:
    ``state_size(N)`` is the whole state's length :math:`\sum_l S_l(N)`, so
    ``state_size(hidden_size(params))`` and ``output_size`` (which gets only the state's
    length) are well defined. Layers of different widths are refused.

    **Jacobian.** :math:`J_t = \partial s_t / \partial s_{t-1}` of the whole step, by
    autodiff. In layer order it is block lower triangular: the diagonal blocks are the
    layers' own Jacobians, the block :math:`(l, k < l)` carries layer k's new output up
    through the same step; nothing flows down. So its exponents are the layers' together.

    Params: ``{"layer0": params_0, "layer1": params_1, ...}``, one entry per layer (a dict,
    so errors name ``params['layer1']['W_hh']``).

    Examples:
        >>> import jax, gradspec
        >>> cell = gradspec.cells.Stack((gradspec.cells.LSTM(), gradspec.cells.GRU()))
        >>> params = cell.init(jax.random.key(0), hidden=4, inputs=2)
        >>> size = cell.state_size(cell.hidden_size(params))
        >>> size, cell.output_size(size)  # (h1 (GRU), h0, c0 (LSTM)); h1 is the output
        (12, 4)
        >>> cell.step(params, jax.numpy.zeros(size), jax.numpy.ones(2)).shape
        (12,)
    """

    layers: tuple = ()

    def __post_init__(self):
        if not isinstance(self.layers, (tuple, list)) or not self.layers:
            raise TypeError(f"`layers` must be a non-empty tuple of cells; got {self.layers!r}.")
        for layer in self.layers:
            if not isinstance(layer, Cell):
                raise TypeError(f"every one of `layers` must be a gradspec Cell; got {layer!r}.")
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def names(self) -> tuple[str, ...]:
        """The params keys, ``("layer0", "layer1", ...)``."""
        return tuple(f"layer{l}" for l in range(len(self.layers)))

    def _layer_params(self, params) -> list:
        if not isinstance(params, Mapping) or set(params) != set(self.names):
            error = ValueError if isinstance(params, Mapping) else TypeError
            got = sorted(map(str, params)) if error is ValueError else type(params).__name__
            raise error(f"`params` of a {len(self.layers)}-layer Stack must be a dict "
                        f"with keys {list(self.names)}; got {got}.")
        return [(n, layer, params[n]) for n, layer in zip(self.names, self.layers)]

    def _width(self, size: int) -> int:
        """The per-layer width N whose layer states add up to ``size``."""
        guess = size // max(self.state_size(1), 1)  # exact when S_l(N) is linear in N
        for n in itertools.chain((guess,), range(1, size + 1)):
            if n >= 1 and self.state_size(n) == size:
                return n
        raise ValueError(f"no width N gives {self!r} a state of length {size}.")

    def split_state(self, state) -> tuple:
        """The layers' states ``(s0, s1, ...)``, in layer order, of a Stack state."""
        n = self._width(state.shape[-1])
        parts, end = [], state.shape[-1]
        for layer in self.layers:
            start = end - layer.state_size(n)
            parts.append(state[..., start:end])
            end = start
        return tuple(parts)

    def join_states(self, states) -> jax.Array:
        """The Stack state of the layers' states ``(s0, s1, ...)`` given in layer order."""
        if len(states) != len(self.layers):
            raise ValueError(f"`states` must hold one state per layer ({len(self.layers)}); "
                             f"got {len(states)}.")
        return jnp.concatenate(list(states)[::-1], axis=-1)

    def step(self, params, state, x):
        new, inputs = [], x
        for (name, layer, p), s in zip(self._layer_params(params), self.split_state(state)):
            s = layer.step(p, s, inputs)
            inputs = s[: layer.output_size(s.shape[-1])]
            new.append(s)
        return self.join_states(new)

    def state_size(self, hidden):
        return sum(layer.state_size(hidden) for layer in self.layers)

    def output_size(self, state_size):
        last = self.layers[-1]
        return last.output_size(last.state_size(self._width(state_size)))

    def hidden_size(self, params):
        widths = {n: layer.hidden_size(p) for n, layer, p in self._layer_params(params)}
        if len(set(widths.values())) > 1:
            raise ValueError("the layers of a Stack must share one width N (hidden units); "
                             f"got the widths {widths} of `params[...]`.")
        return widths["layer0"]

    def input_size(self, params):
        return self.layers[0].input_size(self._layer_params(params)[0][2])

    def _inputs_per_layer(self, hidden, inputs) -> list:
        sizes = [inputs]
        for layer in self.layers[:-1]:
            sizes.append(layer.output_size(layer.state_size(hidden)))
        return sizes

    def param_shapes(self, hidden, inputs):
        """``{"layer0": shapes_0, ...}``: layer l > 0 reads layer l-1's output."""
        return {n: layer.param_shapes(hidden, d) for n, layer, d in
                zip(self.names, self.layers, self._inputs_per_layer(hidden, inputs))}

    def init(self, key, hidden, inputs, *, recurrent_init=None, dtype=None):
        """Every layer with ``hidden`` units (its own ``init``); layer 0 reads ``inputs``
        channels, layer l > 0 the output of layer l - 1."""
        keys = jr.split(key, len(self.layers))
        return {n: layer.init(k, hidden, d, recurrent_init=recurrent_init, dtype=dtype)
                for n, layer, k, d in zip(self.names, self.layers, keys,
                                          self._inputs_per_layer(hidden, inputs))}

    def check_params(self, params):
        pairs = self._layer_params(params)
        for name, layer, p in pairs:
            try:
                layer.check_params(p)
            except (TypeError, ValueError) as err:  # name the layer: params['layer1']...
                msg = str(err).replace("`params", f"`params[{name!r}]")
                msg = msg if msg != str(err) else f"`params[{name!r}]`: {err}"
                raise type(err)(msg) from err
        hidden = self.hidden_size(params)
        for (name0, below, _), (name, layer, p) in zip(pairs, pairs[1:]):
            out, got = below.output_size(below.state_size(hidden)), layer.input_size(p)
            if got is not None and got != out:
                raise ValueError(f"`params[{name!r}]` reads {got} inputs, but "
                                 f"`params[{name0!r}]`'s layer outputs {out}: layer l + 1 "
                                 "reads layer l's output.")


def as_cell(cell: Any) -> Cell:
    """Return ``cell`` if it is a :class:`Cell`; raise a clear error otherwise."""
    if isinstance(cell, Cell):
        return cell
    if callable(cell):
        raise TypeError(
            "`cell` must be a gradspec Cell; wrap a plain step function as "
            "`gradspec.cells.StepCell(step_fn, size=S)`."
        )
    raise TypeError("`cell` must be a gradspec Cell (RNN, LSTM, GRU, StepCell, Stack); "
                    f"got {cell!r}.")


# -- input checks shared by every function that takes (cell, params, xs, h0) -----------


def check_params(cell: Cell, params) -> jnp.dtype:
    """Validate ``params`` for ``cell``; return the dtype every computation follows."""
    cell.check_params(params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in flat:
        name = "params" + jax.tree_util.keystr(path)
        if type(leaf).__module__.split(".")[0] == "torch":  # no silent copies of a model
            raise TypeError(
                f"`{name}` is a torch.Tensor; convert the model with "
                "gradspec.interop.from_torch(module) (or pass .detach().numpy()).")
        check_floating(name, leaf)
        check_finite(name, leaf)
    dtype = jnp.result_type(*(leaf for _, leaf in flat)) if flat else jnp.zeros(()).dtype
    if any(np.asarray(leaf).dtype == np.float64 for _, leaf in flat if not isinstance(
            leaf, jax.core.Tracer)) and not jax.config.jax_enable_x64:
        warnings.warn("`params` hold float64 arrays but jax_enable_x64 is off: gradspec "
                      "computes in float32. Enable it (jax.config.update('jax_enable_x64', "
                      "True)) for float64 results.", stacklevel=3)
    return dtype

r"""Stacked recurrent layers as one cell: :class:`Stack`."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Mapping

import jax
import jax.numpy as jnp
import jax.random as jr

from ._base import Cell


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

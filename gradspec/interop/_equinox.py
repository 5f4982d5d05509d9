"""Equinox: ``from_equinox`` for ``equinox.nn.LSTMCell`` and ``GRUCell``."""

from __future__ import annotations

import jax.numpy as jnp

from ..cells import Cell
from ._common import _as_array, _as_stack, _build, _check_dtype, _check_gated


def from_equinox(cell, *, dtype=None) -> tuple[Cell, dict]:
    r"""A gradspec cell and params from an ``equinox.nn.LSTMCell`` or ``GRUCell``.

    Equinox uses PyTorch's gate layout with one input-side ``bias``: the LSTM maps to
    ``bias_ih = bias``, ``bias_hh = 0``. Its GRU adds ``bias_n`` inside the reset
    product, :math:`n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_n))`, and writes
    :math:`h' = n + z \odot (h - n) = (1 - z) n + z h`: PyTorch's GRU with
    ``bias_ih = bias``, ``bias_hh = (0, 0, bias_n)``. ``use_bias=False`` gives zero
    biases. Equinox's LSTM state ``(h, c)`` is gradspec's ``concat(h, c)``. Equinox has
    no stacked cell: a list of cells (layer 0 first) becomes one
    :class:`gradspec.cells.Stack`.

    The conversion is ``jnp`` on static shapes: it runs under ``jax.jit``,
    ``eqx.filter_grad`` (gradients reach the module's arrays) and ``jax.vmap`` (a cell
    built inside ``vmap`` from a batch of keys gives batched params). A module whose
    arrays carry a leading batch axis outside ``vmap`` is refused with that advice.

    Args:
        cell: an ``equinox.nn.LSTMCell`` or ``equinox.nn.GRUCell``, or a list of them.
        dtype: dtype of the returned params; by default float64 if the weights are
            float64 and ``jax_enable_x64`` is on, else float32.

    Returns:
        ``(cell, params)`` as in :func:`from_torch` (a list: a Stack).

    Raises:
        TypeError: anything but an Equinox LSTMCell or GRUCell.
        ValueError: weights with a leading batch axis (use ``jax.vmap``).

    Examples:
        >>> import jax, equinox as eqx
        >>> from gradspec.interop import from_equinox
        >>> gru = eqx.nn.GRUCell(input_size=3, hidden_size=8, key=jax.random.key(0))
        >>> cell, params = from_equinox(gru)
        >>> type(cell).__name__, params["bias_hh"].shape
        ('GRU', (24,))
    """
    dtype = _check_dtype(dtype)
    if isinstance(cell, (list, tuple)):  # stacked layers, layer 0 first
        return _as_stack([from_equinox(c, dtype=dtype) for c in cell])
    if not type(cell).__module__.startswith("equinox"):
        raise TypeError(
            "`cell` must be an equinox.nn.LSTMCell or GRUCell; "
            f"got {type(cell).__name__}."
        )
    import equinox as eqx

    if isinstance(cell, eqx.nn.LSTMCell):
        kind = "lstm"
    elif isinstance(cell, eqx.nn.GRUCell):
        kind = "gru"
    else:
        raise TypeError(
            "`cell` must be an equinox.nn.LSTMCell or GRUCell; "
            f"got {type(cell).__name__}."
        )
    w_ih = _as_array(cell.weight_ih, "cell.weight_ih", 2)
    w_hh = _as_array(cell.weight_hh, "cell.weight_hh", 2)
    rows, n = w_hh.shape
    zeros = jnp.zeros((rows,), w_hh.dtype)
    bias = getattr(cell, "bias", None)
    b_ih = zeros if bias is None else _as_array(bias, "cell.bias", 1)
    b_hh = zeros
    if kind == "gru" and getattr(cell, "bias_n", None) is not None:
        b_n = _as_array(cell.bias_n, "cell.bias_n", 1)
        b_hh = jnp.concatenate([jnp.zeros((2 * n,), b_n.dtype), b_n])
    raw = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    source = f"Equinox {type(cell).__name__}"
    _check_gated(raw, kind, source)
    return _build(kind, None, raw, dtype)

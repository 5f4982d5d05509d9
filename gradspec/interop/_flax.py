"""Flax: ``from_flax`` for linen and nnx LSTMCell, GRUCell and SimpleCell."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from ..cells import Cell
from ._common import _GATES, Kind, _as_array, _check_dtype, _check_kind
from ._common import _as_stack, _build, _check_gated, _merge_nonlinearity
from ._common import _nonlinearity_of

# Flax linen per-gate Dense names (the nnx LSTMCell uses the same, with `if_`).
_FLAX_LSTM = (("ii", "if", "ig", "io"), ("hi", "hf", "hg", "ho"))
_FLAX_GRU = (("ir", "iz", "in"), ("hr", "hz", "hn"))
_FLAX_SIMPLE = (("i",), ("h",))
_FLAX_LAYOUTS = {"lstm": _FLAX_LSTM, "gru": _FLAX_GRU, "rnn": _FLAX_SIMPLE}


def _unwrap_flax_params(params: Mapping) -> Mapping:
    """Drop the {'params': ...} level and single-child wrappers (nn.RNN's 'cell')."""
    while (
        isinstance(params, Mapping)
        and _flax_kind_of_keys(params) is None
        and len(params) == 1
        and isinstance(next(iter(params.values())), Mapping)
    ):
        params = next(iter(params.values()))
    return params


def _dense(params: Mapping, name: str, bias: bool):
    """(kernel (in, out), bias (out,) or None) of one linen Dense's param dict."""
    if name not in params or not isinstance(params[name], Mapping):
        raise ValueError(
            f"`params` is missing the Dense {name!r}; got keys {sorted(params)}."
        )
    d = params[name]
    if "kernel" not in d:
        raise ValueError(f"`params[{name!r}]` has no 'kernel'; got keys {sorted(d)}.")
    kernel = _as_array(d["kernel"], f"params[{name!r}]['kernel']", 2)
    b = (
        _as_array(d["bias"], f"params[{name!r}]['bias']", 1)
        if bias and "bias" in d
        else None
    )
    return kernel, b


def _describe(p) -> str:
    return f"keys {sorted(p)}" if isinstance(p, Mapping) else type(p).__name__


def _flax_kind_of_keys(params: Mapping) -> str | None:
    keys = frozenset(params)
    for kind, (ins, hids) in _FLAX_LAYOUTS.items():
        if keys == frozenset(ins + hids):
            return kind
    return None


def _stack(kernels_and_biases, out: int, dtype) -> tuple[jax.Array, jax.Array]:
    """Per-gate (in, N) kernels, biases (or None) -> (G N, in) weight, (G N,) bias."""
    weight = jnp.concatenate([k.T for k, _ in kernels_and_biases])
    zeros = jnp.zeros((out,), dtype)
    bias = jnp.concatenate([zeros if b is None else b for _, b in kernels_and_biases])
    return weight, bias


def _linen_raw(kind: str, params: Mapping, residual: bool) -> dict:
    """Gated-layout arrays from a linen cell's param dict (kernels are (in, out))."""
    ins, hids = _FLAX_LAYOUTS[kind]
    # Which Dense has a bias in linen: LSTM hidden side; GRU input side and hn;
    # Simple i.
    has_bias = {"lstm": (False, True), "gru": (True, False), "rnn": (True, False)}[kind]
    i_parts = [_dense(params, n, has_bias[0]) for n in ins]
    h_parts = [_dense(params, n, has_bias[1] or n == "hn") for n in hids]
    return _raw_from_parts(kind, i_parts, h_parts, residual)


def _raw_from_parts(kind, i_parts, h_parts, residual) -> dict:
    n = h_parts[0][0].shape[-1]
    dtype = h_parts[0][0].dtype
    # Every per-gate kernel is (in, N): N x N on the hidden side, D x N on the input.
    for parts, rows, side in (
        (h_parts, n, "hidden"),
        (i_parts, i_parts[0][0].shape[0], "input"),
    ):
        for k, b in parts:
            if k.shape != (rows, n) or (b is not None and b.shape != (n,)):
                raise ValueError(
                    f"every {side}-side Flax kernel must have shape ({rows}, {n}) and "
                    "bias "
                    f"({n},); got kernel {k.shape}"
                    + ("" if b is None else f" and bias {b.shape}")
                    + "."
                )
    w_ih, b_ih = _stack(i_parts, n, dtype)
    w_hh, b_hh = _stack(h_parts, n, dtype)
    raw = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    if residual:  # W_h h + h = (W_h + I) h
        raw["weight_hh"] = w_hh + jnp.eye(n, dtype=w_hh.dtype)
    return raw


def _nnx_linear(linear, name: str):
    kernel = _as_array(linear.kernel, f"{name}.kernel", 2)
    bias = getattr(linear, "bias", None)
    return kernel, (None if bias is None else _as_array(bias, f"{name}.bias", 1))


def _nnx_split(linear, name: str, gates: int):
    """A fused nnx Linear (in, G N) -> per gate (kernel (in, N), bias (N,) or None)."""
    kernel, bias = _nnx_linear(linear, name)
    ks = jnp.split(kernel, gates, axis=1)
    bs = jnp.split(bias, gates) if bias is not None else [None] * gates
    return list(zip(ks, bs))


def _check_flax_fns(module, kind: str):
    """gradspec's LSTM/GRU hard-code sigmoid gates and tanh; refuse anything else."""
    gate = getattr(module, "gate_fn", jax.nn.sigmoid)
    act = getattr(module, "activation_fn", jnp.tanh)
    if kind != "rnn" and (gate is not jax.nn.sigmoid or act is not jnp.tanh):
        raise ValueError(
            f"{type(module).__name__} with gate_fn={getattr(gate, '__name__', gate)} "
            f"and activation_fn={getattr(act, '__name__', act)} is not supported: "
            "gradspec's "
            f"{kind.upper()} uses sigmoid gates and tanh. Use gradspec.cells.StepCell."
        )
    return _nonlinearity_of(act) if kind == "rnn" else None


def from_flax(
    cell_or_params,
    params: Mapping | None = None,
    *,
    kind: Kind | None = None,
    nonlinearity=None,
    dtype=None,
) -> tuple[Cell, dict]:
    r"""A gradspec cell and params from a Flax LSTMCell, GRUCell or SimpleCell.

    Accepts a linen cell with its params, a bare linen param dict, or a ``flax.nnx``
    cell (which holds its own params). Flax's per-gate (in, out) kernels are transposed
    and stacked into gradspec's (PyTorch) layout; see :mod:`gradspec.interop` for the
    exact map.
    Linen's and nnx's GRUs differ (linen keeps a hidden n-bias inside the reset product,
    nnx has none); both are PyTorch GRUs exactly, with ``bias_hh = (0, 0, b_hn)`` and
    ``bias_hh = 0`` respectively.

    Flax's LSTM carry is ``(c, h)``; the gradspec state is ``concat(h, c)``.

    Flax has no stacked cell: pass stacked layers as a list of cells (layer 0 first;
    linen cells with a list of their variables as ``params``) to get one
    :class:`gradspec.cells.Stack`.

    The conversion is ``jnp`` on static shapes, so it runs under ``jax.jit`` and
    ``jax.grad`` (gradients reach the Flax variables) and maps with ``jax.vmap``:
    ``jax.vmap(lambda k: from_flax(cell, cell.init(k, h, x))[1])(keys)`` gives params
    with a leading batch axis. Outside ``vmap``, variables whose leaves carry a leading
    batch axis are refused (``ValueError``) with that advice: one call converts one
    cell.

    Args:
        cell_or_params: a ``flax.linen`` ``LSTMCell``/``OptimizedLSTMCell``/``GRUCell``/
            ``SimpleCell`` (then ``params`` is required), a ``flax.nnx`` ``LSTMCell``/
            ``OptimizedLSTMCell``/``GRUCell``/``SimpleCell``, or a linen cell's param
            dict (keys ``ii..ho``, ``ir..hn`` or ``i, h``; a ``{'params': ...}``
            wrapper and ``nn.RNN``'s ``'cell'`` level are unwrapped); or a list of
            these, one per layer.
        params: a linen cell's params (or variables) when ``cell_or_params`` is a linen
            cell; a list of them for a list of linen cells.
        kind: ``"lstm"``, ``"gru"`` or ``"rnn"`` (``SimpleCell``); inferred when None.
        nonlinearity: a ``SimpleCell``'s activation (``"tanh"``, ``"relu"``, ...):
            required for a bare param dict, which does not record it (Flax's default
            is tanh, but a dict may come from a relu cell); a cell records its own
            ``activation_fn``. A bare dict cannot record ``residual=True`` either:
            pass the linen cell for that.
        dtype: dtype of the returned params. By default the cell's computation
            ``dtype`` when it sets one (nnx's ``SimpleCell`` defaults to float32),
            else float64 if the weights are float64 and ``jax_enable_x64`` is on, else
            float32.

    Returns:
        ``(cell, params)`` as in :func:`from_torch` (a list: a Stack).

    Raises:
        ValueError: an unsupported cell (``MGUCell``, ``ConvLSTMCell``, non-default
            ``gate_fn``/``activation_fn`` on a gated cell), a param dict of unknown
            layout, a ``kind`` that contradicts it, a bare ``SimpleCell`` param dict
            without ``nonlinearity``, or arrays with a leading batch axis (use
            ``jax.vmap``).
        TypeError: an object that is none of the above.

    Examples:
        >>> import jax, jax.numpy as jnp, flax.linen as nn
        >>> from gradspec.interop import from_flax
        >>> lstm = nn.LSTMCell(features=8)
        >>> carry = lstm.initialize_carry(jax.random.key(0), (3,))
        >>> variables = lstm.init(jax.random.key(1), carry, jnp.zeros(3))
        >>> cell, params = from_flax(lstm, variables)
        >>> params["weight_ih"].shape, params["weight_hh"].shape
        ((32, 3), (32, 8))
    """
    kind = _check_kind(kind)
    dtype = _check_dtype(dtype)
    if isinstance(cell_or_params, (list, tuple)):  # stacked layers, layer 0 first
        layers = list(cell_or_params)
        each = [None] * len(layers) if params is None else params
        if not isinstance(each, (list, tuple)) or len(each) != len(layers):
            raise ValueError(
                f"`params` must be a list with one entry per layer ({len(layers)}) "
                "for a list of linen cells, or None; "
                f"got {type(params).__name__}."
            )
        return _as_stack([
            from_flax(c, p, kind=kind, nonlinearity=nonlinearity, dtype=dtype)
            for c, p in zip(layers, each)
        ])
    recorded_nl = None
    residual = False
    if isinstance(cell_or_params, Mapping):
        if params is not None:
            raise ValueError(
                "`params` must be None when `cell_or_params` is already a param dict."
            )
        p = _unwrap_flax_params(cell_or_params)
        found = _flax_kind_of_keys(p) if isinstance(p, Mapping) else None
        if found is None:
            raise ValueError(
                "`cell_or_params` is not a Flax LSTMCell/GRUCell/SimpleCell param "
                f"dict: got {_describe(p)}; expected keys ii..io/hi..ho (LSTM), "
                "ir/iz/in/hr/hz/hn (GRU) or i/h (Simple)."
            )
        if kind is not None and kind != found:
            raise ValueError(
                f"`kind` {kind!r} contradicts the param dict, which is {found!r}."
            )
        kind, source = found, "Flax param dict"
        raw = _linen_raw(kind, p, residual=False)
    else:
        try:
            from flax import linen, nnx
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise TypeError(
                "`cell_or_params` must be a Flax cell or a param dict; flax is not "
                f"installed ({err})."
            ) from err
        module = cell_or_params
        name = type(module).__name__
        source = f"Flax {name}"
        found = {
            "LSTMCell": "lstm",
            "OptimizedLSTMCell": "lstm",
            "GRUCell": "gru",
            "SimpleCell": "rnn",
        }.get(name)
        if not isinstance(module, (linen.Module, nnx.Module)):
            raise TypeError(
                "`cell_or_params` must be a flax.linen or flax.nnx LSTMCell, GRUCell "
                f"or SimpleCell, or a param dict; got {name}."
            )
        if found is None:
            raise ValueError(
                f"Flax {name} is not supported; supported cells: LSTMCell, "
                "OptimizedLSTMCell, GRUCell, SimpleCell."
            )
        if kind is not None and kind != found:
            raise ValueError(
                f"`kind` {kind!r} contradicts the {source}, which is {found!r}."
            )
        kind = found
        recorded_nl = _check_flax_fns(module, kind)
        compute = getattr(module, "dtype", None)
        if dtype is None and compute is not None:
            # The cell computes in its `dtype` whatever its params' dtype: follow it.
            dtype = jnp.dtype(jax.dtypes.canonicalize_dtype(compute))
        residual = bool(getattr(module, "residual", False))
        if isinstance(module, linen.Module):
            if not isinstance(params, Mapping):
                raise TypeError(
                    f"`params` (the linen {name}'s variables) is required with a linen "
                    f"cell; got {type(params).__name__}."
                )
            p = _unwrap_flax_params(params)
            if not isinstance(p, Mapping) or _flax_kind_of_keys(p) != kind:
                raise ValueError(
                    f"`params` does not hold a linen {name}'s params; "
                    f"got {_describe(p)}."
                )
            raw = _linen_raw(kind, p, residual)
        else:
            if params is not None:
                raise ValueError(
                    "`params` must be None for a flax.nnx cell (it holds them)."
                )
            if name == "LSTMCell":
                i_parts = [
                    _nnx_linear(getattr(module, a), a)
                    for a in ("ii", "if_", "ig", "io")
                ]
                h_parts = [_nnx_linear(getattr(module, a), a) for a in _FLAX_LSTM[1]]
            else:
                # Fused Linear layers: gate blocks side by side along the output axis.
                i_parts = _nnx_split(module.dense_i, "dense_i", _GATES[kind])
                h_parts = _nnx_split(module.dense_h, "dense_h", _GATES[kind])
            raw = _raw_from_parts(kind, i_parts, h_parts, residual)
    _check_gated(raw, kind, source)
    nl = _merge_nonlinearity(recorded_nl, nonlinearity, kind, source)
    return _build(kind, nl, raw, dtype)


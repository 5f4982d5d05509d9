"""PyTorch: ``from_torch`` and its inverse ``to_torch``."""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from ..cells import GRU, LSTM, RNN, Cell, as_cell, check_params
from ._common import _GATES, _KIND_OF_GATES, Kind, _check_dtype, _check_kind
from ._common import _build, _check_gated, _merge_nonlinearity, _to_numpy

_TORCH_MODES = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}


def _torch_module_info(module) -> tuple[str, str | None, Mapping]:
    """(kind, nonlinearity, state_dict) of a torch RNN/LSTM/GRU module or cell."""
    import torch

    nn = torch.nn
    if isinstance(module, nn.RNNBase):
        if module.bidirectional:
            raise ValueError(
                "bidirectional torch modules are not supported: a gradspec cell runs "
                "one direction. Build a unidirectional module from the forward weights "
                "(the keys without `_reverse`)."
            )
        if getattr(module, "proj_size", 0):
            raise ValueError(
                f"LSTM with proj_size={module.proj_size} is not supported: the "
                "projected state h = W_hr (o * tanh(c)) has no gradspec cell."
            )
        kind = _TORCH_MODES.get(module.mode)
        nl = getattr(module, "nonlinearity", None) if kind == "rnn" else None
    elif isinstance(module, (nn.RNNCell, nn.LSTMCell, nn.GRUCell)):
        kind = next(
            k
            for k, t in (
                ("rnn", nn.RNNCell),
                ("lstm", nn.LSTMCell),
                ("gru", nn.GRUCell),
            )
            if isinstance(module, t)
        )
        nl = module.nonlinearity if kind == "rnn" else None
    else:
        kind = None
    if kind is None:
        raise TypeError(
            "`state_dict_or_module` must be a torch.nn.RNN/LSTM/GRU (or RNNCell/"
            f"LSTMCell/GRUCell) or a state_dict; got {type(module).__name__}."
        )
    return kind, nl, module.state_dict()


def _torch_layer_suffix(state: Mapping, layer: int) -> str:
    keys = [k for k in state if isinstance(k, str)]
    reverse = [k for k in keys if k.endswith("_reverse")]
    if reverse:
        raise ValueError(
            f"bidirectional state_dicts are not supported (found {reverse[0]!r}): a "
            "gradspec cell runs one direction. Drop the `_reverse` keys to use the "
            "forward direction."
        )
    proj = [k for k in keys if re.fullmatch(r"weight_hr_l\d+", k)]
    if proj:
        raise ValueError(
            "LSTM state_dicts with proj_size > 0 are not supported (found "
            f"{proj[0]!r}): the projected state has no gradspec cell."
        )
    if f"weight_hh_l{layer}" in state:
        return f"_l{layer}"
    layers = sorted(
        int(m.group(1)) for k in keys if (m := re.fullmatch(r"weight_hh_l(\d+)", k))
    )
    if layers:
        raise ValueError(
            f"`layer` must be in [0, {layers[-1]}] for this {len(layers)}-layer "
            f"state_dict; got {layer}."
        )
    if "weight_hh" in state:  # an RNNCell/LSTMCell/GRUCell state_dict
        if layer != 0:
            raise ValueError(
                f"`layer` must be 0 for a single cell's state_dict; got {layer}."
            )
        return ""
    raise ValueError(
        f"`state_dict_or_module` has no 'weight_hh_l{layer}' (nor 'weight_hh') key; "
        f"got keys {keys[:8]}. Strip any prefix (such as 'rnn.') from the keys first."
    )


def from_torch(
    state_dict_or_module,
    layer: int = 0,
    *,
    kind: Kind | None = None,
    nonlinearity: str | None = None,
    dtype=None,
) -> tuple[Cell, dict]:
    r"""A gradspec cell and params from one layer of a PyTorch RNN, LSTM or GRU.

    PyTorch's gated layout is gradspec's own, so LSTM and GRU weights are copied as they
    are. A vanilla RNN computes
    :math:`h' = f(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})`, so ``W_hh = weight_hh``,
    ``W_xh = weight_ih`` and ``b = bias_ih + bias_hh``. Missing biases (``bias=False``)
    are zeros.

    Args:
        state_dict_or_module: a ``torch.nn.RNN``/``LSTM``/``GRU`` (or ``RNNCell``/
            ``LSTMCell``/``GRUCell``) module, or its ``state_dict()``: a dict of torch
            tensors or numpy arrays with keys ``weight_ih_l{layer}``,
            ``weight_hh_l{layer}``, ``bias_ih_l{layer}``, ``bias_hh_l{layer}`` (or the
            cells' ``weight_ih``, ...).
        layer: which layer of a stacked module; its inputs are the previous layer's
            outputs, of size N (for ``layer > 0``).
        kind: ``"rnn"``, ``"lstm"`` or ``"gru"``. For a state_dict it is inferred from
            ``weight_hh_l{layer}``'s rows (N: RNN, 3N: GRU, 4N: LSTM) when None; a
            module knows its own.
        nonlinearity: the vanilla RNN's ``"tanh"`` or ``"relu"``. A state_dict does not
            record it, so it defaults to ``"tanh"``: pass ``"relu"`` for a
            ``nonlinearity="relu"`` RNN's state_dict. A module records it
            (``module.nonlinearity``).
        dtype: dtype of the returned params; by default float64 if the weights are
            float64 and ``jax_enable_x64`` is on, else float32.

    Returns:
        ``(cell, params)``: a :class:`gradspec.cells.RNN` (params ``W_hh`` (N, N),
        ``W_xh`` (N, D), ``b`` (N,)), :class:`~gradspec.cells.LSTM` or
        :class:`~gradspec.cells.GRU` (params ``weight_ih`` (G N, D), ``weight_hh``
        (G N, N), ``bias_ih``, ``bias_hh`` (G N,)). The LSTM state is ``concat(h, c)``.

    Raises:
        ValueError: bidirectional modules (``_reverse`` keys), LSTMs with ``proj_size``
            (``weight_hr_l*``), ``layer`` out of range, an unknown ``kind`` or one that
            contradicts the weights' shapes.
        TypeError: an object that is neither a supported module nor a dict.

    Examples:
        >>> import torch, gradspec
        >>> from gradspec.interop import from_torch
        >>> lstm = torch.nn.LSTM(input_size=3, hidden_size=8, num_layers=2)
        >>> cell, params = from_torch(lstm, layer=1)
        >>> type(cell).__name__, params["weight_hh"].shape, params["weight_ih"].shape
        ('LSTM', (32, 8), (32, 8))
    """
    kind = _check_kind(kind)
    layer = check_int("layer", layer, 0)
    dtype = _check_dtype(dtype)
    recorded_kind = recorded_nl = None
    if isinstance(state_dict_or_module, Mapping):
        state, source = state_dict_or_module, "state_dict"
    elif type(state_dict_or_module).__module__.startswith("torch"):
        recorded_kind, recorded_nl, state = _torch_module_info(state_dict_or_module)
        source = f"torch module {type(state_dict_or_module).__name__}"
    else:
        raise TypeError(
            "`state_dict_or_module` must be a torch.nn.RNN/LSTM/GRU module or a "
            "state_dict (dict of tensors or arrays); "
            f"got {type(state_dict_or_module).__name__}."
        )
    suffix = _torch_layer_suffix(state, layer)
    raw = {}
    for name in ("weight_ih", "weight_hh"):
        if name + suffix not in state:
            raise ValueError(f"`state_dict_or_module` is missing {name + suffix!r}.")
        raw[name] = _to_numpy(state[name + suffix], name + suffix)

    w_hh = raw["weight_hh"]
    if w_hh.ndim != 2 or w_hh.shape[1] == 0 or w_hh.shape[0] % w_hh.shape[1]:
        raise ValueError(
            f"'weight_hh{suffix}' must have shape (G*N, N) with G in 1, 3, 4; "
            f"got {w_hh.shape}."
        )
    gates = w_hh.shape[0] // w_hh.shape[1]
    inferred = _KIND_OF_GATES.get(gates)
    if recorded_kind is not None and kind is not None and kind != recorded_kind:
        raise ValueError(
            f"`kind` {kind!r} contradicts the {source}, which is {recorded_kind!r}."
        )
    kind = kind or recorded_kind or inferred
    if kind is None:
        raise ValueError(
            f"cannot infer `kind` from 'weight_hh{suffix}' of shape {w_hh.shape}: "
            f"{gates} gate blocks (expected 1 for rnn, 3 for gru, 4 for lstm)."
        )
    if inferred != kind:
        raise ValueError(
            f"`kind` {kind!r} needs 'weight_hh{suffix}' of shape "
            f"({_GATES[kind]}*N, N); "
            f"got {w_hh.shape}."
        )
    for name in ("bias_ih", "bias_hh"):
        value = state.get(name + suffix)
        raw[name] = (
            np.zeros((w_hh.shape[0],), w_hh.dtype)
            if value is None
            else _to_numpy(value, name + suffix)
        )
    _check_gated(raw, kind, source)
    nl = _merge_nonlinearity(recorded_nl, nonlinearity, kind, source)
    return _build(kind, nl, raw, dtype)


def to_torch(cell: Cell, params):
    r"""A one-layer ``torch.nn.RNN``/``LSTM``/``GRU`` holding a gradspec cell's params.

    The inverse of :func:`from_torch`, for round trips and reference checks: the
    module's forward pass equals :func:`gradspec.trajectory` (a vanilla RNN's ``b``
    goes to ``bias_ih_l0`` and ``bias_hh_l0`` is zero). The module's dtype is the
    params' dtype (float32 or float64), on the CPU.

    Args:
        cell: a :class:`gradspec.cells.RNN` with nonlinearity ``"tanh"`` or ``"relu"``
            (the two that torch has), :class:`~gradspec.cells.LSTM` or
            :class:`~gradspec.cells.GRU`.
        params: the cell's params.

    Returns:
        ``torch.nn.RNN``, ``torch.nn.LSTM`` or ``torch.nn.GRU`` with ``num_layers=1``.

    Raises:
        TypeError: a cell that torch has no module for, or params of another dtype.
        ValueError: a vanilla RNN whose nonlinearity is not tanh or relu; bad params.

    Examples:
        >>> import jax, gradspec
        >>> from gradspec.interop import to_torch
        >>> cell = gradspec.cells.GRU()
        >>> params = cell.init(jax.random.key(0), hidden=4, inputs=2)
        >>> to_torch(cell, params)
        GRU(2, 4)
    """
    import torch

    cell = as_cell(cell)
    if not isinstance(cell, (RNN, LSTM, GRU)):
        raise TypeError(
            f"`cell` must be a gradspec RNN, LSTM or GRU to become a torch module; "
            f"got {type(cell).__name__}."
        )
    if isinstance(cell, RNN) and cell.nonlinearity not in ("tanh", "relu"):
        raise ValueError(
            "`cell` nonlinearity must be 'tanh' or 'relu' (torch.nn.RNN has no "
            "other); "
            f"got {cell.name!r}."
        )
    dtype = jnp.dtype(check_params(cell, params))
    torch_dtype = {
        jnp.dtype("float32"): torch.float32,
        jnp.dtype("float64"): torch.float64,
    }
    if dtype not in torch_dtype:
        raise TypeError(f"`params` must be float32 or float64; got {dtype}.")
    hidden, inputs = cell.hidden_size(params), cell.input_size(params)
    if isinstance(cell, RNN):
        module = torch.nn.RNN(inputs, hidden, nonlinearity=cell.nonlinearity)
        tensors = {
            "weight_ih_l0": params["W_xh"],
            "weight_hh_l0": params["W_hh"],
            "bias_ih_l0": params["b"],
            "bias_hh_l0": np.zeros((hidden,), dtype),
        }
    else:
        module = (torch.nn.LSTM if isinstance(cell, LSTM) else torch.nn.GRU)(
            inputs, hidden
        )
        tensors = {
            f"{k}_l0": params[k]
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
    module = module.to(torch_dtype[dtype])
    state = {k: torch.from_numpy(np.array(v, dtype=dtype)) for k, v in tensors.items()}
    module.load_state_dict(state, strict=True)
    return module


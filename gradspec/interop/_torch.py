"""PyTorch: ``from_torch`` and its inverse ``to_torch``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from ..cells import GRU, LSTM, RNN, Cell, as_cell, check_params
from ._common import _GATES, _KIND_OF_GATES, Kind, _check_dtype, _check_kind
from ._common import _as_array, _as_stack, _build, _check_gated, _merge_nonlinearity

_TORCH_MODES = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}


_BIDIRECTIONAL = (
    "bidirectional torch modules are not supported: the backward direction reads the "
    "sequence in reverse time order, so the two directions are no single forward "
    "recurrence h_t = F(h_{t-1}, x_t) for a gradspec cell to run. The forward direction "
    "of layer 0 alone is one: pass the state_dict without the `_reverse` keys (layers "
    "l > 0 read both directions' outputs, so they have no forward-only form)."
)


def _torch_module_info(module) -> tuple[str, str | None, Mapping]:
    """(kind, nonlinearity, state_dict) of a torch RNN/LSTM/GRU module or cell."""
    import torch

    nn = torch.nn
    if isinstance(module, nn.RNNBase):
        if module.bidirectional:
            raise ValueError(_BIDIRECTIONAL)
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
            f"LSTMCell/GRUCell) or a state_dict; got {type(module).__name__}. For a "
            "model that holds one, gradspec.interop.find_recurrent(model) finds it."
        )
    return kind, nl, module.state_dict()


def _torch_suffixes(state: Mapping) -> list[str]:
    """The key suffixes of the state_dict's layers: ``_l0, _l1, ...`` or ``""`` (a cell)."""
    keys = [k for k in state if isinstance(k, str)]
    reverse = [k for k in keys if k.endswith("_reverse")]
    if reverse:
        raise ValueError(f"{_BIDIRECTIONAL} (found {reverse[0]!r}.)")
    proj = [k for k in keys if re.fullmatch(r"weight_hr_l\d+", k)]
    if proj:
        raise ValueError(
            "LSTM state_dicts with proj_size > 0 are not supported (found "
            f"{proj[0]!r}): the projected state has no gradspec cell."
        )
    layers = sorted(
        int(m.group(1)) for k in keys if (m := re.fullmatch(r"weight_hh_l(\d+)", k))
    )
    if layers and layers != list(range(len(layers))):
        raise ValueError(
            f"the state_dict's layers must be 0, 1, ..., L-1; got layers {layers}."
        )
    if layers:
        return [f"_l{layer}" for layer in layers]
    if "weight_hh" in state:  # an RNNCell/LSTMCell/GRUCell state_dict
        return [""]
    raise ValueError(
        "`state_dict_or_module` has no 'weight_hh_l0' (nor 'weight_hh') key; "
        f"got keys {keys[:8]}. Strip any prefix (such as 'rnn.') from the keys first, "
        "or pass the model to gradspec.interop.find_recurrent."
    )


def _torch_layer(state, suffix, kind, recorded, nonlinearity, dtype, source):
    """(cell, params) of the layer whose keys end in ``suffix``."""
    recorded_kind, recorded_nl = recorded
    raw = {}
    for name in ("weight_ih", "weight_hh"):
        if name + suffix not in state:
            raise ValueError(f"`state_dict_or_module` is missing {name + suffix!r}.")
        raw[name] = _as_array(state[name + suffix], name + suffix, 2)

    w_hh = raw["weight_hh"]
    if w_hh.shape[1] == 0 or w_hh.shape[0] % w_hh.shape[1]:
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
            jnp.zeros((w_hh.shape[0],), w_hh.dtype)
            if value is None
            else _as_array(value, name + suffix, 1)
        )
    _check_gated(raw, kind, source)
    nl = _merge_nonlinearity(recorded_nl, nonlinearity, kind, source)
    return _build(kind, nl, raw, dtype)


def from_torch(
    state_dict_or_module,
    layer: int | None = None,
    *,
    kind: Kind | None = None,
    nonlinearity: str | None = None,
    dtype=None,
) -> tuple[Cell, dict]:
    r"""A gradspec cell and params from a PyTorch RNN, LSTM or GRU (all layers or one).

    PyTorch's gated layout is gradspec's own, so LSTM and GRU weights are copied as they
    are. A vanilla RNN computes
    :math:`h' = f(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})`, so ``W_hh = weight_hh``,
    ``W_xh = weight_ih`` and ``b = bias_ih + bias_hh``. Missing biases (``bias=False``)
    are zeros. A module with ``num_layers = L > 1`` becomes one
    :class:`gradspec.cells.Stack` of its L layers (layer l + 1 reads layer l's output
    of the same step, as torch runs them), whose state lists the **last layer first**:
    see :class:`~gradspec.cells.Stack` for the layout and for converting torch's
    ``h_n``/``c_n``.

    Args:
        state_dict_or_module: a ``torch.nn.RNN``/``LSTM``/``GRU`` (or ``RNNCell``/
            ``LSTMCell``/``GRUCell``) module, or its ``state_dict()``: a dict of torch
            tensors or numpy arrays with keys ``weight_ih_l{layer}``,
            ``weight_hh_l{layer}``, ``bias_ih_l{layer}``, ``bias_hh_l{layer}`` (or the
            cells' ``weight_ih``, ...). A model that holds one (an embedding, the RNN,
            a readout): see :func:`find_recurrent`. A state_dict of jax arrays is
            converted with ``jnp`` alone, so it works under ``jax.jit``/``vmap``/
            ``grad`` (torch tensors are copied out through numpy).
        layer: None (default): the whole network, a :class:`~gradspec.cells.Stack`
            when it has several layers, else the plain cell. An int: that layer alone,
            as a plain cell; its inputs are the previous layer's outputs, of size N
            (for ``layer > 0``).
        kind: ``"rnn"``, ``"lstm"`` or ``"gru"``. For a state_dict it is inferred from
            ``weight_hh_l{layer}``'s rows (N: RNN, 3N: GRU, 4N: LSTM) when None; a
            module knows its own.
        nonlinearity: the vanilla RNN's ``"tanh"`` or ``"relu"``. A module records it
            (``module.nonlinearity``); a state_dict does not, so for a vanilla RNN's
            state_dict it is required.
        dtype: dtype of the returned params; by default float64 if the weights are
            float64 and ``jax_enable_x64`` is on, else float32.

    Returns:
        ``(cell, params)``: a :class:`gradspec.cells.RNN` (params ``W_hh`` (N, N),
        ``W_xh`` (N, D), ``b`` (N,)), :class:`~gradspec.cells.LSTM` or
        :class:`~gradspec.cells.GRU` (params ``weight_ih`` (G N, D), ``weight_hh``
        (G N, N), ``bias_ih``, ``bias_hh`` (G N,)); the LSTM state is ``concat(h, c)``.
        Several layers: a :class:`~gradspec.cells.Stack` of those, params
        ``{"layer0": ..., "layer1": ...}``.

    Raises:
        ValueError: bidirectional modules (``_reverse`` keys: the backward direction
            runs in the other time order, so there is no one forward recurrence), LSTMs
            with ``proj_size`` (``weight_hr_l*``), ``layer`` out of range, an unknown
            ``kind`` or one that contradicts the weights' shapes, a vanilla RNN's
            state_dict without ``nonlinearity``.
        TypeError: an object that is neither a supported module nor a dict.

    Examples:
        >>> import torch, gradspec
        >>> from gradspec.interop import from_torch
        >>> lstm = torch.nn.LSTM(input_size=3, hidden_size=8, num_layers=2)
        >>> cell, params = from_torch(lstm)
        >>> cell, sorted(params), cell.state_size(cell.hidden_size(params))
        (Stack(layers=(LSTM(), LSTM())), ['layer0', 'layer1'], 32)
        >>> cell, params = from_torch(lstm, layer=1)
        >>> type(cell).__name__, params["weight_hh"].shape, params["weight_ih"].shape
        ('LSTM', (32, 8), (32, 8))
    """
    kind = _check_kind(kind)
    layer = None if layer is None else check_int("layer", layer, 0)
    dtype = _check_dtype(dtype)
    recorded = (None, None)
    if isinstance(state_dict_or_module, Mapping):
        state, source = state_dict_or_module, "state_dict"
    elif type(state_dict_or_module).__module__.startswith("torch"):
        kind0, nl0, state = _torch_module_info(state_dict_or_module)
        recorded = (kind0, nl0)
        source = f"torch module {type(state_dict_or_module).__name__}"
    else:
        raise TypeError(
            "`state_dict_or_module` must be a torch.nn.RNN/LSTM/GRU module or a "
            "state_dict (dict of tensors or arrays); "
            f"got {type(state_dict_or_module).__name__}."
        )
    suffixes = _torch_suffixes(state)
    if layer is not None and layer >= len(suffixes):
        raise ValueError(
            f"`layer` must be 0 for a single cell's state_dict; got {layer}."
            if suffixes == [""]
            else f"`layer` must be in [0, {len(suffixes) - 1}] for this "
            f"{len(suffixes)}-layer state_dict; got {layer}."
        )
    picked = suffixes if layer is None else [suffixes[layer]]
    converted = [
        _torch_layer(state, s, kind, recorded, nonlinearity, dtype, source)
        for s in picked
    ]
    return converted[0] if len(converted) == 1 else _as_stack(converted)


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



class Recurrent(NamedTuple):
    """What :func:`find_recurrent` found in a torch model."""

    name: str
    """The recurrent submodule's name in ``model.named_modules()`` (``""``: the model)."""
    module: Any
    """The ``torch.nn.RNN``/``LSTM``/``GRU`` (or ``*Cell``): pass it to :func:`from_torch`."""
    embedding: Any
    """The ``nn.Embedding`` before it that feeds it (``embedding_dim`` = its
    ``input_size``), or None."""
    readout: Any
    """The first ``nn.Linear`` after it that reads its output (``in_features`` = its
    ``hidden_size``), or None."""


def find_recurrent(model) -> Recurrent:
    r"""The one recurrent module inside a torch model, with its embedding and readout.

    Walks ``model.named_modules()`` (registration order, which is the forward order of
    an ``nn.Sequential`` and of the usual ``__init__``) for the single
    ``nn.RNN``/``LSTM``/``GRU`` (or ``*Cell``). The embedding is the last
    ``nn.Embedding`` registered before it whose ``embedding_dim`` is its ``input_size``;
    the readout is the first ``nn.Linear`` registered after it whose ``in_features`` is
    its output size. They are only guesses from the order and the sizes: check them
    against the model's ``forward``. Then ``from_torch(found.module)`` gives the cell,
    and ``readout=found.readout.weight`` (as an array, (M, N)) puts the model's own
    readout on the visible output in :func:`gradspec.gradient_profile`.

    Args:
        model: a ``torch.nn.Module``.

    Returns:
        :class:`Recurrent` ``(name, module, embedding, readout)``.

    Raises:
        ValueError: no recurrent module, or several (it names them: pass the one you
            mean to :func:`from_torch`).
        TypeError: ``model`` is not a torch module.

    Examples:
        >>> import torch
        >>> from gradspec.interop import find_recurrent, from_torch
        >>> model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(100, 3),
        ...     "rnn": torch.nn.GRU(3, 8, num_layers=2), "head": torch.nn.Linear(8, 5)})
        >>> found = find_recurrent(model)
        >>> found.name, found.embedding, found.readout
        ('rnn', Embedding(100, 3), Linear(in_features=8, out_features=5, bias=True))
        >>> from_torch(found.module)[0]
        Stack(layers=(GRU(), GRU()))
    """
    import torch

    nn = torch.nn
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    modules = list(model.named_modules())
    found = [
        (i, name, m)
        for i, (name, m) in enumerate(modules)
        if isinstance(m, (nn.RNNBase, nn.RNNCellBase))
    ]
    if len(found) != 1:
        what = ", ".join(f"{n!r} ({type(m).__name__})" for _, n, m in found)
        kinds = sorted({type(m).__name__ for _, m in modules})
        raise ValueError(
            f"`model` holds {len(found)} recurrent modules ({what}); pass the one you "
            "mean to from_torch, e.g. from_torch(model.get_submodule(name))."
            if found
            else "`model` holds no torch.nn.RNN/LSTM/GRU (or RNNCell/LSTMCell/GRUCell);"
            f" it holds {kinds}."
        )
    i, name, rnn = found[0]
    out = getattr(rnn, "proj_size", 0) or rnn.hidden_size
    out *= 2 if getattr(rnn, "bidirectional", False) else 1
    embeddings = [
        m
        for _, m in modules[:i]
        if isinstance(m, nn.Embedding) and m.embedding_dim == rnn.input_size
    ]
    readouts = [
        m
        for _, m in modules[i + 1 :]
        if isinstance(m, nn.Linear) and m.in_features == out
    ]
    return Recurrent(
        name,
        rnn,
        embeddings[-1] if embeddings else None,
        readouts[0] if readouts else None,
    )

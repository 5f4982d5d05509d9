r"""Cells from other frameworks: PyTorch, Flax and Equinox in, gradspec cells out.

Each ``from_*`` function reads a trained (or freshly initialised) recurrent cell of
another framework and returns ``(cell, params)`` such that :func:`gradspec.trajectory`
reproduces that framework's own forward pass and :func:`gradspec.step_jacobians` its
exact step Jacobians. Every layout is converted to gradspec's own (the PyTorch layout
for the gated cells; ``W_hh``, ``W_xh``, ``b`` for the vanilla RNN), so everything
downstream (spectra, profiles, predictions) works unchanged.

Layouts and formulas, checked against each framework's source:

* **PyTorch** ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (and the ``*Cell`` modules) already use
  gradspec's gated layout: ``weight_ih`` (G N, D), ``weight_hh`` (G N, N), ``bias_ih``,
  ``bias_hh`` (G N,), gate order i, f, g, o (LSTM) and r, z, n (GRU). A vanilla RNN's
  two biases are summed into ``b`` (they only ever appear summed).
* **Flax linen** cells keep one ``Dense`` per gate, with kernels stored (in, out), i.e.
  transposed. ``LSTMCell``/``OptimizedLSTMCell``: input kernels ``ii, if, ig, io``
  without bias, hidden kernels ``hi, hf, hg, ho`` with bias, so ``bias_ih = 0`` and
  ``bias_hh`` holds the biases. ``GRUCell``: ``ir, iz, in`` with bias, ``hr, hz``
  without and ``hn`` with bias *inside* the reset product,
  :math:`n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))`,
  :math:`h' = (1 - z) \odot n + z \odot h`: PyTorch's formula exactly, with
  ``bias_hh = (0, 0, b_hn)``. ``SimpleCell``: ``i`` (with bias) and ``h`` (without);
  ``residual=True`` adds ``h`` to the pre-activation, i.e. ``W_hh = W_h + I``.
* **Flax nnx** ``LSTMCell`` (per-gate ``Linear`` as in linen, attribute ``if_``),
  ``OptimizedLSTMCell`` (one ``dense_i`` (D, 4N) without bias, one ``dense_h`` (N, 4N)
  with bias), ``SimpleCell`` (``dense_i`` with bias, ``dense_h`` without) and
  ``GRUCell``: ``dense_i`` (D, 3N) *with* bias and ``dense_h`` (N, 3N) *without*, so
  its :math:`n = \tanh(W_{in} x + b_{in} + r \odot W_{hn} h)` has no hidden n-bias: a
  PyTorch GRU with ``bias_hh = 0`` (unlike linen's GRU).
* **Equinox** ``LSTMCell``: PyTorch layout with a single ``bias`` (4N,) (``bias_ih``;
  ``bias_hh = 0``) and state ``(h, c)``. ``GRUCell``: ``bias`` (3N,) on the input side
  and ``bias_n`` (N,) inside the reset product; it writes the update as
  :math:`h' = n + z \odot (h - n)`, which equals PyTorch's :math:`(1 - z) n + z h`
  (equal in exact arithmetic; only the rounding differs). So ``bias_ih = bias``,
  ``bias_hh = (0, 0, bias_n)``.

State conventions: gradspec's LSTM state is ``concat(h, c)``. PyTorch's and Equinox's
LSTM carry is ``(h, c)``; **Flax's is** ``(c, h)``: build ``h0 = concat(h, c)`` from a
Flax carry ``(c, h)``.

Dtype: the params come back as ``jnp`` arrays in ``dtype`` when given; by default in
float64 when the source weights are float64 *and* ``jax_enable_x64`` is on, else in
float32 (gradspec's default; half-precision sources are widened to float32). A Flax
cell that sets its computation ``dtype`` gets params in that dtype.

The frameworks are optional: each is imported inside the function that needs it, so
``import gradspec`` (and ``import gradspec.interop``) never imports torch, flax or
equinox.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_floating, check_int
from ..cells import GRU, LSTM, NONLINEARITIES, RNN, Cell, as_cell, check_params

Kind = Literal["rnn", "lstm", "gru"]

__all__ = ["from_equinox", "from_flax", "from_torch", "to_torch"]

# Gate blocks stacked in weight_hh: (G N, N).
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_KIND_OF_GATES = {g: k for k, g in _GATES.items()}
_TORCH_MODES = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}
# Flax linen per-gate Dense names (the nnx LSTMCell uses the same, with `if_`).
_FLAX_LSTM = (("ii", "if", "ig", "io"), ("hi", "hf", "hg", "ho"))
_FLAX_GRU = (("ir", "iz", "in"), ("hr", "hz", "hn"))
_FLAX_SIMPLE = (("i",), ("h",))
_FLAX_LAYOUTS = {"lstm": _FLAX_LSTM, "gru": _FLAX_GRU, "rnn": _FLAX_SIMPLE}


# -- small helpers -------------------------------------------------------------------
def _check_kind(kind) -> str | None:
    if kind is None:
        return None
    if not isinstance(kind, str) or kind.lower() not in _GATES:
        raise ValueError(
            f"`kind` must be one of {sorted(_GATES)} or None; got {kind!r}."
        )
    return kind.lower()


def _check_dtype(dtype):
    if dtype is None:
        return None
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"`dtype` must be a floating dtype; got {dtype!r}.") from err
    check_floating("dtype", dtype)
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise ValueError(
            f"`dtype` {dtype} needs `jax.config.update('jax_enable_x64', True)`; "
            "without it jax would silently give "
            f"{jax.dtypes.canonicalize_dtype(dtype)}."
        )
    return dtype


def _to_numpy(x, name: str) -> np.ndarray:
    """A torch tensor / jax / numpy array as a floating numpy array (half -> f32)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, duck-typed
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.element_size() < 4:  # bf16/f16: no numpy
            x = x.float()
        x = x.numpy()
    elif hasattr(x, "get_value"):  # a flax.nnx Variable
        x = x.get_value()
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating) and a.dtype.name != "bfloat16":
        raise TypeError(f"`{name}` must have a floating dtype; got {a.dtype}.")
    if a.dtype.itemsize < 4:
        a = a.astype(np.float32)
    return a


def _resolve_dtype(dtype, arrays) -> np.dtype:
    if dtype is not None:
        return dtype
    x64 = jax.dtypes.canonicalize_dtype(np.float64) == np.float64
    wide = any(a.dtype == np.float64 for a in arrays)
    return jnp.dtype("float64" if x64 and wide else "float32")


def _nonlinearity_of(fn: Callable) -> str | Callable:
    """A framework's activation function as gradspec's name for it, when it has one."""
    for name, (f, _) in NONLINEARITIES.items():
        if fn is f:
            return name
    return fn


def _merge_nonlinearity(recorded, given, kind: str, source: str):
    if kind != "rnn":
        if given is not None:
            raise ValueError(
                "`nonlinearity` applies only to vanilla RNNs (kind='rnn'); the "
                f"{source} is kind={kind!r}, got nonlinearity={given!r}."
            )
        return None
    if recorded is not None and given is not None and recorded != given:
        raise ValueError(
            f"`nonlinearity` {given!r} contradicts the {source}'s own {recorded!r}; "
            "leave `nonlinearity` unset for a module."
        )
    nl = given if given is not None else recorded if recorded is not None else "tanh"
    RNN(nl)  # validates the name with a clear error
    return nl


def _build(kind: str, nonlinearity, raw: dict, dtype) -> tuple[Cell, dict]:
    """(cell, params) from gated-layout numpy arrays; RNN biases are summed into b."""
    dtype = _resolve_dtype(dtype, raw.values())
    if kind == "rnn":
        # The two torch biases only ever appear summed; add them in float64.
        b = raw["bias_ih"].astype(np.float64) + raw["bias_hh"].astype(np.float64)
        raw = {"W_hh": raw["weight_hh"], "W_xh": raw["weight_ih"], "b": b}
        cell = RNN(nonlinearity)
    else:
        cell = LSTM() if kind == "lstm" else GRU()
    return cell, {k: jnp.asarray(v, dtype) for k, v in raw.items()}


def _check_gated(raw: dict, kind: str, source: str) -> None:
    """Check gated shapes: weight_hh (G N, N), weight_ih (G N, D), biases (G N,)."""
    g = _GATES[kind]
    w_hh, w_ih = raw["weight_hh"], raw["weight_ih"]
    n = w_hh.shape[1] if w_hh.ndim == 2 else None
    if w_hh.ndim != 2 or w_hh.shape[0] != g * n:
        raise ValueError(
            f"the {source}'s recurrent weight must have shape ({g}*N, N) for "
            f"kind={kind!r}; got {w_hh.shape}."
        )
    if w_ih.ndim != 2 or w_ih.shape[0] != g * n:
        raise ValueError(
            f"the {source}'s input weight must have shape ({g * n}, D) for "
            f"kind={kind!r}, N={n}; got {w_ih.shape}."
        )
    for name in ("bias_ih", "bias_hh"):
        if raw[name].shape != (g * n,):
            raise ValueError(
                f"the {source}'s {name} must have shape ({g * n},); "
                f"got {raw[name].shape}."
            )


# -- PyTorch -------------------------------------------------------------------------
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


# -- Flax ----------------------------------------------------------------------------
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
    kernel = _to_numpy(d["kernel"], f"params[{name!r}]['kernel']")
    b = (
        _to_numpy(d["bias"], f"params[{name!r}]['bias']")
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


def _stack(kernels_and_biases, out: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Per-gate (in, N) kernels, biases (or None) -> (G N, in) weight, (G N,) bias."""
    weight = np.concatenate([k.T for k, _ in kernels_and_biases])
    bias = np.concatenate(
        [b if b is not None else np.zeros((out,), dtype) for _, b in kernels_and_biases]
    )
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
        raw["weight_hh"] = w_hh + np.eye(n, dtype=w_hh.dtype)
    return raw


def _nnx_linear(linear, name: str):
    kernel = _to_numpy(linear.kernel, f"{name}.kernel")
    bias = getattr(linear, "bias", None)
    return kernel, (None if bias is None else _to_numpy(bias, f"{name}.bias"))


def _nnx_split(linear, name: str, gates: int):
    """A fused nnx Linear (in, G N) -> per gate (kernel (in, N), bias (N,) or None)."""
    kernel, bias = _nnx_linear(linear, name)
    ks = np.split(kernel, gates, axis=1)
    bs = np.split(bias, gates) if bias is not None else [None] * gates
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
    and stacked into gradspec's (PyTorch) layout; see the module docstring for the
    exact map.
    Linen's and nnx's GRUs differ (linen keeps a hidden n-bias inside the reset product,
    nnx has none); both are PyTorch GRUs exactly, with ``bias_hh = (0, 0, b_hn)`` and
    ``bias_hh = 0`` respectively.

    Flax's LSTM carry is ``(c, h)``; the gradspec state is ``concat(h, c)``.

    Args:
        cell_or_params: a ``flax.linen`` ``LSTMCell``/``OptimizedLSTMCell``/``GRUCell``/
            ``SimpleCell`` (then ``params`` is required), a ``flax.nnx`` ``LSTMCell``/
            ``OptimizedLSTMCell``/``GRUCell``/``SimpleCell``, or a linen cell's param
            dict (keys ``ii..ho``, ``ir..hn`` or ``i, h``; a ``{'params': ...}``
            wrapper and ``nn.RNN``'s ``'cell'`` level are unwrapped).
        params: a linen cell's params (or variables) when ``cell_or_params`` is a linen
            cell.
        kind: ``"lstm"``, ``"gru"`` or ``"rnn"`` (``SimpleCell``); inferred when None.
        nonlinearity: a ``SimpleCell``'s activation for a bare param dict (default
            ``"tanh"``; a cell records its own ``activation_fn``). A bare dict cannot
            record ``residual=True``: pass the linen cell for that.
        dtype: dtype of the returned params. By default the cell's computation
            ``dtype`` when it sets one (nnx's ``SimpleCell`` defaults to float32),
            else float64 if the weights are float64 and ``jax_enable_x64`` is on, else
            float32.

    Returns:
        ``(cell, params)`` as in :func:`from_torch`.

    Raises:
        ValueError: an unsupported cell (``MGUCell``, ``ConvLSTMCell``, non-default
            ``gate_fn``/``activation_fn`` on a gated cell), a param dict of unknown
            layout, or a ``kind`` that contradicts it.
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


# -- Equinox -------------------------------------------------------------------------
def from_equinox(cell, *, dtype=None) -> tuple[Cell, dict]:
    r"""A gradspec cell and params from an ``equinox.nn.LSTMCell`` or ``GRUCell``.

    Equinox uses PyTorch's gate layout with one input-side ``bias``: the LSTM maps to
    ``bias_ih = bias``, ``bias_hh = 0``. Its GRU adds ``bias_n`` inside the reset
    product, :math:`n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_n))`, and writes
    :math:`h' = n + z \odot (h - n) = (1 - z) n + z h`: PyTorch's GRU with
    ``bias_ih = bias``, ``bias_hh = (0, 0, bias_n)``. ``use_bias=False`` gives zero
    biases. Equinox's LSTM state ``(h, c)`` is gradspec's ``concat(h, c)``.

    Args:
        cell: an ``equinox.nn.LSTMCell`` or ``equinox.nn.GRUCell``.
        dtype: dtype of the returned params; by default float64 if the weights are
            float64 and ``jax_enable_x64`` is on, else float32.

    Returns:
        ``(cell, params)`` as in :func:`from_torch`.

    Raises:
        TypeError: anything but an Equinox LSTMCell or GRUCell.

    Examples:
        >>> import jax, equinox as eqx
        >>> from gradspec.interop import from_equinox
        >>> gru = eqx.nn.GRUCell(input_size=3, hidden_size=8, key=jax.random.key(0))
        >>> cell, params = from_equinox(gru)
        >>> type(cell).__name__, params["bias_hh"].shape
        ('GRU', (24,))
    """
    dtype = _check_dtype(dtype)
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
    w_ih = _to_numpy(cell.weight_ih, "cell.weight_ih")
    w_hh = _to_numpy(cell.weight_hh, "cell.weight_hh")
    rows, n = w_hh.shape
    zeros = np.zeros((rows,), w_hh.dtype)
    bias = getattr(cell, "bias", None)
    b_ih = zeros if bias is None else _to_numpy(bias, "cell.bias")
    b_hh = zeros
    if kind == "gru" and getattr(cell, "bias_n", None) is not None:
        b_n = _to_numpy(cell.bias_n, "cell.bias_n")
        b_hh = np.concatenate([np.zeros((2 * n,), b_n.dtype), b_n])
    raw = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    source = f"Equinox {type(cell).__name__}"
    _check_gated(raw, kind, source)
    return _build(kind, None, raw, dtype)

"""Shared pieces of the converters: argument checks, array conversion, cell building."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_floating
from ..cells import GRU, LSTM, NONLINEARITIES, RNN, Cell, Stack, check_params

Kind = Literal["rnn", "lstm", "gru"]

# Gate blocks stacked in weight_hh: (G N, N).
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_KIND_OF_GATES = {g: k for k, g in _GATES.items()}


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


def _merge_nonlinearity(recorded, given, kind: str, source: str, default="tanh"):
    """The vanilla RNN's nonlinearity: the source's own, else ``given``, else ``default``
    (None: refuse to guess); None for the gated kinds."""
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
    nl = given if given is not None else recorded if recorded is not None else default
    if nl is None:
        raise ValueError(
            f"`nonlinearity` is required: a vanilla RNN's {source} does not record "
            "whether it ran tanh or relu. Pass nonlinearity='tanh' or 'relu' (or the "
            "module itself, which records it)."
        )
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


def _as_stack(converted: list) -> tuple[Stack, dict]:
    """``(Stack, params)`` of per-layer ``(cell, params)`` pairs, layer 0 first."""
    cell = Stack(tuple(c for c, _ in converted))
    params = {name: p for name, (_, p) in zip(cell.names, converted)}
    check_params(cell, params)  # layer l + 1 reads layer l's output; one width
    return cell, params

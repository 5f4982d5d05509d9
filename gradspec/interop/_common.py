"""Shared pieces of the converters: argument checks, array conversion, cell building.

Everything after reading a framework's arrays is ``jnp`` on static shapes, so the
converters compose with ``jax.jit``, ``jax.vmap`` and ``jax.grad``: under ``vmap`` over
a batch of variables each call sees one cell's arrays and the params come back batched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

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


def _as_array(x, name: str, ndim: int) -> jax.Array:
    """A torch tensor, nnx Variable, jax/numpy array or tracer as a floating jax array
    of rank ``ndim`` (half precision widened to float32).

    Torch tensors go through numpy (the one copy out of torch); everything else stays
    in ``jnp`` and only its static dtype and shape are read, so a tracer passes.
    A leading batch axis is refused with the fix: one call converts one cell, and
    ``jax.vmap`` maps it over a batch (then every call sees one cell's arrays).
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, duck-typed
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.element_size() < 4:  # bf16/f16: no numpy
            x = x.float()
        x = x.numpy()
    elif hasattr(x, "get_value"):  # a flax.nnx Variable
        x = x.get_value()
    try:
        a = jnp.asarray(x)  # a jax array (or tracer) is returned as it is
    except TypeError as err:
        raise TypeError(
            f"`{name}` must be an array; got {type(x).__name__} ({err})."
        ) from None
    if not jnp.issubdtype(a.dtype, jnp.floating):
        raise TypeError(f"`{name}` must have a floating dtype; got {a.dtype}.")
    if a.ndim != ndim:
        batch = a.ndim > ndim
        raise ValueError(
            f"`{name}` must be a {ndim}-D array; got shape {a.shape}."
            + (
                " A leading batch axis? One call converts one cell's weights: for a "
                "batch of cells use jax.vmap over the conversion (it returns batched "
                "params)."
                if batch
                else ""
            )
        )
    return a.astype(jnp.float32) if a.dtype.itemsize < 4 else a


def _resolve_dtype(dtype, arrays) -> jnp.dtype:
    """``dtype``, else float64 when a source array is float64 (only possible with
    ``jax_enable_x64``: :func:`_as_array` canonicalises), else float32."""
    if dtype is not None:
        return dtype
    wide = any(a.dtype == jnp.float64 for a in arrays)
    return jnp.dtype("float64" if wide else "float32")


def _nonlinearity_of(fn: Callable) -> str | Callable:
    """A framework's activation function as gradspec's name for it, when it has one."""
    for name, (f, _) in NONLINEARITIES.items():
        if fn is f:
            return name
    return fn


def _merge_nonlinearity(recorded, given, kind: str, source: str):
    """The vanilla RNN's nonlinearity: the source's own, else ``given``; a source that
    does not record it (a state_dict, a bare param dict) without ``given`` is refused,
    never guessed. None for the gated kinds."""
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
    nl = given if given is not None else recorded
    if nl is None:
        raise ValueError(
            f"`nonlinearity` is required: a vanilla RNN's {source} does not record "
            "whether it ran tanh or relu. Pass nonlinearity='tanh' or 'relu' (or the "
            "module itself, which records it)."
        )
    RNN(nl)  # validates the name with a clear error
    return nl


def _build(kind: str, nonlinearity, raw: dict, dtype) -> tuple[Cell, dict]:
    """(cell, params) from gated-layout jax arrays; RNN biases are summed into b."""
    dtype = _resolve_dtype(dtype, raw.values())
    if kind == "rnn":
        # The two torch biases only ever appear summed: b = b_ih + b_hh, added in the
        # wider of the source's and the target's dtype, so it is rounded once.
        b_ih, b_hh = raw["bias_ih"], raw["bias_hh"]
        wide = max((b_ih.dtype, b_hh.dtype, dtype), key=lambda d: d.itemsize)
        b = b_ih.astype(wide) + b_hh.astype(wide)
        raw = {"W_hh": raw["weight_hh"], "W_xh": raw["weight_ih"], "b": b}
        cell = RNN(nonlinearity)
    else:
        cell = LSTM() if kind == "lstm" else GRU()
    return cell, {k: v.astype(dtype) for k, v in raw.items()}


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

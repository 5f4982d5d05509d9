"""``gradspec diagnose``: predict and measure one network from flags or a saved model.

It builds a cell from flags (or a saved PyTorch state_dict or whole model), measures its
Jacobian products along a random input sequence (or the user's own sequences, token ids
through the model's own embedding) and prints the spectrum, the rates and the verdict.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import cells, init
from ..interop import find_recurrent, from_torch
from ..verdicts import diagnose, predict
from ._args import positive

INITS = ("gaussian", "orthogonal", "identity", "glorot", "critical")
CELLS = ("rnn", "lstm", "gru")


def _build(args):
    """(cell, params, xs) from the command-line flags (or a saved PyTorch state_dict)."""
    args.inputs_file = args.inputs if isinstance(args.inputs, np.ndarray) else None
    if args.inputs_file is not None and not _is_token_ids(args.inputs_file):
        args.inputs = args.inputs_file.shape[-1]
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.dtype(args.dtype)
    if args.torch:
        return _build_from_torch(args, dtype)
    cell = cells.RNN(args.nonlinearity) if args.cell == "rnn" else getattr(cells, args.cell.upper())()
    if args.init == "critical":
        recurrent_init = init.critical(args.nonlinearity, sigma_x=args.input_scale)
    else:
        recurrent_init = getattr(init, args.init)(args.gain)
    k_params, k_xs = jr.split(jr.key(args.seed))
    params = cell.init(k_params, args.hidden, args.inputs, recurrent_init=recurrent_init, dtype=dtype)
    return cell, params, _inputs(args, k_xs, dtype)


def _is_token_ids(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.integer)


def _inputs(args, key, dtype, embedding=None):
    """The drive: the user's sequences (--inputs FILE.npy; integer token ids (T,) or
    (B, T) go through the model's own ``embedding``), else N(0, scale^2) noise."""
    data = args.inputs_file
    if data is None:
        return args.input_scale * jr.normal(key, (args.T, args.inputs), dtype)
    if _is_token_ids(data):
        if embedding is None:
            raise ValueError(
                "--inputs holds integer token ids, which need the model's own embedding: "
                "pass --torch a whole saved model (torch.save(model)) with an nn.Embedding "
                "before its recurrent module, or save the embedded sequences (B, T, D) as floats")
        table = embedding.weight.detach().cpu().numpy()
        if data.min() < 0 or data.max() >= table.shape[0]:
            raise ValueError(f"--inputs token ids must lie in [0, {table.shape[0]}) (the "
                             f"embedding's rows); got [{data.min()}, {data.max()}].")
        data = table[data]
    args.T = data.shape[-2]
    return jnp.asarray(data, dtype)


def _dimension_or_file(text: str):
    """--inputs: an input dimension D, or a .npy file of sequences (T, D) / (B, T, D) or
    of integer token ids (T,) / (B, T)."""
    if text.endswith(".npy"):
        array = np.load(text)
        if array.ndim not in ((1, 2) if _is_token_ids(array) else (2, 3)):
            raise argparse.ArgumentTypeError(
                f"{text} must hold float sequences (T, D) or (B, T, D), or integer token "
                f"ids (T,) or (B, T); got {array.dtype} of shape {array.shape}")
        return array
    return positive(text)


def _load_torch(path: str, allow_pickle: bool):
    """A state_dict (or a checkpoint holding one), or a whole pickled module when
    ``allow_pickle``: loading one runs code from the file."""
    import pickle

    import torch  # optional: only for --torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not allow_pickle:
            raise ValueError(
                f"{path} holds a pickled model, not a state_dict; loading it runs code "
                "from the file: pass --allow-pickle if you trust it") from err
        return torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "state_dict" in state:  # a training checkpoint
        state = state["state_dict"]
    return state


def _build_from_torch(args, dtype):
    state, embedding = _load_torch(args.torch, args.allow_pickle), None
    if not isinstance(state, dict):  # a whole model: find its RNN, embedding and readout
        found = find_recurrent(state)
        state, embedding = found.module, found.embedding
        if args.readout is None and found.readout is not None:
            args.readout = found.readout.weight.detach().cpu().numpy()
            args.readout_name = f"{found.name or 'the model'}'s readout (next nn.Linear)"
    cell, params = from_torch(state, layer=args.layer, nonlinearity=args.torch_nonlinearity, dtype=dtype)
    args.hidden, args.inputs = cell.hidden_size(params), cell.input_size(params)
    layers = getattr(cell, "layers", (cell,))
    args.cell = (f"{len(layers)}-layer " if len(layers) > 1 else "") + type(layers[0]).__name__.lower()
    args.nonlinearity = getattr(layers[0], "nonlinearity", "-")
    which = "all layers" if args.layer is None else f"layer {args.layer}"
    args.init, args.gain = f"{args.torch} ({which})", None
    return cell, params, _inputs(args, jr.key(args.seed), dtype, embedding)


def run(args) -> int:
    """Run ``gradspec diagnose`` from parsed arguments; returns the exit code."""
    try:
        args.readout_name = args.readout
        cell, params, xs = _build(args)
        readout = args.readout if not isinstance(args.readout, str) else np.load(args.readout)
        pred = predict(cell, params, args.T, inputs=xs)
        diag = diagnose(cell, params, xs, readout=readout)
    except (ValueError, TypeError, OSError) as err:
        print(f"gradspec diagnose: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        json.dump({"prediction": pred.to_dict(), "measurement": diag.to_dict()}, sys.stdout, indent=2)
        print()
        return 0
    name = args.cell if args.cell != "rnn" else f"rnn ({args.nonlinearity})"
    print(f"gradspec diagnose: {name}, N={args.hidden}, init={args.init}"
          + ("" if args.gain is None or args.init == "critical" else f"(gain={args.gain})")
          + f", T={args.T}, seed={args.seed}, {args.dtype}, "
          + ("driven by your inputs" if args.inputs_file is not None else
             f"driven by N(0, {args.input_scale:g}^2) inputs" if args.input_scale else "undriven")
          + (f", readout: {args.readout_name}" if args.readout_name is not None else ""))
    print()
    rows = []
    if diag.spectral_radius is not None:
        rows += [
            ("spectral radius rho(W_hh)", f"{diag.spectral_radius:.4f}"),
            ("spectral norm ||W_hh||_2", f"{diag.spectral_norm:.4f}"),
        ]
    rows += [
        ("predicted lambda_max / step", f"{pred.lyapunov:+.4f} +- {pred.uncertainty:.4f}  ({pred.source})"),
        ("predicted regime", pred.regime),
        ("time scale 1/|lambda_max|", _steps(pred.timescale)),
        ("measured lambda_max / step", f"{diag.lyapunov:+.4f}  (Lyapunov, this input)"),
        ("gradient rate / step", f"{diag.profile_rate:+.4f}  (fit of log||dL/dh_(T-k)|| vs k)"),
        ("||dL/dh_0|| / ||dL/dh_T||", _ratio(diag.log_gradient_ratio)),
    ]
    if diag.loss_rate is not None:
        rows += [
            ("loss rate / step", f"{diag.loss_rate:+.4f}"
             + (f" +- {diag.loss_rate_se:.4f}" if diag.loss_rate_se else "")
             + "  (the readout's gradient through the recurrence)"),
            ("invisible state entries", str(list(diag.invisible_units))),
        ]
    rows += [("measured regime", diag.regime)]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print()
    print("why:")
    for reason in pred.reasons + diag.why:
        print(f"  - {reason}")
    return 0


def _steps(x: float) -> str:
    return "inf (critical)" if math.isinf(x) else f"{x:.1f} steps"


def _ratio(log_ratio: float) -> str:
    if not math.isfinite(log_ratio):
        return "0 (exactly vanished)" if log_ratio < 0 else str(log_ratio)
    decades = log_ratio / math.log(10)
    return f"1e{decades:+.1f}  (log = {log_ratio:+.2f})"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``diagnose`` subcommand to ``gradspec``'s subparsers."""
    d = subparsers.add_parser("diagnose", help="predict and measure vanishing/exploding gradients")
    d.add_argument("--cell", choices=CELLS, default="rnn")
    d.add_argument("--nonlinearity", choices=("tanh", "sigmoid", "relu", "linear"), default="tanh")
    d.add_argument("--hidden", type=positive, default=128, help="hidden units N")
    d.add_argument("--inputs", type=_dimension_or_file, default=1,
                   help="input dimension D of the random drive, or FILE.npy: your own "
                        "sequences (T, D) or (B, T, D), or integer token ids (T,) or (B, T) "
                        "for a --torch model with an embedding (then --T is their length)")
    d.add_argument("--readout", metavar="FILE.npy",
                   help="the model's readout (M, N) or (N,) on the visible output, e.g. a "
                        "trained nn.Linear's weight: the verdict follows the rate the loss sees")
    d.add_argument("--init", choices=INITS, default="gaussian")
    d.add_argument("--gain", type=float, default=1.0)
    d.add_argument("--T", type=positive, default=500, help="sequence length")
    d.add_argument("--input-scale", type=float, default=1.0, help="std of the random inputs")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.add_argument("--torch", metavar="PATH",
                   help="diagnose a saved torch.nn.RNN/LSTM/GRU state_dict, or a whole saved "
                        "model (with --allow-pickle): its RNN, embedding and readout are found")
    d.add_argument("--allow-pickle", action="store_true",
                   help="let --torch load a whole pickled model (this runs code from the file)")
    d.add_argument("--layer", type=int, default=None,
                   help="one layer of --torch (default: the whole stack)")
    d.add_argument("--torch-nonlinearity", choices=("tanh", "relu"), default=None,
                   help="nn.RNN's nonlinearity: required for an nn.RNN state_dict, "
                        "which does not record it")
    d.set_defaults(run=run)
    return d

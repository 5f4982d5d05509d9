"""``gradspec diagnose``: predict and measure one network from flags or a saved model.

It builds a cell from flags (or a saved PyTorch state_dict), measures its Jacobian
products along a random input sequence and prints the spectrum, the rates and the verdict.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import jax
import jax.numpy as jnp
import jax.random as jr

from .. import cells, init
from ..interop import from_torch
from ..verdicts import diagnose, predict
from ._args import positive

INITS = ("gaussian", "orthogonal", "identity", "glorot", "critical")
CELLS = ("rnn", "lstm", "gru")


def _build(args):
    """(cell, params, xs) from the command-line flags (or a saved PyTorch state_dict)."""
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
    xs = args.input_scale * jr.normal(k_xs, (args.T, args.inputs), dtype)
    return cell, params, xs


def _build_from_torch(args, dtype):
    import torch  # optional: only for --torch

    state = torch.load(args.torch, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:  # a training checkpoint
        state = state["state_dict"]
    cell, params = from_torch(state, layer=args.layer, nonlinearity=args.torch_nonlinearity, dtype=dtype)
    args.hidden, args.inputs = cell.hidden_size(params), cell.input_size(params)
    args.cell = type(cell).__name__.lower()
    args.nonlinearity = getattr(cell, "nonlinearity", "-")
    args.init, args.gain = f"{args.torch} (layer {args.layer})", None
    xs = args.input_scale * jr.normal(jr.key(args.seed), (args.T, args.inputs), dtype)
    return cell, params, xs


def run(args) -> int:
    """Run ``gradspec diagnose`` from parsed arguments; returns the exit code."""
    cell, params, xs = _build(args)
    pred = predict(cell, params, args.T, inputs=xs)
    diag = diagnose(cell, params, xs)
    if args.json:
        json.dump({"prediction": pred.to_dict(), "measurement": diag.to_dict()}, sys.stdout, indent=2)
        print()
        return 0
    name = args.cell if args.cell != "rnn" else f"rnn ({args.nonlinearity})"
    print(f"gradspec diagnose: {name}, N={args.hidden}, init={args.init}"
          + ("" if args.gain is None or args.init == "critical" else f"(gain={args.gain})")
          + f", T={args.T}, seed={args.seed}, {args.dtype}, "
          + (f"driven by N(0, {args.input_scale:g}^2) inputs" if args.input_scale else "undriven"))
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
        ("measured regime", diag.regime),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print()
    print("why:")
    for reason in pred.reasons:
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
    d.add_argument("--inputs", type=positive, default=1, help="input dimension D")
    d.add_argument("--init", choices=INITS, default="gaussian")
    d.add_argument("--gain", type=float, default=1.0)
    d.add_argument("--T", type=positive, default=500, help="sequence length")
    d.add_argument("--input-scale", type=float, default=1.0, help="std of the random inputs")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.add_argument("--torch", metavar="PATH", help="diagnose a saved torch.nn.RNN/LSTM/GRU state_dict")
    d.add_argument("--layer", type=int, default=0, help="which layer of --torch")
    d.add_argument("--torch-nonlinearity", choices=("tanh", "relu"), default=None,
                   help="nn.RNN's nonlinearity (a state_dict does not record it; default tanh)")
    d.set_defaults(run=run)
    return d

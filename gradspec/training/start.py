r"""The params a training run starts from: the config's initialization (recurrent
init, per-gate hyperparameters, forget-gate bias, a readout with outputs of order one),
or the user's own params checked against the config's cell, sizes and task."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import cells as _cells
from .. import init as _init
from .config import TrainConfig

__all__ = ["check_given", "starting_params"]


def _recurrent_init(config: TrainConfig):
    if config.init == "default":
        return None
    if config.init == "critical":
        # It solves chi = 1 numerically; evaluate that now even when called under a
        # trace (init inside jit/vmap), since the gain is a Python float.
        with jax.ensure_compile_time_eval():
            return _init.critical(
                config.nonlinearity, sigma_b=0.0, sigma_x=_sigma_x(config)
            )
    return getattr(_init, config.init)(config.gain)


def _sigma_x(config: TrainConfig) -> float:
    r"""Std of each RNN unit's input drive at init: ``sigma_x`` of the critical gain.

    ``W_xh`` ~ N(0, 1/D) makes :math:`\mathrm{Var}(W_{xh} x_t)_i = \|x_t\|^2 / D`;
    averaged over the task's steps that is ``input_power / D``. The bias starts at 0
    (``sigma_b = 0``). Gated cells get 0: their critical gain is the vanilla-RNN one,
    applied per gate block."""
    if not isinstance(config.make_cell(), _cells.RNN):
        return 0.0
    spec = config.spec
    return math.sqrt(spec.input_power / spec.inputs)


def starting_params(config: TrainConfig, key, given=None) -> dict:
    """The starting params: ``given`` ones where passed (``{"cell"}`` or ``{"cell",
    "readout"}``), the config's init for the rest."""
    cell, spec, dtype = config.make_cell(), config.spec, jnp.dtype(config.dtype)
    k_cell, k_out = jr.split(key)
    given = {} if given is None else given
    if "cell" in given:
        cell_params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), given["cell"])
    else:
        gates = {"gates": {g: dict(v) for g, v in config.gates}} if config.gates else {}
        cell_params = cell.init(k_cell, config.hidden, spec.inputs,
                                recurrent_init=_recurrent_init(config), dtype=dtype, **gates)
        if config.forget_bias:
            n = config.hidden
            cell_params = dict(cell_params, bias_hh=cell_params["bias_hh"].at[n:2 * n].add(
                config.forget_bias))
    if "readout" in given:
        return {"cell": cell_params, "readout": jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, dtype), dict(given["readout"]))}
    n_out = cell.output_size(cell.state_size(config.hidden))
    return {
        "cell": cell_params,
        # Readout W ~ N(0, 1/N_out): outputs of order one at init.
        "readout": {
            "W": _init.gaussian(1.0)(k_out, (spec.outputs, n_out), dtype),
            "b": jnp.zeros((spec.outputs,), dtype),
        },
    }


def check_given(config: TrainConfig, params) -> dict | None:
    """``params`` of :func:`train` as ``{"cell"[, "readout"]}``, checked against the
    config's cell, sizes and task; None when not given."""
    cell = config.make_cell()
    if params is None:
        if type(cell).init is _cells.Cell.init:
            raise ValueError(f"{type(cell).__name__} has no init: pass its params to "
                             "train(config, params=...).")
        return None
    if not isinstance(params, dict) or "cell" not in params:
        params = {"cell": params}  # the cell's own params alone
    unknown = sorted(set(params) - {"cell", "readout"})
    if unknown:
        raise ValueError(f"`params` must hold 'cell' (and optionally 'readout'); got keys "
                         f"{unknown} too.")
    _cells.check_params(cell, params["cell"])
    hidden, spec = cell.hidden_size(params["cell"]), config.spec
    if hidden != config.hidden:
        raise ValueError(f"`params['cell']` has {hidden} hidden units; the config says "
                         f"hidden={config.hidden}: make them equal.")
    inputs = cell.input_size(params["cell"])
    if inputs is not None and inputs != spec.inputs:
        raise ValueError(f"`params['cell']` reads {inputs} inputs; the task "
                         f"{config.task!r} gives {spec.inputs}.")
    if "readout" in params:
        n_out = cell.output_size(cell.state_size(hidden))
        shapes = {k: np.shape(v) for k, v in dict(params["readout"]).items()}
        if shapes != {"W": (spec.outputs, n_out), "b": (spec.outputs,)}:
            raise ValueError(f"`params['readout']` must be {{'W': {(spec.outputs, n_out)}, "
                             f"'b': {(spec.outputs,)}}}; got shapes {shapes}.")
    return params

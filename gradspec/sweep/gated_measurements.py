r"""The gated-cell sweep measurements: ``"gated_mean_field"`` and ``"gated_lyapunov"``.

Both take the gate hyperparameters of :func:`gradspec.theory.gated_mean_field` as flat,
traced grid axes (so a grid over them is one ``jax.vmap``):

- ``sigma``, ``mu``, ``rho``, ``nu``: every gate's recurrent weight scale
  :math:`\sigma_k`, bias mean :math:`\mu_k`, bias standard deviation :math:`\rho_k`
  and input weight scale :math:`\nu_k` (defaults 1, 0, 0, 1);
- ``<name>_<gate>``, e.g. ``mu_f``, ``sigma_g``, ``rho_z``: one gate's value, which
  overrides the all-gate one. Gates: LSTM ``i, f, g, o``; GRU ``r, z, n``
  (:data:`gradspec.theory.GATES`).

A per-gate input left out takes the all-gate value: its default is NaN ("not set"),
and the measurement's ``normalize`` step writes the resolved number into every point's
config before it is hashed or stored. So each record states every gate's actual
hyperparameters; the entries of the other cell's gates (``mu_f`` of a GRU sweep) mirror
the all-gate values and are unused. Giving one of them, or a name that is no input,
is a ``ValueError``.

The two measurements (static options with their defaults):

- ``"gated_mean_field"``: :func:`gradspec.theory.gated_mean_field` per point; static
  ``kind`` ("lstm"), ``mode`` ("quenched" or "annealed"), ``hidden`` (512), traced
  ``sigma_x`` (0). Results: every :class:`~gradspec.theory.GatedMeanField` field
  (``lambda_max``, ``chi``, ``xi``, ``timescale``, ``q_h``, ``q_c``,
  ``fixed_point_stable``, ``annealed``).
- ``"gated_lyapunov"``: the top-k Lyapunov exponents of the point's random cell
  (:func:`random_gated`) from the default start state and start frame of every
  measurement; traced ``seed`` (0), static ``kind``, ``N`` (128), ``T`` (1000),
  ``warmup`` (200), ``k`` (1), ``sigma_x`` (0: no input). Results: ``lambda_max``,
  ``exponents`` (k,), ``finite``.

The functions here are registered in :mod:`gradspec.sweep.measurements` (this module
imports nothing of it, so there is no import cycle).

Examples:
    >>> import gradspec.sweep as gs
    >>> res = gs.sweep("gated_mean_field", {"mu_f": [0.0, 1.0]}, options={"rho_g": 0.5})
    >>> [round(r["results"]["lambda_max"], 3) for r in res.records]
    [-0.332, -0.088]
    >>> res.records[1]["config"]["mu_i"], res.records[1]["config"]["rho_g"]
    (0.0, 0.5)
"""

from __future__ import annotations

import functools
import math
from typing import Mapping

import jax.numpy as jnp
import jax.random as jr

from .. import theory
from .._checks import check_choice, check_int
from ..cells import GRU, LSTM
from ..measure import lyapunov_spectrum
from ..theory.gated import DEFAULT_HIDDEN

__all__ = ["GATED_PARAMS", "gate_hyper", "random_gated"]

_CELLS = {"lstm": LSTM(), "gru": GRU()}
#: The all-gate hyperparameters and their defaults (the theory's own).
_ALL_GATES = {"sigma": 1.0, "mu": 0.0, "rho": 0.0, "nu": 1.0}
#: Every gate letter of either cell, in the theory's order (LSTM's, then GRU's).
_LETTERS = tuple(g for kind in ("lstm", "gru") for g in theory.GATES[kind])
#: Per-gate inputs, NaN = not set (see the module docstring).
_PER_GATE = {f"{name}_{g}": math.nan for name in _ALL_GATES for g in _LETTERS}
#: The traced gate inputs of both measurements: all-gate values and per-gate overrides.
GATED_PARAMS = {**_ALL_GATES, **_PER_GATE}


def gate_hyper(values: Mapping, kind: str) -> dict:
    """``{"sigma": {gate: value}, "mu": ..., "rho": ..., "nu": ...}`` for the cell
    ``kind`` from a resolved point's flat ``values`` (its ``<name>_<gate>`` entries):
    the keyword form of :func:`gradspec.theory.gated_mean_field`."""
    return {name: {g: values[f"{name}_{g}"] for g in theory.GATES[kind]}
            for name in _ALL_GATES}


def random_gated(kind: str, hyper: Mapping, sigma_x, key, *, N: int, T: int):
    r"""The random LSTM or GRU and the inputs of one ``"gated_lyapunov"`` point.

    ``key`` is split in two: the first draws the params with
    ``cell.init(key, N, D, gates=...)`` (per gate k:
    :math:`W^k_{hh} \sim \mathcal N(0, \sigma_k^2/N)`,
    :math:`W^k_{ih} \sim \mathcal N(0, \nu_k^2/D)`,
    :math:`b_k \sim \mathcal N(\mu_k, \rho_k^2)`), the second the inputs. Undriven
    (``sigma_x`` the Python number 0): D = 1 and ``xs`` zeros (T, 1). Driven: D = N and
    :math:`x_t \sim \mathcal N(0, \sigma_x^2 I_N)` independently each step, so each
    gate's input drive has variance :math:`\nu_k^2 \sigma_x^2`, the :math:`\nu_k^2 R`
    of the theory (which takes that drive frozen, quenched, or at a constant power,
    annealed: neither is exact for a fresh draw each step).

    Args:
        kind: ``"lstm"`` or ``"gru"``.
        hyper: ``{"sigma": {gate: .}, "mu": ..., "rho": ..., "nu": ...}`` (scalars,
            traced under a sweep), as :func:`gate_hyper` returns.
        sigma_x: input RMS >= 0 (static: a Python number in the sweep).
        key: the point's PRNG key.
        N: hidden units; T: steps.

    Returns:
        ``(cell, params, xs)``; xs (T, D). The start state is left to the measurement
        functions' default (:func:`gradspec.measure._inputs.start_state`).
    """
    cell = _CELLS[kind]
    gates = {g: {name: hyper[name][g] for name in _ALL_GATES} for g in theory.GATES[kind]}
    k_params, k_x = jr.split(key)
    driven = not (isinstance(sigma_x, (int, float)) and sigma_x == 0)
    inputs = N if driven else 1
    params = cell.init(k_params, N, inputs, gates=gates)
    dtype = params["weight_hh"].dtype
    if driven:
        xs = jnp.asarray(sigma_x, dtype) * jr.normal(k_x, (T, inputs), dtype)
    else:
        xs = jnp.zeros((T, 1), dtype)
    return cell, params, xs


# -- normalize and check --------------------------------------------------------------


def normalize_gated(config: dict, *, inputs: frozenset) -> dict:
    """Resolve the per-gate inputs (NaN: the all-gate value); refuse names outside
    ``inputs`` (the measurement's) and the other cell's gates."""
    kind = config.get("kind")
    check_choice("kind", kind, tuple(theory.GATES))
    unknown = sorted(set(config) - inputs)
    if unknown:
        raise ValueError(
            f"{unknown[0]!r} is not an input of this gated measurement: its inputs are "
            f"{', '.join(_ALL_GATES)} (every gate), <name>_<gate> for one gate (the "
            f"{kind}'s gates: {', '.join(theory.GATES[kind])}) and "
            f"{', '.join(sorted(inputs - set(GATED_PARAMS)))}.")
    config = dict(config)
    for key in _PER_GATE:
        name, gate = key.split("_")
        if math.isnan(config[key]):
            config[key] = config[name]
        elif gate not in theory.GATES[kind]:
            raise ValueError(
                f"`{key}`: the {kind} has no gate {gate!r}; its gates are "
                f"{', '.join(theory.GATES[kind])}.")
    return config


def _check_gate_values(config: Mapping) -> None:
    for key in (*_ALL_GATES, *_PER_GATE, "sigma_x"):
        v = config[key]
        if not math.isfinite(v) or (not key.startswith("mu") and v < 0):
            bound = "a finite number" + ("" if key.startswith("mu") else " >= 0")
            raise ValueError(f"`{key}` must be {bound}; got {v!r}.")


def check_gated_mean_field(config: Mapping) -> None:
    _check_gate_values(config)
    check_choice("mode", config["mode"], ("quenched", "annealed"))
    check_int("hidden", config["hidden"], 1)


def check_gated_lyapunov(config: Mapping) -> None:
    _check_gate_values(config)
    n = check_int("N", config["N"], 1)
    steps = check_int("T", config["T"], 2)
    check_int("warmup", config["warmup"], 0, steps - 1)
    size = _CELLS[config["kind"]].state_size(n)
    check_int("k", config["k"], 1, size)


# -- the measurements -------------------------------------------------------------------


def gated_mean_field_point(values, key, *, kind, mode, hidden):
    """:func:`gradspec.theory.gated_mean_field` of one point: every field of its
    :class:`~gradspec.theory.GatedMeanField` (``q_c`` NaN for the GRU)."""
    del key  # deterministic
    mf = theory.gated_mean_field(kind, **gate_hyper(values, kind),
                                 sigma_x=values["sigma_x"], mode=mode, hidden=hidden)
    return mf._asdict()


def gated_lyapunov_point(values, key, *, kind, N, T, warmup, k, sigma_x):
    """Top-k Lyapunov exponents of the point's random cell (:func:`random_gated`) from
    the default start state and start frame."""
    cell, params, xs = random_gated(kind, gate_hyper(values, kind), sigma_x, key,
                                    N=N, T=T)
    exponents = lyapunov_spectrum(cell, params, xs, k=k, warmup=warmup)
    return {"lambda_max": exponents[0], "exponents": exponents,
            "finite": jnp.isfinite(exponents).all()}


def _spec(params: dict, static: dict, **rest) -> dict:
    inputs = frozenset(params) | frozenset(static)
    return dict(params=params, static=static,
                normalize=functools.partial(normalize_gated, inputs=inputs), **rest)


#: ``register``'s arguments for the two measurements, which
#: :mod:`gradspec.sweep.measurements` registers (adding the seed check there).
MEAN_FIELD_SPEC = _spec(
    {**GATED_PARAMS, "sigma_x": 0.0},
    {"kind": "lstm", "mode": "quenched", "hidden": DEFAULT_HIDDEN},
    check=check_gated_mean_field,
    description="gradspec.theory.gated_mean_field (kind, mode; gate axes sigma, mu, rho, "
    "nu, <name>_<gate>): lambda_max, chi, xi, q_h, q_c, fixed_point_stable",
    chunk_size=64,
)
LYAPUNOV_SPEC = _spec(
    {**GATED_PARAMS, "seed": 0},
    {"kind": "lstm", "N": 128, "T": 1000, "warmup": 200, "k": 1, "sigma_x": 0.0},
    description="top-k Lyapunov exponents of a random LSTM/GRU (random_gated; gate axes "
    "as gated_mean_field): lambda_max, exponents (k,), finite",
    chunk_size=16,
)

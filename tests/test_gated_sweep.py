"""The gated sweep measurements against direct calls: ``"gated_mean_field"`` equals
:func:`gradspec.theory.gated_mean_field` point by point, ``"gated_lyapunov"`` equals
:func:`gradspec.lyapunov_spectrum` of the documented network (written out here without
gradspec.sweep); per-gate axes override the all-gate ones; bad names are refused.

Float64 (conftest). A sweep vmaps its points, a direct call runs one: the results may
differ by rounding only (sums reordered in a batch), amplified by the root solves'
last iterations (mean field) or by the trajectory (Lyapunov): 1e-9 relative covers both
with room.
"""

import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
import gradspec.sweep as gs
from gradspec import theory

RTOL, ATOL = 1e-9, 1e-12
FIELDS = ("q_h", "q_c", "chi", "lambda_max", "xi", "timescale", "fixed_point_stable")


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=RTOL, atol=ATOL)


def test_gated_mean_field_points_equal_direct_calls():
    # LSTM: sigma (all gates) x mu_f, rho_g from an option; GRU: sigma_n x mu_z.
    grids = [
        ("lstm", {"sigma": [0.5, 1.0, 1.5], "mu_f": [0.0, 1.0]}, {"rho_g": 0.5}),
        ("gru", {"sigma_n": [1.0, 1.5], "mu_z": [0.0, 1.0]}, {"rho_n": 0.3,
                                                               "sigma_x": 0.2}),
    ]
    for kind, grid, options in grids:
        res = gs.sweep("gated_mean_field", grid, options={"kind": kind, **options})
        assert len(res.records) == math.prod(len(v) for v in grid.values())
        for rec in res.records:
            c = rec["config"]
            hyper = {name: {g: c[f"{name}_{g}"] for g in theory.GATES[kind]}
                     for name in ("sigma", "mu", "rho", "nu")}
            direct = theory.gated_mean_field(kind, **hyper, sigma_x=c["sigma_x"])
            for field in FIELDS:
                _close(rec["results"][field], getattr(direct, field))
        # The same points by the scalar/dict form a user would write.
        c = res.records[-1]["config"]
        if kind == "lstm":
            user = theory.gated_mean_field("lstm", sigma=c["sigma"],
                                           mu={"f": c["mu_f"]}, rho={"g": 0.5})
        else:
            user = theory.gated_mean_field("gru", sigma={"n": c["sigma_n"]},
                                           mu={"z": c["mu_z"]}, rho={"n": 0.3},
                                           sigma_x=0.2)
        _close(res.records[-1]["results"]["lambda_max"], user.lambda_max)


def test_per_gate_axis_overrides_the_all_gate_one():
    res = gs.sweep("gated_mean_field", {"sigma": [0.8, 1.2], "sigma_g": [2.0]},
                   options={"mu": 0.5, "mu_f": 1.0, "mode": "quenched"})
    for rec in res.records:
        c = rec["config"]
        assert c["sigma_g"] == 2.0 and c["sigma_i"] == c["sigma_f"] == c["sigma"]
        assert c["mu_f"] == 1.0 and c["mu_i"] == c["mu_g"] == c["mu_o"] == 0.5
        assert c["rho_i"] == 0.0 and c["nu_o"] == 1.0  # defaults, resolved
        direct = theory.gated_mean_field("lstm", sigma={"i": c["sigma"], "f": c["sigma"],
                                                        "g": 2.0, "o": c["sigma"]},
                                         mu={"i": 0.5, "f": 1.0, "g": 0.5, "o": 0.5})
        _close(rec["results"]["lambda_max"], direct.lambda_max)
    # The override changes the result (the test could not pass with it ignored).
    plain = gs.sweep("gated_mean_field", {"sigma": [0.8, 1.2]},
                     options={"mu": 0.5, "mu_f": 1.0})
    assert abs(plain.records[0]["results"]["lambda_max"]
               - res.records[0]["results"]["lambda_max"]) > 0.05


def test_bad_gate_names_are_refused():
    with pytest.raises(ValueError, match=r"`mu_f`: the gru has no gate 'f'"):
        gs.sweep("gated_mean_field", {"mu_f": [1.0]}, options={"kind": "gru"})
    with pytest.raises(ValueError, match=r"`sigma_z`: the lstm has no gate 'z'"):
        gs.sweep("gated_lyapunov", {"sigma_z": [1.0]}, options={"N": 4, "T": 10,
                                                                "warmup": 2})
    with pytest.raises(ValueError, match="'mu_x' is not an input"):
        gs.sweep("gated_mean_field", {"mu_x": [1.0]})
    with pytest.raises(ValueError, match="'seed' is not an input"):
        gs.sweep("gated_mean_field", {"sigma": [1.0]}, options={"seed": 1})
    with pytest.raises(ValueError, match="kind"):
        gs.sweep("gated_mean_field", {"sigma": [1.0]}, options={"kind": "rnn"})
    with pytest.raises(ValueError, match="rho_g"):
        gs.sweep("gated_mean_field", {"rho_g": [-0.5]})
    with pytest.raises(ValueError, match="mode"):
        gs.sweep("gated_mean_field", {"sigma": [1.0]}, options={"mode": "frozen"})
    with pytest.raises(ValueError, match="`k`"):  # k <= 2N for the LSTM
        gs.sweep("gated_lyapunov", {"sigma": [1.0]}, options={"N": 4, "k": 9})
    with pytest.raises(ValueError, match="seed"):
        gs.sweep("gated_lyapunov", {"seed": [-1]})


def _documented(kind, c, point_hash, N, T):
    """The documented network of a "gated_lyapunov" point, written out here."""
    key = jr.fold_in(jr.key(c["seed"]), int(point_hash[:8], 16))
    k_params, k_x = jr.split(key)
    cell = {"lstm": gradspec.cells.LSTM(), "gru": gradspec.cells.GRU()}[kind]
    gates = {g: {n: c[f"{n}_{g}"] for n in ("sigma", "mu", "rho", "nu")}
             for g in theory.GATES[kind]}
    driven = c["sigma_x"] != 0
    params = cell.init(k_params, N, N if driven else 1, gates=gates)
    xs = c["sigma_x"] * jr.normal(k_x, (T, N)) if driven else jnp.zeros((T, 1))
    return cell, params, xs


@pytest.mark.parametrize("kind, grid, options", [
    ("lstm", {"mu_f": [0.0, 1.5]}, {"rho_g": 0.5, "sigma_x": 0.0, "seed": 1}),
    # The driven branch (D = N inputs) compiles a second program: in the slow set.
    pytest.param("gru", {"sigma_n": [1.0, 2.5]}, {"mu_z": 1.0, "sigma_x": 0.3},
                 marks=pytest.mark.slow),
])
def test_gated_lyapunov_points_equal_lyapunov_spectrum(kind, grid, options):
    N, T, warmup, k = 12, 120, 30, 2
    res = gs.sweep("gated_lyapunov", grid,
                   options={"kind": kind, "N": N, "T": T, "warmup": warmup, "k": k,
                            **options})
    lams = []
    for rec in res.records:
        c = rec["config"]
        cell, params, xs = _documented(kind, c, rec["hash"], N, T)
        # The default start state and frame, as every measurement uses.
        direct = gradspec.lyapunov_spectrum(cell, params, xs, k=k, warmup=warmup)
        np.testing.assert_allclose(rec["results"]["exponents"], np.asarray(direct),
                                   rtol=RTOL, atol=1e-10)
        assert rec["results"]["finite"] is True
        lams.append(rec["results"]["lambda_max"])
        # The public helper builds the same network.
        hyper = {n: {g: c[f"{n}_{g}"] for g in theory.GATES[kind]}
                 for n in ("sigma", "mu", "rho", "nu")}
        _, params2, xs2 = gs.gated_measurements.random_gated(
            kind, hyper, c["sigma_x"], gs.point_key(c["seed"], rec["hash"]), N=N, T=T)
        assert all(np.array_equal(params[n], params2[n]) for n in params)
        assert np.array_equal(xs, xs2)
    assert len(set(lams)) == len(lams)  # each point its own network

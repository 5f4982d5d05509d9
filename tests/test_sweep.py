"""Sweeps: values against direct calls, sharding, crash safety, store errors, multi-host.

Subprocesses are used where jax must start differently (8 emulated CPU devices via
XLA_FLAGS, which must be set before jax is imported) or must be killed (SIGKILL at
random moments). Multi-process jobs (jax.distributed) are in test_sweep_cluster.py.
"""

import hashlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
import gradspec.sweep as gs
from gradspec import theory
from gradspec.cli.sweep import main as cli_main
from gradspec.sweep import batching, store as _store

from .helpers import EPS64, assert_mean_field_close, assert_within, log_product_atol

ROOT = Path(__file__).resolve().parents[1]
# Float32 results of one point computed in batches of different sizes (1 vs 8 points
# per device, or a padded last chunk) differ by XLA's vectorisation (AVX-512; bitwise
# equal under AVX2): seen 7e-7 relative on q* and chi (sums of positive terms), 1.9e-6
# absolute on a chaotic Lyapunov exponent (N = 8: ~N eps32 per log term). Logs and rates
# (exponents, profiles reaching |log norm| ~ 50) take the absolute part; mean-field
# lambda, xi and timescale are compared on the log scale (assert_mean_field_close).
F32_RTOL, F32_ATOL = 1e-5, 1e-5
SUBPROCESS_TIMEOUT = 240


_CACHE = {}


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
    # Subprocesses share jax's persistent compilation cache: the repeated runs of the
    # kill test compile once instead of once per run (~3 s each on 2 busy cores).
    _CACHE["dir"] = str(tmp_path_factory.mktemp("jax_cache"))
    yield
    _CACHE.clear()


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    if "dir" in _CACHE:
        env["JAX_COMPILATION_CACHE_DIR"] = _CACHE["dir"]
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env.update(extra)
    return env


def _python(script: Path, *args, **env):
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], cwd=ROOT,
                            env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc) -> str:
    try:
        out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"subprocess timed out:\n{out}\n{err}")
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    return out


def _by_hash(records):
    return {r["hash"]: r for r in records}


def _assert_same_results(a, b, rtol=F32_RTOL, atol=F32_ATOL):
    a, b = _by_hash(a), _by_hash(b)
    assert set(a) == set(b)
    for h in a:
        assert a[h]["config"] == b[h]["config"]
        ra, rb = a[h]["results"], b[h]["results"]
        assert set(ra) == set(rb)
        if set(ra) == {"q_star", "chi", "lambda_max", "xi", "timescale"}:  # mean field
            assert_mean_field_close(ra, rb, rtol, atol, err_msg=f"at {a[h]['config']}")
            continue
        for k in ra:
            np.testing.assert_allclose(np.asarray(ra[k], float), np.asarray(rb[k], float),
                                       rtol=rtol, atol=atol, err_msg=f"{k} at {a[h]['config']}")


# -- values against direct calls ------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_mean_field_equals_theory(nonlinearity):
    grid = {"sigma_w": [0.3, 1.0, 1.7], "sigma_b": [0.0, 0.4]}
    res = gs.sweep("mean_field", grid, options={"nonlinearity": nonlinearity, "sigma_x": 0.2},
                   progress=True)  # progress=True is a no-op without tqdm / a terminal
    assert res.computed == 6 and len(res.records) == 6
    for r, (sw, sb) in zip(res.records, [(a, b) for a in grid["sigma_w"] for b in grid["sigma_b"]]):
        assert (r["config"]["sigma_w"], r["config"]["sigma_b"]) == (sw, sb)  # grid order
        direct = theory.mean_field(nonlinearity, sw, sigma_b=sb, sigma_x=0.2)._asdict()
        assert set(direct) == set(r["results"])
        # float64 (conftest enables x64); vmap vs a single call only reorders sums: chi, a
        # sum of 1000 positive terms, to <= 1000 eps; lambda, xi, timescale on its log.
        assert_mean_field_close(r["results"], direct, 1e-12, err_msg=f"{sw}, {sb}")
        if nonlinearity == "relu":  # by hand: relu' = 1 on half of a centred Gaussian
            assert r["results"]["chi"] == pytest.approx(sw**2 / 2, rel=1e-12)


def test_progress_bar_when_tqdm_is_importable(monkeypatch):
    import types

    calls = []

    class FakeBar:
        def __init__(self, total, desc, unit, file):
            calls.append(("init", total, desc))

        def set_postfix_str(self, text, refresh=True):
            calls.append(("postfix", text))

        def update(self, n):
            calls.append(("update", n))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=FakeBar))
    gs.sweep("mean_field", {"sigma_w": [0.5, 1.0, 1.5]}, chunk_size=2, progress=True)
    assert calls == [("init", 3, "mean_field"), ("postfix", "chunk 1/2"), ("update", 2),
                     ("postfix", "chunk 2/2"), ("update", 1), ("close",)]
    calls.clear()
    gs.sweep("mean_field", {"sigma_w": [0.5]}, progress=None)  # stderr is no terminal
    assert calls == []


def _documented_rnn(c, point_hash, N, T):
    """The documented derivation, written out independently of gradspec.sweep."""
    key = jr.fold_in(jr.key(c["seed"]), int(point_hash[:8], 16))
    driven = c["sigma_x"] != 0
    z = jr.normal(key, (N * N + 2 * N + (T * N if driven else 0),), jnp.float64)
    params = {
        "W_hh": c["sigma_w"] / math.sqrt(N) * z[: N * N].reshape(N, N),
        "W_xh": jnp.eye(N, dtype=jnp.float64) if driven else jnp.zeros((N, 1)),
        "b": c["sigma_b"] * z[N * N : N * N + N],
    }
    h0 = z[N * N + N : N * N + 2 * N]
    xs = c["sigma_x"] * z[N * N + 2 * N :].reshape(T, N) if driven else jnp.zeros((T, 1))
    return key, params, xs, h0


def test_lyapunov_point_equals_lyapunov_spectrum():
    N, T, warmup, k = 12, 150, 30, 3
    # sigma_x is static for the simulated measurements: two compiled groups.
    res = gs.sweep("lyapunov", {"sigma_x": [0.0, 0.1], "sigma_w": [0.8, 1.6], "seed": [0, 3]},
                   options={"N": N, "T": T, "warmup": warmup, "k": k, "sigma_b": 0.2})
    for rec in res.records:  # hash: sha256 of the canonical JSON of the identity
        ident = {"measurement": "lyapunov", "version": 1, "dtype": "float64",
                 "config": rec["config"]}
        text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
        assert rec["hash"] == hashlib.sha256(text.encode()).hexdigest()
    for r in (res.records[3], res.records[7]):
        c = r["config"]
        assert (c["sigma_w"], c["seed"]) == (1.6, 3)
        key, params, xs, h0 = _documented_rnn(c, r["hash"], N, T)
        direct = gradspec.lyapunov_spectrum(gradspec.cells.RNN("tanh"), params, xs, h0, k=k,
                                            warmup=warmup)
        # float64; a batch of 4 vs one call reorders sums, and at sigma_w = 1.6, seed 3
        # (chaotic, lambda = 0.077) the trajectory amplifies that by ~e^(lambda t): seen
        # 1.3e-12 absolute (5600 eps) on exponents near 0, where no relative bound holds.
        np.testing.assert_allclose(r["results"]["exponents"], np.asarray(direct), rtol=1e-9,
                                   atol=1e-10)
        assert r["results"]["lambda_max"] == pytest.approx(float(direct[0]), rel=1e-9, abs=1e-10)
        assert r["results"]["finite"] is True
        # The public helpers give the same key and network.
        assert np.array_equal(jr.key_data(gs.point_key(c["seed"], r["hash"])), jr.key_data(key))
        _, params2, xs2, _ = gs.random_rnn(c["sigma_w"], c["sigma_b"], c["sigma_x"], key, N=N, T=T)
        assert all(np.array_equal(params[n], params2[n]) for n in params)
        assert np.array_equal(xs, xs2)
    assert res.records[3]["results"]["lambda_max"] != res.records[7]["results"]["lambda_max"]


@pytest.mark.slow  # four compiled programs at N = 128: ~12 s of CPU
def test_batched_equals_one_point_at_a_time():
    """A chunk's points vmapped together, in lax.map'd batches (a remainder
    included), or one at a time (the CPU's choice at N = 128) agree with each other and
    with a direct call per point."""
    N, T, warmup = 128, 40, 8
    grid = {"sigma_w": [0.6, 0.8, 1.0, 1.2, 1.4]}
    opts = {"N": N, "T": T, "warmup": warmup, "k": 2, "sigma_b": 0.1, "seed": 5}
    # None: one at a time here (asserted below); 3: a batch of 3 and a remainder of 1;
    # 4: the whole chunk vmapped. Chunks: 4 points, then 1 padded to 4.
    runs = {b: gs.sweep("lyapunov", grid, options=opts, chunk_size=4,
                        batch_size=b).records for b in (None, 3, 4)}
    for r in runs[None]:
        c = r["config"]
        _, params, xs, h0 = _documented_rnn(c, r["hash"], N, T)
        direct = np.asarray(gradspec.lyapunov_spectrum(
            gradspec.cells.RNN("tanh"), params, xs, h0, k=2, warmup=warmup))
        for b, records in runs.items():
            got = _by_hash(records)[r["hash"]]["results"]["exponents"]
            # float64: batching reorders the sums of each mat-vec (a few eps), which
            # the 40 steps amplify by at most e^(lambda_max T) < e^4 (sigma_w <= 1.4).
            np.testing.assert_allclose(got, direct, rtol=1e-11, atol=1e-12,
                                       err_msg=f"batch_size={b}")


def test_batch_width_rule_and_batch_size():
    # The rule: on a CPU, a batch's largest matrix-product operands <= 16384 elements.
    one = lambda n: jax.make_jaxpr(lambda v, key: gs.get_measurement("lyapunov").fn(
        v, key, nonlinearity="tanh", N=n, T=5, warmup=1, k=1, sigma_x=0.0))(
        {"sigma_w": 1.0, "sigma_b": 0.0}, jr.key(0)).jaxpr
    assert [batching.batch_width(one(n), "cpu", 16) for n in (8, 32, 64, 128, 256)] == \
        [16, 16, 4, 1, 1]
    assert batching.batch_width(one(256), "gpu", 16) == 16  # fill the device
    # A width below the length maps (a scan) over vmapped batches, the rest a remainder.
    xs = jnp.arange(5.0)
    for width, scans in ((5, 0), (8, 0), (2, 1), (1, 1)):
        f = batching.over_points(lambda x: {"y": x**2}, width, 5)
        assert str(jax.make_jaxpr(f)(xs)).count("scan[") == scans, width
        assert np.array_equal(f(xs)["y"], xs**2)
    # Any batching gives the same values (mean field: vmapped by default).
    grid = {"sigma_w": [0.5, 0.9, 1.3, 1.7, 2.1], "sigma_b": [0.0, 0.3]}
    runs = [[r["results"]["chi"] for r in gs.sweep("mean_field", grid, chunk_size=8,
                                                   batch_size=b).records]
            for b in (None, 1, 3)]
    np.testing.assert_allclose(runs[1:], [runs[0]] * 2, rtol=1e-13)  # float64 rounding
    for bad, err in ((0, ValueError), (1.5, TypeError)):
        with pytest.raises(err, match="batch_size"):
            gs.sweep("mean_field", {"sigma_w": [1.0]}, batch_size=bad)


_PROFILE_OPTIONS = {"N": 10, "T": 110, "warmup": 20}


def test_gradient_profile_point_and_npz(tmp_path):
    opts = _PROFILE_OPTIONS
    res = gs.sweep("gradient_profile", {"sigma_w": [0.7, 1.3]}, options=opts,
                   store=tmp_path / "s")
    r = res.records[1]
    assert r["npz"] == f"arrays/{r['hash']}.npz"  # 91 > 64 values: stored beside
    assert (tmp_path / "s" / r["npz"]).exists()
    assert r["results"]["profile"].flags.writeable  # a copy, as load gives
    cell, params, xs, h0 = gs.random_rnn(1.3, 0.0, 0.0, gs.point_key(0, r["hash"]),
                                         N=10, T=110)
    h = gradspec.trajectory(cell, params, xs[:20], h0)[-1]
    prof = gradspec.gradient_profile(cell, params, xs[20:], h)
    # Batched vs one call: each lag's error is bounded by the sizes of the products so far.
    J = np.asarray(gradspec.step_jacobians(cell, params, xs[20:], h))
    tol = log_product_atol(gradspec.default_readout(cell, 10, jnp.float64), J[::-1])
    assert_within(r["results"]["profile"], prof, tol)
    # The slope sum (k - k_mean) l_k / var carries those errors, plus its own rounding
    # (terms |k - k_mean| |l_k - l_mean|): absolute, as a rate may be ~0.
    k = np.arange(prof.size) - prof.size / 2 + 0.5
    slope_tol = (np.abs(k) @ (tol + EPS64 * np.abs(np.asarray(prof) - np.mean(prof)))) / (k @ k)
    assert r["results"]["rate"] == pytest.approx(float(gradspec.profile_rate(prof)), abs=slope_tol)
    loaded = gs.load(tmp_path / "s")
    assert np.array_equal(_by_hash(loaded)[r["hash"]]["results"]["profile"],
                          r["results"]["profile"])


def test_custom_measurement_static_groups_and_plain_function():
    calls = []

    @gs.register("test_poly", params={"x": 0.0, "seed": 0}, static={"n": 2}, overwrite=True)
    def poly(values, key, *, n):
        calls.append(n)  # once per trace, i.e. per static group
        return {"y": values["x"] ** n, "noise": jr.normal(key, (3,))}

    res = gs.sweep("test_poly", {"n": [1, 3], "x": [2.0, -1.0]})
    assert [r["results"]["y"] for r in res.records] == [2.0, -1.0, 8.0, -1.0]
    assert sorted(calls) == [1, 3]
    # A key per point: the same x under different static n shares nothing.
    noises = {tuple(r["results"]["noise"]) for r in res.records}
    assert len(noises) == 4
    assert "test_poly" in gs.measurements()

    def plain(values, key, *, scale):
        return {"z": scale * values["a"]}

    res = gs.sweep(plain, {"a": [1.0, 2.0]}, options={"scale": 3.0})
    assert [r["results"]["z"] for r in res.records] == [3.0, 6.0]


def test_table_and_to_grid():
    recs = gs.sweep("mean_field", {"sigma_w": [1.5, 0.5, 1.0], "sigma_b": [0.1, 0.0]}).records
    t = gs.table(recs, ["sigma_w", "chi", "measurement"])
    assert t["sigma_w"].tolist() == [1.5, 1.5, 0.5, 0.5, 1.0, 1.0]
    g = gs.to_grid(recs, "lambda_max")
    assert g.axes == ("sigma_w", "sigma_b")
    assert g.coords[0].tolist() == [0.5, 1.0, 1.5] and g.coords[1].tolist() == [0.0, 0.1]
    direct = theory.mean_field("tanh", 1.0, sigma_b=0.1).lambda_max
    # lambda = log(chi)/2 near criticality (-0.066 here): absolute, chi's relative rounding.
    assert g.values[1, 1] == pytest.approx(float(direct), abs=1e-12)
    # By hand: tanh at sigma_w = 0.5 < 1, sigma_b = 0 has q* = 0, so chi = sigma_w^2 and
    # lambda_max = log(sigma_w).
    assert g.values[0, 0] == pytest.approx(math.log(0.5), abs=1e-12)
    partial = gs.to_grid(recs[:-1], "chi")
    assert np.isnan(partial.values[1, 0]) and np.isfinite(partial.values[1, 1])
    with pytest.raises(ValueError, match="sigma_b"):
        gs.to_grid(recs, "chi", axes=("sigma_w",))
    with pytest.raises(ValueError, match="nope"):
        gs.table(recs, ["nope"])


def test_axis_values():
    assert gs.axis_values({"linspace": [0.0, 3.0, 64], "every": 4}) == \
        [float(v) for v in np.linspace(0.0, 3.0, 64)[::4]]
    assert gs.axis_values({"range": [0, 10, 3]}) == [0, 3, 6, 9]
    assert gs.axis_values({"logspace": [0, 2, 3]}) == [1.0, 10.0, 100.0]
    with pytest.raises(ValueError, match="sigma_w"):
        gs.axis_values({"linspace": [0, 1]}, "sigma_w")
    with pytest.raises(ValueError, match="options"):
        gs.axis_values(1.0, "sigma_w")


def test_unbatched_measurement_is_called_per_point(tmp_path):
    seen = []

    def per_point(config):
        seen.append(config["x"])
        label = "big" if config["x"] > 1 else "small"
        return {"label": label, "curve": np.arange(70.0) * config["x"]}

    gs.register("test_unbatched", per_point, params={"x": 0.0}, batched=False, overwrite=True)
    res = gs.sweep("test_unbatched", {"x": [0.5, 2.0]}, store=tmp_path / "s")
    assert seen == [0.5, 2.0]
    assert [r["results"]["label"] for r in res.records] == ["small", "big"]
    assert res.records[1]["npz"] and res.records[1]["results"]["curve"][1] == 2.0
    again = gs.sweep("test_unbatched", {"x": [0.5, 2.0]}, store=tmp_path / "s", resume=True)
    assert (again.computed, again.skipped) == (0, 2)


@pytest.mark.slow  # two training compiles: ~10-30 s on a loaded 2-core machine
def test_train_measurement_runs_per_point():
    opts = {"hidden": 4, "T": 5, "batch": 4, "steps": 3, "seeds": [0, 1]}
    res = gs.sweep("train", {"learning_rate": [1e-3, 1e-2]}, options=opts)
    assert res.computed == 2
    r = res.records[0]
    assert r["config"]["hidden"] == 4 and r["config"]["init"] == "orthogonal"  # defaults
    assert np.shape(r["results"]["loss"]) == (2, 3)
    assert all(o in ("solved", "stalled", "diverged") for o in r["results"]["outcome"])


# -- bad input and damaged stores ------------------------------------------------------------


def test_bad_grids():
    with pytest.raises(ValueError, match="'sigma_q' is not an input"):
        gs.sweep("mean_field", {"sigma_q": [1.0]})
    with pytest.raises(ValueError, match="sigma_w"):
        gs.sweep("mean_field", {"sigma_w": [-1.0]})
    with pytest.raises(ValueError, match="duplicate"):
        gs.sweep("mean_field", {"sigma_w": [1, 1.0]})
    with pytest.raises(ValueError, match="both as grid axes and as options"):
        gs.sweep("mean_field", {"sigma_w": [1.0]}, options={"sigma_w": 2.0})
    with pytest.raises(ValueError, match="measurement"):
        gs.sweep("no_such_measurement", {"x": [1.0]})
    with pytest.raises(ValueError, match="N"):
        gs.sweep("lyapunov", {"sigma_w": [1.0]}, options={"N": 0})
    with pytest.raises(ValueError, match="chunk_size"):
        gs.sweep("mean_field", {"sigma_w": [1.0]}, chunk_size=0)
    with pytest.raises(ValueError, match="process_index"):
        gs.sweep("mean_field", {"sigma_w": [1.0]}, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="process_count"):
        gs.sweep("mean_field", {"sigma_w": [1.0]}, process_index=0, process_count=0)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def test_rerun_skips_and_grid_can_grow(tmp_path):
    store = tmp_path / "s"
    first = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store)
    again = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0, 2.0]}, store=store, resume=True)
    assert (first.computed, again.computed, again.skipped) == (2, 1, 2)
    assert len(gs.load(store)) == 3
    _assert_same_results(first.records, again.records[:2], rtol=0, atol=0)
    # Returned records (computed here or skipped) are exactly what the store holds, and
    # both agree with the theory called directly.
    _assert_same_results(again.records, gs.load(store), rtol=0, atol=0)
    for r in again.records:
        direct = theory.mean_field("tanh", r["config"]["sigma_w"])
        # chi: 1000 positive quadrature terms (<= 1000 eps in any order): relative.
        assert r["results"]["chi"] == pytest.approx(float(direct.chi), rel=1e-12)


def test_split_over_independent_jobs(tmp_path):
    store, grid = tmp_path / "s", {"sigma_w": [0.5, 1.0, 2.0]}
    first = gs.sweep("mean_field", grid, store=store, process_index=0, process_count=2)
    assert first.computed == 2  # points 0 and 2; no barrier: what the store holds now
    assert [r["config"]["sigma_w"] for r in first.records] == [0.5, 2.0]
    second = gs.sweep("mean_field", grid, store=store, process_index=1, process_count=2,
                      resume=True)  # job 0 has written: job 1 continues its store
    assert (second.computed, second.skipped) == (1, 0)
    assert [r["config"]["sigma_w"] for r in second.records] == grid["sigma_w"]
    assert [p.name for p in _store.shard_paths(store)] == ["records-p0.jsonl",
                                                           "records-p1.jsonl"]
    for r in second.records:
        direct = theory.mean_field("tanh", r["config"]["sigma_w"])
        assert r["results"]["chi"] == pytest.approx(float(direct.chi), rel=1e-12)


def test_changed_options_or_measurement_refused(tmp_path):
    store = tmp_path / "s"
    gs.sweep("mean_field", {"sigma_w": [0.5]}, store=store)
    with pytest.raises(ValueError, match=r"different sweep \(options"):
        gs.sweep("mean_field", {"sigma_w": [0.5]}, options={"nonlinearity": "relu"},
                 store=store)
    with pytest.raises(ValueError, match=r"different sweep \(measurement"):
        gs.sweep("lyapunov", {"sigma_w": [0.5]}, store=store)


def test_edited_config_refused(tmp_path):
    store = tmp_path / "s"
    gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store)
    shard = store / "records-p0.jsonl"
    lines = _lines(shard)
    rec = json.loads(lines[1])
    rec["config"]["sigma_w"] = 1.5  # same hash, different config
    lines[1] = _store.canonical_json(rec).encode()
    shard.write_bytes(b"\n".join(lines))
    for call in (lambda: gs.load(store),
                 lambda: gs.sweep("mean_field", {"sigma_w": [0.5, 1.0, 1.5]}, store=store,
                                  resume=True)):
        with pytest.raises(ValueError, match="does not match its hash"):
            call()


def test_corrupt_last_line_refused_then_repaired(tmp_path):
    store = tmp_path / "s"
    gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store)
    shard = store / "records-p0.jsonl"
    shard.write_bytes(shard.read_bytes() + b'{"hash": "abc", garbage}\n')
    with pytest.raises(ValueError, match="line 3 is corrupt"):
        gs.load(store)
    with pytest.raises(ValueError, match="line 3 is corrupt"):
        gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store, resume=True)
    assert gs.repair(store)["corrupt"] == 1
    assert len(gs.load(store)) == 2


def test_truncated_last_line_warns_and_is_cut_on_next_append(tmp_path):
    store = tmp_path / "s"
    grid = {"sigma_w": [0.5, 1.0, 1.5]}
    gs.sweep("mean_field", grid, store=store)
    shard = store / "records-p0.jsonl"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 40])  # a crash in the middle of the last line
    with pytest.warns(gs.StoreWarning, match="truncated"):
        assert len(gs.load(store)) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = gs.sweep("mean_field", grid, store=store, resume=True)
    assert any("truncated" in str(w.message) for w in caught)
    assert (res.computed, res.skipped) == (1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: no warning any more
        records = gs.load(store)
    assert len(records) == 3 and len(_lines(shard)) == 4  # 3 lines + final ""


def test_missing_npz_refused_then_repaired(tmp_path):
    store = tmp_path / "s"
    opts, grid = _PROFILE_OPTIONS, {"sigma_w": [0.7, 1.3]}  # compiled once, shared
    res = gs.sweep("gradient_profile", grid, options=opts, store=store)
    (store / res.records[0]["npz"]).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        gs.load(store)
    with pytest.raises(FileNotFoundError, match="missing"):
        gs.sweep("gradient_profile", grid, options=opts, store=store, resume=True)
    assert gs.load(store, arrays=False)  # the JSON part is still readable
    assert gs.repair(store)["missing_npz"] == 1
    again = gs.sweep("gradient_profile", grid, options=opts, store=store, resume=True)
    assert (again.computed, again.skipped) == (1, 1)
    # Recomputed in a batch of 1 instead of 2: equal to float64 rounding (seen bitwise);
    # 1e-12 absolute is ~4500 eps of the O(1) per-step logs (profile, rate, log_ratio).
    _assert_same_results(res.records, again.records, rtol=1e-12, atol=1e-12)


def test_cli_requires_resume(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(textwrap.dedent(f"""
        store = "{tmp_path / 'runs'}"
        chunk_size = 4
        [sweeps.pred]
        measurement = "mean_field"
        grid.sigma_w = {{ linspace = [0.5, 1.5, 3] }}
        grid.sigma_b = [0.0, 0.1]
    """))
    assert cli_main([str(config)]) == 0
    assert "6 points done (6 computed" in capsys.readouterr().out
    assert cli_main([str(config)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli_main([str(config), "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary[0]["computed"] == 0 and summary[0]["skipped"] == 6
    assert len(gs.load(tmp_path / "runs" / "pred")) == 6
    bad = tmp_path / "bad.toml"
    bad.write_text('store = "x"\nmeasurment = "mean_field"\n')
    assert cli_main([str(bad)]) == 2
    assert "measurment" in capsys.readouterr().err


def test_cli_ctrl_c_says_what_is_saved(tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text(f'store = "{tmp_path / "runs"}"\nmeasurement = "mean_field"\n'
                      'grid.sigma_w = [0.5, 1.0, 1.5]\n')
    assert cli_main([str(config)]) == 0
    import gradspec.cli.sweep as sweep_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_cli, "sweep", interrupted)
    assert cli_main([str(config), "--resume"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; 3 finished points are saved" in err and "--resume" in err
    assert "Traceback" not in err


def test_example_config_parses():
    specs = gs.read_config(ROOT / "examples" / "phase_diagram.toml")
    assert [s.name for s in specs] == ["predicted", "measured"]
    pred, meas = specs
    assert len(gs.axis_values(pred.grid["sigma_w"])) == 64
    assert gs.axis_values(meas.grid["sigma_w"]) == gs.axis_values(pred.grid["sigma_w"])[::4]
    assert meas.options["N"] == 256 and meas.store.endswith("measured")


# -- sharding, kills and multi-host (subprocesses) --------------------------------------------

_SHARDED = """
import json, sys
import jax, numpy as np
import gradspec.sweep as gs
jax.config.update("jax_enable_x64", False)
devs = jax.local_devices()
assert len(devs) == 8, devs
grid = {"sigma_w": [0.5, 0.9, 1.3, 1.7, 2.1], "sigma_b": [0.0, 0.3, 0.6]}  # 15 points
jobs = [("mean_field", {}), ("lyapunov", {"N": 8, "T": 60, "warmup": 10, "k": 2})]
out = {}
for name, opts in jobs:
    out[name] = {n: [{"hash": r["hash"], "config": r["config"],
                      "results": {k: np.asarray(v).tolist() for k, v in r["results"].items()},
                      "devices": r["meta"]["devices"]}
                     for r in gs.sweep(name, grid, options=opts, devices=d, chunk_size=8).records]
                 for n, d in (("one", devs[:1]), ("all", devs), ("three", devs[:3]))}
print(json.dumps(out))
"""


def test_sharded_equals_unsharded(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(_SHARDED)
    flags = "--xla_force_host_platform_device_count=8"
    out = json.loads(_finish(_python(script, XLA_FLAGS=flags)))
    for name, runs in out.items():
        assert [r["devices"] for r in runs["all"]][:1] == [8]
        assert {n: {r["devices"] for r in runs[n]} for n in runs} == \
            {"one": {1}, "all": {8}, "three": {3}}
        assert len(runs["one"]) == 15
        _assert_same_results(runs["one"], runs["all"])
        _assert_same_results(runs["one"], runs["three"])


_KILLABLE = """
import sys, time
import gradspec.sweep as gs
from gradspec.sweep import runner, store as _store
store, slow = sys.argv[1], sys.argv[2] == "slow"
if slow:  # stretch the run so that kills land between chunks, npz and lines
    run_chunk, write_npz = runner._run_chunk, _store.write_npz
    def slow_chunk(*a, **k):
        out = run_chunk(*a, **k)
        time.sleep(0.12)
        return out
    def slow_npz(*a, **k):
        out = write_npz(*a, **k)
        time.sleep(0.02)
        return out
    runner._run_chunk, _store.write_npz = slow_chunk, slow_npz
grid = {"sigma_w": [0.4, 0.8, 1.2, 1.6, 2.0, 2.4], "sigma_b": [0.0, 0.2, 0.4, 0.6]}
gs.sweep("gradient_profile", grid, options={"N": 8, "T": 100, "warmup": 10}, store=store,
         chunk_size=2, resume=True)  # each rerun after a kill continues the store
"""


def _check_store_lines(store: Path) -> list[str]:
    """Every line of every shard is a complete valid record; no hash twice."""
    hashes = []
    for shard in _store.shard_paths(store):
        data = shard.read_bytes()
        assert not data or data.endswith(b"\n"), "truncated line after SIGKILL"
        for line in data.splitlines():
            rec = json.loads(line)
            if rec["npz"]:
                assert (store / rec["npz"]).exists(), "line written before its npz"
            hashes.append(rec["hash"])
    assert len(hashes) == len(set(hashes)), "duplicate record"
    return hashes


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    script = tmp_path / "killable.py"
    script.write_text(_KILLABLE)
    reference = _python(script, tmp_path / "ref", "fast")  # runs alongside the kills
    store, rng, kills = tmp_path / "killed", random.Random(1234), 0
    shard = store / "records-p0.jsonl"
    for attempt in range(4):
        proc = _python(script, store, "slow")
        if attempt == 0:  # anywhere from start-up (no store yet) to the first chunks
            time.sleep(rng.uniform(0.2, 3.0))
        else:  # wait for this run to write, then kill mid-stream
            before = shard.stat().st_size if shard.exists() else 0
            deadline = time.monotonic() + SUBPROCESS_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                if shard.exists() and shard.stat().st_size > before:
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=SUBPROCESS_TIMEOUT)
        if store.exists():
            _check_store_lines(store)
    assert kills >= 3, f"only {kills} kills landed while the sweep ran"
    _finish(_python(script, store, "fast"))
    _finish(reference)
    hashes = _check_store_lines(store)
    assert len(hashes) == 24
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncated line, no duplicates
        killed, ref = gs.load(store), gs.load(tmp_path / "ref")
    _assert_same_results(killed, ref)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# `gradspec sweep` (the lead wires add_parser into gradspec.cli); not `python -m
# gradspec.sweep`, which runs the module twice once gradspec/__init__ imports it.
_CLI = "import sys; from gradspec.cli.sweep import main; raise SystemExit(main(sys.argv[1:]))"

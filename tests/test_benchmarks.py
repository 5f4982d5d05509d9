"""The benchmark runner: a tiny run end to end (JSON schema, accuracy within tolerance,
targets, Markdown, figures) plus the helpers whose arithmetic the numbers rest on.

The tiny run is a subprocess (``python -m benchmarks.run --tiny``), as a user runs it:
the runner configures OpenBLAS threads before numpy loads, and must not inherit this
suite's strict promotion settings. XLA's slow optimisation passes are switched off for
it: tiny timings mean nothing, and compilation is most of its cost.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RECORD_KEYS = {
    "benchmark",
    "method",
    "library",
    "status",
    "reason",
    "device_platform",
    "device_kind",
    "device_count",
    "jax",
    "jaxlib",
    "dtype",
    "N",
    "T",
    "batch",
    "flop_formula",
    "compile_s",
    "run_best_s",
    "run_median_s",
    "repeats",
    "flops",
    "extrapolated",
    "accuracy",
}
ACCURACY_KEYS = {"metric", "reference", "value", "tolerance", "within_tolerance"}
BENCHMARKS = {
    "gradient_profile",
    "product_singular_values",
    "lyapunov_spectrum",
    "lyapunov_topk",
    "step_jacobians",
    "predict",
}


def _strict_json(path):
    def reject(name):
        raise ValueError(f"non-standard JSON constant {name}")

    with open(path) as f:
        return json.load(f, parse_constant=reject)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
        " --xla_llvm_disable_expensive_passes=true"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--tiny",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, _strict_json(out)


@pytest.mark.slow
def test_top_level_schema(tiny):
    path, res = tiny
    assert res["schema_version"] == 1 and res["mode"] == "tiny"
    for key in (
        "device_platform",
        "device_kind",
        "device_count",
        "jax",
        "jaxlib",
        "openblas_num_threads",
    ):
        assert key in res["env"], key
    assert res["env"]["device_count"] >= 1
    for dtype in ("float32", "float64"):
        assert res["peaks"][dtype]["best_flops"] > 0
        assert all(v > 0 for v in res["peaks"][dtype]["by_n"].values())
    assert res["peaks"]["stream_bytes_per_s"] > 0
    assert res["total_s"] > 0
    assert os.path.exists(os.path.splitext(path)[0] + ".md")


@pytest.mark.slow
def test_records_schema(tiny):
    _, res = tiny
    recs = res["records"]
    assert {r["benchmark"] for r in recs} == BENCHMARKS
    for r in recs:
        if r["method"] == "scaling":
            assert r["time_exponent_in_k"] is None or math.isfinite(
                r["time_exponent_in_k"]
            )
            continue
        assert RECORD_KEYS <= set(r), (
            r["benchmark"],
            r["method"],
            RECORD_KEYS - set(r),
        )
        assert r["status"] in ("ok", "skipped", "error")
        assert r["dtype"] in ("float32", "float64")
        assert r["status"] != "error", (r["benchmark"], r["method"], r["reason"])
        if r["status"] == "skipped":
            assert r["reason"]
            continue
        assert ACCURACY_KEYS <= set(r["accuracy"]) or "not_checked" in r["accuracy"]
        assert r["repeats"] >= 1 and len(r["times_s"]) == r["repeats"]
        assert r["run_best_s"] > 0
        if r["extrapolated"] is None:
            assert r["run_best_s"] <= r["run_median_s"]
            assert r["run_best_s"] == min(r["times_s"])
        if r["compile_s"] is not None:
            assert r["compile_s"] >= 0
        if r.get("flops_per_s") is not None:
            assert r["flops_per_s"] > 0 and r["frac_of_peak"] > 0


@pytest.mark.slow
def test_library_accuracy_within_tolerance(tiny):
    _, res = tiny
    checked = 0
    for r in res["records"]:
        acc = r.get("accuracy") or {}
        if r["status"] != "ok" or not r["library"] or acc.get("metric") is None:
            continue
        assert acc["within_tolerance"], (r["benchmark"], r["method"], r["dtype"], acc)
        assert (
            isinstance(acc["value"], (int, float)) and acc["value"] <= acc["tolerance"]
        )
        checked += 1
    assert checked >= 10


@pytest.mark.slow
def test_baselines_and_ratios_present(tiny):
    _, res = tiny
    prof = [
        r
        for r in res["records"]
        if r["benchmark"] == "gradient_profile"
        and r["batch"] == 1
        and r["status"] == "ok"
    ]
    methods = {r["method"] for r in prof}
    expected = {
        "gradspec",
        "plain_grad_h0",
        "per_lag_grad",
        "jacrev_full",
        "numpy_f64_loop",
    }
    if res["env"]["torch"] is not None:
        expected.add("torch_autograd")
    assert expected <= methods
    main = next(r for r in prof if r["method"] == "gradspec")
    assert expected - {"gradspec"} <= set(main["speedup_vs"])
    per_lag = next(r for r in prof if r["method"] == "per_lag_grad")
    assert (
        per_lag["extrapolated"]["from_lags"] and per_lag["lags_covered"] == per_lag["T"]
    )
    # every non-library record is checked against float64 too (or says why not)
    for r in res["records"]:
        if r["status"] == "ok" and not r["library"]:
            acc = r["accuracy"]
            assert acc.get("metric") is not None or acc.get("not_checked")


@pytest.mark.slow
def test_targets(tiny):
    _, res = tiny
    names = [t["name"] for t in res["targets"]]
    assert len(names) == 4
    for t in res["targets"]:
        assert {"name", "goal", "measured", "met"} <= set(t)
        assert t["met"] in (True, False, None)
    assert res["targets"][0]["measured"] > 0  # profile vs plain grad: measured in tiny


@pytest.mark.slow
def test_plot_writes_png_and_pdf_without_global_style(tiny, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from benchmarks import plot

    before = matplotlib.rcParams["pdf.fonttype"]
    paths = plot.plot(tiny[1], str(tmp_path))
    assert matplotlib.rcParams["pdf.fonttype"] == before  # rc_context, not global
    assert {os.path.splitext(p)[1] for p in paths} == {".png", ".pdf"}
    assert len(paths) == 6 and all(os.path.getsize(p) > 0 for p in paths)
    with open(next(p for p in paths if p.endswith(".pdf")), "rb") as f:
        assert b"/Type3" not in f.read()  # fonttype 42: TrueType, editable text


def test_per_lag_extrapolation_is_exact_for_linear_times():
    from benchmarks.bench_gradient_profile import extrapolate_lags

    a, b, T = 1e-3, 2e-5, 1000
    lags = [250, 500, 1000]
    ext = extrapolate_lags(lags, [a + b * k for k in lags], T)
    # A least-squares fit through exact points (its intercept cancels terms <= 20x larger:
    # ~20 eps) summed over T lags of one sign: rel 1e-9 leaves 1e5 x that.
    assert ext["seconds"] == pytest.approx(T * a + b * T * (T + 1) / 2, rel=1e-9)


def test_sanitize_makes_strict_json():
    from benchmarks._records import as_float, sanitize

    out = sanitize({"a": [math.inf, -math.inf, math.nan, np.float32(1.5)], "b": (1, 2)})
    assert out == {"a": ["inf", "-inf", "nan", 1.5], "b": [1, 2]}
    json.dumps(out, allow_nan=False)
    assert as_float("inf") == math.inf and as_float(2) == 2.0


def test_for_each_case_records_skips_and_failures_in_grid_order():
    import dataclasses

    import jax

    from benchmarks import _runner as R

    # spectra's tiny grid is float32 only; two batch sizes, no torch import
    cfg = dataclasses.replace(
        R.make_config("tiny", "cpu"), batches=(1, 2), torch_max_n=0
    )
    env = dict.fromkeys(
        ("device_platform", "device_kind", "device_count", "jax", "jaxlib"), "x"
    )
    seen = []

    def ok(cfg, env, peaks, device, prob, torch):
        seen.append((prob.batch, prob.xs.shape, bool(torch), torch.reason))
        return [{"benchmark": "a", "status": "ok", "batch": prob.batch}]

    def boom(*args):
        raise RuntimeError("boom")

    runs = [
        ("a", ok, lambda prob: None),
        ("b", boom, lambda prob: "too big" if prob.batch > 1 else None),
    ]
    snapshots = []  # the runner rewrites its JSON from these after every case
    R.CHECKPOINT = lambda partial: snapshots.append([r["status"] for r in partial])
    try:
        recs = R.for_each_case(cfg, env, {}, jax.devices("cpu")[0], "spectra", runs)
    finally:
        R.CHECKPOINT = None
    assert snapshots == [["ok"], ["ok", "error"], ["ok", "error", "ok"]]
    assert [(r["benchmark"], r["status"], r["batch"]) for r in recs] == [
        ("a", "ok", 1),
        ("b", "error", 1),
        ("a", "ok", 2),
        ("b", "skipped", 2),
    ]
    assert recs[1]["reason"] == "RuntimeError: boom" and recs[1]["method"] == "gradspec"
    assert recs[3]["reason"] == "too big"
    assert recs[3]["shapes"]["xs"] == [2, 12, 1]
    assert [s[:3] for s in seen] == [(1, (12, 1), False), (2, (2, 12, 1), False)]
    assert "N <= 0" in seen[0][3]


def test_log_norm_where_the_squares_under_and_overflow():
    import jax.numpy as jnp

    from benchmarks.bench_gradient_profile import log_norm

    # float32: (3e-30)^2 underflows to 0 and (3e20)^2 overflows; the norms are 5e-30
    # and 5e20 (3-4-5 triangles), a zero gradient has log-norm -inf.
    g = np.array([[3e-30, 4e-30], [0.0, 0.0], [3e20, 4e20]], np.float32)
    out = np.asarray(log_norm(jnp.asarray(g), axis=1))
    # float32 logs far from 0 (|log| >= 47, no ratio near 1): the norm's rounding adds
    # ~eps32 / 47 and the log's own ~eps32 / 2, relative; rtol 1e-6 is 8 eps32.
    np.testing.assert_allclose(out[[0, 2]], np.log([5e-30, 5e20]), rtol=1e-6)
    assert out[1] == -np.inf
    whole = float(log_norm(jnp.asarray(g[0])))  # axis=None: the norm of all entries
    assert whole == pytest.approx(math.log(5e-30), rel=1e-6)


@pytest.mark.slow
def test_precision_check_runs_and_cpu_precisions_agree(tmp_path):
    # On a CPU "highest" and "tensorfloat32" compute the same float32 product, so the two
    # rows of each kernel must carry the same error against float64, and that error is
    # float32 rounding (the accelerator run is what shows the difference).
    out = tmp_path / "precision.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.precision", "--device", "cpu", "--N", "16",
         "--T", "50", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cases = json.loads(out.read_text())["cases"]
    errors = {}
    for c in cases:
        errors.setdefault(c["kernel"], {})[c["precision"]] = c["max_abs_error"]
    assert set(errors) == {"gradient_profile", "lyapunov_top8"}
    for by_precision in errors.values():
        # float32 against float64: ~one eps32 per term of every step, T N eps32 = 9.5e-5
        # over T = 50 steps of N = 16 terms (seen 6.7e-6 on the profile, 1.6e-7 lyapunov).
        assert by_precision["highest"] == by_precision["tensorfloat32"] < 1e-4


def test_time_calls_rounds_and_warmup():
    import dataclasses

    from benchmarks import _runner as R
    from benchmarks import _timing as Tm

    # round_budget_s = 0: no extra rounds for cheap methods, only the base count
    cfg = dataclasses.replace(
        R.make_config("tiny", "cpu"), repeats=3, round_budget_s=0.0, host_repeats=2
    )
    calls = {"a": 0, "b": 0}

    def counter(name):
        def call():
            calls[name] += 1
            return calls[name]

        return call

    prepared = {
        "a": Tm.Prepared(counter("a"), 0.5, sync=lambda out: out),
        "b": Tm.Prepared(counter("b"), None, sync=lambda out: out, host=True),
    }
    t = Tm.time_calls(prepared, cfg)
    # one warm-up each (its output kept, excluded from the rounds), then the rounds;
    # host baselines are capped at host_repeats
    assert calls == {"a": 4, "b": 3}
    assert [len(t["a"].times_s), len(t["b"].times_s)] == [3, 2]
    assert t["a"].output == 1 and t["a"].compile_s == 0.5 and t["a"].warmup_s > 0
    assert t["a"].best == min(t["a"].times_s)

    calls.update(a=0, b=0)
    t = Tm.time_calls(prepared, cfg, warmup=False)
    # the first run is the first timed round: the same number of rounds, one call less
    assert calls == {"a": 3, "b": 2}
    assert [len(t["a"].times_s), len(t["b"].times_s)] == [3, 2]
    assert t["a"].warmup_s is None and t["b"].warmup_s is None
    assert t["b"].compile_s is None

"""Figures from a benchmark JSON: time vs N, time vs T, fraction of peak.

    python -m benchmarks.plot results.json --out DIR

Writes ``time_vs_N``, ``time_vs_T`` and ``fraction_of_peak`` as PNG and PDF into DIR.
The style (including ``pdf.fonttype = 42``, editable text in the PDF) is set inside a
``matplotlib.rc_context`` for these figures only, never globally.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict

from ._records import as_float

STYLE = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "figure.dpi": 120,
    "savefig.bbox": "tight",
}
#: (benchmark, method) pairs plotted: the library's main calls.
SERIES = (
    ("gradient_profile", "gradspec"),
    ("product_singular_values", "gradspec_1sweep"),
    ("lyapunov_spectrum", "gradspec"),
    ("step_jacobians", "gradspec"),
    ("predict", "gradspec"),
)
#: compute-bound kernels whose fraction of the matmul peak is plotted
PEAK_BENCHMARKS = ("gradient_profile", "product_singular_values", "lyapunov_spectrum")
BASELINES = {"gradient_profile": ("plain_grad_h0", "per_lag_grad", "torch_autograd")}


def _ok(result):
    return [
        r
        for r in result["records"]
        if r.get("status") == "ok"
        and not r.get("roofline")
        and isinstance(r.get("run_best_s"), (int, float, str))
        and not isinstance(r.get("run_best_s"), list)
    ]


def _lines(records, bench, method, x, fixed):
    """{label: [(x, seconds)]} for one benchmark/method, one line per other key."""
    out = defaultdict(list)
    for r in records:
        if r["benchmark"] != bench or r["method"] != method:
            continue
        label = ", ".join(f"{k}={r[k]}" for k in fixed)
        out[label].append((r[x], as_float(r["run_best_s"])))
    return {k: sorted(v) for k, v in out.items()}


def _save(fig, out_dir, name):
    paths = []
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path)
        paths.append(path)
    return paths


def _time_vs(result, out_dir, x, fixed, name):
    import matplotlib.pyplot as plt

    recs = _ok(result)
    fig, axes = plt.subplots(1, len(SERIES), figsize=(3.2 * len(SERIES), 3.6))
    for ax, (bench, method) in zip(axes, SERIES, strict=True):
        for label, pts in _lines(recs, bench, method, x, fixed).items():
            ax.plot(*zip(*pts, strict=True), "o-", label=label, ms=3)
        if x == "T":  # the naive ways, at the largest N of batch 1 float32
            base = [r for r in recs if r["batch"] == 1 and r["dtype"] == "float32"]
            n_max = max((r["N"] for r in base if r["benchmark"] == bench), default=None)
            base = [r for r in base if r["N"] == n_max]
            for b in BASELINES.get(bench, ()):
                for pts in _lines(base, bench, b, x, ("N",)).values():
                    ax.plot(
                        *zip(*pts, strict=True),
                        "x--",
                        lw=0.8,
                        ms=3,
                        label=f"{b} (N={n_max})",
                    )
        ax.set(xscale="log", yscale="log", xlabel=x, title=f"{bench}\n({method})")
        ax.title.set_fontsize(8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=6)
    axes[0].set_ylabel("best time (s)")
    fig.suptitle(f"{result['env']['device_kind']}: time vs {x}", fontsize=9, y=1.02)
    paths = _save(fig, out_dir, name)
    plt.close(fig)
    return paths


def _fraction_of_peak(result, out_dir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    groups = defaultdict(list)
    for r in result["records"]:
        if (
            r.get("status") != "ok"
            or not r.get("library")
            or r.get("frac_of_peak") is None
        ):
            continue
        if r["benchmark"] not in PEAK_BENCHMARKS:  # memory-bound or host-side: no
            continue
        frac = r.get("frac_of_peak_same_rounds", r["frac_of_peak"])
        groups[(r["benchmark"], r["method"], r["dtype"], r["batch"])].append(
            (r["N"], as_float(frac))
        )
    for (bench, method, dtype, batch), pts in sorted(groups.items()):
        best = defaultdict(float)
        for n, f in pts:  # best over T at each N
            best[n] = max(best[n], f)
        xs = sorted(best)
        label = (
            f"{bench}"
            + ("" if method == "gradspec" else f":{method}")
            + f" {dtype} B={batch}"
        )
        ax.plot(xs, [best[n] for n in xs], "o-", ms=3, label=label)
    # The ceiling the platform's kernels set: the fraction a sweep would reach if it cost
    # exactly its QRs and products timed alone (recorded at the N >= 512 points).
    floor = sorted(
        (r["N"], as_float(r["frac_of_peak_same_rounds"]) * as_float(r["kernel_floor_over_time"]))
        for r in result["records"]
        if r.get("status") == "ok"
        and r["benchmark"] == "lyapunov_spectrum"
        and r.get("kernel_floor_over_time") is not None
    )
    if floor:
        ax.plot(*zip(*floor), "k--", lw=0.8, label="QR + matmul kernels alone (full spectrum)")
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label="target 50% (spectra, N >= 512)")
    ax.set(
        xscale="log",
        xlabel="N",
        ylabel="fraction of measured matmul peak",
        title="achieved FLOP/s / best jnp.dot FLOP/s (best over T;\n"
        "N >= 512: peak re-measured in the same rounds)",
    )
    ax.legend(fontsize=6, ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5))
    paths = _save(fig, out_dir, "fraction_of_peak")
    plt.close(fig)
    return paths


def plot(result: dict, out_dir: str) -> list:
    """Write the three figures; returns the paths written."""
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    with plt.rc_context(STYLE):
        paths = _time_vs(result, out_dir, "N", ("T", "dtype", "batch"), "time_vs_N")
        paths += _time_vs(result, out_dir, "T", ("N", "dtype", "batch"), "time_vs_T")
        paths += _fraction_of_peak(result, out_dir)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__)
    ap.add_argument("results", help="JSON written by python -m benchmarks.run")
    ap.add_argument("--out", required=True, help="output directory")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # a command-line tool: no display needed
    with open(args.results) as f:
        result = json.load(f)
    for p in plot(result, args.out):
        print(p)


if __name__ == "__main__":
    main()

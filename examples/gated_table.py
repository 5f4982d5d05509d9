"""Gated mean-field theory against real networks: the README's table, reproducibly.

For a few LSTM and GRU settings (gate hyperparameters as in
``gradspec.theory.gated_mean_field``; zero input), prints the top exponent lambda_1
(natural log per step) three ways:

- annealed theory (weights redrawn every step; ``mode="annealed"``);
- quenched theory (one network relaxed to its fixed point; ``mode="quenched"``,
  ``hidden=N``);
- measured: mean +- standard error over 5 random networks of N = 512 units, each the
  ``"gated_lyapunov"`` sweep measurement (``gradspec.sweep``; seeds 0-4, T = 1500 steps
  of which the first 500 are discarded, the default start state and frame), float64.

Run: ``python examples/gated_table.py`` (81 s of CPU time, 5 minutes of wall time on
2 cores shared with other jobs; the measured exponents dominate). ``--quick`` uses N = 128, T = 600, warmup 200.
Add ``--figure docs/gated_phase.png`` to also draw the ``gated_phase_diagram`` figure
at its full settings.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import gradspec.sweep as gs  # noqa: E402  (after float64 is on)

SEEDS = [0, 1, 2, 3, 4]

#: (cell, label, flat sweep options: all-gate values and <name>_<gate> overrides).
SETTINGS = [
    ("lstm", "no bias (h* = 0)", {}),
    ("lstm", "mu_f = 1, rho_g = 0.5", {"mu_f": 1.0, "rho_g": 0.5}),
    ("lstm", "rho = 0.5 (all gates)", {"rho": 0.5}),
    ("lstm", "sigma_g = 1.5, sigma_o = 0.5, mu_f = 1.5, mu_i = -1, rho_g = 0.3",
     {"sigma_g": 1.5, "sigma_o": 0.5, "mu_f": 1.5, "mu_i": -1.0, "rho_g": 0.3}),
    ("gru", "no bias (h* = 0)", {}),
    ("gru", "sigma_n = 1.5, mu_z = 1, rho_n = 0.3",
     {"sigma_n": 1.5, "mu_z": 1.0, "rho_n": 0.3}),
    ("gru", "rho_n = 0.5", {"rho_n": 0.5}),
    ("gru", "sigma_n = 1.2, sigma_r = 0.5, mu_z = 2, mu_r = 1, rho_n = 0.5, rho_z = 0.3",
     {"sigma_n": 1.2, "sigma_r": 0.5, "mu_z": 2.0, "mu_r": 1.0, "rho_n": 0.5,
      "rho_z": 0.3}),
]


def row(kind: str, options: dict, *, N: int, T: int, warmup: int) -> dict:
    """Annealed, quenched and measured lambda_1 of one setting."""
    common = {"kind": kind, **options}
    theory_points = gs.sweep("gated_mean_field", {"mode": ["annealed", "quenched"]},
                             options={**common, "hidden": N}).records
    lam = {r["config"]["mode"]: r["results"]["lambda_max"] for r in theory_points}
    measured = gs.sweep("gated_lyapunov", {"seed": SEEDS}, chunk_size=len(SEEDS),
                        options={**common, "N": N, "T": T, "warmup": warmup}).records
    lams = np.asarray([r["results"]["lambda_max"] for r in measured])
    return {"annealed": lam["annealed"], "quenched": lam["quenched"],
            "mean": lams.mean(), "se": lams.std(ddof=1) / math.sqrt(lams.size)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 128, T = 600")
    parser.add_argument("--figure", help="also write the gated phase diagram here")
    args = parser.parse_args(argv)
    N, T, warmup = (128, 600, 200) if args.quick else (512, 1500, 500)
    print(f"lambda_1 per step; measured: mean +- s.e. over {len(SEEDS)} networks, "
          f"N = {N}, T = {T}, warmup = {warmup}, zero input, float64\n")
    print("| cell | setting (others: sigma = nu = 1, mu = rho = 0) | annealed | "
          "quenched | measured |")
    print("|---|---|---|---|---|")
    start = time.perf_counter()
    for kind, label, options in SETTINGS:
        r = row(kind, options, N=N, T=T, warmup=warmup)
        print(f"| {kind.upper()} | {label} | {r['annealed']:+.3f} | {r['quenched']:+.3f} "
              f"| {r['mean']:+.3f} +- {r['se']:.3f} |", flush=True)
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.figure:
        from gradspec import figures, style

        name = "gated_phase_diagram"
        fig = figures.draw(name, figures.compute(name, figures.settings(name)))
        style.save(fig, args.figure.rsplit(".", 1)[0], formats=("png",), dpi=300)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()

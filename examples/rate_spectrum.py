"""The full Lyapunov spectrum of a chaotic rate network, as Engelken, Wolf & Abbott
("Lyapunov spectra of chaotic recurrent neural networks", arXiv:2006.02427) report it.

tau dh/dt = -h + W tanh(h), W ~ N(0, g^2/N), g = 2, no input, Euler steps of dt = 0.05 tau.
Their abstract's two claims, checked at N = 100, 200 and 400 (``docs/rate_spectrum.png``):

- chaos is extensive: the spectrum lambda_i against i/N does not depend on N;
- a generalised time-reversal symmetry makes the spectrum point-symmetric,
  lambda_i + lambda_{N+1-i} ~ 2 mean(lambda) = -2/tau (the mean is -1/tau because the
  Jacobian's trace is -N/tau plus diagonal couplings of mean zero).

Also printed: the largest exponent, the Kaplan-Yorke dimension per unit, the KS entropy
rate per unit (all per unit time tau). Run: ``python examples/rate_spectrum.py``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import gradspec
from gradspec.plots import style

jax.config.update("jax_enable_x64", True)
G, DT, STEPS, WARMUP = 2.0, 0.05, 10000, 2000


def spectrum(n: int, seed: int = 0) -> np.ndarray:
    cell = gradspec.cells.RateRNN("tanh", dt=DT)
    params = cell.init(jax.random.key(seed), n, 1, recurrent_init=gradspec.init.gaussian(G),
                       dtype=jnp.float64)
    xs = jnp.zeros((STEPS, 1))
    return np.asarray(cell.per_unit_time(gradspec.lyapunov_spectrum(cell, params, xs,
                                                                    warmup=WARMUP)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/rate_spectrum.png")
    args = parser.parse_args()
    with style.context():
        fig, ax = plt.subplots(figsize=style.figsize("one", 0.8))
        for n in (100, 200, 400):
            lam = spectrum(n)
            sym = lam + lam[::-1]
            print(f"N = {n}: lambda_1 = {lam[0]:+.4f}/tau, mean = {lam.mean():+.4f}/tau, "
                  f"max |lambda_i + lambda_(N+1-i) - 2 mean| = {np.abs(sym - 2 * lam.mean()).max():.3f}, "
                  f"D_KY/N = {float(gradspec.kaplan_yorke_dimension(lam)) / n:.3f}, "
                  f"H_KS/N = {float(gradspec.ks_entropy(lam)) / n:.4f}/tau")
            ax.plot((np.arange(n) + 0.5) / n, lam, label=f"N = {n}")
        ax.axhline(-1, color="0.5", linewidth=0.6, linestyle="--")
        ax.axhline(0, color="0.7", linewidth=0.4)
        ax.set_xlabel("i / N")
        ax.set_ylabel(r"$\lambda_i$ (1/$\tau$)")
        ax.legend()
        fig.savefig(args.out, dpi=200, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

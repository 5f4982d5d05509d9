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

``--engelken`` instead runs gradspec on the network of the authors' published demo
(github.com/RainerEngelken/RNN-LyapunovSpectra, demo_lypunov_spectra_chaotic_ratenetwork.py,
its example call ``rate_Lyapunov_spectra(100, 4, 1e-1, 1e3, 100, 1, 1, 1, 1, True)``):
the same draws of J (no autapses), start state and start frame (numpy's legacy seeds),
Euler at dt = 0.1 tau, 100 tau of transient, 100 tau of frame warm-up, then 999 tau
averaged, with the spread of one run over six other start states (README table).
``--n``, ``--t-sim`` and ``--others`` change the size, the simulated time (the warm-up
is a tenth of it, as theirs) and the number of other starts, e.g. ``--engelken --n 1000
--t-sim 100 --others 0`` (about 1100 QR steps of 1000 x 1000).
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


def engelken_demo(n=100, g=4.0, dt=0.1, t_sim=1000.0, every=10, seed=1, others=6):
    """gradspec on the demo's network and protocol (module doc), per unit time tau: from
    their start state, and the spread (sd) of one run over ``others`` other starts."""
    np.random.seed(seed)  # their draws, in their order, from numpy's legacy generator
    J = g * np.random.randn(n, n) / np.sqrt(n)
    J -= np.diag(np.diag(J))  # no autapses
    np.random.seed(seed)
    q0 = jnp.asarray(np.linalg.qr(np.random.randn(n, n))[0])
    steps, transient = int(np.ceil(t_sim / dt)), int(np.ceil(100 / dt))
    frame_warmup = int(np.ceil(steps / 10))
    averaged = (steps - 1) // every * every  # their QR blocks that end inside the run
    cell = gradspec.cells.RateRNN("tanh", dt=dt)
    params = {"W_hh": jnp.asarray(J), "W_xh": jnp.zeros((n, 1)), "b": jnp.zeros(n)}

    def run(start_seed):
        np.random.seed(start_seed)
        h0 = jnp.asarray((g - 1) * np.random.randn(n))
        h = gradspec.trajectory(cell, params, jnp.zeros((transient, 1)), h0)[-1]
        lam = cell.per_unit_time(gradspec.lyapunov_spectrum(
            cell, params, jnp.zeros((frame_warmup + averaged, 1)), h, frame=q0,
            warmup=frame_warmup))
        return np.array([lam[0], lam.mean(), gradspec.kaplan_yorke_dimension(lam) / n,
                         gradspec.ks_entropy(lam) / n])

    theirs = run(seed)
    sd = np.std([run(seed + 1 + i) for i in range(others)], axis=0, ddof=1) if others > 1 else None
    for i, name in enumerate(("lambda_1", "mean", "D_KY/N", "H_KS/N")):
        spread = f" (sd of one run over {others} other starts: {sd[i]:.5f})" if others > 1 else ""
        print(f"{name}: {theirs[i]:+.5f}{spread}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/rate_spectrum.png")
    parser.add_argument("--engelken", action="store_true",
                        help="gradspec on the network of the authors' demo code instead")
    parser.add_argument("--n", type=int, default=100, help="--engelken: network size")
    parser.add_argument("--t-sim", type=float, default=1000.0,
                        help="--engelken: simulated time in tau (their tSim)")
    parser.add_argument("--others", type=int, default=6,
                        help="--engelken: other start states for the spread (0: none)")
    args = parser.parse_args()
    if args.engelken:
        return engelken_demo(args.n, t_sim=args.t_sim, others=args.others)
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

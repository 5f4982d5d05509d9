r"""The two mean-field theories of gated cells behind :mod:`gradspec.theory.gated`.

Hyperparameters arrive as arrays of shape (G,), one entry per gate in PyTorch's order
(LSTM i, f, g, o; GRU r, z, n). Gate k's pre-activation is, across units,

.. math::
    z_k \sim \mathcal N(\mu_k, \Sigma_k), \qquad
    \Sigma_k = \sigma_k^2 Q_h + \nu_k^2 R + \rho_k^2,

with :math:`Q_h` the units' mean :math:`h^2` and :math:`R = |x|^2 / D` the input's
power. Sigmoid and tanh derivatives are the cancellation-free ones of
:mod:`gradspec._nonlinearities`.

- :func:`annealed`: weights redrawn every step. The memory (c for the LSTM, h for the
  GRU) is not Gaussian, so a fixed-seed population of particles carries its law, and
  with it each particle's expected squared perturbation.
- :func:`lstm_quenched`, :func:`gru_quenched`: one fixed network at zero (or frozen)
  input: the fixed point by Gaussian quadrature, then the spectral edge of its Jacobian.
"""

from __future__ import annotations

import functools
from statistics import NormalDist

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from .._nonlinearities import slope

_sigmoid = jax.nn.sigmoid
_dsigmoid = functools.partial(slope, "sigmoid")
_dtanh = functools.partial(slope, "tanh")

# Annealed population: 1024 particles, 1000 steps of which the first 400 relax from the
# random start (forget gates up to sigma(5) = 0.993: memory time ~70 steps). Across
# seeds lambda_max spreads by ~1e-4 (sd), and 4096 particles move it by < 2e-4.
PARTICLES = 1024
ANNEALED_STEPS = 1000
ANNEALED_WARMUP = 400
_PARTICLE_SEED = 0

# Quadrature. E over a standard normal by the symmetric midpoint rule on [-8, 8] (the
# rule of gradspec.theory.meanfield, coarser: its error for an integrand analytic in a
# strip |Im z| < d is ~exp(-2 pi d / h); the tail beyond 8 is 1e-15), except for the
# LSTM's z_g, whose rule is focused where c* is steep (_focused_rule). Against 4-8
# times the nodes and 60 halvings, these move lambda_max by < 1e-10 and q_h by < 1e-7
# from mu_f = 1 to mu_f = 16 (forget gates within 1e-7 of 1). "gate": each 1-D rule of
# a multi-dimensional average; "memory": z_g at the N units' forget gates; "fine": a
# 1-D average on its own.
_HALF_WIDTH = 8.0
_NODES = {"gate": 32, "memory": 128, "fine": 200}
# Bisection: 32 halvings of [0, 1] (q_h) or of the edge bracket (to ~2e-10), then the
# Newton step of _newton (to rounding), which also carries the gradient.
_BISECTIONS = 32


def _rule(n: int, dtype):
    """Nodes and weights, both (n,), of E[g(z)], z ~ N(0, 1) (weights sum to 1)."""
    h = 2 * _HALF_WIDTH / n
    z = (np.arange(n) + 0.5) * h - _HALF_WIDTH
    w = np.exp(-0.5 * z**2)
    return jnp.asarray(z, dtype), jnp.asarray(w / w.sum(), dtype)


@functools.lru_cache(maxsize=None)
def _blom(n: int) -> np.ndarray:
    r"""Expected order statistics of n standard normals, (n,) ascending: Blom's (1958)
    :math:`\Phi^{-1}((j - 3/8)/(n + 1/4))`, within 0.02 of the exact ones for n up to
    4096 (n = 512: top 3.031, exact 3.044)."""
    inv = NormalDist().inv_cdf
    return np.array([inv((j + 0.625) / (n + 0.25)) for j in range(n)])


def _sd(var):
    """sqrt(var) with derivative 0 (not inf) at var = 0: every expectation here is even
    in the standard deviation, so its derivative there is 0."""
    pos = var > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, var, 1)), 0)


def _bisect(fn, params, lo, hi):
    """Where fn(., params) changes sign from >= 0 (at lo) to < 0 (at hi), and whether
    lo ever moved. Run on stop-gradient params: reverse mode never enters the loop."""
    params = lax.stop_gradient(params)

    def body(_, carry):
        lo, hi, moved = carry
        mid = 0.5 * (lo + hi)
        up = fn(mid, params) >= 0
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid), moved | up

    lo, _, moved = lax.fori_loop(0, _BISECTIONS, body, (lo, hi, jnp.zeros((), bool)))
    return lo, moved


def _newton(fn, params, x):
    """x - fn(x, params) / fn'(x) at a bisected root x, fn' held constant: the value
    moves to rounding (quadratic convergence) and the gradient w.r.t. params is the
    implicit-function one, -d_params fn / fn'."""
    x = lax.stop_gradient(x)
    frozen = lax.stop_gradient(params)
    d = jax.jvp(lambda x: fn(x, frozen), (x,), (jnp.ones_like(x),))[1]
    return x - fn(x, params) / jnp.where(d == 0, -1, d)


def _fixed_point(gap, params, dtype):
    """Largest root of gap(q, params) = V(q) - q on [0, 1] (|h| <= 1, so V(1) <= 1):
    where iterating V from above converges, the stable fixed point."""
    zero = jnp.zeros((), dtype)
    q, _ = _bisect(gap, params, zero, zero + 1)
    return _newton(gap, params, q)


def _excess(r, params):
    a, weight, b = params
    return jnp.mean(weight / (r - a) ** 2) + b / r**2 - 1


def _edge(a, weight, b):
    r"""Spectral edge of :math:`J = A + \sum_k B_k W_k` on the real axis.

    The largest r > max(a) solving :math:`\mathrm{mean}_j\, w_j / (r - a_j)^2
    + b / r^2 = 1` (a, weight: (n,) over the units; b: a gate acting through
    :math:`\lambda^{-1}`); max(a) itself if there is none (then a diagonal entry, a
    decoupled memory, is the top eigenvalue)."""
    top = jnp.max(a)
    # Each term is <= 1/2 at hi, so the excess is <= 0 there.
    hi = top + jnp.sqrt(2 * jnp.mean(weight)) + jnp.sqrt(2 * b) + 1e-6
    r, moved = _bisect(_excess, (a, weight, b), top, hi)
    safe = jnp.where(moved, r, hi)  # keeps r - a > 0 inside the discarded branch
    return jnp.where(moved, _newton(_excess, (a, weight, b), safe), top)


# -- quenched: the LSTM ------------------------------------------------------------


def _focused_rule(center, width, n: int):
    r"""Nodes and weights, (..., n) each, of E[g(z)], z ~ N(0, 1), for a g that changes
    on the scale ``width`` (..., ) around ``center`` (): the midpoint rule in t for
    :math:`z = \mathrm{center} + \mathrm{width} \sinh t` over z in [-8, 8]. Spacing
    ``width * h`` at the center, ~``|z - center| h`` away from it (128 nodes and a
    width of 1e-8: h = 0.33)."""
    center, width = lax.stop_gradient(center), lax.stop_gradient(width)[..., None]
    t_lo = jnp.arcsinh((-_HALF_WIDTH - center) / width)
    t_hi = jnp.arcsinh((_HALF_WIDTH - center) / width)
    u = np.reshape((np.arange(n) + 0.5) / n, (1,) * (width.ndim - 1) + (n,))
    t = t_lo + (t_hi - t_lo) * jnp.asarray(u, width.dtype)
    z = center + width * jnp.sinh(t)
    w = jnp.exp(-0.5 * z**2) * jnp.cosh(t)  # density times dz/dt (h, width: normalised)
    return z, w / jnp.sum(w, axis=-1, keepdims=True)


def _lstm_cells(sigma, mu, sd, z_f, n_g, batch=None):
    r"""Per forget-gate pre-activation z_f (n,): the (z_i, z_g) averages of
    :math:`\tanh^2 c^*`, :math:`c^{*2}` and :math:`\mathrm{sech}^4(c^*)\, d^2`, with
    :math:`c^* = \sigma(z_i)\tanh(z_g)/(1 - \sigma(z_f))` and :math:`d^2` the variance
    factor of :math:`\partial c / \partial h` (see :func:`lstm_quenched`).

    :math:`c^*` is steep in :math:`z_g` where the forget gate is open: it goes through
    0 at :math:`z_g = 0` with slope :math:`i / (1 - f)`, so z_g gets a rule focused
    there (:func:`_focused_rule`, width :math:`(1 - f) / (i \sqrt{\Sigma_g})` in
    standard units). ``batch``: forget nodes at a time (all when None), to bound
    memory."""
    xi, wi = _rule(_NODES["gate"], sd.dtype)
    z_i = mu[0] + sd[0] * xi
    i = _sigmoid(z_i)
    d2_i = (sigma[0] * _dsigmoid(z_i)[:, None]) ** 2
    has_g = sd[2] > 0
    center = jnp.clip(jnp.where(has_g, -mu[2] / jnp.where(has_g, sd[2], 1), 0),
                      -_HALF_WIDTH, _HALF_WIDTH)

    def one(zf):
        width = jnp.where(has_g, _sigmoid(-zf) / (i * jnp.where(has_g, sd[2], 1)), 1)
        xg, wg = _focused_rule(center, jnp.clip(width, 1e-30, 1), n_g)
        z_g = mu[2] + sd[2] * xg
        g = jnp.tanh(z_g)
        v = i[:, None] * g  # c* (1 - f)
        c = v / _sigmoid(-zf)
        d2 = ((sigma[1] * v * _sigmoid(zf)) ** 2 + d2_i * g**2  # c* sigma'(z_f) = v f
              + (sigma[2] * i[:, None] * _dtanh(z_g)) ** 2)
        w = wi[:, None] * wg
        return (jnp.sum(w * jnp.tanh(c) ** 2), jnp.sum(w * c**2),
                jnp.sum(w * _dtanh(c) ** 2 * d2))

    return jax.vmap(one)(z_f) if batch is None else lax.map(one, z_f, batch_size=batch)


def lstm_quenched(sigma, mu, rho, nu, sigma_x, hidden: int):
    r"""Fixed point and spectral edge of a random LSTM; returns (q_h, q_c, r*).

    Fixed point (zero input; a frozen input acts as bias variance :math:`\nu_k^2 R`):
    with static pre-activations, :math:`c^* = \sigma(z_f) c^* + \sigma(z_i)\tanh(z_g)`,

    .. math::
        c^* = \frac{\sigma(z_i)\tanh(z_g)}{1 - \sigma(z_f)}, \qquad
        h^* = \sigma(z_o) \tanh c^*, \qquad
        Q_h = \mathbb E[\sigma(z_o)^2]\, \mathbb E[\tanh^2 c^*],

    solved for the largest self-consistent :math:`Q_h` (it sets the :math:`\Sigma_k`).

    Jacobian in (h, c): with :math:`\delta z_k = W_k \delta h`, per unit
    :math:`\delta c' = f \delta c + d_f \delta z_f + d_i \delta z_i + d_g \delta z_g`
    (:math:`d_f = c^* \sigma'(z_f)`, :math:`d_i = \sigma'(z_i) g`,
    :math:`d_g = i \tanh'(z_g)`) and
    :math:`\delta h' = o \tau \delta c' + e\, \delta z_o` (:math:`\tau = \tanh' c^*`,
    :math:`e = \sigma'(z_o)\tanh c^*`). An eigenvector :math:`(u, v)` with eigenvalue
    :math:`\lambda` has :math:`v = (\lambda - f)^{-1} D W u` (D W the three c-gates)
    and then :math:`u = K(\lambda) u` with

    .. math::
        K(\lambda) = \sum_{k \in \{i, f, g\}}
            \mathrm{diag}\!\Big(\frac{o \tau d_k}{\lambda - f}\Big) W_k
          + \mathrm{diag}\!\Big(\frac{e}{\lambda}\Big) W_o .

    For real :math:`\lambda`, row j of :math:`K` is Gaussian with variance
    :math:`\gamma_j^2 / N`, :math:`\gamma_j^2 = o_j^2 \tau_j^2 \sum_k \sigma_k^2
    d_{kj}^2 / (\lambda - f_j)^2 + \sigma_o^2 e_j^2 / \lambda^2`, so K is
    :math:`\mathrm{diag}(\gamma) W` with W i.i.d., whose spectrum fills the disk of
    radius :math:`\sqrt{\mathrm{mean}\,\gamma^2}`. So :math:`\lambda` is in the
    spectrum of J iff :math:`\mathrm{mean}_j \gamma_j^2(\lambda) \ge 1` (or
    :math:`\lambda = f_j`). Since :math:`f > 0`, :math:`|\lambda - f|` is smallest at
    :math:`\lambda = |\lambda|` for a given modulus: the spectral radius is the largest
    real root :math:`r^* > \max f` of :math:`\mathrm{mean}\,\gamma^2(r) = 1`
    (:func:`_edge`; :math:`z_o` is independent of the rest, so
    :math:`\mathbb E[o^2 \tau^2 d^2] = \mathbb E[o^2]\,\mathbb E[\tau^2 d^2]`).

    Finite N: :math:`1/(r - f)^2` is not integrable against the forget gates' density,
    which reaches f = 1; a unit with :math:`f_j` near 1 saturates (:math:`\tau_j
    \to 0`) and leaves :math:`f_j` as an eigenvalue. So :math:`r^*` depends on the
    largest :math:`f_j` of the N units: the forget gates are placed at the expected
    order statistics of N draws (:func:`_blom`), the rest by quadrature.
    """
    dtype = sigma.dtype
    frozen = (nu * sigma_x) ** 2 + rho**2
    xo, wo = _rule(_NODES["fine"], dtype)
    xf, wf = _rule(_NODES["gate"], dtype)

    def out_gate(mu, sd):  # E[sigma(z_o)^2], E[sigma'(z_o)^2]
        z_o = mu[3] + sd[3] * xo
        return jnp.sum(wo * _sigmoid(z_o) ** 2), jnp.sum(wo * _dsigmoid(z_o) ** 2)

    def gap(q, params):
        sigma, mu, frozen = params
        sd = _sd(sigma**2 * q + frozen)
        tanh2, _, _ = _lstm_cells(sigma, mu, sd, mu[1] + sd[1] * xf, _NODES["gate"])
        return out_gate(mu, sd)[0] * jnp.sum(wf * tanh2) - q

    q_h = _fixed_point(gap, (sigma, mu, frozen), dtype)
    sd = _sd(sigma**2 * q_h + frozen)
    z_f = mu[1] + sd[1] * jnp.asarray(_blom(hidden), dtype)
    tanh2, c2, d2 = _lstm_cells(sigma, mu, sd, z_f, _NODES["memory"], batch=64)
    o2, do2 = out_gate(mu, sd)
    edge = _edge(_sigmoid(z_f), o2 * d2, sigma[3] ** 2 * do2 * jnp.mean(tanh2))
    return q_h, jnp.mean(c2), edge


# -- quenched: the GRU -------------------------------------------------------------


def gru_quenched(sigma, mu, rho, nu, sigma_x, hidden: int):
    r"""Fixed point and spectral edge of a random GRU; returns (q_h, r*).

    With :math:`s = W_n h` (variance :math:`\sigma_n^2 Q_h`) and
    :math:`a = b_n + W_{in} x + r s` the candidate's pre-activation, a fixed point has
    :math:`h^* = n = \tanh a` wherever the update gate :math:`u = \sigma(z_z) < 1`, so
    :math:`Q_h = \mathbb E[\tanh^2 a]`, where given r, :math:`a \sim
    \mathcal N(\mu_n, \rho_n^2 + \nu_n^2 R + r^2 \sigma_n^2 Q_h)`. The update gate
    drops out of the fixed point. The Jacobian is (the :math:`h - n` term vanishes)

    .. math::
        J = \mathrm{diag}(u) + \mathrm{diag}\big((1 - u)\tanh'(a)\, r\big) W_n
          + \mathrm{diag}\big((1 - u)\tanh'(a)\, s\, \sigma'(z_r)\big) W_r,

    of the form A + B W, so its spectral radius is the largest r* > max u with
    :math:`\mathrm{mean}_j (1 - u_j)^2 / (r - u_j)^2 \cdot C = 1`,
    :math:`C = \mathbb E[\tanh'(a)^2 (r^2 \sigma_n^2 + s^2 \sigma'(z_r)^2
    \sigma_r^2)]` (u is independent of the rest; given (r, a), s is Gaussian with
    :math:`\mathbb E[s^2 | a] = \sigma_n^2 Q_h - \kappa^2/V + (\kappa \xi / \sqrt V)^2`,
    :math:`\kappa = r \sigma_n^2 Q_h`, V = Var(a | r), a = \mu_n + \sqrt V \xi).
    The update gates sit at the expected order statistics of N units (see
    :func:`lstm_quenched`): the top one often is the edge (a frozen unit).
    """
    dtype = sigma.dtype
    frozen = (nu * sigma_x) ** 2 + rho**2
    xr, wr = _rule(_NODES["gate"], dtype)
    xa, wa = _rule(_NODES["fine"], dtype)
    w = wr[:, None] * wa[None, :]

    def candidate(q, params):
        sigma, mu, frozen = params
        z_r = mu[0] + _sd(sigma[0] ** 2 * q + frozen[0]) * xr[:, None]
        r = _sigmoid(z_r)
        var_s = sigma[2] ** 2 * q
        var_a = frozen[2] + r**2 * var_s
        return z_r, r, var_s, var_a, mu[2] + _sd(var_a) * xa[None, :]

    def gap(q, params):
        return jnp.sum(w * jnp.tanh(candidate(q, params)[-1]) ** 2) - q

    q_h = _fixed_point(gap, (sigma, mu, frozen), dtype)
    z_r, r, var_s, var_a, a = candidate(q_h, (sigma, mu, frozen))
    kappa2 = jnp.where(var_a > 0, (r * var_s) ** 2 / jnp.where(var_a > 0, var_a, 1), 0)
    s2 = var_s - kappa2 + kappa2 * xa[None, :] ** 2
    c = jnp.sum(w * _dtanh(a) ** 2 * (r**2 * sigma[2] ** 2
                                      + s2 * _dsigmoid(z_r) ** 2 * sigma[0] ** 2))
    sd_u = _sd(sigma[1] ** 2 * q_h + frozen[1])
    z_u = mu[1] + sd_u * jnp.asarray(_blom(hidden), dtype)
    edge = _edge(_sigmoid(z_u), _sigmoid(-z_u) ** 2 * c, jnp.zeros((), dtype))
    return q_h, edge


# -- annealed ----------------------------------------------------------------------


def _lstm_particles(sigma, mu, sd, eps, carry):
    r"""One annealed LSTM step of the population; see :func:`annealed`."""
    c, m, q_pert = carry  # cell, E[dc^2 | particle], mean dh^2 (normalised)
    z = mu[:, None] + sd[:, None] * eps
    i, f, g, o = _sigmoid(z[0]), _sigmoid(z[1]), jnp.tanh(z[2]), _sigmoid(z[3])
    c_new = f * c + i * g
    h = o * jnp.tanh(c_new)
    s = ((sigma[1] * c * _dsigmoid(z[1])) ** 2 + (sigma[0] * _dsigmoid(z[0]) * g) ** 2
         + (sigma[2] * i * _dtanh(z[2])) ** 2)
    gain = (o * _dtanh(c_new)) ** 2  # dh' = o tanh'(c') dc' + ...
    out = sigma[3] ** 2 * jnp.mean((_dsigmoid(z[3]) * jnp.tanh(c_new)) ** 2)
    q_c = jnp.mean(m)
    transfer = jnp.array([  # acts on (q_h, q_c)
        [jnp.mean(gain * s) + out, jnp.mean(gain * f**2 * m) / q_c],
        [jnp.mean(s), jnp.mean(f**2 * m) / q_c],
    ])
    m_new = f**2 * m + s * q_pert
    q_new = jnp.mean(gain * m_new) + out * q_pert
    return (c_new, m_new, q_new), jnp.mean(h**2), jnp.mean(c_new**2), transfer


def _gru_particles(sigma, mu, sd, eps, carry):
    r"""One annealed GRU step of the population; see :func:`annealed`."""
    h, m, _ = carry  # state, E[dh^2 | particle]
    z_r, z_u = mu[0] + sd[0] * eps[0], mu[1] + sd[1] * eps[1]
    s, b = sd[2] * eps[2], mu[2] + sd[3] * eps[3]  # W_n h, and bias + input
    r, u, keep = _sigmoid(z_r), _sigmoid(z_u), _sigmoid(-z_u)  # keep = 1 - u
    a = b + r * s
    n = jnp.tanh(a)
    h_new = keep * n + u * h
    big_s = ((keep * _dtanh(a)) ** 2
             * (r**2 * sigma[2] ** 2 + (s * _dsigmoid(z_r) * sigma[0]) ** 2)
             + (h - n) ** 2 * (_dsigmoid(z_u) * sigma[1]) ** 2)
    q = jnp.mean(m)
    m_new = u**2 * m + big_s * q
    transfer = (jnp.mean(u**2 * m) / q + jnp.mean(big_s))[None, None]
    return (h_new, m_new, jnp.mean(m_new)), jnp.mean(h_new**2), jnp.nan, transfer


def annealed(kind: str, sigma, mu, rho, nu, drive, warmup):
    r"""The annealed recursion along a drive :math:`R_t` (L,); returns per-step
    (q_h, q_c, growth) and the transfer map averaged over the steps t >= warmup.

    A population of P particles (fixed seed) holds the memory's law; each step draws
    fresh pre-activations :math:`z_k = \mu_k + \sqrt{\Sigma_k}\, \epsilon` (weights
    redrawn, so z is independent of the particle's state). A perturbation with
    per-unit mean square :math:`q_h` in h gives :math:`\delta z_k` independent of
    everything, of variance :math:`\sigma_k^2 q_h`; each particle carries
    :math:`m = \mathbb E[\delta c^2]` (LSTM) or :math:`\mathbb E[\delta h^2]` (GRU):

    .. math::
        \text{LSTM:}\quad m' = f^2 m + s\, q_h, \quad
        q_h' = \mathrm{mean}[o^2 \tau'^2 m'] + \sigma_o^2\,
               \mathrm{mean}[\sigma'(z_o)^2 \tanh^2 c']\, q_h,

    with :math:`s = \sigma_f^2 (c \sigma'(z_f))^2 + \sigma_i^2 (\sigma'(z_i) g)^2 +
    \sigma_g^2 (i \tanh'(z_g))^2`, :math:`\tau' = \tanh'(c')`;

    .. math::
        \text{GRU:}\quad m' = u^2 m + S\, q_h, \quad q_h = \mathrm{mean}\, m, \quad
        S = (1-u)^2 \tanh'(a)^2 (r^2 \sigma_n^2 + s^2 \sigma'(z_r)^2 \sigma_r^2)
            + (h - n)^2 \sigma'(z_z)^2 \sigma_z^2 .

    Averaged over particles, :math:`(q_h, q_c = \mathrm{mean}\, m)` moves by a 2x2 map
    M (GRU: a scalar) whose entries weight each particle by its own m, so that
    :math:`\rho(M)` is the growth of the exact large-N recursion, not of one that
    assumes m independent of c. ``growth`` is the per-step ratio of
    :math:`q_h + q_c` (GRU: :math:`q_h`). The LSTM's weight redraw includes the bias,
    as in the simulation this theory predicts.
    """
    dtype = sigma.dtype
    lstm = kind == "lstm"
    k_start, key = jr.split(jr.key(_PARTICLE_SEED))
    # A random start (not the origin, which zero-bias cells never leave).
    start = jr.normal(k_start, (PARTICLES,), dtype)
    memory = start if lstm else jnp.tanh(start)
    # The perturbation starts in the memory, with norm 1 (q_h + q_c, GRU: q_h).
    pert = jnp.asarray(0 if lstm else 1, dtype)
    carry = (memory, jnp.ones((PARTICLES,), dtype), pert)
    q_h0 = jnp.mean((0.5 * jnp.tanh(start) if lstm else memory) ** 2)

    @jax.checkpoint  # reverse mode keeps only the carries (P floats a step)
    def step(state, inputs):
        carry, q_h = state
        drive_t, t = inputs
        eps = jr.normal(jr.fold_in(key, t), (4, PARTICLES), dtype)
        var = sigma**2 * q_h + nu**2 * drive_t + rho**2
        if lstm:
            sd = _sd(var)
            new, q_h, q_c, transfer = _lstm_particles(sigma, mu, sd, eps, carry)
            norm = new[2] + jnp.mean(new[1])
        else:  # W_n h, and the candidate's own bias and input: separate draws
            sd = jnp.stack([_sd(var[0]), _sd(var[1]), _sd(sigma[2] ** 2 * q_h),
                            _sd(nu[2] ** 2 * drive_t + rho[2] ** 2)])
            new, q_h, q_c, transfer = _gru_particles(sigma, mu, sd, eps, carry)
            norm = new[2]
        # Normalise (the previous norm was 1): the ratio is this step's growth.
        new = (new[0], new[1] / norm, new[2] / norm)
        return (new, q_h), (q_h, jnp.asarray(q_c, dtype), norm, transfer)

    steps = jnp.arange(drive.shape[0])
    _, (q_h, q_c, growth, transfer) = lax.scan(step, (carry, q_h0), (drive, steps))
    counted = (steps >= warmup).astype(dtype)
    mean_map = jnp.tensordot(counted, transfer, 1) / jnp.sum(counted)
    return q_h, q_c, growth, mean_map


def spectral_radius(m):
    """Perron root of a (1, 1) or (2, 2) nonnegative matrix."""
    if m.shape == (1, 1):
        return m[0, 0]
    half_trace = 0.5 * (m[0, 0] + m[1, 1])
    return half_trace + jnp.sqrt(0.25 * (m[0, 0] - m[1, 1]) ** 2 + m[0, 1] * m[1, 0])

"""Plots, house style and the figure generator: the artists carry the data they were
given (not just "no exception"), saved files have TrueType fonts and the asked size."""

import importlib
import math
import struct
import subprocess
import sys

import jax.numpy as jnp
import jax.random as jr
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

import gradspec
import gradspec.plots as gp
import gradspec.style as gs_style
from gradspec import figures, theory
from gradspec.cli import figures as figures_cli

from .helpers import EPS32, assert_within, log_product_atol

LN10 = math.log(10.0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _by_gid(artists, gid):
    found = [a for a in artists if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for a in artists])
    return found[0]


def _rnn(nonlinearity, gain, key, *, N=8, T=30, input_scale=0.1):
    cell = gradspec.cells.RNN(nonlinearity)
    k_p, k_x = jr.split(key)
    params = cell.init(k_p, N, 1, recurrent_init=gradspec.init.gaussian(gain))
    xs = input_scale * jr.normal(k_x, (T, 1))
    return cell, params, xs


# -- style -----------------------------------------------------------------------------


def test_style_is_never_applied_on_import():
    before = dict(matplotlib.rcParams)
    for module in (gs_style, gp, figures):
        importlib.reload(module)
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.rcParams["pdf.fonttype"] == before["pdf.fonttype"]


def test_importing_gradspec_does_not_import_matplotlib():
    # Fresh interpreter: this test process has matplotlib loaded already.
    code = (
        "import sys, gradspec; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' "
        "or m in ('gradspec.plots', 'gradspec.style', 'gradspec.figures')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_style_context_applies_and_restores():
    before = matplotlib.rcParams["pdf.fonttype"], matplotlib.rcParams["font.size"]
    with gs_style.context({"font.size": 11}):
        assert matplotlib.rcParams["pdf.fonttype"] == 42
        assert matplotlib.rcParams["ps.fonttype"] == 42
        assert matplotlib.rcParams["font.size"] == 11
        assert matplotlib.rcParams["figure.constrained_layout.use"]
    assert (
        matplotlib.rcParams["pdf.fonttype"],
        matplotlib.rcParams["font.size"],
    ) == before


def test_plot_functions_leave_rcparams_alone():
    before = dict(matplotlib.rcParams)
    gp.plot_eigenvalues(np.array([0.5 + 0.5j, -0.2]), gain=1.0)
    assert dict(matplotlib.rcParams) == before


def test_figsize_and_palette():
    assert gs_style.figsize("one", 0.5) == (3.25, 1.625)
    assert gs_style.figsize("two")[0] == 6.75
    assert gs_style.figsize(2.0, 1.0) == (2.0, 2.0)
    with pytest.raises(ValueError, match="width"):
        gs_style.figsize("three")
    with pytest.raises(ValueError, match="width"):
        gs_style.figsize(0.0)
    with pytest.raises(ValueError, match="aspect"):
        gs_style.figsize("one", 0.0)
    # Okabe–Ito: eight distinct colours; the regime and outcome colours come from it.
    assert len(set(gs_style.OKABE_ITO.values())) == 8
    assert set(gs_style.REGIME_COLORS.values()) <= set(gs_style.OKABE_ITO.values())
    assert set(gs_style.OUTCOME_COLORS.values()) <= set(gs_style.OKABE_ITO.values())


def _png_header(path):
    """(width, height, dpi) from the IHDR and pHYs chunks of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    i = data.index(b"pHYs")
    ppm_x, ppm_y, unit = struct.unpack(">IIB", data[i + 4 : i + 13])
    assert unit == 1 and ppm_x == ppm_y  # pixels per metre
    return width, height, ppm_x * 0.0254


def test_save_png_size_dpi_and_truetype_pdf(tmp_path, getkey):
    cell, params, xs = _rnn("tanh", 1.5, getkey())
    prof = gradspec.gradient_profile(cell, params, xs)
    # Mathtext-heavy labels: the case where Type 3 fonts would creep in.
    fig = gp.plot_gradient_profiles(
        [
            {
                "label": r"$\hat\lambda = -0.25$, $g^*$",
                "log_norms": prof,
                "lambda_max": -0.1,
            }
        ]
    )
    paths = gs_style.save(fig, tmp_path / "sub" / "fig", dpi=80)
    assert [p.name for p in paths] == ["fig.png", "fig.pdf", "fig.svg"]
    width, height, dpi = _png_header(paths[0])
    w_in, h_in = fig.get_size_inches()
    assert (width, height) == (round(w_in * 80), round(h_in * 80))
    assert dpi == pytest.approx(80, abs=0.02)  # pHYs holds whole pixels per metre
    image = matplotlib.image.imread(paths[0])
    assert image.shape[:2] == (height, width)
    pdf = paths[1].read_bytes()
    assert b"/FontFile2" in pdf  # TrueType embedded
    assert b"/Subtype /Type3" not in pdf
    assert paths[2].read_text().lstrip().startswith("<?xml")
    # Control: the same figure saved with matplotlib's default fonttype 3 does have
    # Type 3 fonts, so the scan above can fail.
    with matplotlib.rc_context({"pdf.fonttype": 3}):
        fig.savefig(tmp_path / "type3.pdf")
    assert b"/Subtype /Type3" in (tmp_path / "type3.pdf").read_bytes()


def test_save_rejects_bad_format(tmp_path):
    fig = plt.figure()
    with pytest.raises(ValueError, match="formats"):
        gs_style.save(fig, tmp_path / "x", formats=("jpg",))
    with pytest.raises(ValueError, match="dpi"):
        gs_style.save(fig, tmp_path / "x", dpi=0)


# -- spectra ---------------------------------------------------------------------------


def test_eigenvalue_cloud_carries_the_eigenvalues(getkey):
    N, gain = 40, 1.3
    W = gradspec.init.gaussian(gain)(getkey(), (N, N), jnp.float64)
    spectrum = gradspec.weight_spectrum(W)
    fig = gp.plot_eigenvalues(spectrum, gain=gain)
    ax = fig.axes[0]
    points = _by_gid(ax.collections, "eigenvalues").get_offsets()
    eig = np.asarray(spectrum.eigenvalues)
    assert points.shape == (N, 2)
    np.testing.assert_allclose(points[:, 0], eig.real)
    np.testing.assert_allclose(points[:, 1], eig.imag)
    assert _by_gid(ax.patches, "circular-law").get_radius() == gain
    assert _by_gid(ax.patches, "unit-circle").get_radius() == 1.0


def test_singular_values_against_quarter_circle(getkey):
    N, gain = 60, 0.7
    W = gradspec.init.gaussian(gain)(getkey(), (N, N), jnp.float64)
    sv = np.asarray(gradspec.weight_spectrum(W).singular_values)
    fig = gp.plot_singular_values(sv, gain=gain, bins=12)
    ax = fig.axes[0]
    line = _by_gid(ax.lines, "quarter-circle")
    x, y = line.get_xdata(), line.get_ydata()
    np.testing.assert_allclose(
        y, theory.quarter_circle_density(jnp.asarray(x), gain), rtol=1e-6, atol=1e-12
    )
    assert x[-1] == pytest.approx(2 * gain)
    heights = np.array([p.get_height() for p in ax.patches])
    expected, edges = np.histogram(sv, bins=12, density=True)
    np.testing.assert_allclose(heights, expected)
    assert np.sum(heights * np.diff(edges)) == pytest.approx(1.0)


# -- gradient flow ---------------------------------------------------------------------


def test_gradient_profiles_and_predicted_slopes(getkey):
    profiles = []
    for nl, gain in (("tanh", 0.8), ("tanh", 2.0), ("sigmoid", 1.0)):
        cell, params, xs = _rnn(nl, gain, getkey())
        lam = float(theory.mean_field(nl, gain, sigma_x=0.1).lambda_max)
        profiles.append(
            {
                "label": f"{nl} {gain}",
                "log_norms": gradspec.gradient_profile(cell, params, xs),
                "lambda_max": lam,
            }
        )
    fig = gp.plot_gradient_profiles(profiles)
    ax = fig.axes[0]
    for prof in profiles:
        ln = np.asarray(prof["log_norms"])
        k = np.arange(ln.size)
        line = _by_gid(ax.lines, f"profile:{prof['label']}")
        np.testing.assert_allclose(line.get_xdata(), k)
        np.testing.assert_allclose(line.get_ydata(), ln / LN10)
        slope = _by_gid(ax.lines, f"slope:{prof['label']}")
        np.testing.assert_allclose(
            slope.get_ydata(), (ln[0] + prof["lambda_max"] * k) / LN10
        )
        assert slope.get_linestyle() == "--"
    # base-10 tick labels on the decade axis
    fig.canvas.draw()
    ticks = [(t.get_position()[1], t.get_text()) for t in ax.get_yticklabels()]
    labelled = [(y, text) for y, text in ticks if text]
    assert len(labelled) >= 2
    for y, text in labelled:  # the label at log10 value n reads 10^n
        assert text == rf"$\mathdefault{{10^{{{round(y)}}}}}$" and y == round(y)
    with pytest.raises(TypeError, match="profiles"):
        gp.plot_gradient_profiles({"log_norms": [0.0]})


def _seed_batch(rng, S=6, K=24):
    """(S, K + 1) log-norm profiles with seed-to-seed slopes, dead (-inf) entries, one
    lag where every seed is dead and one where a single seed is finite."""
    k = np.arange(K + 1)
    slopes = -0.1 + 0.02 * rng.standard_normal(S)
    L = slopes[:, None] * k + 0.3 * rng.standard_normal((S, K + 1))
    L[0, 3] = L[2, 7] = L[4, 7] = -np.inf  # dead units
    L[:, 10] = -np.inf  # no seed finite: not drawn
    L[1:, 15] = -np.inf  # one seed finite: a mean, no band
    return L


def _finite_stats(L):
    """Independent reference: per lag the mean and s.e. over the finite seeds."""
    mean, se, n = [], [], []
    for col in L.T:
        x = col[np.isfinite(col)]
        n.append(x.size)
        mean.append(x.mean() if x.size else np.nan)
        se.append(x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else np.nan)
    return np.array(mean), np.array(se), np.array(n)


def _band_edges(band, lags):
    """Per lag (lowest, highest) y of the band's vertices, NaN where it has none."""
    v = np.concatenate([p.vertices for p in band.get_paths()])
    lo = np.array([v[v[:, 0] == k, 1].min() if (v[:, 0] == k).any() else np.nan
                   for k in lags])
    hi = np.array([v[v[:, 0] == k, 1].max() if (v[:, 0] == k).any() else np.nan
                   for k in lags])
    return lo, hi


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_gradient_profiles_batch_band_is_mean_pm_se():
    L = _seed_batch(np.random.default_rng(0))
    lags = np.arange(L.shape[1])
    fig = gp.plot_gradient_profiles([{"label": "seeds", "log_norms": L}])
    ax = fig.axes[0]
    mean, se, n = _finite_stats(L)
    line = _by_gid(ax.lines, "profile:seeds")
    # The drawn curve is the mean log norm over finite seeds (geometric mean of norms);
    # the all-dead lag is a gap. Sums of <= 6 terms of size <= 3: 1e-12 is ~1e3 eps.
    np.testing.assert_allclose(line.get_ydata(), mean / LN10, atol=1e-12)
    assert np.isnan(line.get_ydata()[10]) and np.isfinite(line.get_ydata()[15])
    lo, hi = _band_edges(_by_gid(ax.collections, "band:seeds"), lags)
    has_band = n >= 2
    np.testing.assert_allclose(lo[has_band], ((mean - se) / LN10)[has_band], atol=1e-12)
    np.testing.assert_allclose(hi[has_band], ((mean + se) / LN10)[has_band], atol=1e-12)
    assert np.isnan(lo[~has_band]).all()  # no band where < 2 seeds are finite
    # Fitted rate: per-seed least-squares slope over that seed's finite lags.
    slopes = np.array([np.polyfit(lags[np.isfinite(r)], r[np.isfinite(r)], 1)[0]
                       for r in L])
    m, s = slopes.mean(), slopes.std(ddof=1) / math.sqrt(slopes.size)
    assert s >= 1e-3  # three decimals show it
    assert _legend_texts(ax) == [f"seeds  ($\\hat\\lambda = {m:+.3f} \\pm {s:.3f}$)"]
    assert not [a for a in ax.lines if (a.get_gid() or "").startswith("slope:")]


def test_gradient_profiles_quantile_band_and_no_band():
    L = _seed_batch(np.random.default_rng(1))
    lags = np.arange(L.shape[1])
    fig = gp.plot_gradient_profiles([{"label": "q", "log_norms": L}], band="quantile")
    lo, hi = _band_edges(_by_gid(fig.axes[0].collections, "band:q"), lags)
    ref = np.array([np.quantile(c[np.isfinite(c)], [0.1, 0.9]) if np.isfinite(c).sum()
                    >= 2 else [np.nan, np.nan] for c in L.T]) / LN10
    np.testing.assert_allclose(lo, ref[:, 0], atol=1e-12)
    np.testing.assert_allclose(hi, ref[:, 1], atol=1e-12)
    fig = gp.plot_gradient_profiles([{"label": "q", "log_norms": L}], band=None)
    assert not [c for c in fig.axes[0].collections if c.get_gid() == "band:q"]
    with pytest.raises(ValueError, match="band"):
        gp.plot_gradient_profiles([{"log_norms": L}], band="sd")
    with pytest.raises(ValueError, match="log_norms"):
        gp.plot_gradient_profiles([{"log_norms": L[None]}])


def test_gradient_profiles_legend_carries_lambda_and_se():
    k = np.arange(30)
    lam, se = -0.11234, 0.00287
    fig = gp.plot_gradient_profiles(
        [
            {"label": "a", "log_norms": lam * k, "lambda_max": lam, "lambda_se": se},
            {"label": "b", "log_norms": 0.05 * k, "lambda_max": 0.05},
            {"label": "c", "log_norms": -0.2 * k, "lambda_max": -0.2,
             "lambda_se": 2e-4},
            {"label": "d", "log_norms": -0.3 * k},
        ]
    )
    ax = fig.axes[0]
    assert _legend_texts(ax) == [
        "a  ($\\lambda = -0.112 \\pm 0.003$)",
        "b  ($\\lambda = +0.050$)",  # no s.e.: no +- part
        "c  ($\\lambda = -0.2000 \\pm 0.0002$)",  # s.e. < 1e-3: to its first digit
        "d",  # a single profile without lambda_max: as before, no rate
        "predicted slope $\\lambda_{max}$",
    ]
    # A batch with a given lambda_max keeps it (and its slope line), fits nothing.
    fig = gp.plot_gradient_profiles(
        [{"label": "e", "log_norms": np.stack([lam * k, 0.9 * lam * k]),
          "lambda_max": lam}]
    )
    assert _legend_texts(fig.axes[0])[0] == "e  ($\\lambda = -0.112$)"
    slope = _by_gid(fig.axes[0].lines, "slope:e")
    np.testing.assert_allclose(slope.get_ydata(), lam * k / LN10)


def test_legends_use_the_style_size(getkey):
    assert gs_style.LEGEND_SIZE >= 7
    W = gradspec.init.gaussian(1.5)(getkey(), (16, 16))
    spectrum = gradspec.weight_spectrum(W)
    sw, sb = jnp.linspace(0.5, 2.0, 4), jnp.linspace(0.0, 1.0, 3)
    lam = gp.mean_field_grid("tanh", sw, sb).lambda_max
    figs = [
        gp.plot_gradient_profiles([{"log_norms": -0.1 * np.arange(5)}]),
        gp.plot_lyapunov_spectra([{"exponents": np.array([0.1, -0.5])}]),
        gp.plot_lyapunov_spectra(
            [{"label": f"$g = {g}$", "exponents": np.array([[0.1, -0.5], [0.2, -0.6]])}
             for g in (0.5, 1.5, 2.5)],
            inset=1,
        ),
        gp.plot_phase_diagram(
            sw, sb, lam, critical=gp.critical_line("tanh", sb),
            measured={"sigma_w": [1.0], "sigma_b": [0.0], "lambda_max": [0.0]},
        ),
        gp.plot_eigenvalues(spectrum, gain=1.5),
        gp.plot_singular_values(spectrum, gain=1.5),
        gp.plot_training_curves(
            [{"label": f"tanh, gaussian({g}), Adam + clip 1", "loss": [1.0, 0.5],
              "grad_norm": [1.0, 1.0], "outcome": "solved", "baseline": 1.0}
             for g in (0.5, 1.0, 3.0, 4.0)]
        ),
    ]
    for fig in figs:
        legends = [a.get_legend() for a in fig.axes if a.get_legend()] + fig.legends
        assert legends, fig
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for leg in legends:
            assert {t.get_fontsize() for t in leg.get_texts()} == {
                gs_style.LEGEND_SIZE
            }
            # The larger text still fits: the legend lies within the figure.
            box = leg.get_window_extent(renderer)
            assert box.x0 >= -1 and box.x1 <= fig.bbox.x1 + 1, (fig, box)
            assert box.y0 >= -1 and box.y1 <= fig.bbox.y1 + 1, (fig, box)


def _explicit_log_norms(J):
    J = np.asarray(J, np.float64)
    T = J.shape[0]
    M = np.full((T + 1, T + 1), np.nan)
    for t in range(T + 1):
        P = np.eye(J.shape[1])
        M[t, t] = 0.0
        for s in range(t - 1, -1, -1):
            P = P @ J[s]  # dh_t/dh_s = J_t ... J_{s+1}, J_u = J[u - 1]
            M[t, s] = np.log(np.linalg.norm(P, 2))
    return M


def test_log_jacobian_norms_hand_checkable():
    J = jnp.stack([jnp.diag(jnp.array([0.5, 0.25]))] * 4)
    M = np.asarray(gp.log_jacobian_norms(J))
    t, s = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    # Powers of two multiply exactly; only the norms and a running sum of <= 4 logs of
    # size <= 0.7 round (seen 2 eps): 1e-12 absolute is ~4500 eps of those terms.
    np.testing.assert_allclose(M[t >= s], ((t - s) * math.log(0.5))[t >= s], atol=1e-12)
    assert np.isnan(M[t < s]).all()


def test_log_jacobian_norms_match_explicit_products(getkey):
    cell, params, xs = _rnn("tanh", 1.5, getkey(), N=5, T=12)
    J = gradspec.step_jacobians(cell, params, xs)
    M = np.asarray(gp.log_jacobian_norms(J))
    ref = _explicit_log_norms(J)
    assert np.array_equal(np.isnan(M), np.isnan(ref))
    # Each product J_t ... J_{s+1} in another order of rounding: bounded per entry by the
    # sizes of the terms of each step (log_product_atol, one start s per column).
    Jn, tol = np.asarray(J, np.float64), np.full_like(ref, np.nan)
    for s in range(13):  # M[t, s] = log||J[t-1] ... J[s]||: J[s], J[s+1], ... from the left
        tol[s:, s] = log_product_atol(np.eye(5), [Jn[u].T for u in range(s, 12)])
    assert_within(M, ref, tol)
    fro = np.asarray(gp.log_jacobian_norms(J, ord="fro"))
    Jn = np.asarray(J)
    P = np.linalg.multi_dot(Jn[::-1])  # J_12 ... J_1
    assert fro[12, 0] == pytest.approx(np.log(np.linalg.norm(P)))


def test_log_jacobian_norms_log_domain_in_float32():
    # 0.5^300 = 1e-90 underflows float32; the log-domain scan does not.
    J = jnp.stack([0.5 * jnp.eye(2, dtype=jnp.float32)] * 300)
    M = gp.log_jacobian_norms(J)
    assert M.dtype == jnp.float32
    # A float32 running sum of 300 logs 0.5: each partial sum rounds by <= u, so the error
    # is <= eps32 sum_j<=300 |j log 0.5| = 3.7e-3 (relative to the terms summed; seen 3.5e-4).
    ref = np.arange(1, 301) * math.log(0.5)
    assert_within(M[1:, 0], ref, EPS32 * np.cumsum(np.abs(ref)))


def test_log_jacobian_norms_rejects_bad_shapes():
    with pytest.raises(ValueError, match="jacobians"):
        gp.log_jacobian_norms(jnp.zeros((3, 2, 4)))
    with pytest.raises(ValueError, match="ord"):
        gp.log_jacobian_norms(jnp.zeros((3, 2, 2)), ord=1)


def test_jacobian_heatmap_holds_the_matrix(getkey):
    cell, params, xs = _rnn("tanh", 2.0, getkey(), N=6, T=15)
    M = np.asarray(gp.log_jacobian_norms(gradspec.step_jacobians(cell, params, xs)))
    fig = gp.plot_jacobian_heatmap(M)
    image = _by_gid(fig.axes[0].images, "heatmap")
    shown = image.get_array()
    np.testing.assert_allclose(shown.filled(np.nan), M / LN10, equal_nan=True)
    assert np.array_equal(np.ma.getmaskarray(shown), np.isnan(M))
    vmin, vmax = image.get_clim()
    assert vmin == -vmax  # centred at norm 1
    assert len(fig.axes) == 2  # with its colour bar


def test_lyapunov_spectra_curves(getkey):
    spectra = []
    for gain in (0.5, 2.0):
        cell, params, xs = _rnn("tanh", gain, getkey(), N=6, T=80, input_scale=0.0)
        h0 = jr.normal(getkey(), (6,), jnp.float64)
        lam = gradspec.lyapunov_spectrum(cell, params, xs, h0, warmup=20)
        spectra.append(
            {
                "label": f"g={gain}",
                "exponents": lam,
                "lambda_max": float(theory.mean_field("tanh", gain).lambda_max),
            }
        )
    fig = gp.plot_lyapunov_spectra(spectra, inset=3)
    ax = fig.axes[0]
    for spec in spectra:
        line = _by_gid(ax.lines, f"spectrum:{spec['label']}")
        np.testing.assert_allclose(line.get_xdata(), np.arange(1, 7))
        np.testing.assert_allclose(line.get_ydata(), np.asarray(spec["exponents"]))
        marker = _by_gid(ax.lines, f"predicted:{spec['label']}")
        assert (
            marker.get_xdata()[0] == 1 and marker.get_ydata()[0] == spec["lambda_max"]
        )
    assert len(ax.child_axes) == 1  # the inset


def test_lyapunov_spectra_batch_of_draws():
    rng = np.random.default_rng(2)
    draws = np.sort(rng.normal(size=(5, 6)), axis=1)[:, ::-1]  # (D, k) descending
    draws[1, -1] = -np.inf  # a dead unit
    fig = gp.plot_lyapunov_spectra([{"label": "g=2", "exponents": draws}])
    ax = fig.axes[0]
    line = _by_gid(ax.lines, "spectrum:g=2")
    mean, _, _ = _finite_stats(draws)
    np.testing.assert_allclose(line.get_ydata(), mean, atol=1e-12)
    top = draws[:, 0]
    m, s = top.mean(), top.std(ddof=1) / math.sqrt(top.size)
    assert _legend_texts(ax)[0] == f"g=2  ($\\lambda_1 = {m:+.3f} \\pm {s:.3f}$)"
    with pytest.raises(ValueError, match="exponents"):
        gp.plot_lyapunov_spectra([{"exponents": draws[None]}])


def test_figure_draws_carry_lambda_and_se():
    # The figure set's drawings pass the uncertainties on (synthetic data, no compute).
    k = np.arange(20)
    fig = figures.draw(
        "gradient_vs_lag",
        {
            "labels": np.array(["a", "b"]),
            "log_norms": np.stack([-0.1 * k, 0.2 * k]),
            "lambda_max": np.array([-0.1, 0.2]),
            "lambda_se": np.array([0.004, 0.0]),
            "regimes": np.array(["vanishing", "exploding"]),
        },
    )
    assert _legend_texts(fig.axes[0])[:2] == [
        "a  ($\\lambda = -0.100 \\pm 0.004$)",
        "b  ($\\lambda = +0.200$)",
    ]
    exps = np.array([[[0.10, -0.5], [0.14, -0.7]], [[-0.3, -0.9], [-0.3, -0.8]]])
    fig = figures.draw(
        "lyapunov_spectrum",
        {"gains": np.array([2.0, 0.5]), "exponents": exps,
         "lambda_max": np.array([0.13, -0.29])},
    )
    texts = _legend_texts(fig.axes[0])
    assert texts[0] == "$g = 2$  ($\\lambda_1 = +0.120 \\pm 0.020$)"
    assert texts[1] == "$g = 0.5$  ($\\lambda_1 = -0.300$)"  # no spread: no +-
    np.testing.assert_allclose(
        _by_gid(fig.axes[0].lines, "spectrum:$g = 2$").get_ydata(), [0.12, -0.6]
    )


# -- phase diagram ---------------------------------------------------------------------


def test_phase_diagram_critical_line_and_measured_points(getkey):
    sigma_w = jnp.linspace(0.25, 2.5, 6)
    sigma_b = jnp.linspace(0.0, 1.0, 4)
    lam = np.asarray(gp.mean_field_grid("tanh", sigma_w, sigma_b).lambda_max)
    assert lam.shape == (6, 4)
    assert lam[0, 0] == pytest.approx(
        math.log(0.25), abs=1e-9
    )  # chi = sigma_w^2 at q* = 0; a log: absolute, chi's relative rounding (<= 1000 eps)
    line_b = jnp.linspace(0.0, 1.0, 5)
    line_w = np.asarray(gp.critical_line("tanh", line_b))
    mw, mb = np.array([0.5, 2.5]), np.array([0.0, 0.25])
    ml = figures.lyapunov_points("tanh", mw, mb, N=32, T=200, warmup=50, key=getkey())
    fig = gp.plot_phase_diagram(
        sigma_w,
        sigma_b,
        lam,
        critical={"sigma_w": line_w, "sigma_b": line_b},
        measured={"sigma_w": mw, "sigma_b": mb, "lambda_max": ml},
    )
    ax = fig.axes[0]
    line = _by_gid(ax.lines, "critical-line")
    # tanh without bias: chi = 1 exactly at sigma_w = 1 (the closed form, seen exact;
    # a bisection on chi would land within ~1000 eps / 2 = 1.1e-13 of it)
    assert line.get_ydata()[0] == 0.0 and line.get_xdata()[0] == pytest.approx(
        1.0, abs=1e-12
    )
    for w, b in zip(line.get_xdata(), line.get_ydata()):
        assert float(
            theory.mean_field("tanh", float(w), sigma_b=float(b)).chi
        ) == pytest.approx(1.0, abs=1e-6)
    mesh = _by_gid(ax.collections, "phase")
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(4, 6), lam.T)
    assert mesh.norm(0.0) == pytest.approx(0.5)  # diverging map centred at lambda = 0
    points = _by_gid(ax.collections, "measured")
    np.testing.assert_allclose(points.get_offsets(), np.stack([mw, mb], 1))
    np.testing.assert_allclose(points.get_array(), ml)
    # ordered at (0.5, 0): lambda = log 0.5 up to O(1/N); chaotic at (2.5, 0.25)
    assert ml[0] == pytest.approx(math.log(0.5), abs=0.15) and ml[1] > 0.05
    with pytest.raises(ValueError, match="lambda_max"):
        gp.plot_phase_diagram(sigma_w, sigma_b, lam.T)


def test_phase_diagram_takes_critical_line_and_to_grid_outputs():
    from gradspec.sweep import to_grid

    sigma_w = jnp.linspace(0.25, 2.5, 6)
    sigma_b = jnp.linspace(0.0, 1.0, 4)
    lam = gp.mean_field_grid("tanh", sigma_w, sigma_b).lambda_max
    line_w = gp.critical_line("tanh", sigma_b)  # a jax array (B,)
    recs = [
        {"config": {"sigma_w": w, "sigma_b": b}, "results": {"lambda_max": w - 2 * b}}
        for w in (0.5, 1.5, 2.5)
        for b in (0.0, 0.5)
        if (w, b) != (2.5, 0.5)  # a cell without a record: NaN in the grid
    ]
    for axes in (("sigma_w", "sigma_b"), ("sigma_b", "sigma_w")):
        grid = to_grid(recs, "lambda_max", axes=axes)
        fig = gp.plot_phase_diagram(
            sigma_w, sigma_b, lam, critical=line_w, measured=grid
        )
        ax = fig.axes[0]
        line = _by_gid(ax.lines, "critical-line")
        np.testing.assert_array_equal(line.get_xdata(), np.asarray(line_w, np.float64))
        np.testing.assert_array_equal(line.get_ydata(), np.asarray(sigma_b, np.float64))
        points = _by_gid(ax.collections, "measured")
        got = sorted(zip(*points.get_offsets().T, points.get_array()))
        want = sorted((r["config"]["sigma_w"], r["config"]["sigma_b"],
                       r["results"]["lambda_max"]) for r in recs)
        np.testing.assert_allclose(got, want)
    # The old forms still work: a pair, and a pair as a (2, n) array.
    for critical in ((line_w, sigma_b), np.stack([line_w, sigma_b])):
        fig = gp.plot_phase_diagram(sigma_w, sigma_b, lam, critical=critical)
        line = _by_gid(fig.axes[0].lines, "critical-line")
        np.testing.assert_array_equal(line.get_xdata(), np.asarray(line_w, np.float64))
    with pytest.raises(ValueError, match="critical"):  # sigma_w* for another sigma_b
        gp.plot_phase_diagram(sigma_w, sigma_b, lam, critical=line_w[:3])
    for bad in ("chi = 1", 1.0, object()):
        with pytest.raises(TypeError, match="critical"):
            gp.plot_phase_diagram(sigma_w, sigma_b, lam, critical=bad)
    for bad in (object(), [(0.5, 0.0, -0.1)]):
        with pytest.raises(TypeError, match="measured"):
            gp.plot_phase_diagram(sigma_w, sigma_b, lam, measured=bad)
    with pytest.raises(ValueError, match="measured"):  # a grid over other axes
        other = to_grid(recs, "lambda_max")._replace(axes=("sigma_w", "gain"))
        gp.plot_phase_diagram(sigma_w, sigma_b, lam, measured=other)
    with pytest.raises(ValueError, match="measured"):
        gp.plot_phase_diagram(sigma_w, sigma_b, lam, measured={"sigma_w": [1.0]})


# -- training and agreement ------------------------------------------------------------


def test_training_curves_from_train():
    gs_train = gradspec.training
    config = gs_train.TrainConfig(
        task="adding",
        T=5,
        hidden=4,
        batch=8,
        steps=12,
        init="gaussian",
        gain=1.0,
        learning_rate=1e-2,
    )
    result = gs_train.train(config, seeds=[0, 1], progress=False)
    runs = gp.runs_from_train(result, "tiny")
    assert [r["label"] for r in runs] == ["tiny (seed 0)", "tiny (seed 1)"]
    diverged = dict(
        runs[1],
        outcome="diverged",
        label="boom",
        loss=np.concatenate(
            [
                np.asarray(runs[1]["loss"])[:6] * 10.0 ** np.arange(6) * 1e3,
                np.full(6, np.nan),
            ]
        ),
    )
    fig = gp.plot_training_curves(runs + [diverged])
    loss_ax, grad_ax = fig.axes[:2]
    for run in runs:
        line = _by_gid(loss_ax.lines, f"loss:{run['label']}")
        np.testing.assert_allclose(
            line.get_ydata(), np.asarray(run["loss"]) / result.baseline
        )
        assert matplotlib.colors.same_color(
            line.get_color(), gs_style.OUTCOME_COLORS[run["outcome"]]
        )
        grad = _by_gid(grad_ax.lines, f"grad:{run['label']}")
        np.testing.assert_allclose(grad.get_ydata(), np.asarray(run["grad_norm"]))
    boom = _by_gid(loss_ax.lines, "loss:boom")
    assert matplotlib.colors.same_color(
        boom.get_color(), gs_style.OUTCOME_COLORS["diverged"]
    )
    # The diverging run does not set the scale: the top stays near the others.
    calm_max = max(np.nanmax(np.asarray(r["loss"]) / result.baseline) for r in runs)
    assert loss_ax.get_ylim()[1] == pytest.approx(100 * calm_max)


def test_agreement_matrix(getkey):
    rows = []
    for gain, outcome in (
        (0.5, "stalled"),
        (0.8, "stalled"),
        (1.0, "solved"),
        (2.0, "diverged"),
        (3.0, "stalled"),
        (0.6, "improving"),
    ):
        regime = theory.mean_field("tanh", gain, sigma_x=0.5).regime
        rows.append({"predicted_regime": str(regime), "observed_outcome": outcome})
    # The regimes the hand-made counts below rest on (lambda_max values in the comment).
    assert [r["predicted_regime"] for r in rows] == 3 * ["vanishing"] + 2 * [
        "exploding"
    ] + ["vanishing"]
    counts = gp.agreement_counts(rows)
    expected = np.zeros((3, 4), int)
    for r in rows:
        expected[
            gp.REGIME_ORDER.index(r["predicted_regime"]),
            gp.OUTCOME_ORDER.index(r["observed_outcome"]),
        ] += 1
    np.testing.assert_array_equal(counts, expected)
    # By hand: with input std 0.5, g = 0.5, 0.8 and 1.0 are ordered (lambda_max =
    # -0.88, -0.45, -0.27) and g = 2, 3 chaotic (+0.12, +0.30); columns stalled,
    # improving, solved, diverged.
    np.testing.assert_array_equal(counts, [[2, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]])
    assert counts.sum() == 6
    fig = gp.plot_agreement(rows)
    ax = fig.axes[0]
    np.testing.assert_array_equal(_by_gid(ax.images, "agreement").get_array(), counts)
    texts = [int(t.get_text()) for t in ax.texts]
    np.testing.assert_array_equal(np.array(texts).reshape(3, 4), counts)
    # On the expected pairing: 2 vanishing -> stalled, 1 exploding -> diverged.
    assert "3 of 6" in ax.get_title()
    # predicted vs observed regime (verify's observed_regime), "undefined" left out
    rows_r = [dict(r, observed_regime=r["predicted_regime"]) for r in rows]
    rows_r.append({"predicted_regime": "critical", "observed_regime": "undefined"})
    counts_r = gp.agreement_counts(rows_r, observed="regime")
    assert np.trace(counts_r) == counts_r.sum() == 6
    fig_r = gp.plot_agreement(rows_r, observed="regime")
    assert [t.get_text() for t in fig_r.axes[0].get_xticklabels()] == list(
        gp.REGIME_ORDER
    )

    # attribute-style rows and alternative keys work too
    class Row:
        regime, outcome = "exploding", "diverged"

    assert gp.agreement_counts([Row()])[2, 3] == 1
    with pytest.raises(ValueError, match="regime"):
        gp.agreement_counts(
            [{"predicted_regime": "chaotic", "observed_outcome": "solved"}]
        )
    with pytest.raises(ValueError, match="outcome"):
        gp.agreement_counts([{"predicted_regime": "critical"}])
    with pytest.raises(ValueError, match="observed"):
        gp.agreement_counts(rows, observed="loss")


# -- figure generator ------------------------------------------------------------------


@pytest.fixture
def small_figures(monkeypatch):
    """The quick settings of two cheap figures, made tiny for the tests."""
    import dataclasses

    for name, quick in (
        ("singular_values", {"N": 40, "gain": 1.0, "seed": 0}),
        ("eigenvalues", {"N": 30, "gains": [0.8, 1.5], "seed": 0}),
    ):
        spec = dataclasses.replace(figures.FIGURES[name], quick=quick)
        monkeypatch.setitem(figures.FIGURES, name, spec)


def test_figures_generate_caches_and_redraws(tmp_path, small_figures):
    logs = []

    def generate(**kwargs):
        return figures.generate(
            tmp_path,
            quick=True,
            only=["singular_values"],
            formats=("png",),
            dpi=50,
            log=logs.append,
            **kwargs,
        )

    out = generate()
    png = tmp_path / "singular_values.png"
    assert out["singular_values"] == [png] and png.exists()
    assert (tmp_path / "cache" / "singular_values.npz").exists()
    assert logs[-1].startswith("[computed] singular_values")
    # The cache holds the singular values of the quick settings' matrix (N = 40,
    # gain 1, seed 0), checked against NumPy's SVD of the same draw.
    W = np.asarray(gradspec.init.gaussian(1.0)(jr.key(0), (40, 40)))
    with np.load(tmp_path / "cache" / "singular_values.npz") as npz:
        np.testing.assert_allclose(
            np.sort(npz["singular_values"]),
            np.sort(np.linalg.svd(W, compute_uv=False)),
            rtol=1e-5,
            atol=1e-6,  # float32: small singular values are accurate to ~1e-7 * ||W||
        )
    generate()
    assert logs[-1].startswith("[cache] singular_values")
    generate(force=True)
    assert logs[-1].startswith("[computed] singular_values")


def test_figures_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="name"):
        figures.generate(tmp_path, only=["nope"])


def test_figures_command_line(tmp_path, capsys, small_figures):
    import argparse

    assert (
        figures_cli.main(
            [
                "--quick",
                "--out",
                str(tmp_path),
                "--only",
                "eigenvalues",
                "--formats",
                "png",
                "--dpi",
                "40",
            ]
        )
        == 0
    )
    assert (tmp_path / "eigenvalues.png").exists()
    assert "1 of 1 figures" in capsys.readouterr().out
    parser = argparse.ArgumentParser(prog="gradspec")
    sub = parser.add_subparsers(dest="command")
    figures_cli.add_parser(sub)
    args = parser.parse_args(
        ["figures", "--quick", "--out", "x", "--only", "phase_diagram"]
    )
    assert args.run is figures_cli.run and args.quick and args.only == ["phase_diagram"]

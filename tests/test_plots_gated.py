"""The ``gated_phase_diagram`` figure: its data against independent computations (the
lambda = 0 line against gradspec.theory.gated_critical's root solve, grid values against
direct gated_mean_field calls, measured points against the sweep), and the drawing
carries that data."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

import gradspec.sweep as gs
from gradspec import figures, theory
from gradspec.plots import gated

#: Tiny settings: mu_f steps of 0.05, so the line's interpolation error,
#: ~ dmu^2 |lambda''| / (8 |lambda'|), is ~1e-4; the test allows 1e-2.
TINY = {
    "sigma": [0.8, 1.4, 2],
    "mu_f": [1.0, 3.0, 41],
    "rho_g": 0.5,
    "hidden": 64,
    "annealed": {"sigma": [0.8, 1.4, 2], "mu_f": [1.0, 3.0, 2]},
    "measured": {"sigma": [1.0, 1.0, 1], "mu_f": [0.5, 2.0, 2], "N": 8, "T": 60,
                 "warmup": 20},
    "seed": 3,
}


@pytest.fixture(scope="module")
def data():
    return figures.compute("gated_phase_diagram", TINY)


def test_lambda_zero_line_hand_checkable():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    lam = np.array([[-2.0, -1.0, 1.0, 2.0],   # crosses between 1 and 2: at 1.5
                    [-1.0, 1.0, -1.0, 1.0],   # the first upward crossing: 0.5
                    [1.0, -1.0, -2.0, -3.0],  # only downwards: none
                    [-3.0, -2.0, -1.0, 0.0]])  # reaches 0 at the last point
    np.testing.assert_allclose(gated.lambda_zero_line(y, lam), [1.5, 0.5, np.nan, 3.0])
    with pytest.raises(ValueError, match="lam"):
        gated.lambda_zero_line(y, lam[:, :3])


@pytest.mark.slow
def test_quenched_line_agrees_with_gated_critical(data):
    for s, line in zip(data["sigma"], data["critical_mu_f"]):
        solved = theory.gated_critical("lstm", sigma=float(s), rho={"g": 0.5}, hidden=64)
        assert abs(line - float(solved["f"]["mu"])) < 1e-2, (s, line, solved)


def test_grids_and_points_equal_direct_calls(data):
    s, m = float(data["sigma"][1]), float(data["mu_f"][7])
    q = theory.gated_mean_field("lstm", sigma=s, mu={"f": m}, rho={"g": 0.5}, hidden=64)
    assert data["lambda_max"][1, 7] == pytest.approx(float(q.lambda_max), rel=1e-9)
    a = theory.gated_mean_field("lstm", sigma=float(data["annealed_sigma"][0]),
                                mu={"f": float(data["annealed_mu_f"][1])},
                                rho={"g": 0.5}, mode="annealed")
    assert data["annealed_lambda_max"][0, 1] == pytest.approx(float(a.lambda_max),
                                                              rel=1e-9)
    # Tied weights: the annealed theory sits below the quenched one.
    assert data["annealed_lambda_max"][0, 1] < data["lambda_max"][0, -1] - 0.05
    m = TINY["measured"]
    records = gs.sweep("gated_lyapunov", {"mu_f": [0.5, 2.0]},
                       options={"sigma": 1.0, "rho_g": 0.5, "N": m["N"], "T": m["T"],
                                "warmup": m["warmup"], "seed": 3}).records
    np.testing.assert_allclose(data["measured_lambda_max"],
                               [r["results"]["lambda_max"] for r in records], rtol=1e-9)
    np.testing.assert_array_equal(data["measured_mu_f"], [0.5, 2.0])


def test_drawing_carries_the_data(data):
    fig = figures.draw("gated_phase_diagram", data)
    ax = fig.axes[0]
    mesh = [c for c in ax.collections if c.get_gid() == "phase"][0]
    np.testing.assert_allclose(np.ma.getdata(mesh.get_array()).ravel(),
                               data["lambda_max"].T.ravel())
    lines = {line.get_gid(): line for line in ax.lines}
    np.testing.assert_allclose(lines["critical-line"].get_ydata(), data["critical_mu_f"])
    annealed = lines["annealed-line"]
    assert annealed.get_linestyle() == "--"
    np.testing.assert_allclose(annealed.get_xdata(), data["annealed_sigma"])
    points = [c for c in ax.collections if c.get_gid() == "measured"][0]
    np.testing.assert_allclose(points.get_offsets(),
                               np.c_[data["measured_sigma"], data["measured_mu_f"]])
    np.testing.assert_allclose(points.get_array(), data["measured_lambda_max"])
    assert points.norm.vmin == mesh.norm.vmin and points.norm.vmax == mesh.norm.vmax
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == 3 and "annealed" in labels[1] and "N = 8" in labels[2]
    assert r"\rho_g = 0.5" in ax.get_title(loc="left")
    assert "mu_f" in ax.get_ylabel() and "sigma" in ax.get_xlabel()
    plt.close(fig)


def test_registered_with_its_settings():
    quick = figures.settings("gated_phase_diagram", quick=True)
    full = figures.settings("gated_phase_diagram")
    assert (quick["measured"]["N"], full["measured"]["N"]) == (128, 256)
    assert quick["hidden"] == 128 and full["hidden"] == 256  # theory at the networks' N
    assert set(quick) == set(TINY) == set(full)

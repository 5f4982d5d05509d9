"""Matrix-product precision: gradspec's kernels trace with "highest" unless told otherwise.

On CPU every precision computes the same product, so the numbers cannot show it here; the
traced programs can. tests/test_gpu.py checks the numbers on an accelerator.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import gradspec
from gradspec import cells


def _precisions(fn, cell, params, xs):
    """The precision of every dot_general in the program of fn (nested jits, scans and
    loops included)."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn.params["precision"])
            for value in eqn.params.values():
                for inner in value if isinstance(value, (list, tuple)) else (value,):
                    inner = getattr(inner, "jaxpr", inner)  # ClosedJaxpr -> Jaxpr
                    if hasattr(inner, "eqns"):
                        walk(inner)

    walk(jax.make_jaxpr(lambda p, x: fn(cell, p, x))(params, xs).jaxpr)
    return found


CASES = {
    "gradient_profile": lambda c, p, x: gradspec.gradient_profile(c, p, x),
    "step_jacobians": lambda c, p, x: gradspec.step_jacobians(c, p, x),
    "lyapunov_spectrum": lambda c, p, x: gradspec.lyapunov_spectrum(c, p, x, k=2),
    "product_singular_values": lambda c, p, x: gradspec.product_singular_values(c, p, x),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("cell", [cells.RNN("tanh"), cells.GRU()], ids=["rnn", "gru"])
def test_kernels_use_highest_unless_caller_chose(name, cell):
    params = cell.init(jr.key(0), 4, 2, dtype=jnp.float32)
    xs = jr.normal(jr.key(1), (5, 2), jnp.float32)
    highest = (jax.lax.Precision.HIGHEST,) * 2
    found = _precisions(CASES[name], cell, params, xs)
    assert found and all(p == highest for p in found), found
    # A caller's explicit choice wins (here the fast one: DEFAULT on the jaxpr).
    with jax.default_matmul_precision("bfloat16"):
        found = _precisions(CASES[name], cell, params, xs)
    assert found and all(p != highest for p in found), found

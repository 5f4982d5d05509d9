r"""Theory: what the initialization alone predicts about gradient flow.

- :func:`mean_field`: the variance map of a random vanilla RNN, its stable fixed point
  :math:`q^*`, the gradient growth factor :math:`\chi`, the exponent
  :math:`\lambda_{max} = \tfrac12 \log\chi`, the depth scale :math:`\xi` and the regime
  (:data:`REGIMES`, :data:`REGIME_TOL`).
- :func:`critical_gain`: the weight scale :math:`\sigma_w` at which :math:`\chi = 1`.
- :func:`mean_field_along`: the mean field along a given input sequence.
- :func:`gated_mean_field`, :func:`gated_mean_field_along`, :func:`gated_critical`:
  the same for random LSTMs and GRUs, annealed (weights redrawn every step) and
  quenched (one network: the spectral edge of its fixed point's Jacobian).
- :func:`gradient_bound`: Pascanu et al.'s norm bound on Jacobian products.
- :func:`circular_law_density`, :func:`quarter_circle_density`: the large-N laws of the
  eigenvalues and singular values of :math:`W \sim \mathcal N(0, g^2/N)`.
- :func:`transient_growth`: :math:`\|W^k\|_2` for non-normal W, which can grow for
  many steps although :math:`\rho(W) < 1`.

Everything is written in ``jax.numpy`` with the nonlinearity static, so a phase
diagram is one ``jax.vmap`` over a grid of ``sigma_w`` / ``sigma_b``.

Modules: :mod:`~gradspec.theory.meanfield` (mean field, critical gain),
:mod:`~gradspec.theory.gated` (gated cells), :mod:`~gradspec.theory.bounds` (what W
alone bounds: Pascanu's bound, transient growth), :mod:`~gradspec.theory.rmt`
(random-matrix laws); the names are re-exported here.

References:
    Pascanu, Mikolov, Bengio (2013), "On the difficulty of training recurrent neural
    networks", arXiv:1211.5063.
    Poole, Lahiri, Raghu, Sohl-Dickstein, Ganguli (2016), "Exponential expressivity in
    deep neural networks through transient chaos", arXiv:1606.05340.
    Schoenholz, Gilmer, Ganguli, Sohl-Dickstein (2017), "Deep information
    propagation", arXiv:1611.01232.
    Gilboa, Chang, Chen, Pennington, Schoenholz, Chen (2019), "Dynamical isometry and
    a mean field theory of LSTMs and GRUs", arXiv:1901.08987.
    Girko (1985), circular law; Marchenko & Pastur (1967), quarter-circle law.
"""

from .bounds import GradientBound as GradientBound
from .bounds import TransientGrowth as TransientGrowth
from .bounds import gradient_bound as gradient_bound
from .bounds import transient_growth as transient_growth
from .gated import GATES as GATES
from .gated import GatedMeanField as GatedMeanField
from .gated import GatedMeanFieldPath as GatedMeanFieldPath
from .gated import gated_critical as gated_critical
from .gated import gated_mean_field as gated_mean_field
from .gated import gated_mean_field_along as gated_mean_field_along
from .meanfield import REGIME_TOL as REGIME_TOL
from .meanfield import REGIMES as REGIMES
from .meanfield import MeanField as MeanField
from .meanfield import MeanFieldPath as MeanFieldPath
from .meanfield import critical_gain as critical_gain
from .meanfield import mean_field as mean_field
from .meanfield import mean_field_along as mean_field_along
from .rmt import circular_law_density as circular_law_density
from .rmt import quarter_circle_density as quarter_circle_density

__all__ = [
    "REGIME_TOL",
    "REGIMES",
    "MeanField",
    "mean_field",
    "MeanFieldPath",
    "mean_field_along",
    "critical_gain",
    "GATES",
    "GatedMeanField",
    "gated_mean_field",
    "GatedMeanFieldPath",
    "gated_mean_field_along",
    "gated_critical",
    "GradientBound",
    "gradient_bound",
    "circular_law_density",
    "quarter_circle_density",
    "TransientGrowth",
    "transient_growth",
]

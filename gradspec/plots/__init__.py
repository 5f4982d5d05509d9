r"""Publication figures of gradient flow, from plain results.

Every ``plot_*`` function takes results as plain data (arrays, lists of dicts, the
NamedTuples of :mod:`gradspec`), an optional matplotlib ``ax`` to draw into, and returns
the :class:`~matplotlib.figure.Figure`. It draws inside :func:`gradspec.style.context`,
so the house style applies to what it draws and never leaks into a user's own defaults.
One module per figure family, all re-exported here:

- :mod:`.weights`: :func:`plot_eigenvalues`, :func:`plot_singular_values`;
- :mod:`.gradients`: :func:`plot_gradient_profiles`, :func:`plot_jacobian_heatmap`;
- :mod:`.lyapunov`: :func:`plot_lyapunov_spectra`;
- :mod:`.dynamics`: :func:`plot_exponent_spectrum`, :func:`plot_convergence`,
  :func:`plot_local_exponents`;
- :mod:`.phase`: :func:`plot_phase_diagram`;
- :mod:`.training`: :func:`plot_training_curves`, :func:`plot_agreement`;
- :mod:`.flossing`: :func:`plot_flossing` (with :func:`exponent_runs`).

Nothing is computed behind the user's back: the few results a figure needs that
:mod:`gradspec` does not already return are public helpers in :mod:`.data`, each usable
alone:

- :func:`log_jacobian_norms`: :math:`\log\|\partial h_t/\partial h_s\|` for all
  :math:`s \le t`, from :func:`gradspec.step_jacobians`;
- :func:`mean_field_grid`, :func:`critical_line`: the mean-field phase diagram and its
  :math:`\chi = 1` line, vmapped over :math:`(\sigma_w, \sigma_b)`;
- :func:`agreement_counts`: counts of predicted regime vs the training outcome (or
  the gradient regime observed in training), e.g. from :func:`gradspec.verify`;
- :func:`runs_from_train`: a :class:`gradspec.TrainResult` as plain run dicts.

Log-norms in gradspec are natural logs. Figures show them in decades: the data are
plotted as :math:`\log_{10}` values on a linear axis whose tick labels read
:math:`10^n` (a true log axis would underflow: :math:`10^{-300}` is routine here).

:mod:`.style` is the house style, :mod:`.figures` the paper's figure set.

Examples:
    >>> import jax, gradspec, gradspec.plots as gp
    >>> W = gradspec.init.gaussian(1.5)(jax.random.key(0), (64, 64))
    >>> fig = gp.plot_eigenvalues(gradspec.weight_spectrum(W), gain=1.5)
    >>> len(fig.axes[0].collections[0].get_offsets())
    64
"""

from .data import OUTCOME_ORDER as OUTCOME_ORDER
from .data import REGIME_ORDER as REGIME_ORDER
from .data import agreement_counts as agreement_counts
from .data import critical_line as critical_line
from .data import log_jacobian_norms as log_jacobian_norms
from .data import mean_field_grid as mean_field_grid
from .data import runs_from_train as runs_from_train
from .gradients import plot_gradient_profiles as plot_gradient_profiles
from .gradients import plot_jacobian_heatmap as plot_jacobian_heatmap
from .lyapunov import plot_lyapunov_spectra as plot_lyapunov_spectra
from .flossing import exponent_runs as exponent_runs
from .flossing import plot_flossing as plot_flossing
from .dynamics import plot_convergence as plot_convergence
from .dynamics import plot_exponent_spectrum as plot_exponent_spectrum
from .dynamics import plot_local_exponents as plot_local_exponents
from .phase import plot_phase_diagram as plot_phase_diagram
from .training import plot_agreement as plot_agreement
from .training import plot_training_curves as plot_training_curves
from .weights import plot_eigenvalues as plot_eigenvalues
from .weights import plot_singular_values as plot_singular_values

__all__ = [
    "exponent_runs",
    "plot_flossing",
    "OUTCOME_ORDER",
    "REGIME_ORDER",
    "agreement_counts",
    "critical_line",
    "log_jacobian_norms",
    "mean_field_grid",
    "plot_agreement",
    "plot_eigenvalues",
    "plot_gradient_profiles",
    "plot_jacobian_heatmap",
    "plot_lyapunov_spectra",
    "plot_phase_diagram",
    "plot_singular_values",
    "plot_training_curves",
    "runs_from_train",
    "plot_convergence",
    "plot_exponent_spectrum",
    "plot_local_exponents",
]

"""Exact measurement along a trajectory: step Jacobians, gradient profiles, spectra.

``jacobians``: the trajectory and the products :math:`J_T \\cdots J_{T-k+1}` applied to
a readout (the gradient profile); ``spectra``: the spectrum of ``W_hh``, the singular
values of the product and the Lyapunov spectrum, all in the log domain.
``dynamics``: what the spectrum and its sweep say about the dynamics (Kaplan–Yorke
dimension, KS entropy, participation ratios, local exponents, running estimates with
standard errors); ``from_jacobians``: the same measurements of step Jacobians from any
model, (T, S, S) or in chunks.
"""

from ._associative import TrajectoryResult as TrajectoryResult
from ._inputs import start_state as start_state
from .jacobians import default_readout as default_readout
from .jacobians import gradient_profile as gradient_profile
from .jacobians import profile_rate as profile_rate
from .jacobians import step_jacobians as step_jacobians
from .jacobians import trajectory as trajectory
from .spectra import WeightSpectrum as WeightSpectrum
from .summary import Measurement as Measurement
from .summary import measurement as measurement
from .spectra import lyapunov_spectrum as lyapunov_spectrum
from .spectra import product_singular_values as product_singular_values
from .spectra import weight_spectrum as weight_spectrum
from .dynamics import LyapunovConvergence as LyapunovConvergence
from .dynamics import kaplan_yorke_dimension as kaplan_yorke_dimension
from .dynamics import ks_entropy as ks_entropy
from .dynamics import local_exponents as local_exponents
from .dynamics import lyapunov_convergence as lyapunov_convergence
from .dynamics import participation_ratio as participation_ratio
from .dynamics import running_exponents as running_exponents
from .covariant import covariant_lyapunov_vectors as covariant_lyapunov_vectors
from .from_jacobians import gradient_profile_from_jacobians as gradient_profile_from_jacobians
from .from_jacobians import local_exponents_from_jacobians as local_exponents_from_jacobians
from .from_jacobians import lyapunov_spectrum_from_jacobians as lyapunov_spectrum_from_jacobians
from .from_jacobians import (
    product_singular_values_from_jacobians as product_singular_values_from_jacobians,
)

__all__ = [
    "TrajectoryResult",
    "start_state",
    "default_readout",
    "gradient_profile",
    "profile_rate",
    "step_jacobians",
    "trajectory",
    "WeightSpectrum",
    "Measurement",
    "measurement",
    "lyapunov_spectrum",
    "product_singular_values",
    "weight_spectrum",
    "LyapunovConvergence",
    "kaplan_yorke_dimension",
    "ks_entropy",
    "local_exponents",
    "lyapunov_convergence",
    "participation_ratio",
    "running_exponents",
    "covariant_lyapunov_vectors",
    "gradient_profile_from_jacobians",
    "local_exponents_from_jacobians",
    "lyapunov_spectrum_from_jacobians",
    "product_singular_values_from_jacobians",
]

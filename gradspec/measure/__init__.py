"""Exact measurement along a trajectory: step Jacobians, gradient profiles, spectra.

``jacobians``: the trajectory and the products :math:`J_T \\cdots J_{T-k+1}` applied to
a readout (the gradient profile); ``spectra``: the spectrum of ``W_hh``, the singular
values of the product and the Lyapunov spectrum, all in the log domain.
"""

from ._inputs import start_state as start_state
from .jacobians import default_readout as default_readout
from .jacobians import gradient_profile as gradient_profile
from .jacobians import profile_rate as profile_rate
from .jacobians import step_jacobians as step_jacobians
from .jacobians import trajectory as trajectory
from .spectra import WeightSpectrum as WeightSpectrum
from .spectra import lyapunov_spectrum as lyapunov_spectrum
from .spectra import product_singular_values as product_singular_values
from .spectra import weight_spectrum as weight_spectrum

__all__ = [
    "start_state",
    "default_readout",
    "gradient_profile",
    "profile_rate",
    "step_jacobians",
    "trajectory",
    "WeightSpectrum",
    "lyapunov_spectrum",
    "product_singular_values",
    "weight_spectrum",
]

"""gradspec: will the gradients of this recurrent network vanish or explode, how fast, and why.

The package is layered; each layer imports only the ones above it in this list:

- ``_checks``, ``_precision``, ``_json``, ``_nonlinearities``: input checks, matmul
  precision, plain-data JSON, the elementwise f and f'.
- ``theory``: mean field, bounds and random-matrix laws (needs only f and f').
- ``init``, ``cells``: what a network is.
- ``measure``, ``interop``: exact measurements along a trajectory; other frameworks' cells.
- ``verdicts``, ``remedies``: ``predict`` and ``diagnose``; ``make_critical``.
- ``training``: tasks, the compiled optax loop, ``verify``.
- ``sweep``: grids, vmapped and sharded, with a resumable store.
- ``plots``: figure families, the house style, the figure set.
- ``cli``: the ``gradspec`` command.
"""

import os as _os

# XLA's CPU QR/SVD/eig call into scipy's OpenBLAS, whose own thread pool then fights XLA's
# for the cores: a QR inside lax.scan ran 10-40x slower with OpenBLAS's default threads
# (measured: lyapunov_spectrum N=256, T=100: 8.3 s -> 0.19 s on 2 cores). A default only:
# set OPENBLAS_NUM_THREADS yourself to override; no effect once OpenBLAS is loaded.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from . import cells as cells
from . import init as init
from . import interop as interop
from . import measure as measure
from . import sweep as sweep
from . import theory as theory
from . import training as training
from . import verdicts as verdicts
from .measure import WeightSpectrum as WeightSpectrum
from .measure import default_readout as default_readout
from .measure import gradient_profile as gradient_profile
from .measure import Measurement as Measurement
from .measure import lyapunov_spectrum as lyapunov_spectrum
from .measure import measurement as measurement
from .measure import product_singular_values as product_singular_values
from .measure import profile_rate as profile_rate
from .measure import start_state as start_state
from .measure import step_jacobians as step_jacobians
from .measure import trajectory as trajectory
from .measure import weight_spectrum as weight_spectrum
from .measure import LyapunovConvergence as LyapunovConvergence
from .measure import kaplan_yorke_dimension as kaplan_yorke_dimension
from .measure import ks_entropy as ks_entropy
from .measure import local_exponents as local_exponents
from .measure import lyapunov_convergence as lyapunov_convergence
from .measure import participation_ratio as participation_ratio
from .measure import running_exponents as running_exponents
from .measure import gradient_profile_from_jacobians as gradient_profile_from_jacobians
from .measure import local_exponents_from_jacobians as local_exponents_from_jacobians
from .measure import lyapunov_spectrum_from_jacobians as lyapunov_spectrum_from_jacobians
from .measure import covariant_lyapunov_vectors as covariant_lyapunov_vectors
from .measure import (
    product_singular_values_from_jacobians as product_singular_values_from_jacobians,
)
from .training import FlossConfig as FlossConfig
from .training import TrainConfig as TrainConfig
from .training import TrainResult as TrainResult
from .training import tasks as tasks
from .training import floss as floss
from .training import flossing_loss as flossing_loss
from .training import train as train
from .training import verify as verify
from .verdicts import Diagnosis as Diagnosis
from .verdicts import Prediction as Prediction
from .verdicts import diagnose as diagnose
from .verdicts import predict as predict
from .remedies import CriticalResult as CriticalResult
from .remedies import make_critical as make_critical

__version__ = "0.1.0"

__all__ = [
    "cells",
    "init",
    "interop",
    "measure",
    "sweep",
    "tasks",
    "theory",
    "training",
    "verdicts",
    "default_readout",
    "gradient_profile",
    "profile_rate",
    "step_jacobians",
    "trajectory",
    "start_state",
    "Measurement",
    "measurement",
    "Diagnosis",
    "Prediction",
    "diagnose",
    "predict",
    "CriticalResult",
    "make_critical",
    "WeightSpectrum",
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
    "gradient_profile_from_jacobians",
    "local_exponents_from_jacobians",
    "lyapunov_spectrum_from_jacobians",
    "covariant_lyapunov_vectors",
    "product_singular_values_from_jacobians",
    "TrainConfig",
    "TrainResult",
    "train",
    "FlossConfig",
    "floss",
    "flossing_loss",
    "verify",
]

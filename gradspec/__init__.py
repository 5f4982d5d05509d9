"""gradspec: will the gradients of this recurrent network vanish or explode, how fast, and why."""

import os as _os

# XLA's CPU QR/SVD/eig call into scipy's OpenBLAS, whose own thread pool then fights XLA's
# for the cores: a QR inside lax.scan ran 10-40x slower with OpenBLAS's default threads
# (measured: lyapunov_spectrum N=256, T=100: 8.3 s -> 0.19 s on 2 cores). A default only:
# set OPENBLAS_NUM_THREADS yourself to override; no effect once OpenBLAS is loaded.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from . import cells as cells
from . import init as init
from . import interop as interop
from . import sweep as sweep
from . import tasks as tasks
from . import theory as theory
from .jacobians import default_readout as default_readout
from .jacobians import gradient_profile as gradient_profile
from .jacobians import profile_rate as profile_rate
from .jacobians import step_jacobians as step_jacobians
from .jacobians import trajectory as trajectory
from .predict import Diagnosis as Diagnosis
from .predict import Prediction as Prediction
from .predict import diagnose as diagnose
from .predict import predict as predict
from .spectra import WeightSpectrum as WeightSpectrum
from .spectra import lyapunov_spectrum as lyapunov_spectrum
from .spectra import product_singular_values as product_singular_values
from .spectra import weight_spectrum as weight_spectrum
from .train import TrainConfig as TrainConfig
from .train import TrainResult as TrainResult
from .train import train as train
from .verify import verify as verify

__version__ = "0.1.0"

__all__ = [
    "cells",
    "init",
    "interop",
    "sweep",
    "tasks",
    "theory",
    "default_readout",
    "gradient_profile",
    "profile_rate",
    "step_jacobians",
    "trajectory",
    "Diagnosis",
    "Prediction",
    "diagnose",
    "predict",
    "WeightSpectrum",
    "lyapunov_spectrum",
    "product_singular_values",
    "weight_spectrum",
    "TrainConfig",
    "TrainResult",
    "train",
    "verify",
]

r"""Verdicts: will the gradient vanish, stay critical or explode, how fast, and why.

:func:`predict` answers from the initialization alone (the params, no data);
:func:`diagnose` measures along a given input sequence. Both speak one vocabulary:

- ``"vanishing"``: :math:`\lambda_{max} < -\tau`,
- ``"critical"``: :math:`|\lambda_{max}| \le \tau`,
- ``"exploding"``: :math:`\lambda_{max} > \tau`,

where :math:`\lambda_{max}` is the top Lyapunov exponent of the dynamics (natural log per
step, the asymptotic growth rate of :math:`\|\partial L/\partial h_{T-k}\|` in k) and the
threshold is

.. math:: \tau = \frac{\ln F}{T} + 2\,\delta\lambda, \qquad F = 10 \text{ by default.}

Why: with :math:`|\lambda_{max}| \le \ln F / T` the gradient changes by less than a
factor F over the whole horizon T, which is what "critical" means for training at that
length (``factor=`` sets F); and a rate within two standard errors :math:`\delta\lambda`
of that edge has an unresolved regime, so the band widens by them. The time scale is
:math:`\xi = 1/|\lambda_{max}|` steps.

The verdict is about the network in hand: theory (mean field, the fixed point) explains
and extrapolates, and :func:`predict` reports it only where the network's own sampled
exponent agrees with it within that exponent's uncertainty; otherwise the measurement
decides and ``reasons`` names the assumption that broke.
"""

from ._diagnosis import CARRIER_MASS as CARRIER_MASS
from ._diagnosis import INVISIBLE_SHARE as INVISIBLE_SHARE
from ._diagnosis import diagnose as diagnose
from ._prediction import SAMPLE_STEPS as SAMPLE_STEPS
from ._prediction import SAMPLE_WARMUP as SAMPLE_WARMUP
from ._prediction import SAMPLES as SAMPLES
from ._prediction import TRANSIENT_POWERS as TRANSIENT_POWERS
from ._prediction import predict as predict
from ._prediction import sampled_exponent as sampled_exponent
from ._regime import CRITICAL_FACTOR as CRITICAL_FACTOR
from ._regime import Diagnosis as Diagnosis
from ._regime import Prediction as Prediction
from ._regime import classify as classify
from ._regime import regime_threshold as regime_threshold

__all__ = ["Prediction", "Diagnosis", "predict", "diagnose", "classify", "regime_threshold",
           "sampled_exponent"]

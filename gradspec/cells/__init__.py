r"""Recurrent cells: the ``Cell`` contract and the built-in cells.

A cell is data, not magic. ``cell.step(params, state, x) -> state`` is a pure function of a
flat state vector (an LSTM's state is ``concat(h, c)``), ``params`` is a plain dict of arrays,
and the cell object itself only holds static choices (the nonlinearity), so it is hashable
and passes through ``jax.jit`` as a static argument.

Every cell gets exact step Jacobians :math:`J_t = \partial h_t / \partial h_{t-1}` by
automatic differentiation (``jax.jacrev`` / ``jax.jvp`` / ``jax.vjp`` of ``step``). The
vanilla :class:`RNN` overrides them with the closed form
:math:`J_t = \mathrm{diag}(f'(a_t))\, W_{hh}`, which is O(N^2) per product instead of a
trace through the step. A user's own step function becomes a cell with :class:`StepCell`;
stacked layers (``torch.nn.LSTM(num_layers=L)``) become one cell with :class:`Stack`;
continuous-time rate networks are :class:`RateRNN`.

Modules: ``_base`` (the contract, :class:`StepCell`, the checks), ``vanilla``
(:class:`RNN`), ``rate`` (:class:`RateRNN`), ``gated`` (:class:`LSTM`, :class:`GRU`),
``stack`` (:class:`Stack`).
"""

from __future__ import annotations

from .._nonlinearities import NONLINEARITIES as NONLINEARITIES
from ._base import Cell as Cell
from ._base import Params as Params
from ._base import StepCell as StepCell
from ._base import _default_dtype as _default_dtype
from ._base import as_cell as as_cell
from ._base import check_params as check_params
from .gated import GRU as GRU
from .gated import LSTM as LSTM
from .rate import RateRNN as RateRNN
from .stack import Stack as Stack
from .vanilla import RNN as RNN

__all__ = ["Cell", "RNN", "RateRNN", "LSTM", "GRU", "StepCell", "Stack", "as_cell",
           "NONLINEARITIES"]

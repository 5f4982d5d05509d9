r"""Cells from other frameworks: PyTorch, Flax and Equinox in, gradspec cells out.

Each ``from_*`` function reads a trained (or freshly initialised) recurrent cell of
another framework and returns ``(cell, params)`` such that :func:`gradspec.trajectory`
reproduces that framework's own forward pass and :func:`gradspec.step_jacobians` its
exact step Jacobians. Every layout is converted to gradspec's own (the PyTorch layout
for the gated cells; ``W_hh``, ``W_xh``, ``b`` for the vanilla RNN), so everything
downstream (spectra, profiles, predictions) works unchanged.

Layouts and formulas, checked against each framework's source:

* **PyTorch** ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (and the ``*Cell`` modules) already use
  gradspec's gated layout: ``weight_ih`` (G N, D), ``weight_hh`` (G N, N), ``bias_ih``,
  ``bias_hh`` (G N,), gate order i, f, g, o (LSTM) and r, z, n (GRU). A vanilla RNN's
  two biases are summed into ``b`` (they only ever appear summed).
* **Flax linen** cells keep one ``Dense`` per gate, with kernels stored (in, out), i.e.
  transposed. ``LSTMCell``/``OptimizedLSTMCell``: input kernels ``ii, if, ig, io``
  without bias, hidden kernels ``hi, hf, hg, ho`` with bias, so ``bias_ih = 0`` and
  ``bias_hh`` holds the biases. ``GRUCell``: ``ir, iz, in`` with bias, ``hr, hz``
  without and ``hn`` with bias *inside* the reset product,
  :math:`n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))`,
  :math:`h' = (1 - z) \odot n + z \odot h`: PyTorch's formula exactly, with
  ``bias_hh = (0, 0, b_hn)``. ``SimpleCell``: ``i`` (with bias) and ``h`` (without);
  ``residual=True`` adds ``h`` to the pre-activation, i.e. ``W_hh = W_h + I``.
* **Flax nnx** ``LSTMCell`` (per-gate ``Linear`` as in linen, attribute ``if_``),
  ``OptimizedLSTMCell`` (one ``dense_i`` (D, 4N) without bias, one ``dense_h`` (N, 4N)
  with bias), ``SimpleCell`` (``dense_i`` with bias, ``dense_h`` without) and
  ``GRUCell``: ``dense_i`` (D, 3N) *with* bias and ``dense_h`` (N, 3N) *without*, so
  its :math:`n = \tanh(W_{in} x + b_{in} + r \odot W_{hn} h)` has no hidden n-bias: a
  PyTorch GRU with ``bias_hh = 0`` (unlike linen's GRU).
* **Equinox** ``LSTMCell``: PyTorch layout with a single ``bias`` (4N,) (``bias_ih``;
  ``bias_hh = 0``) and state ``(h, c)``. ``GRUCell``: ``bias`` (3N,) on the input side
  and ``bias_n`` (N,) inside the reset product; it writes the update as
  :math:`h' = n + z \odot (h - n)`, which equals PyTorch's :math:`(1 - z) n + z h`
  (equal in exact arithmetic; only the rounding differs). So ``bias_ih = bias``,
  ``bias_hh = (0, 0, bias_n)``.

Stacked layers: ``from_torch`` turns a module with ``num_layers > 1`` into one
:class:`gradspec.cells.Stack` (``layer=l`` still gives one layer), and ``from_flax`` /
``from_equinox`` take a list of cells (layer 0 first; neither framework has a stacked
cell of its own) and return a Stack; so does ``gradspec.cells.Stack`` of converted cells
with params ``{"layer0": p0, ...}``. A Stack's state lists the **last layer first**
(``(h1, c1, h0, c0)`` for two LSTM layers), so its leading entries are the network's
output. Bidirectional torch modules are refused: the backward direction runs in the other
time order, so there is no single forward recurrence. :func:`find_recurrent` finds the
RNN in a torch model (embedding -> RNN -> readout).

State conventions: gradspec's LSTM state is ``concat(h, c)``. PyTorch's and Equinox's
LSTM carry is ``(h, c)``; **Flax's is** ``(c, h)``: build ``h0 = concat(h, c)`` from a
Flax carry ``(c, h)``.

JAX transformations: past reading the framework's objects, every converter is ``jnp``
on static shapes (no numpy round trip, no branch on values), so ``from_flax``,
``from_equinox`` and ``from_torch`` of a state_dict of jax arrays run under
``jax.jit``, differentiate with ``jax.grad`` (a measured exponent's gradient reaches
the framework's own variables) and map with ``jax.vmap``: batched variables under
``vmap`` give batched params. Outside ``vmap`` a leading batch axis is refused with
that advice (one call converts one cell). Torch tensors are copied through numpy.

Dtype: the params come back as ``jnp`` arrays in ``dtype`` when given; by default in
float64 when the source weights are float64 *and* ``jax_enable_x64`` is on, else in
float32 (gradspec's default; half-precision sources are widened to float32). A Flax
cell that sets its computation ``dtype`` gets params in that dtype.

The frameworks are optional: each is imported inside the function that needs it, so
``import gradspec`` (and ``import gradspec.interop``) never imports torch, flax or
equinox.
"""

from ._common import Kind as Kind
from ._equinox import from_equinox
from ._flax import from_flax
from ._torch import Recurrent, find_recurrent, from_torch, to_torch

__all__ = ["Recurrent", "find_recurrent", "from_equinox", "from_flax", "from_torch",
           "to_torch"]

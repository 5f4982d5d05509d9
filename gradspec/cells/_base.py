r"""The ``Cell`` contract, a user's step function as a cell, and the checks every
measurement runs on ``(cell, params)``."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_floating

Params = Mapping[str, jax.Array]


class Cell:
    """Base class and contract of a recurrent cell.

    Subclasses implement ``step``, ``state_size``, ``hidden_size``, ``input_size``,
    ``init`` and ``param_shapes``. The Jacobian methods below are exact by autodiff and
    may be overridden by a closed form (see :class:`RNN`).
    """

    def step(self, params: Params, state: jax.Array, x: jax.Array) -> jax.Array:
        """One step ``h_t = F(params, h_{t-1}, x_t)``; ``state`` (S,), ``x`` (D,)."""
        raise self._missing("step(self, params, state, x) -> state")

    def state_size(self, hidden: int) -> int:
        """Length S of the flat state for ``hidden`` units."""
        return hidden

    def hidden_size(self, params: Params) -> int:
        """Number of hidden units N read off ``params``."""
        raise self._missing("hidden_size(self, params) -> int")

    def input_size(self, params: Params) -> int:
        """Input dimension D read off ``params``."""
        raise self._missing("input_size(self, params) -> int (or None: any D)")

    def param_shapes(self, hidden: int, inputs: int) -> dict[str, tuple[int, ...]]:
        """Expected shape of every parameter."""
        raise self._missing("param_shapes(self, hidden, inputs) -> dict of shapes")

    def init(self, key, hidden: int, inputs: int, *, recurrent_init=None, dtype=None):
        """A params dict for ``hidden`` units and ``inputs`` input channels."""
        raise self._missing("init(self, key, hidden, inputs, *, recurrent_init=None, "
                            "dtype=None) -> params")

    def _missing(self, signature: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} must implement `{signature}` (a gradspec Cell "
            "subclass defines step, hidden_size, input_size and param_shapes; or wrap a "
            "step function as gradspec.cells.StepCell(step_fn, size=S)).")

    def output_size(self, state_size: int) -> int:
        """How many leading state entries are the visible output h (rest: memory)."""
        return state_size

    # -- exact derivatives of ``step`` w.r.t. the state, by autodiff ------------------
    def jacobian(self, params, state, x) -> jax.Array:
        """J = d step / d state, shape (S, S), row i = d h_t[i] / d h_{t-1}."""
        return jax.jacrev(self.step, argnums=1)(params, state, x)

    def jvp(self, params, state, x, tangents) -> jax.Array:
        """J @ tangents for tangents of shape (S, k), without forming J."""
        push = lambda v: jax.jvp(lambda h: self.step(params, h, x), (state,), (v,))[1]
        return jax.vmap(push, in_axes=1, out_axes=1)(tangents)

    def vjp(self, params, state, x, cotangent) -> jax.Array:
        """cotangent @ J for a cotangent of shape (S,) (one reverse-mode step)."""
        _, pull = jax.vjp(lambda h: self.step(params, h, x), state)
        return pull(cotangent)[0]

    # -- one reverse step with what the forward pass already computed ---------------
    def step_and_residuals(self, params, state, x):
        """``(step(params, state, x), residuals)``: the residuals are whatever
        :meth:`vjp_from_residuals` needs, saved during the forward scan (by default the
        step's inputs, so the reverse step re-traces it)."""
        return self.step(params, state, x), (state, x)

    def vjp_from_residuals(self, params, residuals, cotangent) -> jax.Array:
        """cotangent @ J from the residuals of :meth:`step_and_residuals`."""
        state, x = residuals
        return self.vjp(params, state, x, cotangent)

    # -- input checks at the API boundary ------------------------------------------
    def check_params(self, params: Any) -> None:
        """Raise ``TypeError``/``ValueError`` naming the bad parameter."""
        if not isinstance(params, Mapping):
            raise TypeError(
                f"`params` of {type(self).__name__} must be a dict of arrays; "
                f"got {type(params).__name__}."
            )
        hidden, inputs = self.hidden_size(params), self.input_size(params)
        for name, shape in self.param_shapes(hidden, inputs).items():
            if name not in params:
                raise ValueError(
                    f"`params` of {type(self).__name__} is missing {name!r}; "
                    f"expected keys {sorted(self.param_shapes(hidden, inputs))}."
                )
            got = tuple(np.shape(params[name]))
            if got != shape:
                raise ValueError(
                    f"`params[{name!r}]` must have shape {shape} for N={hidden}, "
                    f"D={inputs}; got {got}."
                )


def _matrix_shape(params: Params, name: str, cell: str) -> tuple[int, int]:
    if not isinstance(params, Mapping) or name not in params:
        raise ValueError(f"`params` of {cell} must be a dict with key {name!r}.")
    shape = np.shape(params[name])
    if len(shape) != 2:
        raise ValueError(f"`params[{name!r}]` must be a matrix; got shape {shape}.")
    return shape


def _default_dtype(dtype):
    # float32 unless the user enabled x64 and asked for nothing else.
    return jnp.dtype(dtype) if dtype is not None else jnp.zeros(()).dtype



@dataclasses.dataclass(frozen=True)
class StepCell(Cell):
    """A user's own pure step function ``step_fn(params, state, x) -> state`` as a cell.

    Its Jacobians come from autodiff. ``size`` is the state length S; ``params`` may be
    any pytree (the shape checks of the built-in cells do not apply).

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.StepCell(lambda p, h, x: jnp.tanh(p["W"] @ h + x), size=3)
        >>> cell.step({"W": jnp.eye(3)}, jnp.zeros(3), jnp.ones(3)).shape
        (3,)
    """

    step_fn: Callable = None
    size: int = None

    def __post_init__(self):
        if not callable(self.step_fn):
            raise TypeError(f"`step_fn` must be callable; got {type(self.step_fn)}.")
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"`size` must be a positive int; got {self.size!r}.")

    def step(self, params, state, x):
        return self.step_fn(params, state, x)

    def hidden_size(self, params):
        return self.size

    def input_size(self, params):
        return None

    def check_params(self, params):
        pass


def as_cell(cell: Any) -> Cell:
    """Return ``cell`` if it is a :class:`Cell`; raise a clear error otherwise."""
    if isinstance(cell, Cell):
        return cell
    if callable(cell):
        raise TypeError(
            "`cell` must be a gradspec Cell; wrap a plain step function as "
            "`gradspec.cells.StepCell(step_fn, size=S)`."
        )
    raise TypeError("`cell` must be a gradspec Cell (RNN, LSTM, GRU, StepCell, Stack); "
                    f"got {cell!r}.")


# -- input checks shared by every function that takes (cell, params, xs, h0) -----------


def check_params(cell: Cell, params) -> jnp.dtype:
    """Validate ``params`` for ``cell``; return the dtype every computation follows."""
    cell.check_params(params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in flat:
        name = "params" + jax.tree_util.keystr(path)
        if type(leaf).__module__.split(".")[0] == "torch":  # no silent copies of a model
            raise TypeError(
                f"`{name}` is a torch.Tensor; convert the model with "
                "gradspec.interop.from_torch(module) (or pass .detach().numpy()).")
        check_floating(name, leaf)
        check_finite(name, leaf)
    dtype = jnp.result_type(*(leaf for _, leaf in flat)) if flat else jnp.zeros(()).dtype
    if any(np.asarray(leaf).dtype == np.float64 for _, leaf in flat if not isinstance(
            leaf, jax.core.Tracer)) and not jax.config.jax_enable_x64:
        warnings.warn("`params` hold float64 arrays but jax_enable_x64 is off: gradspec "
                      "computes in float32. Enable it (jax.config.update('jax_enable_x64', "
                      "True)) for float64 results.", stacklevel=3)
    return dtype

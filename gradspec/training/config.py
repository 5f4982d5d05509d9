r"""The training configuration: :class:`TrainConfig`, validated on construction.

Re-exported by :mod:`gradspec.training` (import it from there); :mod:`.loop` keeps
the run itself: model, compiled step, results.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import optax

from .. import cells as _cells
from .._checks import check_choice, check_int
from . import flossing as _flossing
from . import tasks as _tasks
from .flossing import FlossConfig


#: Cell names and their classes.
CELLS = {"rnn": _cells.RNN, "lstm": _cells.LSTM, "gru": _cells.GRU}
#: Recurrent initializers by name; "default" is the cell's own (gaussian(1) for the RNN,
#: PyTorch's uniform for LSTM/GRU); "critical" is ``gradspec.init.critical``.
INITS = ("default", "gaussian", "orthogonal", "identity", "glorot", "critical")
#: optax optimizers accepted by name (each takes ``learning_rate`` first).
OPTIMIZERS = (
    "adam",
    "adamw",
    "amsgrad",
    "adamax",
    "nadam",
    "radam",
    "adabelief",
    "adagrad",
    "adadelta",
    "adafactor",
    "lamb",
    "lion",
    "novograd",
    "rmsprop",
    "sgd",
    "sign_sgd",
    "yogi",
)

_MAX_SEED = 2**32 - 1


def _normalise_options(name: str, options) -> tuple:
    """A dict (or pairs) of keyword options as a sorted, hashable tuple of pairs."""
    if options is None:
        return ()
    try:
        items = dict(options).items()
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be a dict of keyword options; got {type(options).__name__}."
        ) from None
    for key, value in items:
        if not isinstance(key, str):
            raise TypeError(f"`{name}` keys must be str; got {key!r}.")
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"`{name}[{key!r}]` must be hashable (a number, str, bool or None); "
                f"got {type(value).__name__}."
            ) from None
    return tuple(sorted(items))


def _normalise_gates(gates) -> tuple:
    """``{gate: {name: value}}`` (or its normalised form) as a sorted, hashable tuple."""
    try:
        items = dict(gates or ()).items()
    except (TypeError, ValueError):
        raise TypeError(f"`gates` must be a dict by gate name; got {type(gates).__name__}.") from None
    return tuple(sorted((g, _normalise_options(f"gates[{g!r}]", v)) for g, v in items))


def _check_number(name: str, value, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"`{name}` must be a number; got {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"`{name}` must be finite and {bound}; got {value}.")
    return value


def _check_ints(name: str, values, low: int, high: int) -> tuple[int, ...]:
    """A non-empty sequence of ints in [low, high], each checked by ``check_int``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"`{name}` must be a sequence of ints; got {values!r}.")
    if not values:
        raise ValueError(
            f"`{name}` must hold at least one value; got an empty sequence."
        )
    return tuple(check_int(f"{name}[{i}]", v, low, high) for i, v in enumerate(values))


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    r"""Everything that defines a training run; validated on construction.

    Hashable (it is a static argument of the compiled step) and plain data
    (:meth:`to_dict` / :meth:`from_dict`).

    Attributes:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``, or any :class:`gradspec.cells.Cell`
            instance: a built-in cell, a :class:`~gradspec.cells.Stack`, a
            :class:`~gradspec.cells.StepCell` or a converted Flax/Equinox/torch model
            (``from_flax(...)[0]``). A cell without ``init`` (a StepCell) trains from
            the params given to :func:`gradspec.train` (``params=``); ``hidden`` must
            then be its ``hidden_size``. :meth:`to_dict` records an instance by its
            ``repr`` (it cannot be rebuilt from the dict).
        nonlinearity: the RNN's f: ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"linear"``.
            LSTM/GRU have fixed gates and require the default ``"tanh"``; for a cell
            instance it is read off the cell (an RNN's own; ``"tanh"`` otherwise).
        hidden: hidden units N >= 1.
        init: recurrent initializer, one of :data:`INITS`; for gated cells it draws each
            gate's (N, N) block of ``weight_hh``.
        gain: the initializer's gain g (``gaussian``: :math:`\mathcal N(0, g^2/N)`,
            ``orthogonal``/``identity``: g times the matrix, ``glorot``: g times the
            Glorot bound). ``default`` and ``critical`` choose their own scale and
            require ``gain=1.0``; ``critical`` is ``gradspec.init.critical(nonlinearity,
            sigma_b=0, sigma_x=...)`` with the task's input-drive std as ``sigma_x``
            (vanilla RNN; 0 for gated cells).
        gates: per-gate Gaussian init of a gated cell, ``{gate: {"sigma", "mu", "rho",
            "nu"}}`` as :meth:`gradspec.cells.LSTM.init` takes it (e.g. the output of
            :func:`gradspec.theory.gated_critical`); empty: the cell's default init.
        forget_bias: added to an LSTM's forget-gate bias after the init (Gers et al.
            2000; Jozefowicz et al. 2015: 1.0 is the usual remedy; the knob
            :func:`gradspec.make_critical` searches).
        task: ``"adding"`` or ``"copy"`` (see :mod:`gradspec.tasks`).
        T: the task's T (adding: sequence length; copy: delay, length T + 2m).
        task_options: keyword options of the task, e.g.
            ``{"alphabet": 8, "length": 10}``.
        batch: sequences per step B >= 1 (a fresh batch every step).
        steps: optimizer steps >= 1.
        optimizer: optax optimizer name, one of :data:`OPTIMIZERS`.
        learning_rate: > 0.
        optimizer_options: extra keyword options, e.g. ``{"momentum": 0.9}`` for sgd.
        clip_norm: ``None`` (no clipping) or the max global gradient norm > 0
            (``optax.clip_by_global_norm`` before the optimizer).
        tbptt: truncated BPTT window w >= 0; 0 is full BPTT. The state passes through
            ``stop_gradient`` at every step t with :math:`(L - t) \bmod w = 0` (windows
            aligned to the sequence end), so a loss at the last step backpropagates
            through exactly w steps: :math:`\partial L/\partial h_{L-k} = 0` for k >= w.
        seed: PRNG seed in [0, 2**32) of the params and the data stream.
        lags: lags k in [0, L] at which the gradient norm w.r.t. :math:`h_{L-k}` is
            recorded (L = sequence length); ``None`` picks (0, 1, L//4, L//2, L).
        record_every: record the transported gradient
            (:attr:`TrainResult.log_transported`) at steps 0, n, 2n, ... only
            (it costs one extra reverse pass over max(lags) steps where it runs).
        dtype: ``"float32"``, ``"float64"`` or ``None`` (float32, or float64 under x64).
        solved_below: ``solved`` means final loss < ``solved_below`` x baseline.
        flossing: ``None`` or a :class:`~gradspec.training.FlossConfig` (or its dict):
            gradient flossing before and during training (Engelken 2023).
        lyapunov_every: 0 (off) or n >= 1: record the top ``lyapunov_k`` Lyapunov
            exponents of the network at steps 0, n, 2n, ... (after that step's
            flossing phase, before its update) on the fixed drive
            :func:`~gradspec.training.lyapunov_drive` (:attr:`TrainResult.lyapunov`).
        lyapunov_k: exponents recorded, 1 <= k <= state size.

    Examples:
        >>> from gradspec.training import TrainConfig
        >>> TrainConfig(task="adding", T=20, hidden=16).lags
        (0, 1, 5, 10, 20)
    """

    cell: Any = "rnn"
    nonlinearity: str = "tanh"
    hidden: int = 64
    init: str = "orthogonal"
    gain: float = 1.0
    gates: Any = ()
    forget_bias: float = 0.0
    task: str = "adding"
    T: int = 50
    task_options: Any = ()
    batch: int = 32
    steps: int = 1000
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    optimizer_options: Any = ()
    clip_norm: float | None = None
    tbptt: int = 0
    seed: int = 0
    lags: Sequence[int] | None = None
    record_every: int = 10
    dtype: str | None = None
    solved_below: float = 0.1
    flossing: FlossConfig | None = None
    lyapunov_every: int = 0
    lyapunov_k: int = 1

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        if isinstance(self.cell, _cells.Cell):
            if self.nonlinearity != "tanh":
                raise ValueError(
                    "`nonlinearity` is the cell's own for a Cell instance; leave it at "
                    f"its default; got nonlinearity={self.nonlinearity!r}.")
            set_("nonlinearity", getattr(self.cell, "nonlinearity", "tanh"))
        elif isinstance(self.cell, str):
            check_choice("cell", self.cell, CELLS)
        else:
            raise TypeError("`cell` must be 'rnn', 'lstm', 'gru' or a gradspec.cells.Cell "
                            f"instance; got {type(self.cell).__name__}.")
        check_choice("nonlinearity", self.nonlinearity, sorted(_cells.NONLINEARITIES))
        if self.cell in ("lstm", "gru") and self.nonlinearity != "tanh":
            raise ValueError(
                "`nonlinearity` applies to cell='rnn' only (LSTM/GRU gates are "
                f"fixed); got nonlinearity={self.nonlinearity!r} with "
                f"cell={self.cell!r}."
            )
        set_("hidden", check_int("hidden", self.hidden, 1))
        check_choice("init", self.init, INITS)
        set_("gain", _check_number("gain", self.gain, positive=False))
        if self.init in ("default", "critical") and self.gain != 1.0:
            raise ValueError(
                f"`gain` must stay 1.0 with init={self.init!r} (it picks its own "
                f"scale); got {self.gain}."
            )
        set_("gates", _normalise_gates(self.gates))
        if self.gates and not isinstance(self.make_cell(), (_cells.LSTM, _cells.GRU)):
            raise ValueError(f"`gates` applies to LSTM and GRU cells; got cell={self.cell!r}.")
        if any("sigma" in dict(v) for _, v in self.gates) and self.init != "default":
            raise ValueError("`gates` with a 'sigma' draws weight_hh itself: it needs "
                             f"init='default'; got init={self.init!r}.")
        set_("forget_bias", float(self.forget_bias))
        if not math.isfinite(self.forget_bias) or (
                self.forget_bias and not isinstance(self.make_cell(), _cells.LSTM)):
            raise ValueError("`forget_bias` must be finite, and nonzero only for an LSTM; "
                             f"got {self.forget_bias} with cell={self.cell!r}.")
        set_("task_options", _normalise_options("task_options", self.task_options))
        spec = _tasks.describe(self.task, self.T, **dict(self.task_options))
        set_("T", int(self.T))
        set_("batch", check_int("batch", self.batch, 1))
        set_("steps", check_int("steps", self.steps, 1))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        set_(
            "learning_rate",
            _check_number("learning_rate", self.learning_rate, positive=True),
        )
        set_(
            "optimizer_options",
            _normalise_options("optimizer_options", self.optimizer_options),
        )
        if self.clip_norm is not None:
            set_("clip_norm", _check_number("clip_norm", self.clip_norm, positive=True))
        self._check_lyapunov(set_)  # before the optimizer, which may floss
        try:  # catches unknown optimizer options now, not at trace time
            _make_optimizer(self)
        except TypeError as e:
            raise ValueError(
                f"`optimizer_options` {dict(self.optimizer_options)} do not fit "
                f"optax.{self.optimizer}: {e}"
            ) from None
        set_("tbptt", check_int("tbptt", self.tbptt, 0))
        set_("seed", check_int("seed", self.seed, 0, _MAX_SEED))
        set_("record_every", check_int("record_every", self.record_every, 1))
        L = spec.length
        if self.lags is None:
            set_("lags", tuple(sorted({0, 1, L // 4, L // 2, L})))
        else:
            set_("lags", tuple(sorted(set(_check_ints("lags", self.lags, 0, L)))))
        if self.dtype is not None:
            dtype = (
                np.dtype(self.dtype).name
                if not isinstance(self.dtype, str)
                else self.dtype
            )
            check_choice("dtype", dtype, ("float32", "float64"))
            set_("dtype", dtype)
        solved_below = _check_number("solved_below", self.solved_below, positive=True)
        if solved_below > 1:
            raise ValueError(f"`solved_below` must be in (0, 1]; got {solved_below}.")
        set_("solved_below", solved_below)

    def _check_lyapunov(self, set_):
        """The flossing and Lyapunov-record fields (k up to the state size S)."""
        size = self.make_cell().state_size(self.hidden)
        if isinstance(self.flossing, Mapping):
            set_("flossing", FlossConfig(**self.flossing))
        elif self.flossing is not None and not isinstance(self.flossing, FlossConfig):
            raise TypeError("`flossing` must be None, a FlossConfig or its dict; got "
                            f"{type(self.flossing).__name__}.")
        if self.flossing is not None and self.flossing.k > size:
            raise ValueError(f"`flossing.k` must be <= the state size {size}; got "
                             f"{self.flossing.k}.")
        set_("lyapunov_every", check_int("lyapunov_every", self.lyapunov_every, 0))
        set_("lyapunov_k", check_int("lyapunov_k", self.lyapunov_k, 1, size))

    @property
    def spec(self) -> _tasks.TaskSpec:
        """Sizes and baseline of the task (:func:`gradspec.tasks.describe`)."""
        return _tasks.describe(self.task, self.T, **dict(self.task_options))

    def make_cell(self) -> _cells.Cell:
        """The :class:`gradspec.cells.Cell` this config trains."""
        if isinstance(self.cell, _cells.Cell):
            return self.cell
        if self.cell == "rnn":
            return _cells.RNN(self.nonlinearity)
        return CELLS[self.cell]()

    def to_dict(self) -> dict:
        """Plain JSON-able dict; ``TrainConfig.from_dict(c.to_dict()) == c``."""
        d = dataclasses.asdict(self)
        d["cell"] = self.cell if isinstance(self.cell, str) else repr(self.cell)
        d["gates"] = {g: dict(v) for g, v in self.gates}
        d["task_options"] = dict(self.task_options)
        d["optimizer_options"] = dict(self.optimizer_options)
        d["lags"] = list(self.lags)
        if self.flossing is not None:
            d["flossing"]["during"] = list(self.flossing.during)
        return d

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"`data` has unknown TrainConfig fields {unknown}.")
        return cls(**data)



def _make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    opt = getattr(optax, config.optimizer)(
        config.learning_rate, **dict(config.optimizer_options)
    )
    if config.clip_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(config.clip_norm), opt)
    flossed = _flossing.during_training(config)  # first: the clip sees task + flossing
    return opt if flossed is None else optax.chain(flossed, opt)

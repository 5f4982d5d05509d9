r"""Sweeps: a measurement over a grid of configs, vmapped, sharded and resumable.

:func:`sweep` evaluates a *measurement* (a pure JAX function of one grid point, see
:class:`Measurement` and :func:`register`) at every point of the Cartesian product of
the grid's axes:

- **Batched.** Points that share their static options (hence their array shapes) form
  a group; a group runs in chunks, each chunk one call of
  ``jit(shard_map(vmap(point_fn)))`` over a 1-D mesh of the local devices (axis
  ``"points"``): every device evaluates its slice of the chunk with ``vmap``, with no
  communication; on a CPU, whose matrix-vector batches are slow past ~64 x 64, in
  ``lax.map``-ed batches of a width set from the point's matrix sizes
  (:mod:`gradspec.sweep.batching`, ``batch_size=``). The only Python loops are over
  groups and chunks.
- **Random.** Each point's PRNG key is derived inside the traced function from its
  seed (the ``seed`` input, 0 if the measurement has none) and its hash:
  ``key = jax.random.fold_in(jax.random.key(seed), int(point_hash[:8], 16))``.
  A result depends only on the point, not on the chunking or the device count, up
  to float rounding: XLA may vectorise a per-device batch of 8 differently from one of
  1 (float32 results then differ by about 1e-7 relative).
- **Resumable.** With ``store=path`` every finished point is appended to a crash-safe
  store (:mod:`gradspec.sweep.store`): JSON lines with the config, its sha256 hash, the
  scalar results and the gradspec/jax versions and devices, big arrays in
  ``arrays/<hash>.npz``. A rerun with ``resume=True`` (``gradspec sweep --resume``)
  reuses the points already there and computes the rest; without it a store that
  holds results is refused, never continued silently. A ``SIGKILL`` loses at most the
  chunk in flight. The store's manifest records the measurement's version and the
  sha256 of its source (:attr:`Measurement.source`): a measurement edited without a
  version bump is refused instead of reusing results of the old code.
- **Multi-host.** After ``jax.distributed.initialize(...)`` every process runs the same
  :func:`sweep` call, and the processes run it as one *job*
  (:mod:`gradspec.sweep.cluster`, :mod:`gradspec.sweep.job`):

  1. *Start together.* Each process announces the job's fingerprint (measurement,
     version, source, dtype, options, grid, process count, store path) through JAX's
     coordination service and waits for all the others (``start_timeout``, 600 s): any
     difference, a process count one process was told differently, or a process
     that could not plan its sweep stops every process with one message naming the
     field and the processes, and nothing is written. Then process 0 alone takes the
     store's lock (one job per store, :mod:`gradspec.sweep.lock`), writes the
     manifest atomically with the job's fingerprint, and reads what is done.
  2. *Share.* The points still to do, in grid order, are dealt out round-robin: on a
     fresh store process i takes ``i, i + P, i + 2P, ...``; on a resume the points a
     dead process left are spread over all processes, each share within one point
     of the others. Each process evaluates its share on its own local devices and
     appends to its own shard ``records-p{i}.jsonl`` of the shared store (a shared
     file system); every record carries the job's hash.
  3. *Fail together.* A process whose sweep raises records why (``failed-p{i}.json``
     in the store) and tells the others, which stop after their chunk in flight with
     :class:`SweepAborted` (which process failed, its error, how many points are
     saved, how to resume). A process killed on the same host is noticed by its pid.
  4. *End together.* A process that finished its share waits for the others
     (``finish_timeout``, a day): a slow host never makes a fast one fail, and every
     process returns the whole grid.

  No device collective is used, so gloo prints nothing and no collective deadline
  applies. On CPU this works in jax 0.10 (tested with two processes on one
  machine)::

      import jax, gradspec.sweep as gs
      jax.distributed.initialize()  # or coordinator_address=, num_processes=, process_id=
      gs.sweep("lyapunov", grid, options={"N": 256}, store="/shared/runs/lyapunov",
               resume=True)  # resume=True: a rerun after a failure continues

  or ``gradspec sweep config.toml --distributed`` (cluster auto-detection) /
  ``--coordinator HOST:PORT --num-processes P --process-id I``. Without a shared file
  system give every host the same store path on its local disk and copy the
  ``records-p*.jsonl`` shards and ``arrays/`` into one directory afterwards (their
  names do not collide). Without ``jax.distributed``, ``process_index=`` /
  ``process_count=`` split a grid over independent jobs by the fixed ``i mod P``
  rule (no agreement, no waiting; the pieces of one split may share a store).

Configs come from TOML files (:func:`read_config`, ``gradspec sweep FILE``).
Results load back as plain data: :func:`load` gives a list of dicts, :func:`table` a
dict of NumPy columns, :func:`to_grid` an array on the grid for phase diagrams.

Built-in measurements: ``"mean_field"`` (:func:`gradspec.theory.mean_field`, vmapped
over ``sigma_w``, ``sigma_b``, ``sigma_x``), ``"lyapunov"`` and ``"gradient_profile"``
(a random vanilla RNN per point, :func:`random_rnn`; ``sigma_w``, ``sigma_b`` and
``seed`` traced, ``sigma_x`` static so that the default 0 skips the input product),
``"gated_mean_field"`` and ``"gated_lyapunov"`` (:mod:`gradspec.sweep.gated_measurements`:
LSTM/GRU theory or a random gated network per point, per-gate hyperparameters as axes
``sigma``, ``mu``, ``rho``, ``nu`` for every gate and ``mu_f``, ``sigma_n``, ... for one),
and ``"train"``
(:func:`gradspec.train`, one Python-level call per point: it already vmaps over
its ``seeds``, and its configs differ in static fields).
"""

from . import store as store
from .config import SweepSpec as SweepSpec
from .config import read_config as read_config
from .measurements import Measurement as Measurement
from .measurements import get_measurement as get_measurement
from .measurements import measurements as measurements
from .measurements import random_rnn as random_rnn
from .measurements import register as register
from .cluster import SweepAborted as SweepAborted
from .grid import axis_values as axis_values
from .grid import point_key as point_key
from .runner import SweepResult as SweepResult
from .runner import load as load
from .runner import repair as repair
from .runner import sweep as sweep
from .store import StoreWarning as StoreWarning
from .tables import GridTable as GridTable
from .tables import table as table
from .tables import to_grid as to_grid

__all__ = [
    "Measurement",
    "register",
    "get_measurement",
    "measurements",
    "random_rnn",
    "axis_values",
    "point_key",
    "SweepResult",
    "SweepAborted",
    "sweep",
    "load",
    "table",
    "GridTable",
    "to_grid",
    "repair",
    "StoreWarning",
    "SweepSpec",
    "read_config",
]

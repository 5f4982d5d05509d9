"""Sweep configurations from TOML files: :func:`read_config` -> :class:`SweepSpec` s.

See ``examples/phase_diagram.toml``; ``gradspec sweep FILE`` runs them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import NamedTuple

from .measurements import measurements

__all__ = ["SweepSpec", "read_config"]


class SweepSpec(NamedTuple):
    """One sweep of a TOML config, ready for ``sweep(**spec._asdict())`` minus name."""

    name: str  # the [sweeps.NAME] table, or "sweep" for a single-sweep file
    measurement: str
    grid: dict
    options: dict
    store: str
    chunk_size: int | None  # None: the measurement's default


_TOP_KEYS = {"store", "chunk_size", "measurement", "grid", "options", "sweeps"}
_SWEEP_KEYS = {"measurement", "grid", "options", "chunk_size"}


def read_config(path: str | Path, *, store: str | None = None,
                chunk_size: int | None = None) -> list[SweepSpec]:
    """Read a sweep TOML file (see ``examples/phase_diagram.toml``).

    Single sweep: top-level ``measurement``, ``[grid]``, ``[options]``, ``store``,
    ``chunk_size``. Several: a top-level ``store`` (a directory; sweep NAME writes to
    ``store/NAME``), an optional default ``chunk_size``, and one ``[sweeps.NAME]``
    table each with ``measurement``, ``grid``, ``options``, ``chunk_size``. Paths are
    relative to the working directory. ``store``/``chunk_size`` override the file's.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"sweep config {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"sweep config {str(path)!r} is not valid TOML: {err}") from None
    where = f"sweep config {str(path)!r}"
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected {sorted(_TOP_KEYS)}.")
    root = store if store is not None else data.get("store")
    if not isinstance(root, str) or not root:
        raise ValueError(f"{where}: `store` (a directory path) is required.")
    default_chunk = chunk_size or data.get("chunk_size")  # None: the measurement's
    if "sweeps" in data:
        stray = sorted(set(data) & {"measurement", "grid", "options"})
        if stray:
            raise ValueError(f"{where}: {stray} belong inside the [sweeps.NAME] tables "
                             "when `sweeps` is used.")
        tables = data["sweeps"]
        if not isinstance(tables, dict) or not tables:
            raise ValueError(f"{where}: `sweeps` must hold at least one [sweeps.NAME] table.")
        items = [(name, t, str(Path(root) / name)) for name, t in tables.items()]
    else:
        items = [("sweep", {k: v for k, v in data.items() if k in _SWEEP_KEYS}, root)]
    specs = []
    for name, t, store_path in items:
        if not isinstance(t, dict):
            raise ValueError(f"{where}: [sweeps.{name}] must be a table.")
        unknown = sorted(set(t) - _SWEEP_KEYS)
        if unknown:
            raise ValueError(f"{where}: [sweeps.{name}] has unknown keys {unknown}; "
                             f"expected {sorted(_SWEEP_KEYS)}.")
        if not isinstance(t.get("measurement"), str):
            raise ValueError(f"{where}: sweep {name!r} needs `measurement` (one of "
                             f"{sorted(measurements())}).")
        if not isinstance(t.get("grid"), dict) or not t["grid"]:
            raise ValueError(f"{where}: sweep {name!r} needs a non-empty [grid] table.")
        chunk = chunk_size or t.get("chunk_size", default_chunk)
        specs.append(SweepSpec(name, t["measurement"], dict(t["grid"]),
                               dict(t.get("options", {})), store_path, chunk))
    return specs

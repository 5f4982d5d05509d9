"""Sweep records as columns and as arrays on a grid (NumPy only, no pandas)."""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .._json import canonical_json

__all__ = ["table", "GridTable", "to_grid"]


def _column(record: Mapping, name: str):
    if name in record["results"]:
        return record["results"][name]
    if name in record["config"]:
        return record["config"][name]
    if name in ("hash", "measurement"):
        return record[name]
    raise KeyError(name)


def table(records: Sequence[Mapping], columns: Sequence[str] | None = None) -> dict:
    """Columns of records as NumPy arrays (a results field, else a config field).

    Args:
        records: from :func:`load` or ``SweepResult.records``.
        columns: names to extract; default every config and result field.

    Returns:
        ``{name: array}``, arrays of length ``len(records)`` (stacked for array results).

    Raises:
        ValueError: a column missing from some record, or arrays of unequal shapes.

    Examples:
        >>> import gradspec.sweep as gs
        >>> recs = gs.sweep("mean_field", {"sigma_w": [0.5, 2.0]}).records
        >>> t = gs.table(recs, ["sigma_w", "chi"])
        >>> t["sigma_w"].tolist(), t["chi"].round(3).tolist()
        ([0.5, 2.0], [0.25, 1.363])
    """
    records = list(records)
    if columns is None:
        seen = {}
        for r in records:
            seen.update(dict.fromkeys(r["config"]))
            seen.update(dict.fromkeys(r["results"]))
        columns = list(seen)
    out = {}
    for name in columns:
        try:
            values = [_column(r, name) for r in records]
        except KeyError:
            raise ValueError(f"column {name!r} is missing from some records; the fields "
                             "are the config and results keys.") from None
        try:
            out[name] = np.asarray(values)
        except ValueError as err:
            raise ValueError(f"column {name!r} has values of unequal shapes: {err}") from None
    return out


class GridTable(NamedTuple):
    """One result laid out on the grid of some config axes."""

    axes: tuple  # the axis names, in order
    coords: tuple  # per axis: the sorted distinct values, (n_i,)
    values: np.ndarray  # (n_0, n_1, ..., *result shape); NaN where no record


def _check_one_configuration(records: Sequence[Mapping], axes: tuple) -> None:
    """``ValueError`` if the records mix measurements, versions, dtypes or any config
    field outside ``axes``: one grid never silently merges two configurations (say
    N = 256 and N = 128 points that happen to fill different cells)."""
    mixed = []
    for key in ("measurement", "version", "dtype"):
        values = {canonical_json(r.get(key)) for r in records}
        if len(values) > 1:
            mixed.append(f"{key} ({', '.join(sorted(values))})")
    fields = dict.fromkeys(k for r in records for k in r["config"] if k not in axes)
    for key in fields:
        values = {canonical_json(r["config"].get(key)) for r in records}
        if len(values) > 1:
            shown = ", ".join(sorted(values)[:4]) + (", ..." if len(values) > 4 else "")
            mixed.append(f"{key} ({shown})")
    if mixed:
        raise ValueError(f"the records mix configurations: {'; '.join(mixed)} differ "
                         f"outside the grid axes {axes}; select the records of one "
                         "configuration first (or add the field to `axes`).")


def to_grid(records: Sequence[Mapping], value: str,
            axes: Sequence[str] = ("sigma_w", "sigma_b")) -> GridTable:
    """Put the result ``value`` on the grid spanned by ``axes`` (e.g. a phase diagram).

    Args:
        records: from :func:`load` or ``SweepResult.records``.
        value: a result (or config) field.
        axes: config fields that span the grid; every other config field (and the
            measurement, version and dtype) must be the same in all records: filter
            them first otherwise.

    Returns:
        A :class:`GridTable`; ``values[i, j]`` belongs to ``coords[0][i], coords[1][j]``.

    Raises:
        ValueError: records of different configurations (a field outside ``axes``
            varies), or two records at the same grid cell.

    Examples:
        >>> import gradspec.sweep as gs
        >>> recs = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0], "sigma_b": [0.0, 0.1]}).records
        >>> g = gs.to_grid(recs, "chi")
        >>> g.values.shape, g.coords[0].tolist()
        ((2, 2), [0.5, 1.0])
    """
    axes = tuple(axes)
    records = list(records)
    _check_one_configuration(records, axes)
    cols = table(records, axes)
    coords = tuple(np.unique(cols[a]) for a in axes)
    vals = table(records, [value])[value].astype(float)
    grid = np.full(tuple(len(c) for c in coords) + vals.shape[1:], np.nan)
    index = tuple(np.searchsorted(c, cols[a]) for a, c in zip(axes, coords))
    flat = np.ravel_multi_index(index, grid.shape[: len(axes)]) if records else np.array([])
    if len(set(flat.tolist())) != len(records):
        varying = sorted({k for r in records for k in r["config"]
                          if k not in axes and len({canonical_json(q["config"].get(k))
                                                    for q in records}) > 1})
        raise ValueError(f"several records fall on one cell of the {axes} grid; the "
                         f"fields {varying} vary too: select one value of each first.")
    grid[index] = vals
    return GridTable(axes, coords, grid)

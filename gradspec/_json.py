"""Plain-data JSON: canonical text, non-finite floats as strings, exact dtype round trips.

Shared by the sweep store (records, hashes) and training results (``to_dict``), so both
write NaN and inf the same way and read back exactly what they wrote.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free, ASCII JSON: the same text for the same data."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def nonfinite_to_str(x):
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # "nan", "inf", "-inf"; the field's dtype says it is a float
    if isinstance(x, list):
        return [nonfinite_to_str(v) for v in x]
    return x


def _str_to_float(x):
    if isinstance(x, str):
        return float(x)
    if isinstance(x, list):
        return [_str_to_float(v) for v in x]
    return x


def decode_value(value, dtype: str):
    """Inverse of the inline encoding: Python scalars for scalars, NumPy arrays else."""
    if dtype == "str":
        return value if isinstance(value, str) else np.asarray(value)
    a = np.asarray(_str_to_float(value), dtype=np.dtype(dtype))
    return a.item() if a.ndim == 0 else a

"""The docstrings' examples run and print what they say.

In a fresh interpreter with JAX's defaults (float32, standard promotion), as a reader
would run them: this suite's conftest turns on float64 and strict promotion, which would
change the printed numbers.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docstring_examples():
    pytest.importorskip("matplotlib")  # plots/figures examples import it
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules",
         "gradspec", "-o", "addopts=", "--rootdir", str(ROOT)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout

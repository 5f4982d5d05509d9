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
#: Not importable as files: the old module paths that alias moved modules (they replace
#: themselves in sys.modules, which pytest's file collection refuses), and `python -m`.
NOT_COLLECTED = ("gradspec/tasks.py", "gradspec/style.py", "gradspec/figures.py",
                 "gradspec/__main__.py")


def test_docstring_examples():
    pytest.importorskip("matplotlib")  # plots/figures examples import it
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules",
         "gradspec", "-o", "addopts=", "--rootdir", str(ROOT),
         *(f"--ignore={path}" for path in NOT_COLLECTED)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout

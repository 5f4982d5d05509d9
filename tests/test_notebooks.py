"""Every notebook (jupytext percent format) runs top to bottom at its small size.

The notebooks are plain .py files executed with ``runpy`` in fresh subprocesses, with
``GRADSPEC_NOTEBOOK_SMALL=1`` (small N and T) and ``MPLBACKEND=Agg``. At that size their
time is almost all XLA compilation (about 50 s of CPU for the four, cold), so they run
concurrently and share JAX's persistent compilation cache, kept in pytest's cache
directory (``.pytest_cache/d/jax-compilation-cache``): a rerun takes about a third of
the time.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
NAMES = [p.name for p in NOTEBOOKS]
#: Seconds one notebook may take at the small size (the four together: < 60 s).
TIMEOUT = 240


def test_the_notebooks_exist():
    assert NAMES == [
        "01_quickstart.py",
        "02_vanishing_vs_exploding.py",
        "03_phase_diagram.py",
        "04_training_check.py",
        "05_gated_cells.py",
        "06_flossing.py",
        "07_dynamics.py",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_format(path):
    text = path.read_text()
    assert text.startswith("# ---\n# jupyter:\n#   jupytext:")
    assert "format_name: percent" in text
    assert text.count("\n# %%") >= 4
    assert 'SMALL = os.environ.get("GRADSPEC_NOTEBOOK_SMALL") == "1"' in text


@pytest.fixture(scope="module")
def executed(request, tmp_path_factory):
    """Start all notebooks at once; return {name: (returncode, output, seconds)}."""
    cache = getattr(request.config, "cache", None)
    cache_dir = (
        cache.mkdir("jax-compilation-cache")
        if cache is not None
        else tmp_path_factory.mktemp("jax-compilation-cache")
    )
    env = dict(
        os.environ,
        GRADSPEC_NOTEBOOK_SMALL="1",
        MPLBACKEND="Agg",
        JAX_COMPILATION_CACHE_DIR=str(cache_dir),
        # Cache every compiled function: the notebooks' are many and small.
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
    env.pop("JAX_ENABLE_X64", None)  # the notebooks' own defaults (float32)
    procs = {}
    for path in NOTEBOOKS:
        cwd = tmp_path_factory.mktemp(
            path.stem
        )  # anything a notebook writes lands here
        code = f"import runpy; runpy.run_path({str(path)!r}, run_name='__main__')"
        procs[path.name] = (
            time.perf_counter(),
            subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=cwd,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            ),
        )
    results = {}
    for name, (start, proc) in procs.items():
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            out += f"\n[timed out after {TIMEOUT} s]"
        results[name] = (proc.returncode, out, time.perf_counter() - start)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(executed, name):
    returncode, output, seconds = executed[name]
    assert returncode == 0, f"{name} failed after {seconds:.1f}s:\n{output[-4000:]}"

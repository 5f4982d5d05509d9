#!/usr/bin/env bash
# One accelerator session in one call (~8 minutes on an H100): the GPU tests, the
# precision check and the --quick benchmarks, each under its own time limit so a slow
# step cannot starve the next. Results land in $OUT (default ./device-results); the
# benchmark JSON is rewritten after every case, so a step cut off by its limit keeps
# what it measured.
#
#   PYTHONPATH=. bash benchmarks/device_check.sh        # from the repository root
#
# The spectra grid (N = 64/256, T up to 1000) is left out: on a GPU every step waits on
# a cuSOLVER QR (0.1-2 ms whatever N), and on an H100 that grid alone outran 200 s. Its
# target studies (top-k scaling, N = 512/1024/4096) run. For the grid:
#   python3 -m benchmarks.run --quick --device gpu --only spectra --out spectra.json
#
# Needs only a Python with jax (with its accelerator plugin), optax, pytest and tqdm;
# torch and matplotlib are used when present. gradspec runs from the checkout.
set -u
export PYTHONPATH=${PYTHONPATH:-.} PYTHONUNBUFFERED=1
OUT=${OUT:-device-results}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
{ nvidia-smi -L 2>/dev/null; "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"; } \
  2>&1 | tee "$OUT/device.txt"
timeout 100 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/tests_gpu.log" | tail -4
timeout 60 "$PY" -m benchmarks.precision --device gpu --out "$OUT/precision.json" 2>&1 | tee "$OUT/precision.log"
timeout 320 "$PY" -m benchmarks.run --quick --device gpu \
  --only gradient_profile spectra_targets step_jacobians predict \
  --out "$OUT/bench_quick.json" > "$OUT/bench_quick.log" 2>&1
echo "benchmarks exit $?"; tail -60 "$OUT/bench_quick.log"

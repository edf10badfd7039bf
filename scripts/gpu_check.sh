#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one command: the GPU tests, then the GPU training
# benchmark (issue 6). Run from the repo root on a machine whose python3 holds a CUDA torch,
# e.g. through the device tool:  bash scripts/gpu_check.sh
# Needs torch, numpy, pandas, scikit-learn, scipy, safetensors and pytest (no kfp); writes
# each step's output to $OUT (or ./gpu-check) as well as to the terminal.
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
          torch.cuda.get_device_name() if torch.cuda.is_available() else "NO CUDA")' \
  | tee -a "$out/gpu.txt"

status=0
# The files that hold gpu-marked tests (the rest of tests/core needs more packages).
gpu_tests=$(grep -l "pytest.mark.gpu" tests/core/*.py)
"$py" -m pytest -q -m gpu -p no:cacheprovider $gpu_tests 2>&1 | tee "$out/pytest_gpu.txt" \
  || status=1
"$py" benchmarks/train_gpu.py "$@" 2>&1 | tee "$out/train_gpu.txt" || status=1
exit $status

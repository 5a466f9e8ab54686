#!/usr/bin/env bash
# The throughput benchmark in one command: TF (the project venv) against PyTorch (its own venv).
#   bash benchmarks/throughput.sh [--quick] [--sizes 64,128,256] [--steps 5] [--jit_compile] \
#       [--mixed_precision bf16] ...        (all flags: benchmarks/throughput.py --help)
# TORCH_VENV (default /tmp/torch-venv) is created with torch 2.13.0 (CPU) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VENV="${TORCH_VENV:-/tmp/torch-venv}"
PYTHON="${PYTHON:-.venv/bin/python}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

if ! "$TORCH_VENV/bin/python" -c "import torch, numpy" 2>/dev/null; then
    "$PYTHON" -m venv "$TORCH_VENV" 2>/dev/null || python3 -m venv "$TORCH_VENV"
    # The CPU-only wheel index first (a much smaller download); plain pip as the fallback (on
    # machines that reach only PyPI, pip's configured find-links/mirrors may carry the CPU wheel).
    "$TORCH_VENV/bin/pip" install --retries 1 --timeout 20 "torch==$TORCH_VERSION" numpy \
        --index-url https://download.pytorch.org/whl/cpu \
    || "$TORCH_VENV/bin/pip" install "torch==$TORCH_VERSION" numpy
fi

exec "$PYTHON" benchmarks/throughput.py --torch_python "$TORCH_VENV/bin/python" "$@"

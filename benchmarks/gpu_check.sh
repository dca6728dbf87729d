#!/usr/bin/env bash
# One command for a lent GPU (an H100 or H200): in at most about 8 minutes, what only a GPU can tell, as one
# markdown table in OUTDIR/gpu_check.md (each step's log beside it).
#
#     RESLENS_DATA=path/to/cifar10 bash benchmarks/gpu_check.sh OUTDIR
#
# Steps, each under its own time limit so that one slow step cannot eat the others:
#   1. tests/gpu/test_cuda.py: every analysis gives the CPU's numbers on CUDA, the model untouched;
#   2. the AppTest page tests with CUDA as the sidebar's device (its default where CUDA is present);
#   3. benchmarks/page_compute.py: each page's whole computation, cold and warm, on CUDA;
#   4. the whole 51x51 resnet56 loss landscape on the 10,000 test images (goal: under 5 minutes).
# The data does not travel with the repository: copy the test split into an ignored folder of the checkout and
# name it in the device tool's `carry`, then point RESLENS_DATA at it.
set -u
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
TABLE="$OUT/gpu_check.md"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if [ -z "$GPU" ]; then
    echo "No GPU here (nvidia-smi found none): nothing to check." | tee "$TABLE"
    exit 2
fi
{
    echo "GPU: $GPU; torch $(python -c 'import torch; print(torch.__version__)'); $(date -u +%Y-%m-%d)"
    echo
    echo "| step | limit (s) | exit | seconds | last line |"
    echo "| --- | --- | --- | --- | --- |"
} > "$TABLE"

step() {  # step NAME LIMIT COMMAND...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local last
    last=$(grep -v '^\s*$' "$OUT/$name.log" | tail -1 | tr '|' '/' | cut -c1-160)
    echo "| $name | $limit | $rc | $((SECONDS - t0)) | $last |" >> "$TABLE"
}

step cuda_tests 90 python -m pytest -q -p no:cacheprovider tests/gpu/test_cuda.py
step page_tests 120 python -m pytest -q -p no:cacheprovider -x tests/dashboard/test_app.py
step page_compute 90 python benchmarks/page_compute.py --slider 2
step landscape_51x51 300 python benchmarks/landscape_grid.py --device cuda --samples 10000 --skip-cli --full
cat "$TABLE"

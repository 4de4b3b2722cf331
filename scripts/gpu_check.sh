#!/usr/bin/env bash
# The GPU checks in one run, under 8 minutes on one GPU (scripts/gpu_check.py says what they are).
#
# The device machine has PyTorch with CUDA but cannot download: the few runtime dependencies its
# image lacks (soundfile, soxr and theirs) travel as wheels in .gpu_wheels/ (ignored by git).
# Fetch them here first, for the device's Python (3.12 on the machines seen so far):
#
#     bash scripts/gpu_check.sh --fetch-wheels [PYTHON_VERSION]
#
# then run this script on the device machine from the repository root, carrying .gpu_wheels:
#
#     bash scripts/gpu_check.sh [--quick] [gpu_check.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--fetch-wheels" ]]; then
    pyver="${2:-3.12}"
    python3 -m pip download --quiet --only-binary=:all: --python-version "$pyver" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --no-deps -d .gpu_wheels soundfile soxr cffi pycparser
    ls -la .gpu_wheels
    exit 0
fi
python=python3
if ! "$python" -c "import soundfile, soxr" 2>/dev/null; then
    if [[ -d .gpu_wheels ]]; then
        "$python" -m pip install --quiet --no-index --no-deps --find-links .gpu_wheels \
            --target .gpu_site soundfile soxr cffi pycparser >/dev/null
        export PYTHONPATH="$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "soundfile/soxr missing and no .gpu_wheels/: run 'bash scripts/gpu_check.sh --fetch-wheels' here first" >&2
        exit 2
    fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec timeout 470 "$python" scripts/gpu_check.py "$@"

#!/usr/bin/env bash
# Every GPU result of benchmarks/bench_transcribe.py, into benchmarks/results/. From the repository root:
#
#     bash benchmarks/run_gpu.sh            # PY=/path/to/python to use another interpreter
#
# Needs a Python with kdlib installed on a CUDA build of torch (README, "The paper profile") and, unless
# .cache/kdlib already holds them, espeak-ng: the tiny profile's synthetic corpus and teacher are built on first
# use (minutes) and cached. bf16 is the params' `dtype: auto` on a GPU; batch 32 is params/tiny.yaml's
# pseudo_label batch size; the matmul rate is measured in the same run (n=8192, bf16).
set -euo pipefail

PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RESULTS=${RESULTS:-benchmarks/results}

"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: these are the GPU results")'
"$PY" -m kdlib teacher params/tiny.yaml   # builds the corpus and trains the teacher once; prints its folder
"$PY" benchmarks/bench_transcribe.py params/tiny.yaml --out "$RESULTS"                  # the tiny teacher and students
"$PY" benchmarks/bench_transcribe.py params/tiny.yaml --arch large-v2 --out "$RESULTS"  # whisper-large-v2's architecture

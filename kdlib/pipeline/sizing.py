"""The sizing model of a paper run: disk of the prepared sets and GPU-hours of labelling and distillation.

From what was measured here (README, "Scale") and what is assumed, each named:

- Disk: 16-bit FLAC at `FLAC_BYTES_PER_S` bytes per audio second (measured on the embedded corpus: 19.2 KB/s,
  24.4 KB/s with noise; the noisier rate is used), WAV at `WAV_BYTES_PER_S`, times `MEAN_SEGMENT_S` seconds per
  clip (assumed: the released pools' segment length is not published; at most 30 s).
- Students: a DW-e-d student of whisper-large-v2 keeps its float32 weights and its last checkpoints (weights and
  AdamW's two moments, 12 bytes per parameter each) under the run folder (`student_bytes`).
- Compute: 2 · parameters · positions per forward pass (encoder over its 1,500 frames per 30 s window, decoder
  over `TOKENS` tokens); a training step is a forward, a backward (twice a forward) and, with gradient
  checkpointing, one more forward, plus the teacher's forward for the KL term. Parameter counts are
  whisper-large-v2's (`TEACHER`) and, for a DW-e-d student, its share of the teacher's layers.
- Rate: measured, from a GPU record of `benchmarks/bench_transcribe.py` under `benchmarks/results/` (its matmul rate
  times the fraction of it kdlib's transcription reached), when there is one for the GPU in use (`measured_rate`);
  else `ASSUMED_GPU_FLOPS` (40 % of an H100's dense bf16 peak), an assumption and said so wherever it is used.

`benchmarks/sizing.py` prints the README's table from these; `kdlib.pipeline.preflight` checks free disk and
estimates hours from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

POOLS = {"100K": 100_000, "500K": 500_000, "1M": 1_000_000}
MEAN_SEGMENT_S = 10.0  # assumed: the released pools' segment length is not published (at most 30 s)
FLAC_BYTES_PER_S = 24_400  # measured (the noisier of the two measurements: speech in noise compresses less)
WAV_BYTES_PER_S = 32_000  # 16-bit PCM at 16 kHz
ASSUMED_GPU_FLOPS = 0.4 * 989e12  # assumed sustained bf16 rate of one H100 (40 % of its dense peak)
ENCODER_FRAMES = 1500  # Whisper's encoder positions for every 30 s window, whatever the clip's length
TOKENS = 60  # pseudo-label length, tokens per segment (at most 225)
EPOCHS = 10
# parameters of whisper-large-v2: encoder, decoder without the shared embedding (32 layers each)
TEACHER = {"encoder": 637e6, "decoder": 840e6}
TEACHER_LAYERS = 32
# exact parameter counts of whisper-large-v2's parts (from its config; the paper brief's student sizes check them):
# one encoder layer, one decoder layer, and what every DW-e-d student copies whole (embeddings, convolutions, norms)
ENCODER_LAYER_PARAMETERS = 19_676_160
DECODER_LAYER_PARAMETERS = 26_236_160
SHARED_PARAMETERS = 74_110_720
CHECKPOINT_BYTES_PER_PARAMETER = 12  # float32 weights and AdamW's two float32 moments (kdlib.models.training)
WEIGHT_BYTES_PER_PARAMETER = 4  # a trained student's float32 safetensors


def prepared_bytes(clips: int, audio_format: str = "flac") -> float:
    """Disk of `clips` prepared clips at `MEAN_SEGMENT_S` seconds each."""
    rate = FLAC_BYTES_PER_S if audio_format == "flac" else WAV_BYTES_PER_S
    return clips * MEAN_SEGMENT_S * rate


def clips_in_name(name: str) -> int | None:
    """The clip count a pool's name states: `100K` → 100,000, `pool-1M` → 1,000,000; None if it states none."""
    match = re.search(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([KM])(?![A-Za-z0-9])", name)
    if match is None:
        return None
    return int(float(match.group(1)) * {"K": 1_000, "M": 1_000_000}[match.group(2)])


def student_parameters(student: str) -> dict[str, float]:
    """A DW-e-d student of whisper-large-v2: its share of the teacher's encoder and decoder layers."""
    encoder, decoder = (int(part) for part in student.split("-")[1:3])
    return {
        "encoder": TEACHER["encoder"] * encoder / TEACHER_LAYERS,
        "decoder": TEACHER["decoder"] * decoder / TEACHER_LAYERS,
    }


def student_size(student: str) -> int:
    """The exact parameter count of a DW-e-d student of whisper-large-v2 (DW-16-16: 808,707,840)."""
    encoder, decoder = (int(part) for part in student.split("-")[1:3])
    return SHARED_PARAMETERS + encoder * ENCODER_LAYER_PARAMETERS + decoder * DECODER_LAYER_PARAMETERS


def student_bytes(student: str, keep_checkpoints: int) -> int:
    """Disk a trained student keeps under the run folder: its weights and its last `keep_checkpoints` checkpoints."""
    per_parameter = WEIGHT_BYTES_PER_PARAMETER + keep_checkpoints * CHECKPOINT_BYTES_PER_PARAMETER
    return student_size(student) * per_parameter


def forward_flops(parameters: Mapping[str, float]) -> float:
    """One forward pass over one segment: encoder over every frame, decoder over every token."""
    return 2 * (parameters["encoder"] * ENCODER_FRAMES + parameters["decoder"] * TOKENS)


def labelling_flops(clips: int) -> float:
    """Pseudo-labelling `clips` segments with the teacher."""
    return clips * forward_flops(TEACHER)


def distillation_flops(clips_seen: float, student: str) -> float:
    """Distilling a student over `clips_seen` segments (epochs × pairs): its training step and the teacher's forward."""
    student_step = 4 * forward_flops(student_parameters(student))  # forward, backward (2×), recomputed forward
    return clips_seen * (student_step + forward_flops(TEACHER))


def gpu_hours(pool: int, student: str, flops_per_s: float = ASSUMED_GPU_FLOPS) -> tuple[float, float]:
    """GPU-hours of pseudo-labelling the pool and of distilling one student for `EPOCHS` epochs on all of it."""
    return labelling_flops(pool) / flops_per_s / 3600, distillation_flops(EPOCHS * pool, student) / flops_per_s / 3600


def measured_rate(results: Path, gpu_name: str) -> tuple[float, str] | None:
    """The sustained FLOP/s kdlib reached on `gpu_name` in a GPU record of `benchmarks/bench_transcribe.py` under
    `results` (its measured matmul rate × the fraction of it kdlib's transcription of whisper-large-v2's
    architecture reached), and the record's file name; None when no such record is there."""
    found = []
    for path in sorted(results.glob("*.json")) if results.is_dir() else []:
        try:
            record: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("arch") != "large-v2" or not record.get("matmul_TFLOP_per_s"):
            continue
        if gpu_name.lower() not in str(record.get("device", "")).lower():
            continue
        fractions = [
            row["fraction_of_floor"]
            for row in record.get("rows", [])
            if row.get("method") == "kdlib" and row.get("fraction_of_floor")
        ]
        if fractions:
            found.append((record["matmul_TFLOP_per_s"] * 1e12 * max(fractions), path.name))
    return found[-1] if found else None

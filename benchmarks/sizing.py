"""Sizing of the paper's pools (100K, 500K, 1M segments): RAM, disk and GPU-hours, from what was measured.

    python benchmarks/sizing.py            # prints the Markdown table the README quotes

- RAM: the largest peak RSS of any stage in `benchmarks/results/scale.json` (the scale benchmark shows it does not
  grow with the number of clips), plus the model's own memory, which that benchmark's tiny teacher does not have.
- Disk: the measured bytes per audio second of 16-bit FLAC (`FLAC_BYTES_PER_S`, measured on the embedded corpus
  with and without noise: 19.2–24.4 KB/s; WAV 32.0 KB/s) times the pool's audio, at `MEAN_SEGMENT_S` seconds a segment.
- GPU-hours: the compute model of `benchmarks/bench_transcribe.py` (2 · parameters · positions per forward pass;
  backward twice the forward; gradient checkpointing one more forward) over `GPU_FLOPS` sustained bf16 FLOP/s.
  No GPU has been lent to this project yet: the rate is an assumption (40 % of an H100's dense bf16 peak), so these
  are estimates, to be replaced by `benchmarks/run_gpu.sh`'s measured clips/s.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
POOLS = {"100K": 100_000, "500K": 500_000, "1M": 1_000_000}
MEAN_SEGMENT_S = 10.0  # assumed: the released pools' segment length is not published (at most 30 s)
FLAC_BYTES_PER_S = 24_400  # the noisier of the two measurements (speech in noise compresses less)
GPU_FLOPS = 0.4 * 989e12  # assumed sustained bf16 rate of one H100 (40 % of its dense peak)
ENCODER_FRAMES = 1500  # Whisper's encoder positions for every 30 s window, whatever the clip's length
TOKENS = 60  # pseudo-label length, tokens per segment (at most 225)
EPOCHS = 10
# parameters (whisper-large-v2 and its students): encoder, decoder without the shared embedding
TEACHER = {"encoder": 637e6, "decoder": 840e6}
STUDENTS = {"DW-16-16": {"encoder": 318e6, "decoder": 420e6}, "DW-32-16": {"encoder": 637e6, "decoder": 420e6}}


def forward_flops(parameters: dict[str, float]) -> float:
    """One forward pass over one segment: encoder over every frame, decoder over every token."""
    return 2 * (parameters["encoder"] * ENCODER_FRAMES + parameters["decoder"] * TOKENS)


def gpu_hours(pool: int, student: str) -> tuple[float, float]:
    """GPU-hours of pseudo-labelling the pool and of distilling one student for `EPOCHS` epochs on all of it."""
    labelling = pool * forward_flops(TEACHER) / GPU_FLOPS / 3600
    student_step = 4 * forward_flops(STUDENTS[student])  # forward, backward (2×), recomputed forward
    distilling = EPOCHS * pool * (student_step + forward_flops(TEACHER)) / GPU_FLOPS / 3600
    return labelling, distilling


def table() -> str:
    scale = json.loads((RESULTS / "scale.json").read_text(encoding="utf-8"))
    peak = max(row["peak_rss_mib"] for row in scale["rows"]) / 1024
    lines = [
        "| pool | audio (h) | disk, prepared (FLAC) | host RAM per process, data path | "
        "pseudo-labelling (GPU-h) | DW-16-16, 10 epochs (GPU-h) | DW-32-16, 10 epochs (GPU-h) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, clips in POOLS.items():
        hours = clips * MEAN_SEGMENT_S / 3600
        disk = clips * MEAN_SEGMENT_S * FLAC_BYTES_PER_S / 1e9
        labelling, small = gpu_hours(clips, "DW-16-16")
        _, large = gpu_hours(clips, "DW-32-16")
        lines.append(
            f"| {name} | {hours:,.0f} | {disk:,.0f} GB | {peak:.1f} GiB | {labelling:,.1f} | {small:,.0f} | {large:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())

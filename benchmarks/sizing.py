"""Sizing of the paper's pools (100K, 500K, 1M segments): RAM, disk and GPU-hours, from what was measured.

    python benchmarks/sizing.py            # prints the Markdown table the README quotes

The model itself (disk per clip, FLOPs per clip, the assumed GPU rate) is `kdlib.pipeline.sizing`, which the
preflight of `kdlib run` uses too.

- RAM: the largest peak RSS of any stage in `benchmarks/results/scale.json` (the scale benchmark shows it does not
  grow with the number of clips), plus the model's own memory, which that benchmark's tiny teacher does not have.
- Disk: the measured bytes per audio second of 16-bit FLAC (`FLAC_BYTES_PER_S`, measured on the embedded corpus
  with and without noise: 19.2–24.4 KB/s; WAV 32.0 KB/s) times the pool's audio, at `MEAN_SEGMENT_S` seconds a segment.
- GPU-hours: the compute model of `benchmarks/bench_transcribe.py` (2 · parameters · positions per forward pass;
  backward twice the forward; gradient checkpointing one more forward) over `ASSUMED_GPU_FLOPS` sustained bf16
  FLOP/s. No GPU has been lent to this project yet: the rate is an assumption (40 % of an H100's dense bf16 peak),
  so these are estimates, to be replaced by `benchmarks/run_gpu.sh`'s measured clips/s.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdlib.pipeline.sizing import MEAN_SEGMENT_S, POOLS, gpu_hours, prepared_bytes

RESULTS = Path(__file__).resolve().parent / "results"


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
        disk = prepared_bytes(clips) / 1e9
        labelling, small = gpu_hours(clips, "DW-16-16")
        _, large = gpu_hours(clips, "DW-32-16")
        lines.append(
            f"| {name} | {hours:,.0f} | {disk:,.0f} GB | {peak:.1f} GiB | {labelling:,.1f} | {small:,.0f} | {large:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())

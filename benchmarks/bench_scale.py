"""Scale benchmark: does memory stay flat and time per clip constant from 1,000 to 100,000 clips?

    python benchmarks/bench_scale.py [--clips 1000 10000 100000] [--work DIR]

Pools of N clips are built cheaply from the embedded corpus' audio: a few hundred distinct clips of the
tiny profile's distillation pool, written once as WAV files, then hard-linked under N new names in a
local audiofolder (`metadata.csv` with the clips' own transcripts). For each N, each stage runs in its own
process while this one samples the resident memory (RSS, file-backed pages of memory-mapped Arrow files
included) of that process and its children every 0.1 s:

- `prepare`: decode, screen and store the pool (`kdlib.corpus.preparation.prepare`, FLAC shards, 2 decoding processes);
- `pseudo_label`: the tiny teacher labels every clip (`kdlib.stages.pseudo_label.pseudo_label`, loader workers as
  params default them), its generation capped at `MAX_NEW_TOKENS` tokens to bound the run's length;
- `filter`: the λ sweep over the pseudo-label WERs (`kdlib.stages.filtering.keep_mask`, every λ of the profile);
- `distill_loader`: every clip once through the distillation loader (decode, log-mel features, padding of
  pseudo-label targets; `kdlib.models.training.Seq2SeqData` read by `kdlib.corpus.loader`), then `OPTIMISER_STEPS` real
  optimiser steps of a DW-2-2 student (KL + CE) on the pool.

Writes `benchmarks/results/scale.json` ({"rows": [...], "machine", "date"}) and `scale.md` with, per stage,
the ratios of peak RSS and of time per clip between the two largest pools.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STAGES = ("prepare", "pseudo_label", "filter", "distill_loader")
DISTINCT_CLIPS = 512  # distinct audio files the pools re-use
MAX_NEW_TOKENS = 24  # the teacher's generation cap while pseudo-labelling (the tiny profile allows 80)
OPTIMISER_STEPS = 5


def bench_params(work: Path, clips: int):
    """The tiny profile, its pool replaced by the N-clip audiofolder, its caches under `work`."""
    from kdlib.config import DatasetSpec, load_params

    params = load_params(REPO / "params" / "tiny.yaml")
    pool = DatasetSpec(name=f"pool-{clips}", source="local", path=str(work / f"pool-{clips}"), split="train")
    generation = replace(params.pseudo_label.generation, max_new_tokens=MAX_NEW_TOKENS, batch_size=64)
    return replace(
        params,
        cache_dir=str(work / "cache"),
        run_dir=str(work / f"run-{clips}"),
        data=replace(params.data, train=(replace(pool, variety="MSA"),), test=(), prepare_workers=2),
        pseudo_label=replace(params.pseudo_label, chunk_size=1024, generation=generation),
    )


def build_source(work: Path) -> list[tuple[str, str]]:
    """The distinct clips as WAV files (once) and their transcripts."""
    import datasets

    from kdlib.config import load_params
    from kdlib.corpus.synthesis import POOL_SPLIT, build_split

    source = work / "source"
    listing = source / "listing.json"
    if listing.exists():
        return json.loads(listing.read_text(encoding="utf-8"))
    params = load_params(REPO / "params" / "tiny.yaml")
    split = build_split(params.data.synthetic, POOL_SPLIT, params.cache_path, params.data.sampling_rate)
    pool = datasets.load_from_disk(str(split)).cast_column("audio", datasets.Audio(decode=False))
    source.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, row in enumerate(pool.select(range(min(DISTINCT_CLIPS, len(pool))))):
        name = f"clip-{i:04d}.wav"
        (source / name).write_bytes(row["audio"]["bytes"])
        entries.append((name, row["text"]))
    listing.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return entries


def build_pool(work: Path, clips: int, entries: list[tuple[str, str]]) -> Path:
    """An audiofolder of `clips` hard links to the distinct clips, each under its own name."""
    folder = work / f"pool-{clips}"
    if (folder / "metadata.csv").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["file_name,text"]
    for i in range(clips):
        name, text = entries[i % len(entries)]
        target = folder / f"c{i:07d}.wav"
        if not target.exists():
            os.link(work / "source" / name, target)
        lines.append(f'c{i:07d}.wav,"{text}"')
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def teacher_path() -> str:
    """The tiny profile's teacher (trained here once if the cache has none)."""
    from kdlib.config import load_params
    from kdlib.models.teacher import find_teacher

    return find_teacher(load_params(REPO / "params" / "tiny.yaml"))


def run_stage(stage: str, work: Path, clips: int, teacher: str) -> dict:
    """One stage on the N-clip pool, in this process (called as a child of `measure`)."""
    import torch
    from accelerate import Accelerator

    from kdlib.corpus import preparation as data
    from kdlib.stages.filtering import keep_mask
    from kdlib.stages.pseudo_label import plan_run, pseudo_label

    params = bench_params(work, clips)
    pool = data.prepare(params.data.train[0], params, "train").dataset
    if stage == "prepare":
        return {"clips": len(pool)}
    if stage == "pseudo_label":
        pseudo_label(params, pool, teacher, Accelerator(cpu=True))
        return {"clips": len(pool)}
    import pandas as pd

    labels = pd.read_parquet(plan_run(params, pool, teacher).labels)
    if stage == "filter":
        kept = {
            str(t): int(keep_mask(labels["teacher_wer"], t, params.filter.keep).sum()) for t in params.filter.thresholds
        }
        return {"clips": len(labels), "kept": kept}
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from kdlib.corpus.loader import WaitClock, planned_loader
    from kdlib.models.students import make_student
    from kdlib.models.training import Seq2SeqData, train

    pool = pool.add_column("pseudo_label", labels["pseudo_label"].tolist())
    processor = WhisperProcessor.from_pretrained(teacher)
    teacher_model = WhisperForConditionalGeneration.from_pretrained(teacher, use_safetensors=True)
    pairs = Seq2SeqData(pool, "pseudo_label", processor, "ar", "transcribe")
    size = params.distill.training.batch_size
    plan = [list(range(start, min(start + size, len(pairs)))) for start in range(0, len(pairs), size)]
    clock = WaitClock()
    frames = 0
    for batch in clock.timed(planned_loader(len(plan), lambda i: pairs.read(plan[i]), params.data.loader_workers)):
        frames += int(batch["labels"].numel())
    settings = replace(params.distill.training, max_steps=OPTIMISER_STEPS, eval_every=0, save_every=0, log_every=1)
    student = make_student(teacher_model, "DW-2-2")
    torch.manual_seed(0)
    train(
        student,
        processor,
        pairs,
        settings,
        work / f"student-{clips}",
        loss=params.distill.loss,
        teacher=teacher_model,
        resume=False,
        description="DW-2-2 steps",
        workers=params.data.loader_workers,
    )
    return {"clips": len(pairs), "target_positions": frames}


def measure(stage: str, work: Path, clips: int, teacher: str) -> dict:
    """Run a stage in a child process; its wall time and the peak RSS of it and its children."""
    command = [sys.executable, __file__, "--child", stage, "--clips", str(clips), "--work", str(work)]
    command += ["--teacher", teacher]
    started = time.perf_counter()
    child = psutil.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = 0
    while child.poll() is None:
        try:
            tree = [child, *child.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - started
    output = child.stdout.read()
    if child.returncode != 0:
        raise RuntimeError(f"{stage} on {clips} clips failed (exit {child.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    return {
        "stage": stage,
        "clips": result["clips"],
        "wall_s": round(wall, 1),
        "clips_per_s": round(result["clips"] / wall, 1),
        "peak_rss_mib": round(peak / 2**20),
        **{k: v for k, v in result.items() if k != "clips"},
    }


def table(rows: list[dict]) -> str:
    """Markdown: one line per stage and pool size, then the ratios between the two largest pools."""
    sizes = sorted({row["clips"] for row in rows})
    lines = ["| stage | clips | wall s | clips/s | ms per clip | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        per_clip = 1000 * row["wall_s"] / row["clips"]
        lines.append(
            f"| {row['stage']} | {row['clips']:,} | {row['wall_s']:.1f} | {row['clips_per_s']:.1f} "
            f"| {per_clip:.2f} | {row['peak_rss_mib']:,} |"
        )
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        lines += [
            "",
            f"Ratios, {large:,} clips against {small:,} (goal: RSS ≤ 1.5×, time per clip ≤ 1.3×):",
            "",
            "| stage | peak RSS ratio | time-per-clip ratio |",
            "|---|---:|---:|",
        ]
        for stage in STAGES:
            by = {row["clips"]: row for row in rows if row["stage"] == stage}
            if small in by and large in by:
                rss = by[large]["peak_rss_mib"] / by[small]["peak_rss_mib"]
                speed = (by[large]["wall_s"] / large) / (by[small]["wall_s"] / small)
                lines.append(f"| {stage} | {rss:.2f}× | {speed:.2f}× |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "bench-scale")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--teacher", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_stage(args.child, args.work, args.clips[0], args.teacher)))
        return
    teacher = teacher_path()
    entries = build_source(args.work)
    rows = []
    for clips in args.clips:
        build_pool(args.work, clips, entries)
        for stale in [args.work / f"run-{clips}", *(args.work / "cache" / "prepared").glob(f"pool-{clips}-*")]:
            if stale.is_dir():  # every stage measured from scratch
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        for stage in STAGES:
            rows.append(measure(stage, args.work, clips, teacher))
            print(json.dumps(rows[-1]), flush=True)
    record = {
        "rows": rows,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "date": date.today().isoformat(),
        "notes": f"teacher generation capped at {MAX_NEW_TOKENS} new tokens; {DISTINCT_CLIPS} distinct clips re-used",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "scale.md").write_text(table(rows), encoding="utf-8")
    print(table(rows))


if __name__ == "__main__":
    main()

"""Pseudo-labelling / inference throughput: kdlib's path against named baselines, and the compute floor.

`--compare engines` (the default): kdlib against CTranslate2 float32 on identical log-mel features and against
kdlib's own path before its greedy loop (transformers' `generate`), in interleaved rounds, with token-for-token
agreement (`benchmarks/engines.py` says how each method runs). Needs the optional extra `bench` (ctranslate2).
`--compare pipeline`: kdlib against a transformers ASR pipeline, as follows.

Both transcribe the same clips with the same model, dtype and batch size, side by side in
one process. Baseline: `transformers.pipeline("automatic-speech-recognition")` with the
same generation settings (language and task forced, greedy), fed the clips in their
original (unsorted) order, as one would use it. kdlib: length-sorted batches through
`kdlib.models.transcription.transcribe`. Reports clips/s, audio-seconds/s, peak GPU memory (on a GPU)
and the ratio. Models: the profile's teacher and its DW students (made from the teacher's
layers; untrained students stop at odd places, so the generated length is fixed with
`--tokens`); with `--arch large-v2`, whisper-large-v2's architecture with random weights
(its layers, vocabulary size, 80 mel bins and 30 s window).

The distance to the floor: the same run measures the device's dense matmul rate in the
model's dtype (square products, best of several), and counts the encoder's work per clip
window as 2 · encoder parameters · encoder frames (`config.max_source_positions`: 1500 for
Whisper's 30 s window). The encoder alone at that rate gives `floor_clips_per_s`, an upper
bound on throughput (attention scores, the decoder and all overheads come on top);
`fraction_of_floor` is the measured clips/s over it.

    python benchmarks/bench_transcribe.py params/tiny.yaml                          # CPU, the tiny teacher vs CTranslate2
    python benchmarks/bench_transcribe.py params/tiny.yaml --arch base --clips 32   # whisper-base's shape vs CTranslate2
    python benchmarks/bench_transcribe.py params/tiny.yaml --compare pipeline       # the teacher and students vs pipeline
    python benchmarks/bench_transcribe.py params/tiny.yaml --compare pipeline --arch large-v2  # GPU: large-v2's shape
    bash benchmarks/run_gpu.sh                                                 # every GPU result
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import (
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    pipeline,
)

from kdlib.config import load_params
from kdlib.corpus.loader import usable_cores
from kdlib.corpus.preparation import load_test_sets
from kdlib.models.families import WhisperModel, load_model
from kdlib.models.runtime import parameter_count, resolve_device
from kdlib.models.students import WHISPER_LARGE_V2, make_student
from kdlib.models.teacher import find_teacher
from kdlib.models.transcription import transcribe
from kdlib.stages.evaluate import device_name

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/engines.py, beside this script
import engines  # noqa: E402

MATMUL_N = {"cuda": 8192, "cpu": 2048}  # the side of the square products that measure the matmul rate


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """The device's dense matmul rate in `dtype`, TFLOP/s: the best of `repeats` timed n×n products, after a warm-up."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty_like(a)
    products = 10 if device.type == "cuda" else 1  # a GPU does one in about a millisecond: time several

    def seconds() -> float:
        start = time.perf_counter()
        for _ in range(products):
            torch.matmul(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    seconds()
    best = min(seconds() for _ in range(repeats))
    return 2 * n**3 * products / best / 1e12


def encoder_flops(model: WhisperForConditionalGeneration) -> float:
    """The encoder's work on one clip window: 2 · encoder parameters · encoder frames (attention scores left out)."""
    return 2 * parameter_count(model.model.encoder) * model.config.max_source_positions


def floor_fields(clips: int, seconds: float, flops_per_clip: float, flops_per_s: float) -> dict[str, float]:
    """The encoder-alone floor in clips/s at `flops_per_s`, and the measured clips/s as a fraction of it."""
    floor = flops_per_s / flops_per_clip
    return {"floor_clips_per_s": _figures(floor), "fraction_of_floor": _figures(clips / seconds / floor)}


def _figures(value: float, digits: int = 3) -> float:
    """`value` to `digits` significant figures (the floor spans 0.5 clips/s on a CPU to millions on a GPU)."""
    return float(f"{value:.{digits}g}")


def large_v2(teacher: WhisperModel, device: torch.device) -> WhisperModel:
    """whisper-large-v2's architecture with random weights, fed 30 s windows of 80 mel bins like the real one.

    The tokenizer is the profile's (its special tokens force language and task); ids beyond its
    vocabulary decode to nothing, which is fine when the generated length is fixed.
    """
    config = WhisperConfig(**{**teacher.model.config.to_dict(), **WHISPER_LARGE_V2})
    model = WhisperForConditionalGeneration(config).to(device, teacher.model.dtype).eval()
    model.generation_config = teacher.model.generation_config
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80, chunk_length=30),
        tokenizer=teacher.processor.tokenizer,
    )
    return WhisperModel("whisper-large-v2 architecture (random)", "config", model, processor)


def timed(function):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return result, time.perf_counter() - start, peak


def measure(
    loaded: WhisperModel, dataset, generation, tokens: int | None, flops_per_clip: float, flops_per_s: float
) -> list[dict]:
    """Pipeline and kdlib rows for one model, each with its distance to the encoder-alone floor."""
    audio_seconds = float(sum(dataset["duration_s"]))
    fixed = (
        {"min_new_tokens": tokens, "max_new_tokens": tokens}
        if tokens
        else {"max_new_tokens": generation.max_new_tokens}
    )
    if tokens:
        loaded.model.generation_config.update(min_new_tokens=tokens)
    asr = pipeline(
        "automatic-speech-recognition",
        model=loaded.model,
        tokenizer=loaded.processor.tokenizer,
        feature_extractor=loaded.processor.feature_extractor,
        device=loaded.device,
        dtype=loaded.model.dtype,
    )
    arrays = _arrays(dataset)

    def inputs(clips):  # fresh dicts each call: the pipeline pops their keys
        return [{"raw": a, "sampling_rate": 16_000} for a in clips]

    kwargs = {"language": generation.language, "task": generation.task, "num_beams": generation.num_beams, **fixed}
    asr(inputs(arrays[:2]), batch_size=generation.batch_size, generate_kwargs=kwargs)  # warm-up
    _, baseline_s, baseline_peak = timed(
        lambda: asr(inputs(arrays), batch_size=generation.batch_size, generate_kwargs=kwargs)
    )
    settings = replace(generation, max_new_tokens=tokens or generation.max_new_tokens)
    transcribe(loaded, dataset.select(range(2)), settings, "warm-up")
    _, kdlib_s, kdlib_peak = timed(lambda: transcribe(loaded, dataset, settings, loaded.name))
    rows = []
    for method, seconds, peak in (("transformers pipeline", baseline_s, baseline_peak), ("kdlib", kdlib_s, kdlib_peak)):
        floor = floor_fields(len(dataset), seconds, flops_per_clip, flops_per_s)
        rows.append(
            {
                "model": loaded.name,
                "parameters_M": round(parameter_count(loaded.model) / 1e6, 2),
                "method": method,
                "clips": len(dataset),
                "seconds": round(seconds, 3),
                "clips_per_s": round(len(dataset) / seconds, 2),
                "audio_s_per_s": round(audio_seconds / seconds, 1),
                "peak_gpu_GiB": None if peak is None else round(peak, 2),
                **floor,
            }
        )
    rows[-1]["speedup_vs_pipeline"] = round(baseline_s / kdlib_s, 2)
    return rows


def _arrays(dataset):
    from kdlib.corpus.audio import decode

    return [decode(a).samples for a in dataset["audio"]]


def machine_fields(device: torch.device, dtype: torch.dtype) -> dict[str, str]:
    """What a benchmark record says of when and where it ran."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "device": device_name(device),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "dtype": str(dtype),
    }


def write_record(record: dict, folder: str, name: str) -> Path:
    """`record` as `<folder>/<name>-<its date>.json`; that path."""
    out = Path(folder) / f"{name}-{record['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, ensure_ascii=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params")
    parser.add_argument("--compare", choices=["engines", "pipeline"], default="engines")
    parser.add_argument("--arch", choices=["profile", "base", "large-v2"], default="profile")
    parser.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="pipeline: fix the generated length (default 24; 0: let each model stop); engines: max_new_tokens",
    )
    parser.add_argument("--clips", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5, help="engines: interleaved rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch and CTranslate2 threads (default: the cores)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=None,
        help="engines: loader workers of kdlib's rows (default: params')",
    )
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    params = load_params(args.params)
    device = resolve_device(params.device)
    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    generation = params.pseudo_label.generation
    tests = load_test_sets(params)
    dataset = next(iter(tests.values())).dataset
    for corpus in list(tests.values())[1:]:
        from datasets import concatenate_datasets

        dataset = concatenate_datasets([dataset, corpus.dataset])
    if args.clips:
        dataset = dataset.select(range(min(args.clips, len(dataset))))
    teacher = load_model(find_teacher(params), device, generation, name="teacher")
    if args.compare == "engines":
        run_engines(args, params, device, threads, generation, dataset, teacher)
        return
    tokens = 24 if args.tokens is None else args.tokens
    models = [teacher]
    if args.arch == "large-v2":
        models = [large_v2(teacher, device)]
    elif args.arch == "base":
        models = [engines.base_shape(teacher, device)]
    else:
        students = dict.fromkeys(run.student for run in params.distill.runs)
        models += [
            WhisperModel(
                name,
                "teacher layers",
                make_student(teacher.model, name).to(device, teacher.model.dtype).eval(),
                teacher.processor,
            )
            for name in students
        ]
    matmul_n = MATMUL_N.get(device.type, MATMUL_N["cpu"])
    tflops = matmul_tflops(device, teacher.model.dtype, matmul_n)
    encoder = {loaded.name: encoder_flops(loaded.model) for loaded in models}
    rows = [
        row
        for loaded in models
        for row in measure(loaded, dataset, generation, tokens or None, encoder[loaded.name], tflops * 1e12)
    ]
    record = {
        **machine_fields(device, teacher.model.dtype),
        "batch_size": generation.batch_size,
        "arch": args.arch,
        "matmul_n": matmul_n,
        "matmul_TFLOP_per_s": _figures(tflops, 4),
        "encoder_GFLOPs_per_clip": {name: _figures(flops / 1e9, 4) for name, flops in encoder.items()},
        "rows": rows,
    }
    out = write_record(record, args.out, f"transcribe-{params.profile}-{args.arch}-{device.type}")
    import pandas as pd

    print(
        f"{record['device']} · {record['dtype']} · batch {generation.batch_size}"
        f" · matmul {tflops * 1e3:.1f} GFLOP/s (n={matmul_n})"
    )
    print("encoder GFLOPs per clip:", record["encoder_GFLOPs_per_clip"])
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(f"written: {out}")


def run_engines(args, params, device, threads, generation, dataset, teacher) -> None:
    """kdlib against CTranslate2 on identical features (`benchmarks/engines.py`), written as JSON and a table."""
    import os

    import pandas as pd

    loaded = {"profile": lambda: teacher, "base": lambda: engines.base_shape(teacher, device)}
    if args.arch not in loaded:
        raise SystemExit("--compare engines runs --arch profile or base")
    model = loaded[args.arch]()
    generation = engines.with_tokens(generation, args.tokens)
    workers = args.workers if args.workers else [params.data.loader_workers]
    load_before = os.getloadavg()
    matmul_n = MATMUL_N.get(device.type, MATMUL_N["cpu"])
    tflops = matmul_tflops(device, model.model.dtype, matmul_n)
    rows, details = engines.compare(model, dataset, generation, workers, args.rounds, threads)
    baseline = "CTranslate2 float32" if device.type == "cpu" else "CTranslate2"
    engines.ratios(rows, baseline)
    flops = encoder_flops(model.model)
    for row in rows:
        row.update(floor_fields(row["clips"], row["seconds_median"], flops, tflops * 1e12))
    record = {
        **machine_fields(device, model.model.dtype),
        "ctranslate2": __import__("ctranslate2").__version__,
        "model": model.name,
        "threads": threads,
        "batch_size": generation.batch_size,
        "rounds": args.rounds,
        "loader_workers": workers,
        "load_average_before_after": [round(value, 2) for value in (*load_before, *os.getloadavg())],
        "matmul_TFLOP_per_s": _figures(tflops, 4),
        "encoder_GFLOPs_per_clip": _figures(flops / 1e9, 4),
        **details,
        "rows": rows,
    }
    out = write_record(record, args.out, f"engines-{params.profile}-{args.arch}-{device.type}-{threads}t")
    table = pd.DataFrame(rows).drop(columns=["seconds_rounds"])
    print(f"{record['device']} · {model.name} · {record['dtype']} · batch {generation.batch_size} · {threads} threads")
    print(f"load average before/after (1, 5, 15 min): {record['load_average_before_after']}")
    print(table.to_markdown(index=False))
    print(f"written: {out}")


if __name__ == "__main__":
    main()

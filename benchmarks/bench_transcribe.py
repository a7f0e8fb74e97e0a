"""Pseudo-labelling / inference throughput: kdlib's path against a transformers ASR pipeline.

Both transcribe the same clips with the same model, dtype and batch size, side by side in
one process. Baseline: `transformers.pipeline("automatic-speech-recognition")` with the
same generation settings (language and task forced, greedy), fed the clips in their
original (unsorted) order, as one would use it. kdlib: length-sorted batches through
`kdlib.transcribe.transcribe`. Reports clips/s, audio-seconds/s, peak GPU memory (on a GPU)
and the ratio. Models: the profile's teacher and its DW students (made from the teacher's
layers; untrained students stop at odd places, so the generated length is fixed with
`--tokens`); with `--arch large-v2`, whisper-large-v2's architecture with random weights.

    python benchmarks/bench_transcribe.py params/tiny.yaml                     # CPU, the tiny teacher and students
    python benchmarks/bench_transcribe.py params/tiny.yaml --arch large-v2     # GPU: large-v2's architecture
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration, pipeline

from kdlib.config import load_params
from kdlib.data import load_test_sets
from kdlib.evaluate import device_name
from kdlib.models import LoadedModel, load_whisper, parameter_count, resolve_device
from kdlib.students import make_student
from kdlib.teacher import teacher_source
from kdlib.transcribe import transcribe

LARGE_V2 = dict(d_model=1280, encoder_layers=32, decoder_layers=32, encoder_attention_heads=20, decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120)


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


def measure(loaded: LoadedModel, dataset, generation, tokens: int | None) -> list[dict]:
    audio_seconds = float(sum(dataset["duration_s"]))
    fixed = {"min_new_tokens": tokens, "max_new_tokens": tokens} if tokens else {"max_new_tokens": generation.max_new_tokens}
    if tokens:
        loaded.model.generation_config.update(min_new_tokens=tokens)
    asr = pipeline(
        "automatic-speech-recognition", model=loaded.model, tokenizer=loaded.processor.tokenizer,
        feature_extractor=loaded.processor.feature_extractor, device=loaded.device, dtype=loaded.model.dtype,
    )
    arrays = _arrays(dataset)

    def inputs(clips):  # fresh dicts each call: the pipeline pops their keys
        return [{"raw": a, "sampling_rate": 16_000} for a in clips]

    kwargs = {"language": generation.language, "task": generation.task, "num_beams": generation.num_beams, **fixed}
    asr(inputs(arrays[:2]), batch_size=generation.batch_size, generate_kwargs=kwargs)  # warm-up
    _, baseline_s, baseline_peak = timed(lambda: asr(inputs(arrays), batch_size=generation.batch_size, generate_kwargs=kwargs))
    settings = replace(generation, max_new_tokens=tokens or generation.max_new_tokens)
    transcribe(loaded, dataset.select(range(2)), settings, "warm-up")
    _, kdlib_s, kdlib_peak = timed(lambda: transcribe(loaded, dataset, settings, loaded.name))
    rows = []
    for method, seconds, peak in (("transformers pipeline", baseline_s, baseline_peak), ("kdlib", kdlib_s, kdlib_peak)):
        rows.append({"model": loaded.name, "parameters_M": round(parameter_count(loaded.model) / 1e6, 2), "method": method, "clips": len(dataset),
                     "seconds": round(seconds, 3), "clips_per_s": round(len(dataset) / seconds, 2), "audio_s_per_s": round(audio_seconds / seconds, 1),
                     "peak_gpu_GiB": None if peak is None else round(peak, 2)})
    rows[-1]["speedup_vs_pipeline"] = round(baseline_s / kdlib_s, 2)
    return rows


def _arrays(dataset):
    from kdlib.audio import decode

    return [decode(a).samples for a in dataset["audio"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params")
    parser.add_argument("--arch", choices=["profile", "large-v2"], default="profile")
    parser.add_argument("--tokens", type=int, default=24, help="fix the generated length (0: let each model stop)")
    parser.add_argument("--clips", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    params = load_params(args.params)
    device = resolve_device(params.device)
    generation = params.pseudo_label.generation
    tests = load_test_sets(params)
    dataset = next(iter(tests.values())).dataset
    for corpus in list(tests.values())[1:]:
        from datasets import concatenate_datasets

        dataset = concatenate_datasets([dataset, corpus.dataset])
    if args.clips:
        dataset = dataset.select(range(min(args.clips, len(dataset))))
    teacher = load_whisper(teacher_source(params), device, generation, name="teacher")
    models = [teacher]
    if args.arch == "large-v2":
        config = WhisperConfig(**{**teacher.model.config.to_dict(), **LARGE_V2})
        model = WhisperForConditionalGeneration(config).to(device, teacher.model.dtype).eval()
        model.generation_config = teacher.model.generation_config
        models = [LoadedModel("whisper-large-v2 architecture (random)", "config", model, teacher.processor)]
    else:
        students = dict.fromkeys(run.student for run in params.distill.runs)
        models += [LoadedModel(name, "teacher layers", make_student(teacher.model, name).to(device, teacher.model.dtype).eval(), teacher.processor) for name in students]
    rows = [row for loaded in models for row in measure(loaded, dataset, generation, args.tokens or None)]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    record = {"date": stamp, "device": device_name(device), "platform": platform.platform(), "torch": torch.__version__,
              "dtype": str(teacher.model.dtype), "batch_size": generation.batch_size, "arch": args.arch, "rows": rows}
    out = Path(args.out) / f"transcribe-{params.profile}-{args.arch}-{device.type}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, ensure_ascii=False))
    import pandas as pd

    print(f"{record['device']} · {record['dtype']} · batch {generation.batch_size}")
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(f"written: {out}")


if __name__ == "__main__":
    main()

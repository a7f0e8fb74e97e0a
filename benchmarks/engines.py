"""kdlib's transcription against CTranslate2 float32 on identical log-mel features, in interleaved rounds.

Used by `bench_transcribe.py --compare engines`. Every method transcribes the same clips (the prepared sets'
FLAC bytes) with the same model, greedy, the same prompt (`<|sot|><|ar|><|transcribe|><|notimestamps|>`), batch
size and threads, and each round runs every method once, in turn (the machine is shared: ratios within a round
are what counts; the report gives the median over rounds):

- `kdlib`: `kdlib.models.transcription.transcribe` as stages 01 and 04 run it (length-sorted batches read by the params'
  loader workers, the log-mel front end in the loader, kdlib's greedy loop);
- `kdlib before (transformers generate)`: main's path before issue 26, the reference its tokens are compared with:
  transformers' `generate` (one call per batch), the features computed in it, loader workers by the former default
  (one fewer than the cores), no read-ahead thread;
- `CTranslate2 float32`: the same clips decoded and the same log-mel features (kdlib's front end, in the same
  length-sorted batches), then `ctranslate2.models.Whisper.generate` (greedy, no suppressed blank, the model's
  suppress tokens) on a model converted from the same checkpoint with `TransformersConverter`;
- `CTranslate2 float32, 1 thread`: the same on one thread (kdlib's loop runs a small model's steps on one thread,
  `kdlib.models.decoding.WhisperGreedy.step_threads`: this row shows what that choice gives CTranslate2);
- `... model only`: kdlib's loop and CTranslate2 on features computed beforehand (no audio decoding, no front end).

Models with random weights (`--arch base`) rarely emit end-of-text: every method then generates up to the token
limit; the rows say how many tokens each generated.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from kdlib.config import GenerationParams
from kdlib.corpus.audio import decode
from kdlib.models import families, transcription
from kdlib.models.decoding import WhisperGreedy, greedy_settings
from kdlib.models.families import WhisperModel
from kdlib.models.transcription import batches, length_sorted, transcribe


def ctranslate2_model(loaded: WhisperModel, folder: Path, threads: int):
    """CTranslate2's Whisper converted from the model's checkpoint (saved to `folder` first when it has none)."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    source = Path(loaded.source)
    if not (source / "config.json").exists():
        source = folder / "checkpoint"
        loaded.model.save_pretrained(source)
        loaded.processor.save_pretrained(source)
    converted = folder / "ctranslate2"
    TransformersConverter(str(source)).convert(str(converted), quantization="float32", force=True)
    device = "cuda" if loaded.device.type == "cuda" else "cpu"
    compute = "float32" if device == "cpu" else str(loaded.model.dtype).removeprefix("torch.")
    return ctranslate2.models.Whisper(str(converted), device=device, compute_type=compute, intra_threads=threads)


def compare(
    loaded: WhisperModel,
    dataset,
    generation: GenerationParams,
    workers: list[int | None],
    rounds: int,
    threads: int,
) -> tuple[list[dict], dict]:
    """Per method: the median seconds over `rounds` interleaved rounds, clips/s, tokens generated, and how many
    clips' tokens equal the reference's (transformers' `generate`)."""
    import ctranslate2

    settings = greedy_settings(loaded.model, generation, loaded.max_new_tokens(generation))
    config = loaded.model.generation_config
    order = length_sorted(dataset)
    plan = [list(rows) for rows in batches(order, generation.batch_size)]
    device = loaded.device

    def features_of(rows: list[int]) -> torch.Tensor:
        clips = [decode(audio).samples for audio in dataset.select(rows)["audio"]]
        return loaded.log_mel(clips, device)

    with tempfile.TemporaryDirectory() as folder:
        engine = ctranslate2_model(loaded, Path(folder), threads)
        one_thread = ctranslate2_model(loaded, Path(folder) / "one", 1) if threads > 1 else None

        def ct2(features: torch.Tensor, engine=engine) -> list[list[int]]:
            array = features.float().contiguous()
            view = ctranslate2.StorageView.from_array(array.numpy() if array.device.type == "cpu" else array)
            results = engine.generate(
                view,
                [list(settings.prompt)] * features.shape[0],
                beam_size=1,
                max_length=settings.max_new_tokens,
                suppress_blank=False,
                suppress_tokens=list(settings.suppress),
            )
            return [[t for t in result.sequences_ids[0] if t not in settings.eos] for result in results]

        def ct2_end_to_end() -> list[list[int]]:
            return [row for rows in plan for row in ct2(features_of(rows))]

        def ct2_one_thread() -> list[list[int]]:
            return [row for rows in plan for row in ct2(features_of(rows), one_thread)]

        precomputed = [features_of(rows) for rows in plan]

        def ct2_model_only() -> list[list[int]]:
            return [row for features in precomputed for row in ct2(features)]

        def kdlib_model_only() -> list[list[int]]:
            with torch.inference_mode():
                return [
                    row
                    for features, rows in zip(precomputed, plan)
                    for row in WhisperGreedy(loaded.model)(features.to(loaded.model.dtype), settings)
                ]

        def kdlib_with(worker_count: int | None) -> Callable[[], list[list[int]]]:
            def run() -> list[list[int]]:
                transcripts = transcribe(loaded, dataset, generation, "kdlib", worker_count)
                return [list(transcripts[index].token_ids) for index in order]

            return run

        def before() -> list[list[int]]:
            """main's path before this work: transformers' generate, the features computed in it, no read-ahead
            thread, the former default of loader workers (one fewer than the cores)."""
            saved = families.unsupported, transcription.READ_AHEAD, WhisperModel.front_end
            families.unsupported = lambda model, settings, length: "the reference"
            transcription.READ_AHEAD = False
            WhisperModel.front_end = lambda self: None
            try:
                return kdlib_with(max((os.cpu_count() or 1) - 1, 0))()
            finally:
                families.unsupported, transcription.READ_AHEAD, WhisperModel.front_end = saved

        methods: dict[str, Callable[[], list[list[int]]]] = {}
        for count in workers:
            label = "kdlib" if count == workers[0] else f"kdlib, {count} loader worker(s)"
            methods[label] = kdlib_with(count)
        methods["kdlib before (transformers generate)"] = before
        methods["CTranslate2 float32" if device.type == "cpu" else "CTranslate2"] = ct2_end_to_end
        if one_thread is not None and device.type == "cpu":
            methods["CTranslate2 float32, 1 thread"] = ct2_one_thread
        methods["kdlib, model only"] = kdlib_model_only
        methods["CTranslate2, model only"] = ct2_model_only

        seconds: dict[str, list[float]] = {name: [] for name in methods}
        outputs: dict[str, list[list[int]]] = {}
        # a CTranslate2 model sets the OpenMP threads of the thread that makes it, which torch shares: torch's
        # threads are set again before every method (and checked)
        torch_threads: dict[str, int] = {}
        for name, method in methods.items():  # warm-up (and the outputs compared)
            torch.set_num_threads(threads)
            torch_threads[name] = torch.get_num_threads()
            outputs[name] = method()
        load: list[float] = []
        for _ in range(rounds):
            load.append(round(os.getloadavg()[0], 2))
            for name, method in methods.items():
                torch.set_num_threads(threads)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                method()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds[name].append(time.perf_counter() - start)

    special = set(loaded.processor.tokenizer.all_special_ids)
    reference = [[t for t in row if t not in special] for row in outputs["kdlib before (transformers generate)"]]
    rows = []
    for name in methods:
        tokens = [[t for t in row if t not in special] for row in outputs[name]]
        median = statistics.median(seconds[name])
        rows.append(
            {
                "method": name,
                "clips": len(dataset),
                "seconds_median": round(median, 3),
                "seconds_rounds": [round(value, 3) for value in seconds[name]],
                "clips_per_s": round(len(dataset) / median, 1),
                "tokens_generated": sum(len(row) for row in tokens),
                "identical_to_before": sum(a == b for a, b in zip(tokens, reference)),
            }
        )
    details = {
        "torch_threads_per_method": torch_threads,
        "load_average_1min_per_round": load,
        "prompt": list(settings.prompt),
        "max_new_tokens": settings.max_new_tokens,
        "suppress_tokens": _summary(list(settings.suppress)),
        "begin_suppress_tokens": list(config.begin_suppress_tokens or []),
    }
    return rows, details


def _summary(tokens: list[int]) -> list[int] | dict:
    """A token list for the record; a contiguous run as its range and count."""
    if len(tokens) > 20 and tokens == list(range(tokens[0], tokens[-1] + 1)):
        return {"range": [tokens[0], tokens[-1]], "count": len(tokens)}
    return tokens


def ratios(rows: list[dict], baseline: str) -> None:
    """Each row's speed against `baseline` (its seconds over the row's: above 1 is faster), in place; the ratio
    of medians, and the range of the per-round ratios."""
    base = next(row for row in rows if row["method"] == baseline)
    for row in rows:
        per_round = [b / s for b, s in zip(base["seconds_rounds"], row["seconds_rounds"])]
        row[f"speed_vs_{baseline}"] = round(base["seconds_median"] / row["seconds_median"], 3)
        row["per_round_range"] = [round(min(per_round), 3), round(max(per_round), 3)]


def base_shape(teacher: WhisperModel, device: torch.device) -> WhisperModel:
    """whisper-base's architecture with random weights (6 + 6 layers, d = 512, 8 heads, 51,865-token vocabulary,
    80 mel bins, 30 s window), the profile's tokenizer and generation settings, the ids beyond its vocabulary
    suppressed (all methods apply the same suppress list)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    shape = dict(
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=448,
        vocab_size=51865,
    )
    torch.manual_seed(0)
    config = WhisperConfig(**{**teacher.model.config.to_dict(), **shape})
    model = WhisperForConditionalGeneration(config).to(device, teacher.model.dtype).eval()
    # the profile's generation settings, with every id beyond its vocabulary suppressed: random weights would
    # otherwise emit ids past <|notimestamps|> (timestamp tokens to `generate`, which cuts them into segments)
    model.generation_config = copy.deepcopy(teacher.model.generation_config)
    model.generation_config.suppress_tokens = list(range(teacher.model.config.vocab_size, shape["vocab_size"]))
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80, chunk_length=30),
        tokenizer=teacher.processor.tokenizer,
    )
    return WhisperModel("whisper-base architecture (random)", "config", model, processor)


def with_tokens(generation: GenerationParams, tokens: int | None) -> GenerationParams:
    """The generation settings compared: `tokens` as max_new_tokens when given; without timestamps (the prompt
    ends with <|notimestamps|> for every method)."""
    generation = replace(generation, return_timestamps=False)
    return replace(generation, max_new_tokens=tokens) if tokens else generation

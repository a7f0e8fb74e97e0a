"""Batched transcription of a prepared set: the shared engine of pseudo-labelling and evaluation.

Clips are sorted by duration so that a batch holds clips of similar length (their generated
lengths are alike, so fewer steps are wasted on finished sequences); generation is greedy
or beam search with the language and task forced, in the model's dtype (bf16 on a GPU), the
log-mel features computed on the model's device.
Whisper models cut clips longer than their window and join the pieces; the other families
(`kdlib.families`) take a clip whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from kdlib import families
from kdlib.audio import decode, split_long
from kdlib.config import GenerationParams
from kdlib.models import LoadedModel, text_token_ids


@dataclass(frozen=True)
class Transcript:
    id: str
    text: str
    token_ids: tuple[int, ...]
    seconds: float  # this clip's share of its batch's wall time


def length_sorted(dataset: datasets.Dataset) -> list[int]:
    """Row indices from the longest clip to the shortest (ties broken by id, for determinism)."""
    durations = np.asarray(dataset["duration_s"], dtype=np.float64)
    ids = np.asarray(dataset["id"])
    return list(np.lexsort((ids, -durations)))


def window_samples(loaded: LoadedModel) -> int | None:
    """Whisper's input window in samples; None for families without a fixed window."""
    if loaded.family != "whisper":
        return None
    extractor = loaded.processor.feature_extractor
    return int(extractor.chunk_length * extractor.sampling_rate)


def batches(indices: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


@torch.inference_mode()
def generate(loaded: LoadedModel, clips: Sequence[np.ndarray], generation: GenerationParams) -> list[list[int]]:
    """Token ids generated for each clip (each clip shorter than the model's window)."""
    if loaded.family == "seamless":
        return families.generate_seamless(loaded, clips, generation)
    if loaded.family == "ctc":
        return families.generate_ctc(loaded, clips)
    extractor = loaded.processor.feature_extractor
    # log-mel spectrograms on the model's device: on a GPU the STFT of a batch of 30 s windows
    # costs about as much CPU time as the encoder's GPU time
    features = extractor(list(clips), sampling_rate=extractor.sampling_rate, return_tensors="pt", device=str(loaded.device)).input_features
    model = loaded.model
    output = model.generate(
        input_features=features.to(loaded.device, dtype=model.dtype),
        language=generation.language,
        task=generation.task,
        num_beams=generation.num_beams,
        max_new_tokens=generation.max_new_tokens,
        return_timestamps=False,
    )
    sequences = output.sequences if hasattr(output, "sequences") else output
    return [text_token_ids(loaded.processor, row) for row in sequences.tolist()]


def transcribe_rows(
    loaded: LoadedModel,
    dataset: datasets.Dataset,
    indices: Sequence[int],
    generation: GenerationParams,
) -> list[Transcript]:
    """Transcribe the given rows in one batch; clips longer than the window are cut and joined."""
    window = window_samples(loaded)
    rows = dataset.select(indices)
    pieces: list[np.ndarray] = []
    owners: list[int] = []
    for position, audio in enumerate(rows["audio"]):
        samples = decode(audio, loaded.processor.feature_extractor.sampling_rate).samples
        for piece in split_long(samples, window) if window else [samples]:
            pieces.append(piece)
            owners.append(position)
    start = time.perf_counter()
    generated = generate(loaded, pieces, generation)
    seconds = (time.perf_counter() - start) / max(len(rows), 1)
    token_ids: list[list[int]] = [[] for _ in range(len(rows))]
    for owner, ids in zip(owners, generated):
        token_ids[owner].extend(ids)
    return [
        Transcript(clip_id, families.decode(loaded, ids), tuple(ids), seconds)
        for clip_id, ids in zip(rows["id"], token_ids)
    ]


def transcribe(
    loaded: LoadedModel,
    dataset: datasets.Dataset,
    generation: GenerationParams,
    description: str = "transcribing",
) -> list[Transcript]:
    """Transcribe a whole prepared set (length-sorted batches), returned in the set's row order."""
    order = length_sorted(dataset)
    results: dict[int, Transcript] = {}
    audio_seconds = np.asarray(dataset["duration_s"], dtype=np.float64)
    done_seconds = 0.0
    with tqdm(total=len(order), desc=description, unit="clip") as bar:
        started = time.perf_counter()
        for batch in batches(order, generation.batch_size):
            for index, transcript in zip(batch, transcribe_rows(loaded, dataset, batch, generation)):
                results[index] = transcript
            done_seconds += float(audio_seconds[list(batch)].sum())
            bar.update(len(batch))
            bar.set_postfix(audio_s_per_s=f"{done_seconds / max(time.perf_counter() - started, 1e-9):.1f}")
    return [results[index] for index in range(len(dataset))]

"""Batched transcription of a prepared set: the shared engine of pseudo-labelling and evaluation.

Clips are sorted by duration so that a batch holds clips of similar length (their generated
lengths are alike, so fewer steps are wasted on finished sequences); each model generates and
decodes the way its family does (`kdlib.families`). Clips longer than the model's window
(Whisper's 30 s) are cut and the pieces' transcripts joined; families without a window take a clip whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import datasets
import numpy as np
from tqdm import tqdm

from kdlib.audio import decode, split_long
from kdlib.config import GenerationParams
from kdlib.families import SpeechModel


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


def batches(indices: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def generate(model: SpeechModel, clips: Sequence[np.ndarray], generation: GenerationParams) -> list[list[int]]:
    """Token ids generated for each clip (each clip no longer than the model's window)."""
    return model.generate(clips, generation)


def transcribe_rows(
    loaded: SpeechModel,
    dataset: datasets.Dataset,
    indices: Sequence[int],
    generation: GenerationParams,
) -> list[Transcript]:
    """Transcribe the given rows in one batch; clips longer than the window are cut and joined."""
    window = loaded.window_samples
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
    return [Transcript(clip_id, loaded.decode(ids), tuple(ids), seconds) for clip_id, ids in zip(rows["id"], token_ids)]


def transcribe(
    loaded: SpeechModel,
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

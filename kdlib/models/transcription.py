"""Batched transcription of a prepared set: the shared engine of pseudo-labelling and evaluation.

Clips are sorted by duration so that a batch holds clips of similar length (their generated
lengths are alike, so fewer steps are wasted on finished sequences); each model generates and
decodes the way its family does (`kdlib.models.families`). Clips longer than the model's window
(Whisper's 30 s) are cut and the pieces' transcripts joined, or with `truncate` (`data.long_clips: truncate`)
cut to their first window only; families without a window take a clip whole.
Clips are read and decoded by `DataLoader` workers (`kdlib.corpus.loader`) while the model generates; for a
model on the CPU the workers also compute its features (Whisper's log-mel windows: `SpeechModel.front_end`,
the same function the model would run, so the same features). Whisper's greedy decoding runs kdlib's own loop
(`kdlib.models.decoding`), which drops rows from the batch as they end; its sequences are `generate`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from kdlib.config import GenerationParams
from kdlib.corpus.audio import decode, split_long
from kdlib.corpus.loader import MappedRows, WaitClock, planned_loader, resolve_workers
from kdlib.models.families import SpeechModel
from kdlib.storage.progress import progress


@dataclass(frozen=True)
class Transcript:
    id: str
    text: str
    token_ids: tuple[int, ...]
    seconds: float  # this clip's share of its batch's wall time
    timestamped: str | None = None  # the text with Whisper's timestamp tokens, when generated with them


def length_sorted(dataset: datasets.Dataset) -> list[int]:
    """Row indices from the longest clip to the shortest (ties broken by id, for determinism)."""
    durations = np.asarray(dataset["duration_s"], dtype=np.float64)
    ids = np.asarray(dataset["id"])
    return list(np.lexsort((ids, -durations)))


def batches(indices: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def generate(
    model: SpeechModel,
    clips: Sequence[np.ndarray],
    generation: GenerationParams,
    features: torch.Tensor | None = None,
) -> list[list[int]]:
    """Token ids generated for each clip (each clip no longer than the model's window); `features` as the
    model's `front_end` computed them, if it has one (a family without one is called without them)."""
    return model.generate(clips, generation) if features is None else model.generate(clips, generation, features)


@dataclass(frozen=True)
class AudioBatch:
    """One batch of clips ready for a model: the pieces (clips cut to its window) and whose they are."""

    rows: list[int]
    ids: list[str]
    pieces: list[np.ndarray]
    owners: list[int]  # position in `rows` of each piece
    audio_s: float
    features: torch.Tensor | None = None  # the pieces' features, from the model's front end


def read_audio_batch(
    source: MappedRows,
    rows: Sequence[int],
    sampling_rate: int,
    window: int | None,
    truncate: bool = False,
    front_end: Callable[[Sequence[np.ndarray]], torch.Tensor] | None = None,
) -> AudioBatch:
    """Decode the rows' clips and cut the ones longer than `window` samples into consecutive pieces (`truncate`:
    keep the first piece only, as Whisper's feature extractor does with a clip it is given whole); compute their
    features with `front_end` when given."""
    table = source.rows(list(rows), ["id", "audio"])
    pieces: list[np.ndarray] = []
    owners: list[int] = []
    for position, audio in enumerate(table["audio"]):
        samples = decode(audio, sampling_rate).samples
        if window and truncate:
            samples = samples[:window]
        for piece in split_long(samples, window) if window else [samples]:
            pieces.append(piece)
            owners.append(position)
    audio_s = sum(len(piece) for piece in pieces) / sampling_rate
    features = front_end(pieces) if front_end is not None and pieces else None
    return AudioBatch(list(rows), table["id"], pieces, owners, audio_s, features)


READ_AHEAD = True  # without loader workers, a thread reads the next batch while the model runs


class ReadAhead:
    """The batches of `batches` in order, each read by a thread while the previous one is in use: the audio
    decoding (libsndfile) and the log-mel features (torch) release the GIL, so they overlap the model's steps
    without a worker process (none starts, nothing is pickled; on 2 cores a process measured slower)."""

    def __init__(self, batches: Iterable) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator:
        iterator = iter(self.batches)
        end = object()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kdlib-read-ahead") as reader:
            pending = reader.submit(next, iterator, end)
            while (batch := pending.result()) is not end:
                pending = reader.submit(next, iterator, end)
                yield batch


def audio_batches(
    loaded: SpeechModel,
    dataset: datasets.Dataset,
    plan: Sequence[Sequence[int]],
    workers: int | None,
    truncate: bool = False,
) -> Iterable[AudioBatch]:
    """The batches of `plan` (row lists), decoded (and their features computed, see `read_audio_batch`) by
    `workers` loader processes ahead of the model, or with none by a thread one batch ahead (`ReadAhead`)."""
    source, rate, window = MappedRows(dataset), loaded.processor.feature_extractor.sampling_rate, loaded.window_samples
    front_end = loaded.front_end()
    loader = planned_loader(
        len(plan),
        lambda i: read_audio_batch(source, plan[i], rate, window, truncate, front_end),
        workers,
        loaded.device,
    )
    return ReadAhead(loader) if READ_AHEAD and resolve_workers(workers) == 0 else loader


def transcribe_batch(loaded: SpeechModel, batch: AudioBatch, generation: GenerationParams) -> list[Transcript]:
    """Transcribe one read batch; the pieces of a long clip are joined in order."""
    start = time.perf_counter()
    generated = generate(loaded, batch.pieces, generation, batch.features)
    seconds = (time.perf_counter() - start) / max(len(batch.rows), 1)
    token_ids: list[list[int]] = [[] for _ in batch.rows]
    for owner, ids in zip(batch.owners, generated):
        token_ids[owner].extend(ids)
    stamps = generation.return_timestamps
    return [
        Transcript(
            clip_id, loaded.decode(ids), tuple(ids), seconds, loaded.decode(ids, timestamps=True) if stamps else None
        )
        for clip_id, ids in zip(batch.ids, token_ids)
    ]


def transcribe(
    loaded: SpeechModel,
    dataset: datasets.Dataset,
    generation: GenerationParams,
    description: str = "transcribing",
    workers: int | None = 0,
    leave: bool = True,
    truncate: bool = False,
) -> list[Transcript]:
    """Transcribe a whole prepared set (length-sorted batches), returned in the set's row order (`leave`: keep the
    progress bar's last state on screen; `truncate`: a clip longer than the model's window is transcribed from its
    first window only)."""
    plan = list(batches(length_sorted(dataset), generation.batch_size))
    results: dict[int, Transcript] = {}
    done_seconds = 0.0
    clock = WaitClock()
    with progress(total=len(dataset), desc=description, unit="clip", leave=leave) as bar:
        for batch in clock.timed(audio_batches(loaded, dataset, plan, workers, truncate)):
            for index, transcript in zip(batch.rows, transcribe_batch(loaded, batch, generation)):
                results[index] = transcript
            done_seconds += batch.audio_s
            bar.update(len(batch.rows))
            bar.set_postfix(clock.postfix(done_seconds))
    return [results[index] for index in range(len(dataset))]

"""Batched transcription: length-sorted batches, row order kept, long clips cut into windows and joined."""

from __future__ import annotations

import datasets
import numpy as np
import torch

from kdlib.config import GenerationParams
from kdlib.corpus.audio import dataset_with_audio, encode_wav
from kdlib.corpus.preparation import features
from kdlib.models import transcription as transcribe_module
from kdlib.models.families import load_model


def clips_dataset(durations: list[float]) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    audio = [
        {"bytes": encode_wav(0.1 * rng.standard_normal(int(d * 16_000)).astype(np.float32)), "path": None}
        for d in durations
    ]
    n = len(durations)
    return dataset_with_audio(
        {
            "id": [f"c{i}" for i in range(n)],
            "audio": audio,
            "text": ["نص"] * n,
            "dataset": ["x"] * n,
            "variety": ["MSA"] * n,
            "duration_s": durations,
        },
        features(16_000),
    )


def test_length_sorted_puts_long_clips_first_and_breaks_ties_by_id() -> None:
    data = clips_dataset([1.0, 3.0, 2.0, 3.0])
    assert transcribe_module.length_sorted(data) == [1, 3, 2, 0]


def test_transcripts_come_back_in_row_order_and_long_clips_are_joined(ci_teacher: str, monkeypatch) -> None:
    loaded = load_model(ci_teacher, torch.device("cpu"))
    window = loaded.window_samples
    data = clips_dataset([1.0, window / 16_000 + 1.5, 2.0])
    sizes: list[list[int]] = []
    real_generate = transcribe_module.generate

    def spy(loaded_model, clips, generation, features=None):
        sizes.append([len(c) for c in clips])
        return real_generate(loaded_model, clips, generation, features)

    monkeypatch.setattr(transcribe_module, "generate", spy)
    out = transcribe_module.transcribe(loaded, data, GenerationParams(batch_size=2, max_new_tokens=8))
    assert [t.id for t in out] == ["c0", "c1", "c2"]
    assert sizes[0][:2] == [window, 24_000]  # the long clip (first: longest) cut into a full window and its rest
    assert sum(len(batch) for batch in sizes) == 4  # three clips, one of them in two pieces
    assert all(isinstance(t.text, str) and t.seconds >= 0 for t in out)

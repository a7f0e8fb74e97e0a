"""Audio decoding and the corpus layer: every bad-input case is skipped with its reason, nothing crashes."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile

from kdlib.config import DatasetSpec, Params
from kdlib.corpus import preparation as data
from kdlib.corpus.audio import AudioError, dataset_with_audio, decode, encode_wav
from kdlib.storage.hub import HubState


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


def test_decode_resamples_and_mixes_to_mono() -> None:
    clip = decode({"bytes": wav_bytes(tone(1.0, 44_100, channels=2), 44_100)}, 16_000)
    assert clip.original_rate == 44_100 and clip.sampling_rate == 16_000
    assert clip.samples.ndim == 1 and abs(len(clip.samples) - 16_000) <= 2
    assert clip.duration_s == pytest.approx(1.0, abs=1e-3)


def test_decode_accepts_arrays_and_round_trips_wav() -> None:
    samples = tone(0.5, 16_000)
    clip = decode({"bytes": encode_wav(samples)}, 16_000)
    assert np.abs(clip.samples - samples).max() < 1e-3
    assert len(decode({"array": samples, "sampling_rate": 8_000}, 16_000).samples) == 2 * len(samples)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ({"bytes": b"RIFF\x00\x00not a wave file at all"}, "corrupt"),
        ({"bytes": wav_bytes(np.zeros(0, np.float32), 16_000)}, "empty"),
        ({"array": np.array([0.1, np.nan], np.float32), "sampling_rate": 16_000}, "corrupt"),
        ({"array": np.array([0.1], np.float32), "sampling_rate": None}, "corrupt"),
        ({"bytes": None, "path": None}, "empty"),
    ],
)
def test_decode_rejects_bad_audio_with_a_reason(cell: dict, reason: str) -> None:
    with pytest.raises(AudioError) as caught:
        decode(cell, 16_000)
    assert caught.value.reason == reason


@pytest.fixture
def local_folder(tmp_path: Path) -> Path:
    """An audiofolder with one clip of each kind: good, resampled, corrupt, empty, too long, no text."""
    folder = tmp_path / "local"
    folder.mkdir()
    clips = {
        "good.wav": (wav_bytes(tone(1.0, 16_000), 16_000), "مرحبا بكم"),
        "rate.wav": (wav_bytes(tone(1.0, 22_050), 22_050), "صباح الخير"),
        "corrupt.wav": (b"RIFF\x10\x00\x00\x00WAVEjunk", "نص"),
        "empty.wav": (wav_bytes(np.zeros(0, np.float32), 16_000), "نص فارغ"),
        "long.wav": (wav_bytes(tone(7.0, 16_000), 16_000), "مقطع طويل"),
        "notext.wav": (wav_bytes(tone(1.0, 16_000), 16_000), " "),
    }
    lines = ["file_name,text"]
    for name, (payload, text) in clips.items():
        (folder / name).write_bytes(payload)
        lines.append(f"{name},{text}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def local_params(params: Params, tmp_path: Path, **data_changes) -> Params:
    return replace(params, cache_dir=str(tmp_path / "cache"), data=replace(params.data, **data_changes))


def test_local_folder_training_set_skips_and_counts_bad_clips(
    ci_params: Params, local_folder: Path, tmp_path: Path
) -> None:
    spec = DatasetSpec(name="local", source="local", path=str(local_folder), split="train", variety="MSA")
    corpus = data.prepare(spec, local_params(ci_params, tmp_path, max_duration_s=6.0), "train")
    kept = sorted(corpus.dataset["text"])
    assert kept == sorted(["مرحبا بكم", "صباح الخير"])
    reasons = sorted(corpus.skipped["reason"])
    assert reasons == ["corrupt", "empty", "empty_reference", "too_long"]
    assert set(corpus.dataset["variety"]) == {"MSA"} and set(corpus.dataset["dataset"]) == {"local"}
    for audio in corpus.dataset["audio"]:
        assert decode(audio).original_rate == 16_000  # stored resampled
    assert set(data.skip_summary(corpus.skipped)["clips"]) == {1}


def test_test_sets_keep_empty_references_and_may_chunk_long_clips(
    ci_params: Params, local_folder: Path, tmp_path: Path
) -> None:
    spec = DatasetSpec(name="local", source="local", path=str(local_folder), split="train", variety="MSA")
    corpus = data.prepare(spec, local_params(ci_params, tmp_path, max_duration_s=6.0, long_clips="chunk"), "test")
    assert len(corpus.dataset) == 4  # good, resampled, long (to be chunked), empty reference
    assert "" in corpus.dataset["text"] and max(corpus.dataset["duration_s"]) == pytest.approx(7.0, abs=0.01)
    flagged = corpus.skipped.set_index("reason")
    assert flagged.loc["empty_reference", "detail"].startswith("kept")


def test_missing_local_folder_is_a_clear_error(ci_params: Params, tmp_path: Path) -> None:
    spec = DatasetSpec(name="nowhere", source="local", path=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="nowhere.*metadata.csv"):
        data.prepare(spec, local_params(ci_params, tmp_path), "test")


def test_hub_source_maps_its_columns(ci_params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub loading is real code; a local stand-in replaces the download."""
    clip = {"bytes": wav_bytes(tone(1.0, 48_000), 48_000), "path": None}
    stand_in = dataset_with_audio(
        {"sentence": ["السلام عليكم", "مع السلامة"], "audio": [clip, clip], "id": ["same", "same"]},
        datasets.Features(
            {
                "sentence": datasets.Value("string"),
                "audio": datasets.Audio(decode=False),
                "id": datasets.Value("string"),
            }
        ),
    )
    calls = []
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *args, **kwargs: calls.append((args, kwargs)) or stand_in)
    # the probe before loading (tests/test_preflight.py) answers as the hub does for a reachable set
    monkeypatch.setattr(
        data.hub, "probe", lambda path, kind, revision=None, **_: HubState(path, kind, "reachable", False)
    )
    spec = DatasetSpec(
        name="CV",
        source="hub",
        path="mozilla-foundation/common_voice_15_0",
        config="ar",
        split="test",
        text_column="sentence",
        variety="MSA",
    )
    corpus = data.prepare(spec, local_params(ci_params, tmp_path), "test")
    assert calls[0][0] == ("mozilla-foundation/common_voice_15_0", "ar")
    assert list(corpus.dataset["text"]) == ["السلام عليكم", "مع السلامة"] and set(corpus.dataset["variety"]) == {"MSA"}
    assert list(corpus.dataset["id"]) == ["CV/same", "CV/same#2"]  # ids are unique within and across sets
    assert decode(corpus.dataset[0]["audio"]).original_rate == 16_000

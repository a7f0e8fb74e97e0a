"""Audio decoding and screening: every clip is checked once, and a bad one is skipped with a reason."""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile
import soxr

if TYPE_CHECKING:
    import datasets

SAMPLING_RATE = 16_000


class AudioError(ValueError):
    """A clip that cannot be used; `reason` is a short category counted in the reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Clip:
    """A decoded mono float32 clip at `sampling_rate`, and the rate it was stored at."""

    samples: np.ndarray
    sampling_rate: int
    original_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sampling_rate


def decode(audio: Mapping[str, Any] | str, sampling_rate: int = SAMPLING_RATE) -> Clip:
    """Decode an audio cell (`{"bytes"|"path"}`, `{"array", "sampling_rate"}` or a path).

    The clip is mixed to mono and resampled (soxr) when stored at another rate.
    Raises `AudioError` with reason `missing` (no such file), `unreadable` (a symbolic link loop, a file system
    error), `corrupt` (undecodable, non-finite) or `empty`.
    """
    samples, original_rate = _read(audio)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.size == 0:
        raise AudioError("empty", "the clip has no samples")
    if not np.isfinite(samples).all():
        raise AudioError("corrupt", "the clip holds NaN or infinite samples")
    if original_rate != sampling_rate:
        samples = soxr.resample(samples, original_rate, sampling_rate)
    return Clip(np.ascontiguousarray(samples, dtype=np.float32), sampling_rate, original_rate)


def _read(audio: Mapping[str, Any] | str) -> tuple[np.ndarray, int]:
    if isinstance(audio, Mapping) and audio.get("array") is not None:
        rate = audio.get("sampling_rate")
        if not rate:
            raise AudioError("corrupt", "an audio array without its sampling rate")
        return np.asarray(audio["array"], dtype=np.float32), int(rate)
    source: Any = audio
    if isinstance(audio, Mapping):
        source = io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio.get("path")
    if source is None:
        raise AudioError("empty", "the audio cell holds neither bytes nor a path")
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as error:
        if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
            raise _unreachable(os.fspath(source)) from error
        raise AudioError("corrupt", f"cannot decode: {error}") from error
    return samples, int(rate)


def _unreachable(path: str) -> AudioError:
    """Why a path names no file: absent (`missing`), a broken symbolic link (`missing`, naming its target), or a
    symbolic link loop or another error of the file system (`unreadable`)."""
    if not os.path.lexists(path):
        return AudioError("missing", f"no audio file {path}")
    try:
        os.stat(path)
    except FileNotFoundError:
        return AudioError("missing", f"{path}: broken symbolic link to {os.readlink(path)}")
    except OSError as error:
        if error.errno == errno.ELOOP:
            return AudioError("unreadable", f"{path}: symbolic link loop ({error.strerror})")
        return AudioError("unreadable", f"{path}: {error.strerror}")
    return AudioError("missing", f"no audio file {path}")


def encode_audio(samples: np.ndarray, sampling_rate: int = SAMPLING_RATE, audio_format: str = "flac") -> bytes:
    """16-bit PCM bytes of a float clip, as `flac` (lossless, smaller) or `wav`: the storage of prepared sets.

    The clip is quantised here (× 32768, rounded, clipped), so both formats hold the same integers and
    a clip decoded from 16-bit audio is stored exactly as it was."""
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, sampling_rate, format=audio_format.upper(), subtype="PCM_16")
    return buffer.getvalue()


def encode_wav(samples: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> bytes:
    """16-bit PCM WAV bytes of a float clip, as libsndfile scales it (the embedded corpus' format)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def screen_batch(cells: list, sampling_rate: int, audio_format: str) -> list[tuple]:
    """Clips decoded, checked and re-encoded for storage: per clip `(bytes, duration_s)`, or the
    `(reason, detail)` of its `AudioError` (returned, not raised, so that it crosses processes as it is)."""
    screened: list[tuple] = []
    for cell in cells:
        try:
            clip = decode(cell, sampling_rate)
        except AudioError as error:
            screened.append((error.reason, error.detail))
            continue
        screened.append((encode_audio(clip.samples, sampling_rate, audio_format), clip.duration_s))
    return screened


def split_long(samples: np.ndarray, max_samples: int) -> list[np.ndarray]:
    """Cut a clip into consecutive windows of at most `max_samples` (for long-form chunking)."""
    return [samples[start : start + max_samples] for start in range(0, len(samples), max_samples)]


def dataset_with_audio(
    columns: dict[str, list], features: datasets.Features, fingerprint: str | None = None
) -> datasets.Dataset:
    """A `datasets.Dataset` from columns whose audio cells are already `{"bytes", "path"}` (and, if given, the
    content key that is its fingerprint).

    Built from an Arrow table, so no audio codec is needed to store undecoded audio.
    """
    import datasets
    import pyarrow as pa

    table = pa.Table.from_pydict(columns, schema=features.arrow_schema)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features), fingerprint=fingerprint)

"""The corpus layer: any configured training or test set as one `datasets.Dataset` of one schema.

Columns: `id`, `audio` (16 kHz WAV bytes, an `Audio` feature), `text`, `dataset`, `variety`,
`duration_s`. Sources: the embedded synthetic corpus, a local folder (audiofolder with a
`metadata.csv`) and hub datasets by name. Each clip is decoded once while preparing: a clip
that is missing, corrupt, empty or too long is skipped with its reason, an empty reference is
kept out of training, and every skip is returned in a table that the reports count. A set left
with no clip is still prepared (and cached) empty, with its skips; a training pool may not be empty.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import datasets
import pandas as pd

from kdlib.audio import AudioError, dataset_with_audio, decode, encode_wav
from kdlib.cache import build_once, fingerprint, loads_from_disk, safe_component
from kdlib.config import DataParams, DatasetSpec, Params
from kdlib.paths import RunLayout
from kdlib.synth import build_corpus

Purpose = Literal["train", "test"]
SKIP_COLUMNS = ["id", "dataset", "reason", "detail"]


@dataclass(frozen=True)
class Corpus:
    """A prepared set and what was left out of it (or kept with a warning), with reasons."""

    dataset: datasets.Dataset
    skipped: pd.DataFrame
    folder: Path | None = None  # where a prepared set lies in the cache (None for a mixture)


def features(sampling_rate: int) -> datasets.Features:
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=sampling_rate, decode=False),
            "text": datasets.Value("string"),
            "dataset": datasets.Value("string"),
            "variety": datasets.Value("string"),
            "duration_s": datasets.Value("float32"),
        }
    )


def load_raw(spec: DatasetSpec, params: Params) -> datasets.Dataset:
    """Read a set as its source stores it, with its audio column left undecoded."""
    if spec.source == "synthetic":
        path = build_corpus(params.data.synthetic, params.cache_path, params.data.sampling_rate)
        corpus = datasets.load_from_disk(str(path))
        if spec.split not in corpus:
            raise ValueError(f"dataset {spec.name!r}: the synthetic corpus has no split {spec.split!r}: {list(corpus)}")
        raw = corpus[spec.split]
    elif spec.source == "local":
        raw = read_audiofolder(spec)
    else:
        if spec.path is None:
            raise ValueError(f"dataset {spec.name!r}: a hub dataset needs `path` (its hub id)")
        raw = datasets.load_dataset(spec.path, spec.config, split=spec.split, streaming=spec.streaming)
        if spec.streaming:
            raw = raw.cast_column(spec.audio_column, datasets.Audio(decode=False))
            stream = raw.take(spec.max_samples) if spec.max_samples else raw
            examples = list(stream)
            return dataset_with_audio({k: [e[k] for e in examples] for k in raw.features}, raw.features)
    if spec.audio_column not in raw.column_names or spec.text_column not in raw.column_names:
        raise ValueError(
            f"dataset {spec.name!r}: expected columns {spec.audio_column!r} and {spec.text_column!r}, "
            f"found {raw.column_names}"
        )
    raw = raw.cast_column(spec.audio_column, datasets.Audio(decode=False))
    if spec.max_samples is not None:
        raw = raw.select(range(min(spec.max_samples, len(raw))))
    return raw


def read_audiofolder(spec: DatasetSpec) -> datasets.Dataset:
    """A local folder in the audiofolder layout: audio files and a UTF-8 `metadata.csv` whose
    `file_name` column names them (in `<path>/<split>/` if that exists, else in `<path>/`); without
    an `id` column, that file name is the clip's id. Audio stays undecoded (paths), so that a bad
    file is caught per clip while preparing."""
    root = Path(spec.path or "")
    folder = root / spec.split if (root / spec.split / "metadata.csv").exists() else root
    metadata = folder / "metadata.csv"
    if not metadata.exists():
        raise FileNotFoundError(f"dataset {spec.name!r}: no metadata.csv in local folder {str(root)!r}")
    try:
        table = pd.read_csv(metadata, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"dataset {spec.name!r}: {metadata} must be UTF-8 text ({error.reason})") from error
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"dataset {spec.name!r}: {metadata} is empty (it needs a 'file_name' header)") from error
    if "file_name" not in table.columns:
        raise ValueError(f"dataset {spec.name!r}: {metadata} has no 'file_name' column")
    columns = {name: table[name].tolist() for name in table.columns if name != "file_name"}
    columns.setdefault("id", table["file_name"].tolist())  # a clip is named by its file unless the table names it
    columns[spec.audio_column] = [{"bytes": None, "path": str(folder / name)} for name in table["file_name"]]
    features = datasets.Features({name: datasets.Value("string") for name in columns})
    features[spec.audio_column] = datasets.Audio(decode=False)
    return dataset_with_audio(columns, features)


def prepare(spec: DatasetSpec, params: Params, purpose: Purpose) -> Corpus:
    """Load, screen and standardise one set (possibly empty, with its skips); cached on disk by its inputs."""
    data = params.data
    name = safe_component(spec.name)
    key = fingerprint("prepared-v2", spec, purpose, data.sampling_rate, data.max_duration_s, data.long_clips)
    raw = load_raw(spec, params)
    target = RunLayout(params).prepared(name, fingerprint(key, raw._fingerprint, _local_files(raw, spec)))
    build_once(target, _is_prepared, lambda directory: _screen_to_disk(raw, spec, data, purpose, directory))
    return read_prepared(target)


def read_prepared(folder: Path) -> Corpus:
    """A prepared set as `prepare` left it: its dataset and its table of skipped or flagged clips."""
    skipped = pd.read_csv(folder / "skipped.csv", dtype=str, keep_default_na=False)
    return Corpus(datasets.load_from_disk(str(folder / "dataset")), skipped, folder)


def _is_prepared(directory: Path) -> bool:
    return (directory / "skipped.csv").exists() and loads_from_disk(directory / "dataset")


def _local_files(raw: datasets.Dataset, spec: DatasetSpec) -> list[tuple[str, int, int]]:
    """Size and modification time of a local set's audio files: replaced audio is prepared anew."""
    if spec.source != "local":
        return []
    paths = [cell["path"] for cell in raw[spec.audio_column]]
    return [(path, stat.st_size, stat.st_mtime_ns) for path in paths if (stat := _stat(path)) is not None]


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _screen_to_disk(
    raw: datasets.Dataset, spec: DatasetSpec, data: DataParams, purpose: Purpose, directory: Path
) -> None:
    rows: dict[str, list] = {name: [] for name in features(data.sampling_rate)}
    skipped: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for index, example in enumerate(raw):
        clip_id = _unique_id(spec, example, index, seen)
        text = (example[spec.text_column] or "").strip()
        variety = spec.variety or (example[spec.variety_column] if spec.variety_column else "unknown")
        try:
            clip = decode(example[spec.audio_column], data.sampling_rate)
        except AudioError as error:
            skipped.append({"id": clip_id, "dataset": spec.name, "reason": error.reason, "detail": error.detail})
            continue
        too_long = clip.duration_s > data.max_duration_s
        if too_long and (purpose == "train" or data.long_clips == "skip"):
            detail = f"{clip.duration_s:.1f} s > {data.max_duration_s:g} s"
            skipped.append({"id": clip_id, "dataset": spec.name, "reason": "too_long", "detail": detail})
            continue
        if not text:
            kept = purpose == "test"
            detail = "kept: scored as all insertions" if kept else "left out of training"
            skipped.append({"id": clip_id, "dataset": spec.name, "reason": "empty_reference", "detail": detail})
            if not kept:
                continue
        rows["id"].append(clip_id)
        rows["audio"].append({"bytes": encode_wav(clip.samples, data.sampling_rate), "path": None})
        rows["text"].append(text)
        rows["dataset"].append(spec.name)
        rows["variety"].append(variety)
        rows["duration_s"].append(clip.duration_s)
    dataset = dataset_with_audio(rows, features(data.sampling_rate))
    # An empty set gets one empty shard: saved without any, it would not load back.
    dataset.save_to_disk(str(directory / "dataset"), num_shards=1 if len(dataset) == 0 else None)
    frame = pd.DataFrame(skipped, columns=SKIP_COLUMNS)
    (directory / "skipped.csv").write_text(frame.to_csv(index=False), encoding="utf-8")


def _unique_id(spec: DatasetSpec, example: dict, index: int, seen: dict[str, int]) -> str:
    """`<set name>/<source id>` (the row number if the source has none); a repeated source id
    gets `#2`, `#3`, … so that every clip of a mixture has its own id."""
    source_id = example[spec.id_column] if spec.id_column else example.get("id")
    clip_id = f"{spec.name}/{source_id if source_id not in (None, '') else f'{index:06d}'}"
    seen[clip_id] = seen.get(clip_id, 0) + 1
    return clip_id if seen[clip_id] == 1 else f"{clip_id}#{seen[clip_id]}"


def load_mixture(specs: tuple[DatasetSpec, ...], params: Params, purpose: Purpose) -> Corpus:
    """Several sets prepared and concatenated into one (the distillation pool is a mixture of corpora)."""
    return mixture(specs, [prepare(spec, params, purpose) for spec in specs], purpose)


def mixture(specs: tuple[DatasetSpec, ...], parts: list[Corpus], purpose: Purpose) -> Corpus:
    """Prepared sets concatenated into one; a ValueError naming each set and its skips if no clip is left."""
    if not parts:
        raise ValueError(f"no {purpose} datasets are configured")
    combined = datasets.concatenate_datasets([part.dataset for part in parts])
    if len(combined) == 0:
        sets = "; ".join(f"{spec.name!r}: {_skip_counts(part.skipped)}" for spec, part in zip(specs, parts))
        raise ValueError(f"the {purpose} datasets hold no usable clip after screening ({sets})")
    return Corpus(combined, pd.concat([part.skipped for part in parts], ignore_index=True))


def _skip_counts(skipped: pd.DataFrame) -> str:
    """`2 corrupt, 1 missing`, or `no clips` for a set that had none."""
    counts = skipped["reason"].value_counts().sort_index()
    return ", ".join(f"{count} {reason}" for reason, count in counts.items()) or "no clips"


def load_test_sets(params: Params) -> dict[str, Corpus]:
    """Every configured test set, by name, in params order."""
    return {spec.name: prepare(spec, params, "test") for spec in params.data.test}


def skip_summary(skipped: pd.DataFrame) -> pd.DataFrame:
    """Counts of skipped or flagged clips per dataset and reason (a table for the reports)."""
    if skipped.empty:
        return pd.DataFrame(columns=["dataset", "reason", "clips"])
    return skipped.groupby(["dataset", "reason"]).size().rename("clips").reset_index()
